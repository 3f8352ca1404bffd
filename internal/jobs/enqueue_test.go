package jobs_test

import (
	"context"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/wisehosting/wisehosting/internal/jobs"
	"github.com/wisehosting/wisehosting/internal/pgtest"
)

// A job enqueued in a rolled-back transaction must not exist: the job and
// its cause commit together or not at all.
func TestEnqueueIsTransactional(t *testing.T) {
	t.Parallel()
	db := pgtest.New(t)
	ctx := context.Background()

	tx, err := db.Pool.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := jobs.Enqueue(ctx, tx, jobs.New{Kind: "deploy", Payload: map[string]string{"sha": "abc"}}); err != nil {
		t.Fatal(err)
	}
	tx.Rollback(ctx)

	var n int
	db.Pool.QueryRow(ctx, "SELECT count(*) FROM jobs").Scan(&n)
	if n != 0 {
		t.Fatalf("rolled-back job exists (%d rows)", n)
	}

	var id int64
	err = pgx.BeginFunc(ctx, db.Pool, func(tx pgx.Tx) error {
		id, err = jobs.Enqueue(ctx, tx, jobs.New{Kind: "deploy", Payload: map[string]string{"sha": "abc"}})
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	var state, sha string
	var timeout int
	db.Pool.QueryRow(ctx, "SELECT state, payload->>'sha', timeout_s FROM jobs WHERE id = $1", id).Scan(&state, &sha, &timeout)
	if state != "pending" || sha != "abc" || timeout != 900 {
		t.Fatalf("job row: state=%q sha=%q timeout=%d", state, sha, timeout)
	}
}
