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

// Cancel cancels a job in tx. A pending job ends at once, with its
// deployment. A job a worker holds gets cancel_requested_at: the replica
// holding the worker's connection sends job.cancel (resent until the job
// ends), the job is no longer sent as job.assign, and the worker's failed
// result ends it as cancelled. A success that was already on its way wins:
// the deployment then stands. Recovery cancels rather than requeues such a
// job when its worker is gone or never took it.
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
		if j.DeploymentID != 0 {
			if err := CancelDeployment(ctx, tx, j.DeploymentID, reason); err != nil {
				return Cancelled{}, err
			}
		}
		return Cancelled{Job: j, Ended: true}, nil
	case "assigned", "running":
		if _, err := tx.Exec(ctx, `UPDATE jobs SET cancel_requested_at = COALESCE(cancel_requested_at, now()), cancel_sent_at = NULL
			WHERE id = $1`, j.ID); err != nil {
			return Cancelled{}, err
		}
		if j.DeploymentID != 0 {
			if _, err := tx.Exec(ctx, `INSERT INTO deployment_logs (deployment_id, stream, line) VALUES ($1, 'system', $2)`,
				j.DeploymentID, "cancel requested: "+reason); err != nil {
				return Cancelled{}, err
			}
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

// CancelDeploymentJob cancels the job in progress of a deployment (the
// newest one not ended).
func CancelDeploymentJob(ctx context.Context, tx pgx.Tx, deploymentID int64, reason string) (Cancelled, error) {
	var id int64
	err := tx.QueryRow(ctx, `SELECT id FROM jobs WHERE deployment_id = $1 AND state IN ('pending', 'assigned', 'running')
		ORDER BY id DESC LIMIT 1`, deploymentID).Scan(&id)
	if errors.Is(err, pgx.ErrNoRows) {
		return Cancelled{}, ErrNoActiveJob
	}
	if err != nil {
		return Cancelled{}, err
	}
	return Cancel(ctx, tx, id, reason)
}

// CancelDeployment marks a deployment cancelled (if it has not ended), or
// superseded when a newer deployment of its app replaced its job
// (Supersede). The app's status is left alone: whatever served it before
// still does.
func CancelDeployment(ctx context.Context, tx pgx.Tx, deploymentID int64, reason string) error {
	var status string
	err := tx.QueryRow(ctx, `UPDATE deployments d SET error = $2, finished_at = now(),
			status = CASE WHEN EXISTS (SELECT 1 FROM jobs WHERE deployment_id = d.id AND superseded_by IS NOT NULL)
				THEN 'superseded' ELSE 'cancelled' END
		WHERE id = $1 AND status IN ('queued', 'building', 'deploying') RETURNING status`, deploymentID, truncate(reason, 2000)).Scan(&status)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil
	}
	if err != nil {
		return err
	}
	line := "deployment cancelled: " + reason
	if status == "superseded" {
		line = "deployment " + reason
	}
	_, err = tx.Exec(ctx, `INSERT INTO deployment_logs (deployment_id, stream, line) VALUES ($1, 'system', $2)`, deploymentID, line)
	return err
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
