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
// row stays as history) with fresh attempts. It runs in tx and returns the
// old job and the new job's id; the caller records what it means to its
// domain (see deploys.Requeue).
func Requeue(ctx context.Context, tx pgx.Tx, id int64) (Job, int64, error) {
	j, err := scanJob(tx.QueryRow(ctx, `SELECT `+jobColumns+` FROM jobs WHERE id = $1 FOR UPDATE`, id))
	if errors.Is(err, pgx.ErrNoRows) {
		return j, 0, notFound(fmt.Sprintf("job %d not found", id))
	}
	if err != nil {
		return j, 0, err
	}
	if j.State != "failed" && j.State != "cancelled" {
		return j, 0, fmt.Errorf("job %d is %s: %w", id, j.State, ErrNotRequeueable)
	}
	var live int
	if j.AppID != 0 {
		if err := tx.QueryRow(ctx, "SELECT count(*) FROM apps WHERE id = $1", j.AppID).Scan(&live); err != nil {
			return j, 0, err
		}
		if live == 0 {
			return j, 0, notFound(fmt.Sprintf("job %d: its app was deleted", id))
		}
	}
	newID, err := Enqueue(ctx, tx, New{Kind: j.Kind, AppID: j.AppID, DeploymentID: j.DeploymentID, Payload: json.RawMessage(j.Payload),
		CPUMillis: j.CPUMillis, MemoryMB: j.MemoryMB, TimeoutS: j.TimeoutS, MaxAttempts: j.MaxAttempts})
	if err != nil {
		return j, 0, err
	}
	return j, newID, nil
}
