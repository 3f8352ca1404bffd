package jobs_test

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/wisehosting/wisehosting/internal/jobs"
	"github.com/wisehosting/wisehosting/internal/pgtest"
	"github.com/wisehosting/wisehosting/internal/wsproto"
)

func hello(t *testing.T, f *fleet, worker int64, running, results []int64) {
	t.Helper()
	p, _ := json.Marshal(wsproto.Hello{Version: "test", RunningIDs: running, ResultIDs: results})
	if _, err := f.bus.Dispatch(context.Background(), worker, wsproto.TypeHello, p); err != nil {
		t.Fatal(err)
	}
}

// A worker that reconnects without a job it had taken (it crashed) gets
// it resolved at once: requeued and run again, not left running until its
// deadline. Jobs it still runs, or whose results it holds, are left alone.
func TestHelloResolvesLostJobsAtOnce(t *testing.T) {
	t.Parallel()
	db := pgtest.New(t)
	ctx := context.Background()
	ids := seedWorkers(t, db.Pool, 1, "1 hour")
	f := newFleet(ids...)
	f.mode = func(int64, wsproto.JobAssign) string { return "hang" }
	runScheduler(t, db.Pool, f, nil)
	var lost, runs, done int64
	for _, p := range []*int64{&lost, &runs, &done} {
		*p, _ = jobs.Enqueue(ctx, db.Pool, jobs.New{Kind: "deploy"})
	}
	eventually(t, "jobs running", 10*time.Second, func() bool { return countState(t, db.Pool, "running") == 3 })
	start := time.Now()
	hello(t, f, ids[0], []int64{runs}, []int64{done})
	// The lost job is placed and sent again (attempt 2).
	eventually(t, "lost job sent again", 5*time.Second, func() bool {
		j, _ := jobs.Get(ctx, db.Pool, lost)
		f.mu.Lock()
		defer f.mu.Unlock()
		return j.Attempt == 2 && f.assigned[lost] >= 2
	})
	if d := time.Since(start); d > 5*time.Second {
		t.Fatalf("resolved after %s", d)
	}
	for _, id := range []int64{runs, done} {
		if j, _ := jobs.Get(ctx, db.Pool, id); j.State != "running" || j.Attempt != 1 {
			t.Fatalf("job %d accounted for by the worker changed: %s attempt %d", id, j.State, j.Attempt)
		}
	}
}

// A result is acknowledged only once committed: when the database fails
// the worker gets no ack (it keeps the result and sends it again), and the
// next send is recorded and acknowledged.
func TestResultAckedOnlyAfterCommit(t *testing.T) {
	t.Parallel()
	db := pgtest.New(t)
	ctx := context.Background()
	ids := seedWorkers(t, db.Pool, 1, "1 hour")
	f := newFleet(ids...)
	f.mode = func(int64, wsproto.JobAssign) string { return "hang" }
	runScheduler(t, db.Pool, f, nil)
	id, _ := jobs.Enqueue(ctx, db.Pool, jobs.New{Kind: "deploy"})
	eventually(t, "job running", 10*time.Second, func() bool { return countState(t, db.Pool, "running") == 1 })
	// The commit fails (as when the database goes away mid-transaction).
	for _, q := range []string{
		`CREATE FUNCTION refuse() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN RAISE EXCEPTION 'database unavailable'; END $$`,
		`CREATE TRIGGER refuse BEFORE UPDATE ON jobs FOR EACH ROW WHEN (NEW.state = 'succeeded') EXECUTE FUNCTION refuse()`,
	} {
		if _, err := db.Pool.Exec(ctx, q); err != nil {
			t.Fatal(err)
		}
	}
	res, _ := json.Marshal(wsproto.JobResult{JobID: id, OK: true})
	if _, err := f.bus.Dispatch(ctx, ids[0], wsproto.TypeJobResult, res); err == nil {
		t.Fatal("a result that was not recorded reported no error")
	}
	f.mu.Lock()
	acks := f.resultAcks[id]
	f.mu.Unlock()
	if acks != 0 {
		t.Fatal("a result was acknowledged without being committed")
	}
	if _, err := db.Pool.Exec(ctx, "DROP TRIGGER refuse ON jobs"); err != nil {
		t.Fatal(err)
	}
	if _, err := f.bus.Dispatch(ctx, ids[0], wsproto.TypeJobResult, res); err != nil {
		t.Fatal(err)
	}
	f.mu.Lock()
	acks = f.resultAcks[id]
	f.mu.Unlock()
	if j, _ := jobs.Get(ctx, db.Pool, id); j.State != "succeeded" || acks != 1 {
		t.Fatalf("after the retry: job %s, %d acks", j.State, acks)
	}
	// A duplicate of a recorded result is acknowledged again (the worker
	// may have missed the first ack) and changes nothing.
	f.bus.Dispatch(ctx, ids[0], wsproto.TypeJobResult, res)
	f.mu.Lock()
	acks = f.resultAcks[id]
	f.mu.Unlock()
	if acks != 2 {
		t.Fatalf("%d acks after a duplicate", acks)
	}
}

// One job per app at a time: the second job of an app waits while the
// first is on a worker, and is placed as soon as the first ends (a result
// wakes placement at once, not at the next poll).
func TestOneJobPerAppAndFinishWakesPlacement(t *testing.T) {
	t.Parallel()
	db := pgtest.New(t)
	ctx := context.Background()
	ids := seedWorkers(t, db.Pool, 1, "1 hour")
	app, _ := appWithDeployment(t, db, "running")
	f := newFleet(ids...)
	f.mode = func(int64, wsproto.JobAssign) string { return "hang" }
	runScheduler(t, db.Pool, f, func(c *jobs.Config) { c.PollInterval = time.Hour })
	first, _ := jobs.Enqueue(ctx, db.Pool, jobs.New{Kind: wsproto.JobRestart, AppID: app})
	second, _ := jobs.Enqueue(ctx, db.Pool, jobs.New{Kind: wsproto.JobRestart, AppID: app})
	other, _ := jobs.Enqueue(ctx, db.Pool, jobs.New{Kind: "deploy"})
	eventually(t, "first job running", 10*time.Second, func() bool {
		j, _ := jobs.Get(ctx, db.Pool, first)
		o, _ := jobs.Get(ctx, db.Pool, other)
		return j.State == "running" && o.State == "running"
	})
	time.Sleep(300 * time.Millisecond)
	if j, _ := jobs.Get(ctx, db.Pool, second); j.State != "pending" {
		t.Fatalf("second job of the app is %s while the first runs", j.State)
	}
	res, _ := json.Marshal(wsproto.JobResult{JobID: first, OK: true})
	if _, err := f.bus.Dispatch(ctx, ids[0], wsproto.TypeJobResult, res); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	eventually(t, "second job placed", 3*time.Second, func() bool { j, _ := jobs.Get(ctx, db.Pool, second); return j.State == "running" })
	t.Logf("placed %s after the first job's result", time.Since(start))
}

// A job requeued while its worker could not be heard (marked offline)
// still takes that worker's result until it is placed again: the worker
// ran it.
func TestLateResultOfRequeuedJob(t *testing.T) {
	t.Parallel()
	db := pgtest.New(t)
	ctx := context.Background()
	ids := seedWorkers(t, db.Pool, 1, "1 hour")
	f := newFleet(ids...)
	f.mode = func(int64, wsproto.JobAssign) string { return "hang" }
	_, stop := runScheduler(t, db.Pool, f, nil)
	id, _ := jobs.Enqueue(ctx, db.Pool, jobs.New{Kind: "deploy"})
	eventually(t, "job running", 10*time.Second, func() bool { return countState(t, db.Pool, "running") == 1 })
	stop()
	db.Pool.Exec(ctx, "UPDATE workers SET status = 'offline'")
	tx, _ := db.Pool.Begin(ctx)
	if _, err := jobs.RecoverJobs(ctx, tx, time.Minute); err != nil {
		t.Fatal(err)
	}
	tx.Commit(ctx)
	if j, _ := jobs.Get(ctx, db.Pool, id); j.State != "pending" {
		t.Fatalf("job %s after recovery", j.State)
	}
	tx, _ = db.Pool.Begin(ctx)
	j, ok, err := jobs.Finish(ctx, tx, ids[0], id, true, "")
	tx.Commit(ctx)
	if err != nil || !ok || j.State != "succeeded" {
		t.Fatalf("late result: %+v %v %v", j, ok, err)
	}
}

// A worker's reconnect moves its jobs on at once, whatever the poll and
// resend periods: a job assigned to it and sent on the connection that
// dropped is sent again on the new one, and a job requeued while it could
// not be heard (marked offline) is placed on it again and sent.
func TestReconnectDeliversAndPlacesAtOnce(t *testing.T) {
	t.Parallel()
	db := pgtest.New(t)
	ctx := context.Background()
	ids := seedWorkers(t, db.Pool, 1, "1 hour")
	f := newFleet(ids...)
	// The first sending of a job is lost with the connection; the agent
	// takes every later one.
	f.mode = func(_ int64, ja wsproto.JobAssign) string {
		f.mu.Lock()
		defer f.mu.Unlock()
		if f.assigned[ja.JobID] == 1 {
			return "mute"
		}
		return "hang"
	}
	runScheduler(t, db.Pool, f, func(c *jobs.Config) {
		c.PollInterval, c.Resend, c.RecoverInterval = time.Hour, time.Hour, time.Hour
	})
	sends := func(id int64) int {
		f.mu.Lock()
		defer f.mu.Unlock()
		return f.assigned[id]
	}
	reconnect := func() time.Time {
		if _, err := db.Pool.Exec(ctx, "UPDATE workers SET status = 'online', last_seen = now(), offline_at = NULL WHERE id = $1", ids[0]); err != nil {
			t.Fatal(err)
		}
		f.bus.NotifyConnection(ids[0], true)
		start := time.Now()
		hello(t, f, ids[0], nil, nil)
		return start
	}

	id, _ := jobs.Enqueue(ctx, db.Pool, jobs.New{Kind: "deploy"})
	eventually(t, "the job sent once", 10*time.Second, func() bool { return sends(id) == 1 })
	start := reconnect()
	eventually(t, "the job sent again on the new connection", 3*time.Second, func() bool {
		j, _ := jobs.Get(ctx, db.Pool, id)
		return sends(id) == 2 && j.State == "running"
	})
	t.Logf("sent again %s after the hello", time.Since(start).Round(time.Millisecond))

	// The worker is not heard from and found offline: the job goes back
	// to pending. Its hello places and sends it again.
	if _, err := db.Pool.Exec(ctx, "UPDATE workers SET status = 'offline', offline_at = now() WHERE id = $1", ids[0]); err != nil {
		t.Fatal(err)
	}
	tx, _ := db.Pool.Begin(ctx)
	if _, err := jobs.RecoverJobs(ctx, tx, time.Minute); err != nil {
		t.Fatal(err)
	}
	tx.Commit(ctx)
	if j, _ := jobs.Get(ctx, db.Pool, id); j.State != "pending" {
		t.Fatalf("job %s after recovery", j.State)
	}
	start = reconnect()
	eventually(t, "the requeued job placed and sent again", 3*time.Second, func() bool {
		j, _ := jobs.Get(ctx, db.Pool, id)
		return j.Attempt == 2 && sends(id) == 3 && j.State == "running"
	})
	t.Logf("placed and sent %s after the hello", time.Since(start).Round(time.Millisecond))
}
