package jobs_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/wisehosting/wisehosting/internal/deploys"
	"github.com/wisehosting/wisehosting/internal/errs"
	"github.com/wisehosting/wisehosting/internal/jobs"
	"github.com/wisehosting/wisehosting/internal/pgtest"
	"github.com/wisehosting/wisehosting/internal/wsproto"
)

// Deleting an app that runs: its queued deploy is cancelled, it and its
// preview leave routing and refuse deploys, each gets a delete job on its
// worker, and the rows go when those jobs succeed. An app that never ran
// goes at once.
func TestDeleteApp(t *testing.T) {
	t.Parallel()
	db := pgtest.New(t)
	ctx := context.Background()
	ids := seedWorkers(t, db.Pool, 1, "1 hour")
	var team, app, preview, fresh int64
	db.Pool.QueryRow(ctx, "INSERT INTO teams (name, slug) VALUES ('t', 't') RETURNING id").Scan(&team)
	db.Pool.QueryRow(ctx, "INSERT INTO apps (team_id, slug, name, status, worker_id, host_port) VALUES ($1, 'shop', 'shop', 'running', $2, 30001) RETURNING id", team, ids[0]).Scan(&app)
	db.Pool.QueryRow(ctx, `INSERT INTO apps (team_id, slug, name, status, worker_id, host_port, preview_of, pr_number)
		VALUES ($1, 'shop-pr-3', 'shop pr', 'running', $2, 30002, $3, 3) RETURNING id`, team, ids[0], app).Scan(&preview)
	db.Pool.QueryRow(ctx, "INSERT INTO apps (team_id, slug, name) VALUES ($1, 'fresh', 'fresh') RETURNING id", team).Scan(&fresh)

	a, _ := deploys.LoadApp(ctx, db.Pool, app)
	var queued deploys.Created
	pgx.BeginFunc(ctx, db.Pool, func(tx pgx.Tx) error {
		var err error
		queued, err = deploys.Trigger(ctx, tx, a, deploys.Spec{})
		return err
	})
	del := func(id int64) (deploys.Deleted, error) {
		var d deploys.Deleted
		err := pgx.BeginFunc(ctx, db.Pool, func(tx pgx.Tx) error {
			a, err := deploys.LoadApp(ctx, tx, id)
			if err != nil {
				return err
			}
			d, err = deploys.Delete(ctx, tx, a, "test")
			return err
		})
		return d, err
	}
	d, err := del(app)
	if err != nil || d.Removed || len(d.JobIDs) != 2 {
		t.Fatalf("delete: %+v %v", d, err)
	}
	for _, id := range d.JobIDs {
		if j, _ := jobs.Get(ctx, db.Pool, id); j.Kind != wsproto.JobDelete || j.State != "pending" {
			t.Fatalf("job %d: %s %s", id, j.Kind, j.State)
		}
	}
	if j, _ := jobs.Get(ctx, db.Pool, queued.JobID); j.State != "cancelled" {
		t.Fatalf("the queued deploy is %s", j.State)
	}
	var running int
	db.Pool.QueryRow(ctx, "SELECT count(*) FROM apps WHERE status = 'running'").Scan(&running)
	if running != 0 {
		t.Fatalf("%d apps still routed", running)
	}
	a, _ = deploys.LoadApp(ctx, db.Pool, app)
	err = pgx.BeginFunc(ctx, db.Pool, func(tx pgx.Tx) error { _, err := deploys.Trigger(ctx, tx, a, deploys.Spec{}); return err })
	if !errs.Is(err, errs.Forbidden) {
		t.Fatalf("deploy of an app being deleted: %v", err)
	}
	// Deleting again while the jobs wait adds none.
	if d, err := del(app); err != nil || len(d.JobIDs) != 0 {
		t.Fatalf("second delete: %+v %v", d, err)
	}

	f := newFleet(ids...)
	runScheduler(t, db.Pool, f, nil)
	eventually(t, "both rows gone", 15*time.Second, func() bool {
		var n int
		db.Pool.QueryRow(ctx, "SELECT count(*) FROM apps WHERE id IN ($1, $2)", app, preview).Scan(&n)
		return n == 0
	})
	f.mu.Lock()
	for _, id := range d.JobIDs {
		if f.assigned[id] != 1 {
			t.Errorf("delete job %d sent %d times", id, f.assigned[id])
		}
	}
	f.mu.Unlock()

	d, err = del(fresh)
	if err != nil || !d.Removed {
		t.Fatalf("delete of an app that never ran: %+v %v", d, err)
	}
	if _, err := deploys.LoadApp(ctx, db.Pool, fresh); !errors.Is(err, deploys.ErrNotFound) {
		t.Fatalf("fresh app still there: %v", err)
	}
}

// A delete job of an app that runs on no worker (its row's worker is
// gone) ends at placement, and the app's row goes with it.
func TestDeleteAppThatRunsNowhere(t *testing.T) {
	t.Parallel()
	db := pgtest.New(t)
	ctx := context.Background()
	seedWorkers(t, db.Pool, 1, "1 hour")
	var team, app int64
	db.Pool.QueryRow(ctx, "INSERT INTO teams (name, slug) VALUES ('t', 't') RETURNING id").Scan(&team)
	db.Pool.QueryRow(ctx, "INSERT INTO apps (team_id, slug, name, status, deleting_at) VALUES ($1, 'shop', 'shop', 'stopped', now()) RETURNING id", team).Scan(&app)
	if _, err := jobs.Enqueue(ctx, db.Pool, jobs.New{Kind: wsproto.JobDelete, AppID: app, Payload: wsproto.DeployPayload{Slug: "shop"}}); err != nil {
		t.Fatal(err)
	}
	if _, err := jobs.Assign(ctx, db.Pool, jobs.AssignOptions{Limit: 10, Heartbeat: time.Minute, AckTimeout: time.Minute,
		Kinds: deploys.Lifecycle{}.Kinds()}); err != nil {
		t.Fatal(err)
	}
	var n int
	db.Pool.QueryRow(ctx, "SELECT count(*) FROM apps WHERE id = $1", app).Scan(&n)
	if n != 0 {
		t.Fatal("the app's row stays after its delete job ended with no worker to run it")
	}
}
