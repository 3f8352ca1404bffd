package jobs

import (
	"context"
	"time"

	"github.com/jackc/pgx/v5"
)

// Recovered is a job that recovery requeued or failed.
type Recovered struct {
	JobID, DeploymentID, AppID, WorkerID int64
	State, Reason                        string
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
// Deployments of failed jobs are marked failed in the same transaction.
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

// FailDeployment marks a deployment failed. The app is marked failed only
// if no earlier deployment still serves it.
func FailDeployment(ctx context.Context, tx pgx.Tx, deploymentID, appID int64, reason string) error {
	if _, err := tx.Exec(ctx, `UPDATE deployments SET status = 'failed', error = $2, finished_at = now()
		WHERE id = $1 AND status NOT IN ('succeeded', 'failed', 'cancelled', 'superseded')`, deploymentID, truncate(reason, 2000)); err != nil {
		return err
	}
	if _, err := tx.Exec(ctx, `INSERT INTO deployment_logs (deployment_id, stream, line) VALUES ($1, 'system', $2)`,
		deploymentID, "deployment failed: "+reason); err != nil {
		return err
	}
	_, err := tx.Exec(ctx, `UPDATE apps SET status = CASE WHEN status = 'running' THEN 'running' ELSE 'failed' END, updated_at = now()
		WHERE id = $1`, appID)
	return err
}

// ReconcileWorker resolves at once the active jobs of a worker that just
// said hello and no longer accounts for them (accounted: the jobs it runs
// and the ones whose results it still holds): it restarted or lost them.
// They go back to pending while attempts remain (deploys are idempotent),
// else fail, or end cancelled when cancellation was requested; the
// deployment follows, as in RecoverJobs. Jobs assigned but not yet
// acknowledged are left to delivery. It runs in tx.
func ReconcileWorker(ctx context.Context, tx pgx.Tx, workerID int64, accounted []int64) ([]Recovered, error) {
	if accounted == nil {
		accounted = []int64{}
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
// clause defining lost: id, reason, give_up, cancel) selects, and makes
// their deployments follow. A requeued job keeps its last worker: a result
// that worker still sends (it ran the job while the control plane could not
// hear it) is accepted until the job is placed again.
func recoverLost(ctx context.Context, tx pgx.Tx, lostCTE string, args ...any) ([]Recovered, error) {
	rows, err := tx.Query(ctx, lostCTE+`
		UPDATE jobs j SET
			state = CASE WHEN l.cancel THEN 'cancelled' WHEN l.give_up THEN 'failed' ELSE 'pending' END,
			error = CASE WHEN l.cancel THEN l.reason || '; cancelled' WHEN l.give_up THEN l.reason ELSE l.reason || '; requeued' END,
			finished_at = CASE WHEN l.give_up OR l.cancel THEN now() END,
			assigned_at = NULL, acked_at = NULL, sent_at = NULL, deadline_at = NULL
		FROM lost l WHERE j.id = l.id
		RETURNING j.id, COALESCE(j.deployment_id, 0), COALESCE(j.app_id, 0), COALESCE(j.worker_id, 0), j.state, j.error`, args...)
	if err != nil {
		return nil, err
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (Recovered, error) {
		var rc Recovered
		err := r.Scan(&rc.JobID, &rc.DeploymentID, &rc.AppID, &rc.WorkerID, &rc.State, &rc.Reason)
		return rc, err
	})
	if err != nil {
		return nil, err
	}
	return out, recoveredDeployments(ctx, tx, out)
}

// recoveredDeployments makes the deployments of recovered jobs follow them.
func recoveredDeployments(ctx context.Context, tx pgx.Tx, out []Recovered) error {
	for _, rc := range out {
		if rc.DeploymentID == 0 {
			continue
		}
		if rc.State == "cancelled" {
			if err := CancelDeployment(ctx, tx, rc.DeploymentID, rc.Reason); err != nil {
				return err
			}
		} else if rc.State == "failed" {
			if err := FailDeployment(ctx, tx, rc.DeploymentID, rc.AppID, rc.Reason); err != nil {
				return err
			}
		} else if _, err := tx.Exec(ctx, `INSERT INTO deployment_logs (deployment_id, stream, line) VALUES ($1, 'system', $2)`,
			rc.DeploymentID, rc.Reason); err != nil {
			return err
		}
	}
	return nil
}
