package jobs

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// ErrNotCancellable is returned for a job that has already ended.
var ErrNotCancellable = errors.New("the job has already ended")

// ErrNoActiveJob is returned when a deployment has no job left to cancel.
var ErrNoActiveJob = errors.New("the deployment has no job in progress")

// Cancelled tells what Cancel did.
type Cancelled struct {
	Job Job
	// Ended is true when the job ended at once (it was still pending);
	// false when its worker was asked to stop it and its result will end
	// it.
	Ended bool
}

// Cancel cancels a job in tx. A pending job ends at once (Ended). A job a
// worker holds gets cancel_requested_at: the replica holding the worker's
// connection sends job.cancel (resent until the job ends), the job is no
// longer sent as job.assign, and the worker's failed result ends it as
// cancelled. A success that was already on its way wins. Recovery cancels
// rather than requeues such a job when its worker is gone or never took
// it. The caller records what the cancellation means to its domain (see
// internal/deploys), in tx.
func Cancel(ctx context.Context, tx pgx.Tx, jobID int64, reason string) (Cancelled, error) {
	j, err := scanJob(tx.QueryRow(ctx, "SELECT "+jobColumns+" FROM jobs WHERE id = $1 FOR UPDATE", jobID))
	if err != nil {
		return Cancelled{}, err
	}
	switch j.State {
	case "pending":
		if _, err := tx.Exec(ctx, `UPDATE jobs SET state = 'cancelled', error = $2, finished_at = now(), cancel_requested_at = now()
			WHERE id = $1`, j.ID, truncate(reason, 2000)); err != nil {
			return Cancelled{}, err
		}
		j.State = "cancelled"
		return Cancelled{Job: j, Ended: true}, nil
	case "assigned", "running":
		if _, err := tx.Exec(ctx, `UPDATE jobs SET cancel_requested_at = COALESCE(cancel_requested_at, now()), cancel_sent_at = NULL
			WHERE id = $1`, j.ID); err != nil {
			return Cancelled{}, err
		}
		// Wake the replica that holds the worker's connection.
		if _, err := tx.Exec(ctx, "SELECT pg_notify($1, $2)", AssignChannel, fmt.Sprint(j.WorkerID)); err != nil {
			return Cancelled{}, err
		}
		return Cancelled{Job: j}, nil
	default:
		return Cancelled{Job: j}, ErrNotCancellable
	}
}

// ActiveJobOf returns the id of a deployment's job in progress (the
// newest one not ended), or ErrNoActiveJob.
func ActiveJobOf(ctx context.Context, tx pgx.Tx, deploymentID int64) (int64, error) {
	var id int64
	err := tx.QueryRow(ctx, `SELECT id FROM jobs WHERE deployment_id = $1 AND state IN ('pending', 'assigned', 'running')
		ORDER BY id DESC LIMIT 1`, deploymentID).Scan(&id)
	if errors.Is(err, pgx.ErrNoRows) {
		return 0, ErrNoActiveJob
	}
	return id, err
}

// Supersede records that ids were superseded by `by` (a newer deployment:
// jobs.superseded_by) and cancels them (Cancel), in tx.
func Supersede(ctx context.Context, tx pgx.Tx, ids []int64, by int64, reason string) ([]Cancelled, error) {
	if _, err := tx.Exec(ctx, `UPDATE jobs SET superseded_by = $2 WHERE id = ANY($1)`, ids, by); err != nil {
		return nil, err
	}
	var out []Cancelled
	for _, id := range ids {
		c, err := Cancel(ctx, tx, id, reason)
		if err != nil {
			return nil, fmt.Errorf("superseding job %d: %w", id, err)
		}
		out = append(out, c)
	}
	return out, nil
}

// PendingCancels returns the ids of a worker's jobs whose cancellation has
// not been sent, or was sent more than resend ago while the job still runs,
// and marks them sent.
func PendingCancels(ctx context.Context, pool *pgxpool.Pool, workerID int64, resend time.Duration) ([]int64, error) {
	rows, err := pool.Query(ctx, `UPDATE jobs SET cancel_sent_at = now()
		WHERE id IN (SELECT id FROM jobs WHERE worker_id = $1 AND cancel_requested_at IS NOT NULL AND state IN ('assigned', 'running')
			AND (cancel_sent_at IS NULL OR cancel_sent_at < now() - $2::interval) ORDER BY id LIMIT 500 FOR UPDATE SKIP LOCKED)
		RETURNING id`, workerID, resend.String())
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, pgx.RowTo[int64])
}

// CancelQueued cancels, in tx, a deployment's jobs still pending (none of
// them reached a worker), with reason as their error; no hook runs: the
// caller records what it means (see deploys.FailRoll). It returns how many
// it cancelled.
func CancelQueued(ctx context.Context, tx pgx.Tx, deploymentID int64, reason string) (int64, error) {
	tag, err := tx.Exec(ctx, `UPDATE jobs SET state = 'cancelled', error = $2, finished_at = now()
		WHERE deployment_id = $1 AND state = 'pending'`, deploymentID, reason)
	return tag.RowsAffected(), err
}

// GiveUp ends, in tx, a pending job the control plane will not run, as
// state (succeeded: what it asked for counts as done; cancelled or
// failed), with reason as its error. No hook runs: the caller records what
// it means (see replicas.Forget). A job no longer pending is left alone
// (ok false).
func GiveUp(ctx context.Context, tx pgx.Tx, jobID int64, state, reason string) (Job, bool, error) {
	switch state {
	case "succeeded", "cancelled", "failed":
	default:
		return Job{}, false, fmt.Errorf("a job cannot end as %q", state)
	}
	j, err := scanJob(tx.QueryRow(ctx, `UPDATE jobs SET state = $2, error = $3, finished_at = now()
		WHERE id = $1 AND state = 'pending' RETURNING `+jobColumns, jobID, state, reason))
	if errors.Is(err, pgx.ErrNoRows) {
		return Job{}, false, nil
	}
	return j, err == nil, err
}

// CancelQueuedSlots cancels, in tx, an app's pending jobs of the given
// kinds whose payload's slot (PayloadSlot) is fromSlot or above, with
// reason as their error; no hook runs. It returns how many it cancelled.
func CancelQueuedSlots(ctx context.Context, tx pgx.Tx, appID int64, kinds []string, fromSlot int, reason string) (int64, error) {
	tag, err := tx.Exec(ctx, `UPDATE jobs SET state = 'cancelled', error = $4, finished_at = now()
		WHERE app_id = $1 AND state = 'pending' AND kind = ANY($2) AND COALESCE((payload->>'slot')::int, 0) >= $3`,
		appID, kinds, fromSlot, reason)
	return tag.RowsAffected(), err
}
