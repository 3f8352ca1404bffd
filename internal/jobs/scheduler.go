package jobs

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"go.uber.org/zap"

	"github.com/wisehosting/wisehosting/internal/events"
	"github.com/wisehosting/wisehosting/internal/network"
	"github.com/wisehosting/wisehosting/internal/plans"
	"github.com/wisehosting/wisehosting/internal/store"
	"github.com/wisehosting/wisehosting/internal/workerbus"
	"github.com/wisehosting/wisehosting/internal/wsproto"
)

// Config configures a Scheduler.
type Config struct {
	Pool *pgxpool.Pool
	// Notify is the process's one LISTEN connection (new jobs,
	// assignments). nil: no notifications, placement and delivery poll
	// (PollInterval, Resend).
	Notify  store.Notifier
	Workers *workerbus.Bus
	Logger  *zap.Logger

	// PollInterval is the fallback when no notification arrives.
	PollInterval time.Duration
	// Heartbeat: a worker silent this long is offline.
	Heartbeat time.Duration
	// AckTimeout: an assigned job not acknowledged this long is recovered.
	AckTimeout time.Duration
	// Resend: an unacknowledged job is sent again after this long.
	Resend time.Duration
	// RecoverInterval is how often recovery and worker health run.
	RecoverInterval time.Duration
	// Batch is how many jobs one placement transaction claims.
	Batch int
	// Plans, when set, gives deploys the limits of their team's plan
	// before they are placed (see Assign).
	Plans *plans.Registry
	// Prepare builds the payload sent to the worker from the stored one,
	// adding secrets (env vars, git token) that are never stored in jobs.
	Prepare func(ctx context.Context, j Job) (json.RawMessage, error)
	// AfterResult, when set, runs in the transaction that records a job's
	// result, after the job's own updates (e.g. the next step of a
	// rolling deploy). An error rolls the result back: the worker sends
	// it again.
	AfterResult func(ctx context.Context, tx pgx.Tx, j Job, workerID int64, r wsproto.JobResult) error
	// AfterRecover, when set, runs in recovery's transaction, under its
	// lock, after silent workers were marked offline (e.g. re-placing
	// their instances).
	AfterRecover func(ctx context.Context, tx pgx.Tx) error
}

// DefaultHeartbeat is Config.Heartbeat's default.
const DefaultHeartbeat = time.Minute

func (c *Config) defaults() {
	if c.Logger == nil {
		c.Logger = zap.NewNop()
	}
	if c.PollInterval <= 0 {
		c.PollInterval = 2 * time.Second
	}
	if c.Heartbeat <= 0 {
		c.Heartbeat = DefaultHeartbeat
	}
	if c.AckTimeout <= 0 {
		c.AckTimeout = 30 * time.Second
	}
	if c.Resend <= 0 {
		c.Resend = 5 * time.Second
	}
	if c.RecoverInterval <= 0 {
		c.RecoverInterval = 5 * time.Second
	}
	if c.Batch <= 0 {
		c.Batch = 200
	}
}

// Scheduler places pending jobs on workers, delivers them to the workers
// connected to this replica, records their progress and results, and
// recovers stuck jobs. Several replicas may run one each on one database.
type Scheduler struct {
	cfg   Config
	place chan struct{}
	wake  chan struct{} // deliver now
}

// NewScheduler returns a scheduler; Run starts it.
func NewScheduler(cfg Config) *Scheduler {
	cfg.defaults()
	return &Scheduler{cfg: cfg, place: make(chan struct{}, 1), wake: make(chan struct{}, 1)}
}

func signal(ch chan struct{}) {
	select {
	case ch <- struct{}{}:
	default:
	}
}

// Run works until ctx ends.
func (s *Scheduler) Run(ctx context.Context) error {
	bus := s.cfg.Workers
	var cancels []func()
	cancels = append(cancels,
		bus.Handle(wsproto.TypeJobAck, s.onAck),
		bus.Handle(wsproto.TypeJobProgress, s.onProgress),
		bus.Handle(wsproto.TypeJobResult, s.onResult),
		bus.Handle(wsproto.TypeHello, s.onHello),
		bus.OnConnect(func(id int64, connected bool) {
			if connected {
				signal(s.wake)
			}
		}),
	)
	defer func() {
		for _, c := range cancels {
			c()
		}
	}()
	var wg sync.WaitGroup
	if s.cfg.Notify != nil {
		cancels = append(cancels,
			s.cfg.Notify.Subscribe(NotifyChannel, func(store.Notification) { signal(s.place) }),
			s.cfg.Notify.Subscribe(AssignChannel, s.onAssigned))
	}
	for _, loop := range []func(context.Context){s.placeLoop, s.deliverLoop, s.recoverLoop} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			loop(ctx)
		}()
	}
	signal(s.place)
	wg.Wait()
	return ctx.Err()
}

// onAssigned wakes delivery when a job went to a worker connected here
// (or, after a reconnect of the LISTEN connection, in case one did).
func (s *Scheduler) onAssigned(n store.Notification) {
	id, _ := strconv.ParseInt(n.Payload, 10, 64)
	if n.Missed || s.cfg.Workers.Connected(id) {
		signal(s.wake)
	}
}

func (s *Scheduler) placeLoop(ctx context.Context) {
	t := time.NewTicker(s.cfg.PollInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-s.place:
		case <-t.C:
		}
		for ctx.Err() == nil {
			placed, err := Assign(ctx, s.cfg.Pool, AssignOptions{Limit: s.cfg.Batch, Heartbeat: s.cfg.Heartbeat,
				AckTimeout: s.cfg.AckTimeout, Plans: s.cfg.Plans})
			if err != nil {
				if ctx.Err() == nil {
					s.cfg.Logger.Error("scheduler: placing jobs", zap.Error(err))
				}
				break
			}
			for _, p := range placed {
				if ce := s.cfg.Logger.Check(zap.InfoLevel, "scheduler: assigned job "+strconv.FormatInt(p.JobID, 10)); ce != nil {
					ce.Write(zap.Int64("job", p.JobID), zap.Int64("worker", p.WorkerID))
				}
			}
			if len(placed) > 0 {
				signal(s.wake)
			}
			if len(placed) < s.cfg.Batch {
				break
			}
		}
	}
}

func (s *Scheduler) deliverLoop(ctx context.Context) {
	t := time.NewTicker(s.cfg.Resend)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-s.wake:
		case <-t.C:
		}
		// Workers with assigned jobs, found in the database rather than
		// only from connect events: after a config reload this scheduler is
		// new but the connections are not.
		ids, err := workersWithAssigned(ctx, s.cfg.Pool)
		if err != nil && ctx.Err() == nil {
			s.cfg.Logger.Warn("scheduler: listing workers to deliver to", zap.Error(err))
		}
		for _, id := range ids {
			if err := s.deliver(ctx, id); err != nil && ctx.Err() == nil {
				s.cfg.Logger.Warn("scheduler: delivering jobs", zap.Int64("worker", id), zap.Error(err))
			}
		}
	}
}

func workersWithAssigned(ctx context.Context, pool *pgxpool.Pool) ([]int64, error) {
	rows, err := pool.Query(ctx, `SELECT DISTINCT worker_id FROM jobs WHERE worker_id IS NOT NULL
		AND (state = 'assigned' OR (cancel_requested_at IS NOT NULL AND state = 'running'))`)
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, pgx.RowTo[int64])
}

// deliver sends a worker's unacknowledged jobs (at least once: the worker
// deduplicates by job id).
func (s *Scheduler) deliver(ctx context.Context, workerID int64) error {
	if !s.cfg.Workers.Connected(workerID) {
		return nil
	}
	jobs, err := Undelivered(ctx, s.cfg.Pool, workerID, s.cfg.Resend)
	if err != nil {
		return err
	}
	for _, j := range jobs {
		payload := j.Payload
		if s.cfg.Prepare != nil {
			if payload, err = s.cfg.Prepare(ctx, j); err != nil {
				s.failJob(ctx, j, "preparing the job: "+err.Error())
				continue
			}
		}
		msg := wsproto.JobAssign{JobID: j.ID, Kind: j.Kind, AppID: j.AppID, DeploymentID: j.DeploymentID,
			Attempt: j.Attempt, TimeoutS: j.TimeoutS, Payload: payload}
		if err := s.cfg.Workers.Send(workerID, wsproto.TypeJobAssign, msg); err != nil {
			if errors.Is(err, workerbus.ErrNotConnected) {
				return nil // resent when it reconnects
			}
			return err
		}
	}
	cancels, err := PendingCancels(ctx, s.cfg.Pool, workerID, s.cfg.Resend)
	if err != nil {
		return err
	}
	for _, id := range cancels {
		if err := s.cfg.Workers.Send(workerID, wsproto.TypeJobCancel, wsproto.JobCancel{JobID: id}); err != nil {
			if errors.Is(err, workerbus.ErrNotConnected) {
				return nil
			}
			return err
		}
	}
	return nil
}

func (s *Scheduler) failJob(ctx context.Context, j Job, reason string) {
	err := pgx.BeginFunc(ctx, s.cfg.Pool, func(tx pgx.Tx) error {
		if _, _, err := Finish(ctx, tx, j.WorkerID, j.ID, false, reason); err != nil {
			return err
		}
		if j.DeploymentID != 0 {
			if err := FailDeployment(ctx, tx, j.DeploymentID, j.AppID, reason); err != nil {
				return err
			}
		}
		if j.Kind == wsproto.JobCron || j.Kind == wsproto.JobVolumeRemove {
			return nil // not a deployment; the run shows the reason
		}
		return events.Emit(ctx, tx, events.Event{Kind: events.DeploymentFailed, AppID: j.AppID,
			Data: map[string]any{"job_id": j.ID, "deployment_id": j.DeploymentID, "error": reason}})
	})
	if err != nil {
		s.cfg.Logger.Error("scheduler: failing job", zap.Int64("job", j.ID), zap.Error(err))
	}
}

func (s *Scheduler) recoverLoop(ctx context.Context) {
	store.Every(ctx, s.cfg.RecoverInterval, false, func(ctx context.Context) {
		if err := s.RecoverOnce(ctx); err != nil && ctx.Err() == nil {
			s.cfg.Logger.Error("scheduler: recovery", zap.Error(err))
		}
	})
}

// RecoverOnce marks silent workers offline and recovers stuck jobs. Only
// one replica does it at a time (transaction-scoped advisory lock).
func (s *Scheduler) RecoverOnce(ctx context.Context) error {
	var offline []int64
	var recovered []Recovered
	_, err := store.Exclusive(ctx, s.cfg.Pool, "wisehosting.scheduler.recover", func(tx pgx.Tx) error {
		var err error
		if offline, err = MarkOfflineWorkers(ctx, tx, s.cfg.Heartbeat); err != nil {
			return err
		}
		for _, id := range offline {
			if err := events.Emit(ctx, tx, events.Event{Kind: events.WorkerOffline, Data: map[string]any{"worker_id": id}}); err != nil {
				return err
			}
		}
		if recovered, err = RecoverJobs(ctx, tx, s.cfg.Heartbeat); err != nil {
			return err
		}
		if err := emitRecovered(ctx, tx, recovered); err != nil {
			return err
		}
		if s.cfg.AfterRecover != nil {
			return s.cfg.AfterRecover(ctx, tx)
		}
		return nil
	})
	if err != nil {
		return err
	}
	for _, id := range offline {
		s.cfg.Logger.Warn("scheduler: worker missed heartbeats, marked offline", zap.Int64("worker", id))
	}
	s.reportRecovered(recovered)
	return nil
}

func (s *Scheduler) onAck(ctx context.Context, workerID int64, p json.RawMessage) error {
	var a wsproto.JobAck
	if err := json.Unmarshal(p, &a); err != nil {
		return fmt.Errorf("decoding ack: %w", err)
	}
	_, err := Ack(ctx, s.cfg.Pool, workerID, a.JobID)
	return err
}

func (s *Scheduler) onProgress(ctx context.Context, workerID int64, p json.RawMessage) error {
	var pr wsproto.JobProgress
	if err := json.Unmarshal(p, &pr); err != nil {
		return fmt.Errorf("decoding progress: %w", err)
	}
	line := "[" + pr.Stage + "] " + pr.Message
	err := pgx.BeginFunc(ctx, s.cfg.Pool, func(tx pgx.Tx) error {
		var depID, appID int64
		var first bool
		// prev reads the deployment as it was before this statement's
		// update: deployment.started is emitted once, at its first progress.
		err := tx.QueryRow(ctx, `WITH j AS (SELECT deployment_id, app_id FROM jobs WHERE id = $1 AND worker_id = $2 AND state IN ('assigned', 'running')),
			prev AS (SELECT started_at IS NULL AS first FROM deployments WHERE id = (SELECT deployment_id FROM j)),
			d AS (UPDATE deployments SET status = CASE WHEN $3 IN ('clone', 'build') THEN 'building' ELSE 'deploying' END,
				started_at = COALESCE(started_at, now()), worker_id = $2
				WHERE id = (SELECT deployment_id FROM j) AND status IN ('queued', 'building', 'deploying') RETURNING id),
			l AS (INSERT INTO deployment_logs (deployment_id, stream, line) SELECT deployment_id, 'build', $4 FROM j WHERE deployment_id IS NOT NULL)
		SELECT COALESCE(deployment_id, 0), COALESCE(app_id, 0), COALESCE((SELECT first FROM prev), false) FROM j`, pr.JobID, workerID, pr.Stage, truncate(line, 8000)).Scan(&depID, &appID, &first)
		if err != nil || depID == 0 || !first {
			return err
		}
		return events.Emit(ctx, tx, events.Event{Kind: events.DeploymentStarted, AppID: appID,
			Data: map[string]any{"deployment_id": depID, "stage": pr.Stage, "message": pr.Message}})
	})
	if errors.Is(err, pgx.ErrNoRows) {
		return nil // not this worker's active job
	}
	return err
}

// onHello resolves at once the active jobs of a (re)connected worker that
// it no longer accounts for, instead of at their deadline.
func (s *Scheduler) onHello(ctx context.Context, workerID int64, p json.RawMessage) error {
	var h wsproto.Hello
	if err := json.Unmarshal(p, &h); err != nil {
		return fmt.Errorf("decoding hello: %w", err)
	}
	s.cfg.Logger.Info("scheduler: worker hello", zap.Int64("worker", workerID), zap.Int64s("running", h.RunningIDs), zap.Int64s("results", h.ResultIDs))
	var recovered []Recovered
	err := pgx.BeginFunc(ctx, s.cfg.Pool, func(tx pgx.Tx) error {
		var err error
		if recovered, err = ReconcileWorker(ctx, tx, workerID, append(h.RunningIDs, h.ResultIDs...)); err != nil {
			return err
		}
		return emitRecovered(ctx, tx, recovered)
	})
	if err != nil {
		return fmt.Errorf("reconciling the worker's jobs: %w", err)
	}
	s.reportRecovered(recovered)
	return nil
}

// emitRecovered records the deployments recovery failed, in its
// transaction.
func emitRecovered(ctx context.Context, tx pgx.Tx, recovered []Recovered) error {
	for _, rc := range recovered {
		if rc.State != "failed" {
			continue
		}
		if err := events.Emit(ctx, tx, events.Event{Kind: events.DeploymentFailed, AppID: rc.AppID,
			Data: map[string]any{"job_id": rc.JobID, "deployment_id": rc.DeploymentID, "error": rc.Reason}}); err != nil {
			return err
		}
	}
	return nil
}

// reportRecovered logs what recovery did and wakes placement for requeued
// jobs.
func (s *Scheduler) reportRecovered(recovered []Recovered) {
	requeued := false
	for _, rc := range recovered {
		s.cfg.Logger.Warn("scheduler: recovered job", zap.Int64("job", rc.JobID), zap.String("state", rc.State), zap.String("reason", rc.Reason))
		if rc.State == "pending" {
			requeued = true
		}
	}
	if requeued {
		signal(s.place)
	}
}

func (s *Scheduler) onResult(ctx context.Context, workerID int64, p json.RawMessage) error {
	var r wsproto.JobResult
	if err := json.Unmarshal(p, &r); err != nil {
		return fmt.Errorf("decoding result: %w", err)
	}
	var j Job
	var ok bool
	err := pgx.BeginFunc(ctx, s.cfg.Pool, func(tx pgx.Tx) error {
		var err error
		if j, ok, err = Finish(ctx, tx, workerID, r.JobID, r.OK, r.Error); err != nil || !ok {
			return err
		}
		if err := applyResult(ctx, tx, j, workerID, r); err != nil {
			return err
		}
		if err := emitResult(ctx, tx, j, r); err != nil {
			return err
		}
		if s.cfg.AfterResult != nil {
			if err := s.cfg.AfterResult(ctx, tx, j, workerID, r); err != nil {
				return err
			}
		}
		// Its slot is free: every replica places the next job now.
		_, err = tx.Exec(ctx, "SELECT pg_notify($1, $2)", NotifyChannel, "finished")
		return err
	})
	if err != nil {
		return err // not acknowledged: the worker sends the result again
	}
	// Committed, or not this worker's active job any more (ended or placed
	// elsewhere): either way the worker may forget it.
	if aerr := s.cfg.Workers.Send(workerID, wsproto.TypeJobResultAck, wsproto.JobResultAck{JobID: r.JobID}); aerr != nil {
		s.cfg.Logger.Debug("scheduler: result ack not sent; the worker sends the result again", zap.Int64("job", r.JobID), zap.Error(aerr))
	}
	if !ok {
		return nil
	}
	signal(s.place)
	if j.Kind == wsproto.JobCron || j.Kind == wsproto.JobVolumeRemove {
		// Not a change of the app: AfterResult records them.
		s.cfg.Logger.Info("scheduler: job ended", zap.Int64("job", j.ID), zap.String("kind", j.Kind), zap.Bool("ok", r.OK),
			zap.Int64("worker", workerID), zap.String("error", r.Error))
		return nil
	}
	if r.OK {
		s.cfg.Logger.Info("scheduler: job succeeded", zap.Int64("job", j.ID), zap.String("kind", j.Kind), zap.Int64("worker", workerID))
	} else if j.State == "cancelled" {
		s.cfg.Logger.Info("scheduler: job cancelled", zap.Int64("job", j.ID), zap.String("kind", j.Kind), zap.Int64("worker", workerID))
	} else {
		s.cfg.Logger.Warn("scheduler: job failed", zap.Int64("job", j.ID), zap.String("kind", j.Kind), zap.String("error", r.Error))
	}
	return nil
}

// emitResult records the events of a job's outcome in the transaction that
// applies it.
func emitResult(ctx context.Context, tx pgx.Tx, j Job, r wsproto.JobResult) error {
	if j.Kind == wsproto.JobCron || j.Kind == wsproto.JobVolumeRemove {
		return nil // no change of the app; a failed run is cron.failed (AfterResult)
	}
	var evs []events.Event
	switch {
	case r.OK:
		if j.DeploymentID != 0 {
			evs = append(evs, events.Event{Kind: events.DeploymentFinished, AppID: j.AppID,
				Data: map[string]any{"deployment_id": j.DeploymentID, "job_id": j.ID}})
		}
		evs = append(evs, events.Event{Kind: events.AppStatusChanged, AppID: j.AppID})
	case j.State == "cancelled" || j.DeploymentID == 0:
		// A restart, stop or delete that failed is no deployment's failure.
		evs = append(evs, events.Event{Kind: events.AppStatusChanged, AppID: j.AppID})
	default:
		evs = append(evs, events.Event{Kind: events.DeploymentFailed, AppID: j.AppID,
			Data: map[string]any{"deployment_id": j.DeploymentID, "job_id": j.ID, "error": r.Error}})
	}
	for _, e := range evs {
		if err := events.Emit(ctx, tx, e); err != nil {
			return err
		}
	}
	return nil
}

// PayloadSlot is the instance slot a deploy or rollback payload names (0,
// the app's first instance, when none).
func PayloadSlot(payload json.RawMessage) int {
	var p struct {
		Slot int `json:"slot"`
	}
	json.Unmarshal(payload, &p)
	return max(p.Slot, 0)
}

func applyResult(ctx context.Context, tx pgx.Tx, j Job, workerID int64, r wsproto.JobResult) error {
	if r.OK && j.Kind != wsproto.JobRestart && j.Kind != wsproto.JobCron && j.Kind != wsproto.JobVolumeRemove {
		// Routing follows the result on every replica (a new host port, a
		// stopped or deleted app).
		if err := network.NotifyChanged(ctx, tx); err != nil {
			return err
		}
	}
	if (j.Kind == wsproto.JobDeploy || j.Kind == wsproto.JobRollback) && PayloadSlot(j.Payload) > 0 && j.State != "cancelled" {
		// Instances beyond the first are recorded by AfterResult; the
		// app's row and the deployment follow its first instance.
		return nil
	}
	if !r.OK {
		if j.DeploymentID == 0 {
			return nil
		}
		if j.State == "cancelled" {
			return CancelDeployment(ctx, tx, j.DeploymentID, "stopped on the worker")
		}
		return FailDeployment(ctx, tx, j.DeploymentID, j.AppID, r.Error)
	}
	switch j.Kind {
	case wsproto.JobDeploy, wsproto.JobRollback:
		var out wsproto.DeployOutput
		if len(r.Output) > 0 {
			json.Unmarshal(r.Output, &out)
		}
		if j.DeploymentID != 0 {
			if _, err := tx.Exec(ctx, `UPDATE deployments SET status = 'succeeded', finished_at = now(), worker_id = $2,
				image = CASE WHEN $3 = '' THEN image ELSE $3 END,
				commit_sha = CASE WHEN commit_sha = '' AND $4 ~ '^[0-9a-f]{7,64}$' THEN $4 ELSE commit_sha END
				WHERE id = $1`, j.DeploymentID, workerID, out.Image, out.Commit); err != nil {
				return err
			}
			if _, err := tx.Exec(ctx, `INSERT INTO deployment_logs (deployment_id, stream, line) VALUES ($1, 'system', 'deployment succeeded')`, j.DeploymentID); err != nil {
				return err
			}
		}
		_, err := tx.Exec(ctx, `UPDATE apps SET status = 'running', worker_id = $2,
			host_port = CASE WHEN $3 > 0 THEN $3 ELSE host_port END,
			port = CASE WHEN port = 0 AND $4 > 0 AND $4 <= 65535 THEN $4 ELSE port END, updated_at = now() WHERE id = $1`,
			j.AppID, workerID, out.HostPort, out.Port)
		return err
	case wsproto.JobStop:
		_, err := tx.Exec(ctx, "UPDATE apps SET status = 'stopped', updated_at = now() WHERE id = $1", j.AppID)
		return err
	case wsproto.JobDelete:
		return RemoveDeleted(ctx, tx, j.AppID)
	}
	return nil
}
