// Package usage is the `wisehosting_usage` Caddy app: it meters apps'
// resource use from the workers' stats messages into 5-minute buckets
// (internal/usage) every minute and prunes buckets older than 90 days once
// a day (one replica at a time).
package usage

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/jackc/pgx/v5"
	"go.uber.org/zap"

	"github.com/wisehosting/wisehosting/caddymodules/core"
	"github.com/wisehosting/wisehosting/internal/store"
	"github.com/wisehosting/wisehosting/internal/usage"
	"github.com/wisehosting/wisehosting/internal/workers"
	"github.com/wisehosting/wisehosting/internal/wsproto"
)

func init() {
	core.RegisterApp(new(App), parseGlobalOption)
}

// App meters usage.
type App struct {
	// How often the latest stats are sampled. Default: 1m.
	SampleInterval caddy.Duration `json:"sample_interval,omitempty"`
	// How long buckets are kept. Default: 90d.
	Retention caddy.Duration `json:"retention,omitempty"`
	// How often old buckets are deleted. Default: 24h.
	PruneInterval caddy.Duration `json:"prune_interval,omitempty"`

	wh     *core.App
	logger *zap.Logger
	meter  *usage.Meter
	unsub  func()
	bg     core.Background
}

// CaddyModule returns the Caddy module information.
func (*App) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{ID: "wisehosting_usage", New: func() caddy.Module { return new(App) }}
}

// Provision applies defaults.
func (a *App) Provision(ctx caddy.Context) (err error) {
	if a.wh, a.logger, err = core.Use(ctx); err != nil {
		return err
	}
	a.wh.NeedConns("usage", 2) // the sampler and the pruner
	if a.SampleInterval <= 0 {
		a.SampleInterval = caddy.Duration(time.Minute)
	}
	if a.Retention <= 0 {
		a.Retention = caddy.Duration(90 * 24 * time.Hour)
	}
	if a.PruneInterval <= 0 {
		a.PruneInterval = caddy.Duration(24 * time.Hour)
	}
	a.meter = usage.New(a.wh.Pool())
	return nil
}

// Meter is the running meter.
func (a *App) Meter() *usage.Meter { return a.meter }

// Start subscribes to stats and runs the sampler and the pruner.
func (a *App) Start() error {
	a.unsub = a.wh.Workers().Handle(wsproto.TypeStats, a.onStats)
	a.bg.Go(func(ctx context.Context) {
		store.Every(ctx, time.Duration(a.SampleInterval), false, func(ctx context.Context) {
			if _, err := a.meter.Sample(ctx, time.Now()); err != nil && ctx.Err() == nil {
				a.logger.Warn("usage: sampling", zap.Error(err))
			}
		})
	})
	a.bg.Go(func(ctx context.Context) {
		store.Periodic{Name: "wisehosting.usage.prune", Interval: time.Duration(a.PruneInterval), Now: true,
			Run: func(ctx context.Context, tx pgx.Tx) error {
				n, err := usage.Prune(ctx, tx, time.Now(), time.Duration(a.Retention))
				if err == nil {
					a.logger.Info(fmt.Sprintf("usage: pruned %d samples", n))
				}
				return err
			},
			OnError: func(err error) { a.logger.Warn("usage: pruning", zap.Error(err)) },
		}.Loop(ctx, a.wh.Pool())
	})
	return nil
}

// onStats keeps stats only for apps that run on the sending worker.
func (a *App) onStats(ctx context.Context, workerID int64, p json.RawMessage) error {
	var st wsproto.Stats
	if err := json.Unmarshal(p, &st); err != nil {
		return fmt.Errorf("decoding stats: %w", err)
	}
	if len(st.Apps) == 0 {
		return nil
	}
	ids := make([]int64, len(st.Apps))
	for i, s := range st.Apps {
		ids[i] = s.AppID
	}
	ok, err := workers.AppsOn(ctx, a.wh.Pool(), workerID, ids, false)
	if err != nil {
		return err
	}
	kept := st.Apps[:0]
	for _, s := range st.Apps {
		if ok[s.AppID] {
			kept = append(kept, s)
		}
	}
	a.meter.Observe(kept)
	return nil
}

// Stop ends the loops.
func (a *App) Stop() error {
	if a.unsub != nil {
		a.unsub()
	}
	a.bg.Stop()
	return nil
}

// parseGlobalOption reads `wisehosting_usage { sample_interval <d>; retention <d>; prune_interval <d> }`.
func parseGlobalOption(d *caddyfile.Dispenser, _ any) (any, error) {
	a := new(App)
	return core.Options{App: "wisehosting_usage", Durations: map[string]*caddy.Duration{
		"sample_interval": &a.SampleInterval, "retention": &a.Retention, "prune_interval": &a.PruneInterval}}.Parse(d, a)
}

// Interface guards.
var (
	_ caddy.App         = (*App)(nil)
	_ caddy.Provisioner = (*App)(nil)
)
