package jobs

import (
	"context"
	"encoding/json"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/wisehosting/wisehosting/internal/wsproto"
)

// Hooks is what one kind of job means to the rest of the control plane.
// The queue writes no deployment, app or scheduled run: when it moves a
// job it calls its kind's hooks in the same transaction, after the job's
// own update, so the domain's rows change with the job's state or not at
// all (a hook's error rolls the move back). Nil hooks do nothing.
// internal/deploys registers the hooks of the app kinds (deploy, rollback,
// stop, restart, delete), internal/cron those of scheduled runs.
type Hooks struct {
	// Prepare returns the payload sent to the worker, adding what the jobs
	// table never stores (variables, tokens). It runs before each
	// delivery, outside any transaction; an error fails the job (Ended,
	// with the error as the reason).
	Prepare func(ctx context.Context, pool *pgxpool.Pool, j Job) (json.RawMessage, error)
	// Place runs in the placement transaction for each claimed job of the
	// kind, before it is placed. It returns the job to place, whose
	// reservation (CPUMillis, MemoryMB) and Payload the queue stores when
	// they changed, or a refusal: the job then fails with that reason
	// (Ended is not called; Place has done the domain's part).
	Place func(ctx context.Context, tx pgx.Tx, j Job) (Job, string, error)
	// Progress records a progress report from the job's worker, while the
	// job is active on it.
	Progress func(ctx context.Context, tx pgx.Tx, j Job, p wsproto.JobProgress) error
	// Ended runs when a job ends: its worker's result, or the control
	// plane giving it up (recovery, a failed Prepare), ending it cancelled
	// (recovery of a job whose cancellation was requested) or succeeded
	// with nothing to do (a stop or delete job of an app no worker runs).
	Ended func(ctx context.Context, tx pgx.Tx, e End) error
	// Requeued runs when recovery puts a job back to pending (its worker
	// went away or never took it).
	Requeued func(ctx context.Context, tx pgx.Tx, j Job, reason string) error
}

// End is how a job ended.
type End struct {
	// Job is the job's row after the update: State is succeeded, failed
	// or cancelled.
	Job Job
	// WorkerID is the worker that reported the result, or the job's last
	// worker.
	WorkerID int64
	// Result is the worker's report; nil when the control plane ended the
	// job without one (Reason says why).
	Result *wsproto.JobResult
	// Reason is why the job failed or was cancelled: the worker's error,
	// or the control plane's reason.
	Reason string
}

// OK reports whether the job succeeded.
func (e End) OK() bool { return e.Result != nil && e.Result.OK }

// Kinds maps job kinds to their hooks.
type Kinds map[string]Hooks

// Merge returns the hooks of k and of every other set (a later set wins
// for a kind named twice).
func (k Kinds) Merge(others ...Kinds) Kinds {
	out := Kinds{}
	for _, set := range append([]Kinds{k}, others...) {
		for kind, h := range set {
			out[kind] = h
		}
	}
	return out
}

func (k Kinds) ended(ctx context.Context, tx pgx.Tx, e End) error {
	if h := k[e.Job.Kind]; h.Ended != nil {
		return h.Ended(ctx, tx, e)
	}
	return nil
}

// Recovered runs the Requeued or Ended hooks of the jobs recovery moved
// (RecoverJobs, ReconcileWorker), in its transaction. The scheduler does
// so for its own recovery.
func (k Kinds) Recovered(ctx context.Context, tx pgx.Tx, list []Recovered) error {
	for _, rc := range list {
		if rc.State == "pending" {
			if h := k[rc.Job.Kind]; h.Requeued != nil {
				if err := h.Requeued(ctx, tx, rc.Job, rc.Reason); err != nil {
					return err
				}
			}
			continue
		}
		if err := k.ended(ctx, tx, End{Job: rc.Job, WorkerID: rc.WorkerID, Reason: rc.Reason}); err != nil {
			return err
		}
	}
	return nil
}
