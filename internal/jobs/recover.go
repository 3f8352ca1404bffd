package jobs

import (
	"context"
	"time"

	"github.com/jackc/pgx/v5"
)

// Recovered is a job that recovery requeued, failed or cancelled.
type Recovered struct {
	JobID, DeploymentID, AppID, WorkerID int64
	State, Reason                        string
	// Job is the job's row after recovery.
	Job Job
}

// MarkOfflineWorkers marks online workers silent for longer than heartbeat
// as offline and returns their ids.
func MarkOfflineWorkers(ctx context.Context, tx pgx.Tx, heartbeat time.Duration) ([]int64, error) {
	rows, err := tx.Query(ctx, `UPDATE workers SET status = 'offline'
		WHERE status = 'online' AND (last_seen IS NULL OR last_seen < now() - $1::interval) RETURNING id`, heartbeat.String())
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, pgx.RowTo[int64])
}

// RecoverJobs handles jobs that can no longer finish where they are:
//   - jobs on offline or revoked workers (or draining ones silent for
//     longer than heartbeat), and assigned jobs never
//     acknowledged by their deadline, go back to pending while attempts
//     remain (the worker never ran them, or is gone: deploys are
//     idempotent), else fail;
//   - running jobs past their deadline fail, visibly: the worker is alive
//     but the job hangs, and running it again would hide the problem;
//   - jobs whose cancellation was requested end as cancelled in either case.
//
// The caller runs the kinds' hooks (Kinds) in the same transaction.
// A requeued job keeps worker_id (its last worker), whose late result
// Finish still accepts.
func RecoverJobs(ctx context.Context, tx pgx.Tx, heartbeat time.Duration) ([]Recovered, error) {
	return recoverLost(ctx, tx, `WITH gone AS (
			-- Offline and revoked workers, and draining ones (never marked
			-- offline: the operator's drain must outlive a reconnect) that
			-- stopped sending heartbeats.
			SELECT id FROM workers WHERE status IN ('offline', 'revoked')
				OR (status = 'draining' AND (last_seen IS NULL OR last_seen < now() - $1::interval))
		), lost AS (
			SELECT j.id,
				CASE
					WHEN w.id IS NULL OR w.id IN (SELECT id FROM gone) THEN 'worker ' || COALESCE(w.name, '?') || ' went offline'
					WHEN j.state = 'assigned' THEN 'not acknowledged by worker ' || w.name || ' in time'
					ELSE 'timed out after ' || j.timeout_s || 's on worker ' || w.name
				END AS reason,
				(j.state = 'running' AND w.id NOT IN (SELECT id FROM gone)) OR j.attempt >= j.max_attempts AS give_up,
				j.cancel_requested_at IS NOT NULL AS cancel
			FROM jobs j LEFT JOIN workers w ON w.id = j.worker_id
			WHERE j.state IN ('assigned', 'running')
				AND (w.id IS NULL OR w.id IN (SELECT id FROM gone) OR j.deadline_at < now())
			FOR UPDATE OF j SKIP LOCKED
		)
		`, heartbeat.String())
}

// ReconcileWorker resolves at once the active jobs of a worker that just
// said hello and no longer accounts for them (accounted: the jobs it runs
// and the ones whose results it still holds): it restarted or lost them.
// They go back to pending while attempts remain (deploys are idempotent),
// else fail, or end cancelled when cancellation was requested; the
// deployment follows, as in RecoverJobs. Jobs assigned but not yet
// acknowledged are left to delivery, due at once, as are requested
// cancellations: they may have been sent on the connection that dropped. It runs in tx; the caller runs the
// kinds' hooks.
func ReconcileWorker(ctx context.Context, tx pgx.Tx, workerID int64, accounted []int64) ([]Recovered, error) {
	if accounted == nil {
		accounted = []int64{}
	}
	if _, err := tx.Exec(ctx, `UPDATE jobs SET sent_at = CASE WHEN state = 'assigned' THEN NULL ELSE sent_at END,
			cancel_sent_at = CASE WHEN cancel_requested_at IS NOT NULL THEN NULL ELSE cancel_sent_at END
		WHERE worker_id = $1 AND state IN ('assigned', 'running') AND (sent_at IS NOT NULL OR cancel_sent_at IS NOT NULL)`, workerID); err != nil {
		return nil, err
	}
	return recoverLost(ctx, tx, `WITH lost AS (
			SELECT j.id, 'worker ' || COALESCE(w.name, '?') || ' no longer runs the job (it restarted or lost it)' AS reason,
				j.attempt >= j.max_attempts AS give_up, j.cancel_requested_at IS NOT NULL AS cancel
			FROM jobs j LEFT JOIN workers w ON w.id = j.worker_id
			WHERE j.worker_id = $1 AND j.state = 'running' AND NOT (j.id = ANY($2::bigint[]))
			FOR UPDATE OF j
		)`, workerID, accounted)
}

// recoverLost requeues, fails or cancels the jobs that lostCTE (a WITH
// clause defining lost: id, reason, give_up, cancel) selects. A requeued job keeps its last worker: a
// result that worker still sends (it ran the job while the control plane could not
// hear it) is accepted until the job is placed again.
func recoverLost(ctx context.Context, tx pgx.Tx, lostCTE string, args ...any) ([]Recovered, error) {
	rows, err := tx.Query(ctx, lostCTE+`
		UPDATE jobs j SET
			state = CASE WHEN l.cancel THEN 'cancelled' WHEN l.give_up THEN 'failed' ELSE 'pending' END,
			error = CASE WHEN l.cancel THEN l.reason || '; cancelled' WHEN l.give_up THEN l.reason ELSE l.reason || '; requeued' END,
			finished_at = CASE WHEN l.give_up OR l.cancel THEN now() END,
			assigned_at = NULL, acked_at = NULL, sent_at = NULL, deadline_at = NULL
		FROM lost l WHERE j.id = l.id
		RETURNING `+jColumns, args...)
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, func(r pgx.CollectableRow) (Recovered, error) {
		j, err := scanJob(r)
		return Recovered{JobID: j.ID, DeploymentID: j.DeploymentID, AppID: j.AppID, WorkerID: j.WorkerID,
			State: j.State, Reason: j.Error, Job: j}, err
	})
}
