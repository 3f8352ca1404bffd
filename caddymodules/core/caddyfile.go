package core

import (
	"strconv"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/caddyserver/caddy/v2/caddyconfig/httpcaddyfile"
)

func init() {
	httpcaddyfile.RegisterGlobalOption(AppName, parseGlobalOption)
}

// parseGlobalOption reads the `wisehosting` global option block:
//
//	wisehosting {
//		database_url      <url>
//		database_password <password>
//		max_conns         <n>
//		secret            <secret>
//		previous_secrets  <secret...>
//		proxy_token       <token>
//		internal_token    <token>
//		subdomain_base    <domain>
//		public_url        <url>
//		admin_email       <email>|off
//		worker_token_ttl  <duration>
//	}
func parseGlobalOption(d *caddyfile.Dispenser, existing any) (any, error) {
	app := new(App)
	if existing != nil {
		return nil, d.Err("the wisehosting global option may appear only once")
	}
	d.Next() // option name
	if d.NextArg() {
		return nil, d.ArgErr()
	}
	for d.NextBlock(0) {
		key := d.Val()
		if key == "previous_secrets" {
			app.PreviousSecrets = append(app.PreviousSecrets, d.RemainingArgs()...)
			if len(app.PreviousSecrets) == 0 {
				return nil, d.ArgErr()
			}
			continue
		}
		var val string
		if !d.AllArgs(&val) {
			return nil, d.ArgErr()
		}
		switch key {
		case "database_url":
			app.DatabaseURL = val
		case "database_password":
			app.DatabasePassword = val
		case "max_conns":
			n, err := strconv.ParseInt(val, 10, 32)
			if err != nil || n < 1 {
				return nil, d.Errf("max_conns: %q is not a positive integer", val)
			}
			app.MaxConns = int32(n)
		case "secret":
			app.Secret = val
		case "proxy_token":
			app.ProxyToken = val
		case "internal_token":
			app.InternalToken = val
		case "subdomain_base":
			app.SubdomainBase = val
		case "public_url":
			app.PublicURL = val
		case "admin_email":
			app.AdminEmail = val
		case "worker_token_ttl":
			ttl, err := caddy.ParseDuration(val)
			if err != nil || ttl < 3*time.Minute {
				return nil, d.Errf("worker_token_ttl: %q must be a duration of at least 3m", val)
			}
			app.WorkerTokenTTL = caddy.Duration(ttl)
		default:
			return nil, d.Errf("unrecognized wisehosting option %q", key)
		}
	}
	return httpcaddyfile.App{Name: AppName, Value: caddyconfig.JSON(app, nil)}, nil
}
