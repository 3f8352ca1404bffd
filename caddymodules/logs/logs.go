// Package logs is the `wisehosting_logs` Caddy app: it runs the log bus
// (internal/logbus) of the control plane. Runtime log lines that workers
// send (wsproto logs messages) go to the apps' rings and to runtime_logs;
// build lines (those naming a deployment) go to deployment_logs, where the
// live build log reads them. Old lines are swept once an hour by one
// replica.
package logs

import (
	"context"
	"encoding/json"
	"fmt"
	"sync"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/caddyserver/caddy/v2/caddyconfig/httpcaddyfile"
	"github.com/jackc/pgx/v5"
	"go.uber.org/zap"

	"github.com/wisehosting/wisehosting/caddymodules/core"
	"github.com/wisehosting/wisehosting/internal/logbus"
	"github.com/wisehosting/wisehosting/internal/wsproto"
)

func init() {
	caddy.RegisterModule(new(App))
	httpcaddyfile.RegisterGlobalOption("wisehosting_logs", parseGlobalOption)
}

// App runs the log bus.
type App struct {
	// Lines kept in memory per app for live views. Default: 1000.
	RingSize int `json:"ring_size,omitempty"`
	// Stored lines older than this are deleted. Default: 7d.
	Retention caddy.Duration `json:"retention,omitempty"`
	// How often old lines are deleted. Default: 1h.
	SweepInterval caddy.Duration `json:"sweep_interval,omitempty"`

	wh     *core.App
	logger *zap.Logger
	bus    *logbus.Bus
	stop   func()
	cancel context.CancelFunc
	wg     sync.WaitGroup
}

// CaddyModule returns the Caddy module information.
func (*App) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{ID: "wisehosting_logs", New: func() caddy.Module { return new(App) }}
}

// Provision creates the bus.
func (a *App) Provision(ctx caddy.Context) error {
	wh, err := core.FromContext(ctx)
	if err != nil {
		return err
	}
	a.wh, a.logger = wh, ctx.Logger()
	wh.NeedConns("logs", 2) // the batch writer and the sweeper
	if a.SweepInterval <= 0 {
		a.SweepInterval = caddy.Duration(time.Hour)
	}
	a.bus = logbus.New(logbus.Config{Pool: wh.Pool(), Logger: a.logger, RingSize: a.RingSize, Retention: time.Duration(a.Retention)})
	return nil
}

// Bus is the running log bus (for the dashboard's live views).
func (a *App) Bus() *logbus.Bus { return a.bus }

// Start subscribes to workers' log messages and runs the writer and sweeper.
func (a *App) Start() error {
	a.stop = a.wh.Workers().Handle(wsproto.TypeLogs, a.onLogs)
	ctx, cancel := context.WithCancel(context.Background())
	a.cancel = cancel
	a.wg.Add(2)
	go func() { defer a.wg.Done(); a.bus.Run(ctx) }()
	go func() { defer a.wg.Done(); a.sweepLoop(ctx) }()
	return nil
}

// Stop flushes pending lines and stops.
func (a *App) Stop() error {
	if a.stop != nil {
		a.stop()
	}
	if a.cancel != nil {
		a.cancel()
		a.wg.Wait()
	}
	return nil
}

// onLogs accepts lines only for apps the worker runs (a worker cannot
// write into another app's log).
func (a *App) onLogs(ctx context.Context, workerID int64, p json.RawMessage) error {
	var msg wsproto.Logs
	if err := json.Unmarshal(p, &msg); err != nil {
		return fmt.Errorf("decoding logs: %w", err)
	}
	var runtime []logbus.Line
	build := map[int64][]string{}
	for _, l := range msg.Lines {
		if l.DeploymentID != 0 {
			build[l.DeploymentID] = append(build[l.DeploymentID], l.Line)
			continue
		}
		runtime = append(runtime, logbus.Line{AppID: l.AppID, TS: time.Unix(0, l.TS), Stream: l.Stream, Text: l.Line})
	}
	if len(runtime) > 0 {
		allowed, err := a.appsOn(ctx, workerID, runtime)
		if err != nil {
			return err
		}
		kept := runtime[:0]
		for _, l := range runtime {
			if allowed[l.AppID] {
				kept = append(kept, l)
			}
		}
		a.bus.Publish(kept...)
	}
	for dep, lines := range build {
		if _, err := a.wh.Pool().Exec(ctx, `INSERT INTO deployment_logs (deployment_id, stream, line)
			SELECT $1, 'build', l FROM unnest($3::text[]) AS l
			WHERE EXISTS (SELECT 1 FROM jobs j WHERE j.deployment_id = $1 AND j.worker_id = $2 AND j.state IN ('assigned', 'running'))`,
			dep, workerID, lines); err != nil {
			return err
		}
	}
	return nil
}

func (a *App) appsOn(ctx context.Context, workerID int64, lines []logbus.Line) (map[int64]bool, error) {
	ids := map[int64]bool{}
	var list []int64
	for _, l := range lines {
		if !ids[l.AppID] {
			ids[l.AppID] = true
			list = append(list, l.AppID)
		}
	}
	rows, err := a.wh.Pool().Query(ctx, "SELECT id FROM apps WHERE id = ANY($1) AND worker_id = $2", list, workerID)
	if err != nil {
		return nil, err
	}
	got, err := pgx.CollectRows(rows, pgx.RowTo[int64])
	out := map[int64]bool{}
	for _, id := range got {
		out[id] = true
	}
	return out, err
}

func (a *App) sweepLoop(ctx context.Context) {
	t := time.NewTicker(time.Duration(a.SweepInterval))
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		err := pgx.BeginFunc(ctx, a.wh.Pool(), func(tx pgx.Tx) error {
			var got bool
			if err := tx.QueryRow(ctx, "SELECT pg_try_advisory_xact_lock(hashtext('wisehosting.logs.sweep'))").Scan(&got); err != nil || !got {
				return err
			}
			n, err := a.bus.Sweep(ctx, tx)
			if n > 0 {
				a.logger.Info(fmt.Sprintf("logs: pruned %d lines", n))
			}
			return err
		})
		if err != nil && ctx.Err() == nil {
			a.logger.Warn("logs: sweeping", zap.Error(err))
		}
	}
}

// parseGlobalOption reads `wisehosting_logs { ring_size <n>; retention <d>; sweep_interval <d> }`.
func parseGlobalOption(d *caddyfile.Dispenser, _ any) (any, error) {
	a := new(App)
	d.Next()
	for d.NextBlock(0) {
		key := d.Val()
		var val string
		if !d.AllArgs(&val) {
			return nil, d.ArgErr()
		}
		switch key {
		case "ring_size":
			if _, err := fmt.Sscan(val, &a.RingSize); err != nil || a.RingSize <= 0 {
				return nil, d.Errf("ring_size: invalid number %q", val)
			}
		case "retention", "sweep_interval":
			dur, err := caddy.ParseDuration(val)
			if err != nil || dur <= 0 {
				return nil, d.Errf("%s: invalid duration %q", key, val)
			}
			if key == "retention" {
				a.Retention = caddy.Duration(dur)
			} else {
				a.SweepInterval = caddy.Duration(dur)
			}
		default:
			return nil, d.Errf("unrecognized wisehosting_logs option %q", key)
		}
	}
	return httpcaddyfile.App{Name: "wisehosting_logs", Value: caddyconfig.JSON(a, nil)}, nil
}

// Interface guards.
var (
	_ caddy.App         = (*App)(nil)
	_ caddy.Provisioner = (*App)(nil)
)
