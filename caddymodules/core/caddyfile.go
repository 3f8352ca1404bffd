package core

import (
	"strconv"
	"strings"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/caddyserver/caddy/v2/caddyconfig/httpcaddyfile"

	"github.com/wisehosting/wisehosting/internal/plans"
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
//		apps_port         <port>
//		public_url        <url>
//		admin_email       <email>|off
//		worker_token_ttl  <duration>
//		allow_local_git   on|off
//		volume_grace      <duration>
//		default_plan      <name>
//		plan <name> {
//			cpu_millis     <n>
//			memory_mb      <n>
//			disk_mb        <n>
//			bandwidth_kbit <n>
//			replicas       <n>
//			apps           <n>
//			custom_domains on|off
//			previews       on|off
//		}
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
		if key == "plan" {
			name, p, err := parsePlan(d)
			if err != nil {
				return nil, err
			}
			if app.Plans == nil {
				app.Plans = map[string]plans.Plan{}
			}
			if _, dup := app.Plans[name]; dup {
				return nil, d.Errf("plan %q defined twice", name)
			}
			app.Plans[name] = p
			continue
		}
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
		case "domain_resolvers":
			// One argument, comma-separated: "127.0.0.1:5353, 1.1.1.1".
			app.DomainResolvers = strings.FieldsFunc(val, func(r rune) bool { return r == ',' || r == ' ' })
		case "apps_port":
			n, err := strconv.Atoi(val)
			if err != nil || n < 1 || n > 65535 {
				return nil, d.Errf("apps_port: %q is not a TCP port", val)
			}
			app.AppsPort = n
		case "public_url":
			app.PublicURL = val
		case "admin_email":
			app.AdminEmail = val
		case "allow_local_git":
			if val != "on" && val != "off" {
				return nil, d.Errf("allow_local_git: %q must be on or off", val)
			}
			app.AllowLocalGit = val == "on"
		case "default_plan":
			app.DefaultPlan = val
		case "volume_grace":
			g, err := caddy.ParseDuration(val)
			if err != nil || g < 0 {
				return nil, d.Errf("volume_grace: %q must be a duration (0s removes released volumes at once)", val)
			}
			app.VolumeGrace = caddy.Duration(g)
			if g == 0 {
				app.VolumeGrace = caddy.Duration(time.Nanosecond)
			}
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

// parsePlan reads one `plan <name> { … }` block.
func parsePlan(d *caddyfile.Dispenser) (string, plans.Plan, error) {
	var p plans.Plan
	if !d.NextArg() {
		return "", p, d.ArgErr()
	}
	name := d.Val()
	if d.NextArg() {
		return "", p, d.ArgErr()
	}
	for d.NextBlock(1) {
		key := d.Val()
		var val string
		if !d.AllArgs(&val) {
			return "", p, d.ArgErr()
		}
		switch key {
		case "custom_domains", "previews":
			var on bool
			switch val {
			case "on", "true", "yes":
				on = true
			case "off", "false", "no":
			default:
				return "", p, d.Errf("plan %s: %s must be on or off, not %q", name, key, val)
			}
			if key == "custom_domains" {
				p.CustomDomains = on
			} else {
				p.Previews = on
			}
			continue
		}
		n, err := strconv.Atoi(val)
		if err != nil || n < 0 {
			return "", p, d.Errf("plan %s: %s must be a non-negative integer, not %q", name, key, val)
		}
		switch key {
		case "cpu_millis":
			p.CPUMillis = n
		case "memory_mb":
			p.MemoryMB = n
		case "disk_mb":
			p.DiskMB = n
		case "bandwidth_kbit":
			p.BandwidthKbit = n
		case "replicas":
			p.Replicas = n
		case "apps":
			p.Apps = n
		default:
			return "", p, d.Errf("plan %s: unknown limit %q", name, key)
		}
	}
	return name, p, nil
}
