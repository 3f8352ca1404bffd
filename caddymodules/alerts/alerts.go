// Package alerts is the `wisehosting_alerts` Caddy app: every 30 seconds
// it evaluates the alert rules (internal/alerts) and publishes AlertFired
// and AlertResolved events, which the webhooks app delivers.
package alerts

import (
	"context"
	"fmt"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"go.uber.org/zap"

	"github.com/wisehosting/wisehosting/caddymodules/core"
	"github.com/wisehosting/wisehosting/internal/alerts"
	"github.com/wisehosting/wisehosting/internal/store"
)

func init() {
	core.RegisterApp(new(App), parseGlobalOption)
}

// App evaluates alert rules.
type App struct {
	// Evaluation interval. Default: 30s.
	Interval caddy.Duration `json:"interval,omitempty"`
	// A condition must stay false this long before its alert resolves.
	// Default: 2m.
	ClearFor caddy.Duration `json:"clear_for,omitempty"`
	// The shortest an alert lasts. Default: 5m.
	MinDuration caddy.Duration `json:"min_duration,omitempty"`

	wh     *core.App
	logger *zap.Logger
	eval   *alerts.Evaluator
	bg     core.Background
}

// CaddyModule returns the Caddy module information.
func (*App) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{ID: "wisehosting_alerts", New: func() caddy.Module { return new(App) }}
}

// Provision builds the evaluator.
func (a *App) Provision(ctx caddy.Context) (err error) {
	if a.wh, a.logger, err = core.Use(ctx); err != nil {
		return err
	}
	a.wh.NeedConns("alerts", 1) // the evaluator
	if a.Interval <= 0 {
		a.Interval = caddy.Duration(30 * time.Second)
	}
	a.eval = &alerts.Evaluator{Pool: a.wh.Pool(), ClearFor: time.Duration(a.ClearFor), MinDuration: time.Duration(a.MinDuration)}
	return nil
}

// Start runs the evaluation loop.
func (a *App) Start() error {
	a.bg.Go(func(ctx context.Context) {
		store.Every(ctx, time.Duration(a.Interval), false, func(ctx context.Context) { a.RunOnce(ctx, time.Now()) })
	})
	return nil
}

// RunOnce evaluates the rules at now (the evaluator emits the changes'
// events) and logs the changes.
func (a *App) RunOnce(ctx context.Context, now time.Time) {
	changes, err := a.eval.Evaluate(ctx, now)
	if err != nil {
		if ctx.Err() == nil {
			a.logger.Error("alerts: evaluating rules", zap.Error(err))
		}
		return
	}
	for _, c := range changes {
		if c.Fired {
			a.logger.Warn(fmt.Sprintf("alerts: fired %s for app %d", c.Kind, c.AppID), zap.String("message", c.Message))
		} else {
			a.logger.Info(fmt.Sprintf("alerts: resolved %s for app %d", c.Kind, c.AppID))
		}
	}
}

// Stop ends the loop.
func (a *App) Stop() error {
	a.bg.Stop()
	return nil
}

// parseGlobalOption reads `wisehosting_alerts { interval <d>; clear_for <d>; min_duration <d> }`.
func parseGlobalOption(d *caddyfile.Dispenser, _ any) (any, error) {
	a := new(App)
	return core.Options{App: "wisehosting_alerts", Durations: map[string]*caddy.Duration{
		"interval": &a.Interval, "clear_for": &a.ClearFor, "min_duration": &a.MinDuration}}.Parse(d, a)
}

// Interface guards.
var (
	_ caddy.App         = (*App)(nil)
	_ caddy.Provisioner = (*App)(nil)
)
