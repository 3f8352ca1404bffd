package jobs

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"

	"github.com/wisehosting/wisehosting/internal/errs"
)

// ErrNotRequeueable means the job is still active or succeeded (the
// Conflict error that says so wraps it).
var ErrNotRequeueable = errors.New("only failed or cancelled jobs can be enqueued again")

// ErrNotFound means there is no such job (or its app is gone); the
// NotFound error that says which wraps it.
var ErrNotFound = errors.New("job not found")

// notFound is an ErrNotFound with its own sentence.
func notFound(format string, a ...any) error {
	return &errs.Error{Kind: errs.NotFound, Msg: fmt.Sprintf(format, a...), Err: ErrNotFound}
}

// Requeue enqueues a failed or cancelled job again as a new job (the old
// row stays as history) with fresh attempts. It runs in tx and returns the
// old job and the new job's id; the caller records what it means to its
// domain (see deploys.Requeue).
func Requeue(ctx context.Context, tx pgx.Tx, id int64) (Job, int64, error) {
	j, err := scanJob(tx.QueryRow(ctx, `SELECT `+jobColumns+` FROM jobs WHERE id = $1 FOR UPDATE`, id))
	if errors.Is(err, pgx.ErrNoRows) {
		return j, 0, notFound("job %d not found", id)
	}
	if err != nil {
		return j, 0, err
	}
	if j.State != "failed" && j.State != "cancelled" {
		return j, 0, &errs.Error{Kind: errs.Conflict, Msg: fmt.Sprintf("job %d is %s: %s", id, j.State, ErrNotRequeueable), Err: ErrNotRequeueable}
	}
	var live int
	if j.AppID != 0 {
		if err := tx.QueryRow(ctx, "SELECT count(*) FROM apps WHERE id = $1", j.AppID).Scan(&live); err != nil {
			return j, 0, err
		}
		if live == 0 {
			return j, 0, notFound("job %d: its app was deleted", id)
		}
	}
	newID, err := Enqueue(ctx, tx, New{Kind: j.Kind, AppID: j.AppID, DeploymentID: j.DeploymentID, Payload: json.RawMessage(j.Payload),
		CPUMillis: j.CPUMillis, MemoryMB: j.MemoryMB, TimeoutS: j.TimeoutS, MaxAttempts: j.MaxAttempts})
	if err != nil {
		return j, 0, err
	}
	return j, newID, nil
}
