package jobs_test

import (
	"context"
	"encoding/json"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/wisehosting/wisehosting/internal/jobs"
	"github.com/wisehosting/wisehosting/internal/pgtest"
	"github.com/wisehosting/wisehosting/internal/wsproto"
)

// The queue knows a kind only through its hooks: Prepare shapes what the
// worker gets, Progress and Ended run in the transactions that record
// the worker's reports, and an Ended hook's error rolls the result back
// (the job stays running, the result is not acknowledged) until the
// worker sends it again.
func TestKindHooksRunInTheCompletingTransaction(t *testing.T) {
	t.Parallel()
	db := pgtest.New(t)
	ctx := context.Background()
	if _, err := db.Pool.Exec(ctx, "CREATE TABLE probe (id serial, job_id bigint, what text)"); err != nil {
		t.Fatal(err)
	}
	ids := seedWorkers(t, db.Pool, 1, "1 hour")
	f := newFleet(ids...)
	sent := make(chan wsproto.JobAssign, 4)
	f.mode = func(_ int64, ja wsproto.JobAssign) string { sent <- ja; return "hang" }
	var failNext atomic.Bool
	failNext.Store(true)
	record := func(ctx context.Context, tx pgx.Tx, id int64, what string) error {
		_, err := tx.Exec(ctx, "INSERT INTO probe (job_id, what) VALUES ($1, $2)", id, what)
		return err
	}
	kinds := jobs.Kinds{"probe": jobs.Hooks{
		Prepare: func(_ context.Context, _ *pgxpool.Pool, j jobs.Job) (json.RawMessage, error) {
			return json.RawMessage(`{"secret":"only on the wire"}`), nil
		},
		Progress: func(ctx context.Context, tx pgx.Tx, j jobs.Job, p wsproto.JobProgress) error {
			return record(ctx, tx, j.ID, "progress "+p.Stage)
		},
		Ended: func(ctx context.Context, tx pgx.Tx, e jobs.End) error {
			if err := record(ctx, tx, e.Job.ID, "ended "+e.Job.State); err != nil {
				return err
			}
			if failNext.CompareAndSwap(true, false) {
				return errors.New("the domain's write failed")
			}
			return nil
		},
	}}
	runScheduler(t, db.Pool, f, func(c *jobs.Config) { c.Kinds = kinds })
	id, err := jobs.Enqueue(ctx, db.Pool, jobs.New{Kind: "probe", Payload: map[string]string{"stored": "yes"}})
	if err != nil {
		t.Fatal(err)
	}
	var ja wsproto.JobAssign
	select {
	case ja = <-sent:
	case <-time.After(30 * time.Second):
		t.Fatal("the job was never sent")
	}
	if ja.JobID != id || string(ja.Payload) != `{"secret":"only on the wire"}` {
		t.Fatalf("sent %d with %s", ja.JobID, ja.Payload)
	}
	if j, _ := jobs.Get(ctx, db.Pool, id); string(j.Payload) != `{"stored": "yes"}` {
		t.Fatalf("stored payload %s", j.Payload)
	}
	eventually(t, "job running", 10*time.Second, func() bool { j, _ := jobs.Get(ctx, db.Pool, id); return j.State == "running" })
	dispatch := func(typ string, v any) error {
		b, _ := json.Marshal(v)
		_, err := f.bus.Dispatch(ctx, ids[0], typ, b)
		return err
	}
	if err := dispatch(wsproto.TypeJobProgress, wsproto.JobProgress{JobID: id, Stage: "build"}); err != nil {
		t.Fatal(err)
	}
	probe := func() []string {
		rows, _ := db.Pool.Query(ctx, "SELECT what FROM probe WHERE job_id = $1 ORDER BY id", id)
		out, _ := pgx.CollectRows(rows, pgx.RowTo[string])
		return out
	}
	if got := probe(); len(got) != 1 || got[0] != "progress build" {
		t.Fatalf("after progress: %v", got)
	}
	result := wsproto.JobResult{JobID: id, OK: true}
	if err := dispatch(wsproto.TypeJobResult, result); err == nil {
		t.Fatal("a result whose hook failed was accepted")
	}
	j, _ := jobs.Get(ctx, db.Pool, id)
	f.mu.Lock()
	acks := f.resultAcks[id]
	f.mu.Unlock()
	if got := probe(); j.State != "running" || acks != 0 || len(got) != 1 {
		t.Fatalf("after a failed hook: job %s, %d result acks, probe %v", j.State, acks, got)
	}
	// The worker sends it again.
	if err := dispatch(wsproto.TypeJobResult, result); err != nil {
		t.Fatal(err)
	}
	j, _ = jobs.Get(ctx, db.Pool, id)
	f.mu.Lock()
	acks = f.resultAcks[id]
	f.mu.Unlock()
	if got := probe(); j.State != "succeeded" || acks != 1 || len(got) != 2 || got[1] != "ended succeeded" {
		t.Fatalf("after the result: job %s, %d result acks, probe %v", j.State, acks, got)
	}
}
