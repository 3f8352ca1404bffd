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
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/jackc/pgx/v5"
	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"

	"github.com/wisehosting/wisehosting/caddymodules/core"
	"github.com/wisehosting/wisehosting/internal/deploys"
	"github.com/wisehosting/wisehosting/internal/logbus"
	"github.com/wisehosting/wisehosting/internal/logline"
	"github.com/wisehosting/wisehosting/internal/store"
	"github.com/wisehosting/wisehosting/internal/workers"
	"github.com/wisehosting/wisehosting/internal/wsproto"
)

func init() {
	core.RegisterApp(new(App), parseGlobalOption)
}

// App runs the log bus.
type App struct {
	// Lines kept in memory per app for live views. Default: 1000.
	RingSize int `json:"ring_size,omitempty"`
	// Stored lines older than this are deleted. Default: 7d.
	Retention caddy.Duration `json:"retention,omitempty"`
	// How often old lines are deleted. Default: 1h.
	SweepInterval caddy.Duration `json:"sweep_interval,omitempty"`

	wh         *core.App
	logger     *zap.Logger
	bus        *logbus.Bus
	deliveries *logbus.Deliveries
	dropped    *prometheus.CounterVec
	stop       func()
	bg         core.Background
}

// CaddyModule returns the Caddy module information.
func (*App) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{ID: "wisehosting_logs", New: func() caddy.Module { return new(App) }}
}

// Provision creates the bus.
func (a *App) Provision(ctx caddy.Context) (err error) {
	if a.wh, a.logger, err = core.Use(ctx); err != nil {
		return err
	}
	a.wh.NeedConns("logs", 2) // the batch writer and the sweeper
	if a.SweepInterval <= 0 {
		a.SweepInterval = caddy.Duration(time.Hour)
	}
	a.dropped = prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: "wisehosting", Name: "log_lines_dropped_total",
		Help: "Runtime log lines never stored, by reason (invalid: refused by the database; deleted_app; overflow: backlog full).",
	}, []string{"reason"})
	if reg := ctx.GetMetricsRegistry(); reg != nil {
		if err := reg.Register(a.dropped); err != nil {
			var are prometheus.AlreadyRegisteredError
			if !errors.As(err, &are) {
				return fmt.Errorf("registering log metrics: %w", err)
			}
			a.dropped = are.ExistingCollector.(*prometheus.CounterVec)
		}
	}
	a.deliveries = logbus.NewDeliveries(0)
	a.bus = logbus.New(logbus.Config{Pool: a.wh.Pool(), Logger: a.logger, RingSize: a.RingSize, Retention: time.Duration(a.Retention),
		OnDrop: a.onDrop})
	return nil
}

// onDrop counts lines that will never be stored and names their app.
func (a *App) onDrop(appID int64, lines int, reason string) {
	a.dropped.WithLabelValues(reason).Add(float64(lines))
	a.logger.Warn("logs: lines dropped", zap.Int64("app", appID), zap.Int("lines", lines), zap.String("reason", reason))
}

// Bus is the running log bus (for the dashboard's live views).
func (a *App) Bus() *logbus.Bus { return a.bus }

// Start subscribes to workers' log messages and runs the writer and sweeper.
func (a *App) Start() error {
	a.stop = a.wh.Workers().Handle(wsproto.TypeLogs, a.onLogs)
	a.bg.Go(a.bus.Run)
	a.bg.Go(a.sweepLoop)
	return nil
}

// Stop flushes pending lines and stops.
func (a *App) Stop() error {
	if a.stop != nil {
		a.stop()
	}
	a.bg.Stop()
	return nil
}

// errBacklog means the bus holds as many lines as it may: the worker keeps
// the batch and sends it again.
var errBacklog = errors.New("log backlog full")

// onLogs accepts lines only for apps the worker runs (a worker cannot
// write into another app's log). A batch with an id is acknowledged once
// its lines are committed, or at once with "retry" when they cannot be
// taken now; the worker keeps it until then.
func (a *App) onLogs(ctx context.Context, workerID int64, p json.RawMessage) error {
	var msg wsproto.Logs
	if err := json.Unmarshal(p, &msg); err != nil {
		return fmt.Errorf("decoding logs: %w", err)
	}
	if msg.Batch == "" {
		return a.accept(ctx, workerID, msg.Lines, func() {})
	}
	key := fmt.Sprintf("%d/%s", workerID, msg.Batch)
	ack := func(retry bool) {
		if err := a.wh.Workers().Send(workerID, wsproto.TypeLogsAck, wsproto.LogsAck{Batch: msg.Batch, Retry: retry}); err != nil {
			a.logger.Debug("logs: ack not sent; the worker sends the batch again", zap.Int64("worker", workerID), zap.Error(err))
		}
	}
	switch a.deliveries.Begin(key) {
	case logbus.Stored:
		ack(false)
		return nil
	case logbus.Pending:
		return nil // the ack follows the commit
	}
	err := a.accept(ctx, workerID, msg.Lines, func() {
		a.deliveries.Done(key)
		ack(false)
	})
	if err != nil {
		a.deliveries.Abort(key)
		ack(true)
	}
	return err
}

// accept stores build lines at once and hands runtime lines to the bus;
// stored runs when all of them are committed (or dropped as unstorable).
func (a *App) accept(ctx context.Context, workerID int64, lines []wsproto.LogLine, stored func()) error {
	var runtime []logbus.Line
	build := map[int64][]string{}
	var deps []int64
	for _, l := range lines {
		text := logline.Clean(l.Line, logline.MaxBytes)
		if l.DeploymentID != 0 {
			if build[l.DeploymentID] == nil {
				deps = append(deps, l.DeploymentID)
			}
			build[l.DeploymentID] = append(build[l.DeploymentID], text)
			continue
		}
		runtime = append(runtime, logbus.Line{AppID: l.AppID, TS: time.Unix(0, l.TS), Stream: l.Stream, Text: text})
	}
	var kept []logbus.Line
	if len(runtime) > 0 {
		allowed, err := a.appsOn(ctx, workerID, runtime)
		if err != nil {
			return err
		}
		for _, l := range runtime {
			if allowed[l.AppID] {
				kept = append(kept, l)
			}
		}
	}
	if len(deps) > 0 {
		err := pgx.BeginFunc(ctx, a.wh.Pool(), func(tx pgx.Tx) error {
			for _, dep := range deps {
				if err := deploys.AppendWorkerBuildLog(ctx, tx, workerID, dep, build[dep]); err != nil {
					return err
				}
			}
			return nil
		})
		if logbus.RowError(err) {
			// Sending them again would fail the same way.
			a.dropped.WithLabelValues("invalid").Add(float64(len(lines) - len(runtime)))
			a.logger.Warn("logs: build lines dropped", zap.Int64("worker", workerID), zap.Int64s("deployments", deps), zap.Error(err))
		} else if err != nil {
			return err
		}
	}
	if !a.bus.PublishStored(stored, kept...) {
		return errBacklog
	}
	return nil
}

// appsOn returns the apps of lines that run on the worker, or that it is
// deploying.
func (a *App) appsOn(ctx context.Context, workerID int64, lines []logbus.Line) (map[int64]bool, error) {
	var ids []int64
	for _, l := range lines {
		if !slices.Contains(ids, l.AppID) {
			ids = append(ids, l.AppID)
		}
	}
	return workers.AppsOn(ctx, a.wh.Pool(), workerID, ids, true)
}

func (a *App) sweepLoop(ctx context.Context) {
	store.Periodic{Name: "wisehosting.logs.sweep", Interval: time.Duration(a.SweepInterval),
		Run: func(ctx context.Context, tx pgx.Tx) error {
			n, err := a.bus.Sweep(ctx, tx)
			if n > 0 {
				a.logger.Info(fmt.Sprintf("logs: pruned %d lines", n))
			}
			return err
		},
		OnError: func(err error) { a.logger.Warn("logs: sweeping", zap.Error(err)) },
	}.Loop(ctx, a.wh.Pool())
}

// parseGlobalOption reads `wisehosting_logs { ring_size <n>; retention <d>; sweep_interval <d> }`.
func parseGlobalOption(d *caddyfile.Dispenser, _ any) (any, error) {
	a := new(App)
	return core.Options{App: "wisehosting_logs", Ints: map[string]*int{"ring_size": &a.RingSize},
		Durations: map[string]*caddy.Duration{"retention": &a.Retention, "sweep_interval": &a.SweepInterval}}.Parse(d, a)
}

// Interface guards.
var (
	_ caddy.App         = (*App)(nil)
	_ caddy.Provisioner = (*App)(nil)
)
