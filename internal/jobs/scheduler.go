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
	// Kinds are the hooks of each kind of job: what its placement,
	// progress, end and requeue change beyond the jobs table.
	Kinds Kinds
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
				AckTimeout: s.cfg.AckTimeout, Kinds: s.cfg.Kinds})
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
		if prepare := s.cfg.Kinds[j.Kind].Prepare; prepare != nil {
			if payload, err = prepare(ctx, s.cfg.Pool, j); err != nil {
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

// failJob ends a job the control plane cannot send (its Prepare failed).
func (s *Scheduler) failJob(ctx context.Context, j Job, reason string) {
	err := pgx.BeginFunc(ctx, s.cfg.Pool, func(tx pgx.Tx) error {
		ended, ok, err := Finish(ctx, tx, j.WorkerID, j.ID, false, reason)
		if err != nil || !ok {
			return err
		}
		return s.cfg.Kinds.ended(ctx, tx, End{Job: ended, WorkerID: j.WorkerID, Reason: reason})
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
		if err := s.cfg.Kinds.Recovered(ctx, tx, recovered); err != nil {
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
	return pgx.BeginFunc(ctx, s.cfg.Pool, func(tx pgx.Tx) error {
		// Only the worker's active job reports progress.
		j, err := scanJob(tx.QueryRow(ctx, "SELECT "+jobColumns+` FROM jobs
			WHERE id = $1 AND worker_id = $2 AND state IN ('assigned', 'running')`, pr.JobID, workerID))
		if errors.Is(err, pgx.ErrNoRows) {
			return nil
		}
		if err != nil {
			return err
		}
		if progress := s.cfg.Kinds[j.Kind].Progress; progress != nil {
			return progress(ctx, tx, j, pr)
		}
		return nil
	})
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
		return s.cfg.Kinds.Recovered(ctx, tx, recovered)
	})
	if err != nil {
		return fmt.Errorf("reconciling the worker's jobs: %w", err)
	}
	s.reportRecovered(recovered)
	// The worker is back: the jobs requeued while it could not be heard
	// (and the ones just requeued) are placed now, and its assigned jobs
	// are sent on this connection now, not at the next poll or resend.
	signal(s.place)
	signal(s.wake)
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
		if err := s.cfg.Kinds.ended(ctx, tx, End{Job: j, WorkerID: workerID, Result: &r, Reason: r.Error}); err != nil {
			return err
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
	if r.OK {
		s.cfg.Logger.Info("scheduler: job succeeded", zap.Int64("job", j.ID), zap.String("kind", j.Kind), zap.Int64("worker", workerID))
	} else if j.State == "cancelled" {
		s.cfg.Logger.Info("scheduler: job cancelled", zap.Int64("job", j.ID), zap.String("kind", j.Kind), zap.Int64("worker", workerID))
	} else {
		s.cfg.Logger.Warn("scheduler: job failed", zap.Int64("job", j.ID), zap.String("kind", j.Kind), zap.String("error", r.Error))
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
