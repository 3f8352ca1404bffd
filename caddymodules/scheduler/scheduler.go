// Package scheduler is the `wisehosting_scheduler` Caddy app: it runs the
// Postgres-backed job scheduler (internal/jobs) for the life of the config.
// Pending jobs are claimed with SELECT … FOR UPDATE SKIP LOCKED and placed on
// the least-utilised online worker with room; every replica delivers the
// jobs of the workers connected to it (woken by LISTEN/NOTIFY, with a poll
// fallback) and one replica at a time (advisory lock) recovers stuck jobs
// and marks silent workers offline. The design, including delivery when the
// assigning replica does not hold the worker's connection, is documented in
// internal/jobs (doc.go). What each kind of job means is not here: the
// queue calls the hooks of internal/deploys (the deployment lifecycle),
// internal/replicas (instances) and internal/cron (scheduled runs); the
// worker's app state reports go to deploys.ReportAppState. This module
// decodes, calls those services and logs.
package scheduler

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/caddyserver/caddy/v2/caddyconfig/httpcaddyfile"
	"github.com/jackc/pgx/v5"
	"go.uber.org/zap"

	"github.com/wisehosting/wisehosting/caddymodules/core"
	"github.com/wisehosting/wisehosting/internal/cron"
	"github.com/wisehosting/wisehosting/internal/deploys"
	"github.com/wisehosting/wisehosting/internal/jobs"
	"github.com/wisehosting/wisehosting/internal/replicas"
	"github.com/wisehosting/wisehosting/internal/store"
	"github.com/wisehosting/wisehosting/internal/volumes"
	"github.com/wisehosting/wisehosting/internal/workers"
	"github.com/wisehosting/wisehosting/internal/wsproto"
)

func init() {
	caddy.RegisterModule(new(App))
	httpcaddyfile.RegisterGlobalOption("wisehosting_scheduler", parseGlobalOption)
}

// App runs the scheduler.
type App struct {
	// Fallback polling interval when no notification arrives. Default: 2s.
	PollInterval caddy.Duration `json:"poll_interval,omitempty"`
	// A worker silent for this long is marked offline and its jobs are
	// recovered. Default: 1m.
	HeartbeatTimeout caddy.Duration `json:"heartbeat_timeout,omitempty"`
	// An assigned job not acknowledged within this time goes back to the
	// queue (or fails after its last attempt). Default: 30s.
	AckTimeout caddy.Duration `json:"ack_timeout,omitempty"`
	// Unacknowledged jobs are sent again after this long. Default: 5s.
	ResendInterval caddy.Duration `json:"resend_interval,omitempty"`
	// How long a worker stays offline (silent past heartbeat_timeout)
	// before its app instances start on other workers and the stop,
	// delete and restart jobs waiting for it are given up; a revoked
	// worker's go at once. An agent back within it moves nothing.
	// Default: 1m.
	OfflineGrace caddy.Duration `json:"offline_grace,omitempty"`
	// How often recovery and worker health checks run. Default: 5s.
	RecoverInterval caddy.Duration `json:"recover_interval,omitempty"`
	// Jobs claimed per placement transaction. Default: 200.
	Batch int `json:"batch,omitempty"`
	// How often this replica looks for due scheduled jobs (every replica
	// does; a due job is claimed by one). Default: 1s.
	CronInterval caddy.Duration `json:"cron_interval,omitempty"`

	ctx    caddy.Context
	wh     *core.App
	logger *zap.Logger
	sched  *jobs.Scheduler
	unsub  []func()
	bg     core.Background
}

// CaddyModule returns the Caddy module information.
func (*App) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{ID: "wisehosting_scheduler", New: func() caddy.Module { return new(App) }}
}

// Provision builds the scheduler.
func (a *App) Provision(ctx caddy.Context) error {
	wh, err := core.FromContext(ctx)
	if err != nil {
		return err
	}
	a.ctx, a.wh, a.logger = ctx, wh, ctx.Logger()
	wh.NeedConns("scheduler", 4) // placement, delivery, recovery and cron loops
	a.sched = jobs.NewScheduler(jobs.Config{
		Pool: wh.Pool(), Notify: wh.Notifications(), Workers: wh.Workers(), Logger: a.logger,
		PollInterval: time.Duration(a.PollInterval), Heartbeat: time.Duration(a.HeartbeatTimeout),
		AckTimeout: time.Duration(a.AckTimeout), Resend: time.Duration(a.ResendInterval),
		RecoverInterval: time.Duration(a.RecoverInterval), Batch: a.Batch,
		Kinds: deploys.Lifecycle{Keyring: wh.Keyring(), Plans: wh.PlanRegistry(), Instances: replicas.OnResult}.Kinds().
			Merge(cron.Kinds(wh.Keyring())),
		AfterRecover: func(ctx context.Context, tx pgx.Tx) error {
			l, err := replicas.Recover(ctx, tx, a.heartbeat(), a.grace())
			if l.Replaced > 0 || l.Forgotten > 0 {
				a.logger.Warn("scheduler: workers gone: starting their instances elsewhere, giving up their jobs",
					zap.Int("instances", l.Replaced), zap.Int("jobs", l.Forgotten))
			}
			return err
		},
	})
	return nil
}

// heartbeat is the silence after which a worker is offline.
func (a *App) heartbeat() time.Duration {
	if a.HeartbeatTimeout > 0 {
		return time.Duration(a.HeartbeatTimeout)
	}
	return jobs.DefaultHeartbeat
}

// grace is how long a worker stays offline before its work moves.
func (a *App) grace() time.Duration {
	if a.OfflineGrace > 0 {
		return time.Duration(a.OfflineGrace)
	}
	return replicas.DefaultGrace
}

// Validate checks the configuration.
func (a *App) Validate() error {
	if a.Batch < 0 {
		return fmt.Errorf("batch must be positive")
	}
	if a.HeartbeatTimeout != 0 && time.Duration(a.HeartbeatTimeout) < 5*time.Second {
		return fmt.Errorf("heartbeat_timeout must be at least 5s")
	}
	return nil
}

// cronLoop starts the runs of due scheduled jobs (see internal/cron) and,
// every minute, removes released volumes whose grace period is over.
func (a *App) cronLoop(ctx context.Context) {
	every := time.Duration(a.CronInterval)
	if every <= 0 {
		every = time.Second
	}
	t := time.NewTicker(every)
	defer t.Stop()
	var lastSweep time.Time
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if n, err := cron.Tick(ctx, a.wh.Pool()); err != nil {
			if ctx.Err() == nil {
				a.logger.Warn("scheduler: starting scheduled jobs", zap.Error(err))
			}
		} else if n > 0 {
			a.logger.Info("scheduler: started scheduled runs", zap.Int("runs", n))
		}
		if time.Since(lastSweep) >= time.Minute {
			lastSweep = time.Now()
			var n int
			err := pgx.BeginFunc(ctx, a.wh.Pool(), func(tx pgx.Tx) error {
				var err error
				n, err = volumes.Sweep(ctx, tx)
				return err
			})
			if err != nil && ctx.Err() == nil {
				a.logger.Warn("scheduler: removing released volumes", zap.Error(err))
			} else if n > 0 {
				a.logger.Info("scheduler: removing released volumes past their grace period", zap.Int("volumes", n))
			}
		}
	}
}

// sendDesired answers a worker's hello with the full desired state: every
// app placed on it, at its current deployment. The worker reconciles its
// containers to it (level-triggered: whatever it missed while away).
func (a *App) sendDesired(ctx context.Context, workerID int64, _ json.RawMessage) error {
	ds, err := deploys.Desired(ctx, a.wh.Pool(), a.wh.Keyring(), workerID)
	if err != nil {
		return err
	}
	return a.wh.Workers().Send(workerID, wsproto.TypeDesiredState, ds)
}

// onAppState records what a worker observes about its apps (running on a
// port, crashed, in a crash loop).
func (a *App) onAppState(ctx context.Context, workerID int64, p json.RawMessage) error {
	var st wsproto.AppState
	if err := json.Unmarshal(p, &st); err != nil {
		return fmt.Errorf("decoding app state: %w", err)
	}
	res, err := deploys.ReportAppState(ctx, a.wh.Pool(), workerID, st)
	if err != nil {
		if errors.Is(err, deploys.ErrNotOnWorker) {
			a.logger.Debug("scheduler: app state for an app not on the worker", zap.Int64("worker", workerID), zap.Int64("app", st.AppID))
			return nil
		}
		return err
	}
	if res.Adopted != 0 {
		a.logger.Warn("scheduler: adopted a deployment the worker runs", zap.Int64("app", st.AppID), zap.Int64("deployment", res.Adopted), zap.Int64("worker", workerID))
	}
	if res.InstanceAdopted != 0 {
		a.logger.Warn("scheduler: adopted a deployment an instance runs", zap.Int64("app", st.AppID), zap.Int("slot", st.Slot),
			zap.Int64("deployment", res.InstanceAdopted), zap.Int64("worker", workerID))
	}
	if st.State != "running" {
		a.logger.Warn("scheduler: app not running on its worker", zap.Int64("app", st.AppID), zap.Int64("worker", workerID),
			zap.String("state", st.State), zap.Int("restarts", st.Restarts), zap.String("message", st.Message))
	}
	return nil
}

// onStats records the disk the worker's images use (the workers page
// shows it); the usage app meters the apps of the same message.
func (a *App) onStats(ctx context.Context, workerID int64, p json.RawMessage) error {
	var st wsproto.Stats
	if err := json.Unmarshal(p, &st); err != nil {
		return fmt.Errorf("decoding stats: %w", err)
	}
	if len(st.Volumes) > 0 {
		if err := volumes.RecordUsage(ctx, a.wh.Pool(), workerID, st.Volumes); err != nil {
			return err
		}
	}
	n, ok := st.ImagesDisk()
	if !ok {
		return nil
	}
	return workers.RecordImagesBytes(ctx, a.wh.Pool(), workerID, n)
}

// Start runs the scheduler's loops until Stop or until the config that
// provisioned the app is unloaded.
func (a *App) Start() error {
	a.unsub = []func(){
		a.wh.Workers().Handle(wsproto.TypeHello, a.sendDesired),
		a.wh.Workers().Handle(wsproto.TypeAppState, a.onAppState),
		a.wh.Workers().Handle(wsproto.TypeStats, a.onStats),
		// A worker whose instances changed (scaled down, moved) gets its
		// desired state again from the replica that holds its connection.
		a.wh.Notifications().Subscribe(replicas.DesiredChannel, func(n store.Notification) {
			id, _ := strconv.ParseInt(n.Payload, 10, 64)
			if id == 0 || !a.wh.Workers().Connected(id) {
				return
			}
			a.bg.Go(func(ctx context.Context) {
				sctx, c := context.WithTimeout(ctx, 10*time.Second)
				defer c()
				if err := a.sendDesired(sctx, id, nil); err != nil && sctx.Err() == nil {
					a.logger.Warn("scheduler: sending a desired state", zap.Int64("worker", id), zap.Error(err))
				}
			})
		}),
	}
	a.bg.Go(func(ctx context.Context) { a.sched.Run(ctx) })
	a.bg.Go(a.cronLoop)
	a.logger.Info("scheduler started")
	return nil
}

// Stop ends the loops and waits for them.
func (a *App) Stop() error {
	for _, u := range a.unsub {
		u()
	}
	a.unsub = nil
	a.bg.Stop()
	return nil
}

// parseGlobalOption reads:
//
//	wisehosting_scheduler {
//		poll_interval     <duration>
//		heartbeat_timeout <duration>
//		ack_timeout       <duration>
//		resend_interval   <duration>
//		recover_interval  <duration>
//		offline_grace     <duration>
//		batch             <n>
//		cron_interval     <duration>
//	}
func parseGlobalOption(d *caddyfile.Dispenser, _ any) (any, error) {
	a := new(App)
	return core.Options{App: "wisehosting_scheduler", Ints: map[string]*int{"batch": &a.Batch},
		Durations: map[string]*caddy.Duration{"poll_interval": &a.PollInterval, "heartbeat_timeout": &a.HeartbeatTimeout,
			"ack_timeout": &a.AckTimeout, "resend_interval": &a.ResendInterval, "recover_interval": &a.RecoverInterval,
			"offline_grace": &a.OfflineGrace, "cron_interval": &a.CronInterval}}.Parse(d, a)
}

// Interface guards.
var (
	_ caddy.App         = (*App)(nil)
	_ caddy.Provisioner = (*App)(nil)
	_ caddy.Validator   = (*App)(nil)
)
