package jobs

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"
)

// ErrNotRequeueable means the job is still active or succeeded.
var ErrNotRequeueable = errors.New("only failed or cancelled jobs can be enqueued again")

// ErrNotFound means there is no such job (or its app is gone).
var ErrNotFound = errors.New("job not found")

// notFound is an ErrNotFound with its own message.
type notFound string

func (e notFound) Error() string      { return string(e) }
func (notFound) Is(target error) bool { return target == ErrNotFound }

// Requeue enqueues a failed or cancelled job again as a new job (the old
// row stays as history) with fresh attempts; a deploy's deployment goes
// back to queued. It runs in tx and returns the new job's id.
func Requeue(ctx context.Context, tx pgx.Tx, id int64) (int64, error) {
	j, err := scanJob(tx.QueryRow(ctx, `SELECT `+jobColumns+` FROM jobs WHERE id = $1 FOR UPDATE`, id))
	if errors.Is(err, pgx.ErrNoRows) {
		return 0, notFound(fmt.Sprintf("job %d not found", id))
	}
	if err != nil {
		return 0, err
	}
	if j.State != "failed" && j.State != "cancelled" {
		return 0, fmt.Errorf("job %d is %s: %w", id, j.State, ErrNotRequeueable)
	}
	var live int
	if j.AppID != 0 {
		if err := tx.QueryRow(ctx, "SELECT count(*) FROM apps WHERE id = $1", j.AppID).Scan(&live); err != nil {
			return 0, err
		}
		if live == 0 {
			return 0, notFound(fmt.Sprintf("job %d: its app was deleted", id))
		}
	}
	newID, err := Enqueue(ctx, tx, New{Kind: j.Kind, AppID: j.AppID, DeploymentID: j.DeploymentID, Payload: json.RawMessage(j.Payload),
		CPUMillis: j.CPUMillis, MemoryMB: j.MemoryMB, TimeoutS: j.TimeoutS, MaxAttempts: j.MaxAttempts})
	if err != nil {
		return 0, err
	}
	if j.DeploymentID != 0 {
		if _, err := tx.Exec(ctx, `UPDATE deployments SET status = 'queued', error = '', finished_at = NULL WHERE id = $1`, j.DeploymentID); err != nil {
			return 0, err
		}
		if _, err := tx.Exec(ctx, `INSERT INTO deployment_logs (deployment_id, stream, line) VALUES ($1, 'system', $2)`,
			j.DeploymentID, fmt.Sprintf("enqueued again by an operator (job %d → %d)", id, newID)); err != nil {
			return 0, err
		}
	}
	return newID, nil
}
