// Package webhooks is the `wisehosting_webhooks` Caddy app: it runs the
// dispatcher that sends the deliveries the event relay queued for the
// teams' webhooks and chat channels (internal/webhooks). On shutdown it
// stops claiming and drains the deliveries under way.
package webhooks

import (
	"fmt"
	"net/netip"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"go.uber.org/zap"

	"github.com/wisehosting/wisehosting/caddymodules/core"
	"github.com/wisehosting/wisehosting/internal/httpx"
	"github.com/wisehosting/wisehosting/internal/webhooks"
)

func init() {
	core.RegisterApp(new(App), parseGlobalOption)
}

// App delivers webhooks.
type App struct {
	// Attempts before a delivery fails for good. Default: 8.
	MaxAttempts int `json:"max_attempts,omitempty"`
	// Timeout of one delivery. Default: 15s.
	Timeout caddy.Duration `json:"timeout,omitempty"`
	// Networks that webhook URLs may reach although they are internal
	// (e.g. a private notification server). Empty by default: loopback,
	// private, link-local and metadata addresses are refused.
	AllowNetworks []string `json:"allow_networks,omitempty"`

	wh     *core.App
	logger *zap.Logger
	disp   *webhooks.Dispatcher
	bg     core.Background
}

// CaddyModule returns the Caddy module information.
func (*App) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{ID: "wisehosting_webhooks", New: func() caddy.Module { return new(App) }}
}

// Provision builds the dispatcher with the SSRF-guarded client.
func (a *App) Provision(ctx caddy.Context) (err error) {
	if a.wh, a.logger, err = core.Use(ctx); err != nil {
		return err
	}
	a.wh.NeedConns("webhooks", 1) // the dispatcher
	guard := httpx.GuardOptions{Timeout: time.Duration(a.Timeout)}
	for _, n := range a.AllowNetworks {
		p, err := netip.ParsePrefix(n)
		if err != nil {
			return fmt.Errorf("wisehosting_webhooks: allow_networks: %w", err)
		}
		guard.Allow = append(guard.Allow, p)
	}
	a.disp = &webhooks.Dispatcher{Pool: a.wh.Pool(), Keyring: a.wh.Keyring(), Client: httpx.NewWebhookClient(guard),
		Logger: a.logger, MaxAttempts: a.MaxAttempts, Notify: a.wh.Notifications()}
	if a.Timeout > 0 {
		// A delivery whose sender died is taken over once its request
		// could not still be running.
		a.disp.Lease = time.Duration(a.Timeout) + 30*time.Second
	}
	return nil
}

// Dispatcher is the running dispatcher (test deliveries).
func (a *App) Dispatcher() *webhooks.Dispatcher { return a.disp }

// Start delivers.
func (a *App) Start() error {
	a.bg.Go(a.disp.Run)
	return nil
}

// Stop stops claiming and waits for deliveries in flight.
func (a *App) Stop() error {
	a.bg.Stop()
	return nil
}

// parseGlobalOption reads:
//
//	wisehosting_webhooks {
//		max_attempts   <n>
//		timeout        <duration>
//		allow_networks <cidr>...
//	}
func parseGlobalOption(d *caddyfile.Dispenser, _ any) (any, error) {
	a := new(App)
	return core.Options{App: "wisehosting_webhooks",
		Lists:     map[string]*[]string{"allow_networks": &a.AllowNetworks},
		Ints:      map[string]*int{"max_attempts": &a.MaxAttempts},
		Durations: map[string]*caddy.Duration{"timeout": &a.Timeout}}.Parse(d, a)
}

// Interface guards.
var (
	_ caddy.App         = (*App)(nil)
	_ caddy.Provisioner = (*App)(nil)
)
