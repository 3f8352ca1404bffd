package jobs_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/wisehosting/wisehosting/internal/deploys"
	"github.com/wisehosting/wisehosting/internal/jobs"
	"github.com/wisehosting/wisehosting/internal/pgtest"
	"github.com/wisehosting/wisehosting/internal/wsproto"
)

func appWithDeployment(t *testing.T, db *pgtest.DB, status string) (app, dep int64) {
	t.Helper()
	ctx := context.Background()
	var team int64
	db.Pool.QueryRow(ctx, "INSERT INTO teams (name, slug) VALUES ('t', 't') RETURNING id").Scan(&team)
	if err := db.Pool.QueryRow(ctx, "INSERT INTO apps (team_id, slug, name, status) VALUES ($1, 'a', 'a', $2) RETURNING id", team, status).Scan(&app); err != nil {
		t.Fatal(err)
	}
	db.Pool.QueryRow(ctx, "INSERT INTO deployments (app_id) VALUES ($1) RETURNING id", app).Scan(&dep)
	return app, dep
}

func cancelDep(t *testing.T, db *pgtest.DB, dep int64) (jobs.Cancelled, error) {
	t.Helper()
	var c jobs.Cancelled
	err := pgx.BeginFunc(context.Background(), db.Pool, func(tx pgx.Tx) error {
		var err error
		c, err = deploys.Cancel(context.Background(), tx, dep, "cancelled by a test")
		return err
	})
	return c, err
}

func depStatus(db *pgtest.DB, dep int64) string {
	var s string
	db.Pool.QueryRow(context.Background(), "SELECT status FROM deployments WHERE id = $1", dep).Scan(&s)
	return s
}

// A queued deployment (no worker online) ends at once; cancelling it
// again is refused.
func TestCancelQueuedDeployment(t *testing.T) {
	t.Parallel()
	db := pgtest.New(t)
	ctx := context.Background()
	app, dep := appWithDeployment(t, db, "created")
	id, _ := jobs.Enqueue(ctx, db.Pool, jobs.New{Kind: wsproto.JobDeploy, AppID: app, DeploymentID: dep})
	c, err := cancelDep(t, db, dep)
	if err != nil || !c.Ended || c.Job.ID != id {
		t.Fatalf("cancel: %+v %v", c, err)
	}
	if j, _ := jobs.Get(ctx, db.Pool, id); j.State != "cancelled" {
		t.Fatalf("job %s", j.State)
	}
	if s := depStatus(db, dep); s != "cancelled" {
		t.Fatalf("deployment %s", s)
	}
	// A worker coming online later gets nothing.
	ids := seedWorkers(t, db.Pool, 1, "1 hour")
	f := newFleet(ids...)
	runScheduler(t, db.Pool, f, nil)
	time.Sleep(500 * time.Millisecond)
	if f.total.Load() != 0 {
		t.Fatalf("a cancelled job was sent %d times", f.total.Load())
	}
	if _, err := cancelDep(t, db, dep); !errors.Is(err, jobs.ErrNoActiveJob) {
		t.Fatalf("second cancel: %v", err)
	}
}

// A job a worker runs: the worker is told, its failure ends the job as
// cancelled, the deployment is cancelled, the app keeps its status and the
// job is not sent again.
func TestCancelRunningJob(t *testing.T) {
	t.Parallel()
	db := pgtest.New(t)
	ctx := context.Background()
	ids := seedWorkers(t, db.Pool, 1, "1 hour")
	app, dep := appWithDeployment(t, db, "running")
	f := newFleet(ids...)
	f.mode = func(int64, wsproto.JobAssign) string { return "hang" }
	runScheduler(t, db.Pool, f, nil)
	id, _ := jobs.Enqueue(ctx, db.Pool, jobs.New{Kind: wsproto.JobDeploy, AppID: app, DeploymentID: dep})
	eventually(t, "job running", 10*time.Second, func() bool { j, _ := jobs.Get(ctx, db.Pool, id); return j.State == "running" })
	c, err := cancelDep(t, db, dep)
	if err != nil || c.Ended {
		t.Fatalf("cancel: %+v %v", c, err)
	}
	eventually(t, "job cancelled", 10*time.Second, func() bool { j, _ := jobs.Get(ctx, db.Pool, id); return j.State == "cancelled" })
	if s := depStatus(db, dep); s != "cancelled" {
		t.Fatalf("deployment %s", s)
	}
	var appStatus string
	db.Pool.QueryRow(ctx, "SELECT status FROM apps WHERE id = $1", app).Scan(&appStatus)
	if appStatus != "running" {
		t.Fatalf("app %s after a cancelled redeploy", appStatus)
	}
	time.Sleep(700 * time.Millisecond) // more than one resend interval
	f.mu.Lock()
	sent, cancels := f.assigned[id], f.cancels[id]
	f.mu.Unlock()
	if sent != 1 || cancels != 1 {
		t.Fatalf("job.assign sent %d times, job.cancel %d times; want 1 and 1", sent, cancels)
	}
}

// The cancel is resent until the job ends; a worker that goes away with a
// cancel pending does not get the job requeued elsewhere.
func TestCancelOfAGoneWorkerIsNotRequeued(t *testing.T) {
	t.Parallel()
	db := pgtest.New(t)
	ctx := context.Background()
	ids := seedWorkers(t, db.Pool, 2, "1 hour")
	db.Pool.Exec(ctx, "UPDATE workers SET status = 'offline' WHERE id = $1", ids[1])
	app, dep := appWithDeployment(t, db, "created")
	f := newFleet(ids...)
	f.mode = func(int64, wsproto.JobAssign) string { return "hang" }
	f.muteCancel = true
	runScheduler(t, db.Pool, f, func(c *jobs.Config) { c.Heartbeat = time.Second })
	id, _ := jobs.Enqueue(ctx, db.Pool, jobs.New{Kind: wsproto.JobDeploy, AppID: app, DeploymentID: dep})
	eventually(t, "job running", 10*time.Second, func() bool { j, _ := jobs.Get(ctx, db.Pool, id); return j.State == "running" })
	if _, err := cancelDep(t, db, dep); err != nil {
		t.Fatal(err)
	}
	eventually(t, "cancel resent", 10*time.Second, func() bool { f.mu.Lock(); defer f.mu.Unlock(); return f.cancels[id] >= 2 })
	db.Pool.Exec(ctx, "UPDATE workers SET last_seen = now() - interval '1 minute' WHERE id = $1", ids[0])
	db.Pool.Exec(ctx, "UPDATE workers SET status = 'online' WHERE id = $1", ids[1])
	eventually(t, "job cancelled by recovery", 15*time.Second, func() bool { j, _ := jobs.Get(ctx, db.Pool, id); return j.State == "cancelled" })
	if s := depStatus(db, dep); s != "cancelled" {
		t.Fatalf("deployment %s", s)
	}
	f.mu.Lock()
	sent := f.assigned[id]
	f.mu.Unlock()
	if sent != 1 {
		t.Fatalf("job sent %d times: a cancelled job was requeued", sent)
	}
}

// CancelQueued, CancelQueuedSlots and GiveUp end pending jobs only (a
// job a worker holds is left to its result), with the given error.
func TestCancelQueuedAndGiveUp(t *testing.T) {
	t.Parallel()
	db := pgtest.New(t)
	ctx := context.Background()
	app, dep := appWithDeployment(t, db, "running")
	enqueue := func(kind string, dep int64, slot int) int64 {
		id, err := jobs.Enqueue(ctx, db.Pool, jobs.New{Kind: kind, AppID: app, DeploymentID: dep, Payload: map[string]any{"slot": slot}})
		if err != nil {
			t.Fatal(err)
		}
		return id
	}
	held, slot1, slot2 := enqueue(wsproto.JobDeploy, dep, 0), enqueue(wsproto.JobDeploy, dep, 1), enqueue(wsproto.JobDeploy, dep, 2)
	stop, restart := enqueue(wsproto.JobStop, 0, 0), enqueue(wsproto.JobRestart, 0, 2)
	if _, err := db.Pool.Exec(ctx, "UPDATE jobs SET state = 'running' WHERE id = $1", held); err != nil {
		t.Fatal(err)
	}
	var slots, queued int64
	var given jobs.Job
	var gaveUp, again bool
	err := pgx.BeginFunc(ctx, db.Pool, func(tx pgx.Tx) error {
		var err error
		if slots, err = jobs.CancelQueuedSlots(ctx, tx, app, []string{wsproto.JobDeploy, wsproto.JobRollback}, 2, "scaled down"); err != nil {
			return err
		}
		if queued, err = jobs.CancelQueued(ctx, tx, dep, "the roll stopped"); err != nil {
			return err
		}
		if given, gaveUp, err = jobs.GiveUp(ctx, tx, stop, "succeeded", "its worker is gone"); err != nil {
			return err
		}
		if _, again, err = jobs.GiveUp(ctx, tx, stop, "succeeded", "its worker is gone"); err != nil {
			return err
		}
		if _, _, err := jobs.GiveUp(ctx, tx, restart, "pending", "no"); err == nil {
			t.Error("GiveUp accepted ending a job as pending")
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if slots != 1 || queued != 1 || !gaveUp || again || given.ID != stop || given.Kind != wsproto.JobStop || given.AppID != app {
		t.Fatalf("cancelled %d slot jobs and %d queued, gave up %v (%+v), again %v; want 1, 1, true (the stop job), false",
			slots, queued, gaveUp, given, again)
	}
	for _, c := range []struct {
		id           int64
		state, error string
	}{
		{held, "running", ""},
		{slot1, "cancelled", "the roll stopped"},
		{slot2, "cancelled", "scaled down"},
		{stop, "succeeded", "its worker is gone"},
		{restart, "pending", ""},
	} {
		j, err := jobs.Get(ctx, db.Pool, c.id)
		if err != nil {
			t.Fatal(err)
		}
		if j.State != c.state || j.Error != c.error {
			t.Errorf("job %d (%s, slot %d): %s %q, want %s %q", j.ID, j.Kind, jobs.PayloadSlot(j.Payload), j.State, j.Error, c.state, c.error)
		}
	}
}
