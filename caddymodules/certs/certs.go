// Package certs is the `wisehosting_certs` Caddy app of the control plane:
// it watches the certificates that proxies keep in the shared Postgres
// storage, records them in the certificates table (expiry shown to users)
// and emits CertProvisioned and CertExpiring events (alerts, webhooks).
// The proxies renew their certificates themselves (certmagic, a third of
// the lifetime before expiry); a certificate still inside the warning
// window has been failing to renew for weeks, so it is reported
// (CertExpiring) and, with `renew` configured, renewed by the control plane
// through the same shared storage.
package certs

import (
	"context"
	"fmt"
	"strconv"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/caddyserver/certmagic"
	"go.uber.org/zap"

	"github.com/wisehosting/wisehosting/caddymodules/core"
	"github.com/wisehosting/wisehosting/internal/certs"
	"github.com/wisehosting/wisehosting/internal/store"
)

func init() {
	core.RegisterApp(new(App), parseGlobalOption)
}

// App watches certificates.
type App struct {
	// How often certificates are checked. Default: 10m.
	Interval caddy.Duration `json:"interval,omitempty"`
	// A certificate expiring sooner is reported as expiring. Default: 14d
	// (certmagic renews 90-day certificates 30 days before expiry).
	Warn caddy.Duration `json:"warn,omitempty"`
	// Renew, when set, renews expiring certificates from the control plane.
	Renew *RenewConfig `json:"renew,omitempty"`

	renewer    *certmagic.Config
	renewCache *certmagic.Cache
	wh         *core.App
	logger     *zap.Logger
	bg         core.Background
}

// CaddyModule returns the Caddy module information.
func (*App) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{ID: "wisehosting_certs", New: func() caddy.Module { return new(App) }}
}

// Provision applies defaults.
func (a *App) Provision(ctx caddy.Context) (err error) {
	if a.wh, a.logger, err = core.Use(ctx); err != nil {
		return err
	}
	a.wh.NeedConns("certs", 1) // the sync loop
	if a.Interval <= 0 {
		a.Interval = caddy.Duration(10 * time.Minute)
	}
	if a.Warn <= 0 {
		a.Warn = caddy.Duration(14 * 24 * time.Hour)
	}
	return a.provisionRenewal(ctx)
}

// Validate checks that an expiring certificate is seen before it expires:
// the warning window must be longer than the check interval.
func (a *App) Validate() error {
	if a.Warn <= a.Interval {
		return fmt.Errorf("wisehosting_certs: warn (%s) must exceed interval (%s)", time.Duration(a.Warn), time.Duration(a.Interval))
	}
	return nil
}

// Start runs the watcher.
func (a *App) Start() error {
	a.bg.Go(func(ctx context.Context) {
		store.Every(ctx, time.Duration(a.Interval), true, func(ctx context.Context) {
			if err := a.RunOnce(ctx); err != nil && ctx.Err() == nil {
				a.logger.Error("certs: checking certificates", zap.Error(err))
			}
		})
	})
	return nil
}

// Stop ends the watcher.
func (a *App) Stop() error {
	a.bg.Stop()
	if a.renewCache != nil {
		a.renewCache.Stop()
	}
	return nil
}

// RunOnce syncs once, on one replica at a time.
func (a *App) RunOnce(ctx context.Context) error {
	ch, err := certs.Sync(ctx, a.wh.Pool(), time.Now(), time.Duration(a.Warn), a.wh.SubdomainBase)
	if err != nil {
		return err
	}
	for _, c := range ch.Provisioned {
		a.logger.Info("certs: certificate provisioned", zap.String("host", c.Hostname), zap.Time("expires", c.NotAfter))
	}
	for _, c := range ch.Expiring {
		a.logger.Warn("certs: certificate expiring and not renewed", zap.String("host", c.Hostname), zap.Time("expires", c.NotAfter))
		a.renew(ctx, c.Hostname)
	}
	return nil
}

// parseGlobalOption reads:
//
//	wisehosting_certs {
//		interval <duration>
//		warn     <duration>
//		renew {
//			ca            <acme directory>
//			email         <email>
//			trusted_roots <pem file>...
//			challenge_ports <http-01 port> <tls-alpn-01 port>
//			dns           <provider> [args]
//		}
//	}
func parseGlobalOption(d *caddyfile.Dispenser, _ any) (any, error) {
	a := new(App)
	return core.Options{App: "wisehosting_certs", Durations: map[string]*caddy.Duration{"interval": &a.Interval, "warn": &a.Warn},
		Block: func(d *caddyfile.Dispenser, key string) (bool, error) {
			if key != "renew" {
				return false, nil
			}
			r, err := parseRenew(d)
			a.Renew = r
			return true, err
		}}.Parse(d, a)
}

func parseRenew(d *caddyfile.Dispenser) (*RenewConfig, error) {
	r := new(RenewConfig)
	for nesting := d.Nesting(); d.NextBlock(nesting); {
		switch d.Val() {
		case "ca":
			if !d.AllArgs(&r.CA) {
				return nil, d.ArgErr()
			}
		case "email":
			if !d.AllArgs(&r.Email) {
				return nil, d.ArgErr()
			}
		case "trusted_roots":
			r.TrustedRootsPEMFiles = append(r.TrustedRootsPEMFiles, d.RemainingArgs()...)
		case "challenge_ports":
			args := d.RemainingArgs()
			if len(args) != 2 {
				return nil, d.ArgErr()
			}
			for _, a := range args {
				n, err := strconv.Atoi(a)
				if err != nil || n < 1 || n > 65535 {
					return nil, d.Errf("challenge_ports: invalid port %q", a)
				}
				r.ChallengePorts = append(r.ChallengePorts, n)
			}
		case "dns":
			if !d.NextArg() {
				return nil, d.ArgErr()
			}
			name := d.Val()
			mod, err := caddyfile.UnmarshalModule(d, "dns.providers."+name)
			if err != nil {
				return nil, err
			}
			r.DNSRaw = caddyconfig.JSONModuleObject(mod, "name", name, nil)
		default:
			return nil, d.Errf("unrecognized renew option %q", d.Val())
		}
	}
	if r.CA == "" {
		return nil, d.Err("renew: ca is required")
	}
	return r, nil
}

// Interface guards.
var (
	_ caddy.App         = (*App)(nil)
	_ caddy.Provisioner = (*App)(nil)
	_ caddy.Validator   = (*App)(nil)
)
