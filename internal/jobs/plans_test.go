package jobs_test

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/wisehosting/wisehosting/internal/deploys"
	"github.com/wisehosting/wisehosting/internal/jobs"
	"github.com/wisehosting/wisehosting/internal/pgtest"
	"github.com/wisehosting/wisehosting/internal/plans"
	"github.com/wisehosting/wisehosting/internal/workers"
	"github.com/wisehosting/wisehosting/internal/wsproto"
)

func testPlans(t *testing.T) *plans.Registry {
	t.Helper()
	reg, err := plans.NewRegistry(map[string]plans.Plan{
		"free": {CPUMillis: 500, MemoryMB: 256, DiskMB: 1024, BandwidthKbit: 10000, Apps: 5},
		"big":  {},
	}, "free")
	if err != nil {
		t.Fatal(err)
	}
	return reg
}

// deployJob creates an app with the given limits on a team of plan, a
// queued deployment and its deploy job carrying the same limits (as
// deploys.Trigger does).
func deployJob(t *testing.T, db *pgtest.DB, plan, slug string, cpu, mem, disk, bw int) (app, dep, job int64) {
	t.Helper()
	ctx := context.Background()
	var team int64
	if err := db.Pool.QueryRow(ctx, "INSERT INTO teams (name, slug, plan) VALUES ($1, $1, $2) RETURNING id", slug, plan).Scan(&team); err != nil {
		t.Fatal(err)
	}
	if err := db.Pool.QueryRow(ctx, `INSERT INTO apps (team_id, slug, name, cpu_millis, memory_mb, disk_mb, bandwidth_kbit)
		VALUES ($1, $2, $2, $3, $4, $5, $6) RETURNING id`, team, slug, cpu, mem, disk, bw).Scan(&app); err != nil {
		t.Fatal(err)
	}
	db.Pool.QueryRow(ctx, "INSERT INTO deployments (app_id) VALUES ($1) RETURNING id", app).Scan(&dep)
	job, err := jobs.Enqueue(ctx, db.Pool, jobs.New{Kind: wsproto.JobDeploy, AppID: app, DeploymentID: dep, CPUMillis: cpu, MemoryMB: mem,
		Payload: wsproto.DeployPayload{Slug: slug, CPUMillis: cpu, MemoryMB: mem, DiskMB: disk, BandwidthKbit: bw}})
	if err != nil {
		t.Fatal(err)
	}
	return app, dep, job
}

func assign(t *testing.T, db *pgtest.DB, reg *plans.Registry) []jobs.Placement {
	t.Helper()
	placed, err := jobs.Assign(context.Background(), db.Pool, jobs.AssignOptions{Limit: 10, Heartbeat: time.Minute, AckTimeout: time.Minute, Kinds: deploys.Lifecycle{Plans: reg}.Kinds()})
	if err != nil {
		t.Fatal(err)
	}
	return placed
}

// The scheduler reserves by plan limits: a deploy asking for more than
// its team's plan allows (the plan was lowered after it was enqueued), or
// for no limit where the plan has one, is placed with the plan's limits,
// in its reservation, in the payload the worker enforces and in the app's
// row, and the deployment's log says so.
func TestPlacementClampsToThePlan(t *testing.T) {
	t.Parallel()
	db := pgtest.New(t)
	ctx := context.Background()
	reg := testPlans(t)
	// One worker with room for 1000m: two apps asking 2000m each fit only
	// once they have the free plan's 500m.
	w := seedWorkers(t, db.Pool, 1, "1 hour")[0]
	db.Pool.Exec(ctx, "UPDATE workers SET cpu_millis = 1000, memory_mb = 1024")
	app, dep, job := deployJob(t, db, "free", "big-ask", 2000, 2048, 0, 0)
	_, _, job2 := deployJob(t, db, "free", "big-ask-2", 2000, 300, 512, 20000)

	// Without plans nothing fits.
	if placed, err := jobs.AssignBatch(ctx, db.Pool, 10, time.Minute, time.Minute); err != nil || len(placed) != 0 {
		t.Fatalf("placed without plans: %+v %v", placed, err)
	}
	placed := assign(t, db, reg)
	if len(placed) != 2 || placed[0].WorkerID != w || placed[1].WorkerID != w {
		t.Fatalf("placed %+v", placed)
	}
	for _, id := range []int64{job, job2} {
		j, _ := jobs.Get(ctx, db.Pool, id)
		var p wsproto.DeployPayload
		json.Unmarshal(j.Payload, &p)
		if j.CPUMillis != 500 || j.MemoryMB != 256 || p.CPUMillis != 500 || p.MemoryMB != 256 || p.DiskMB > 1024 || p.BandwidthKbit != 10000 {
			t.Fatalf("job %d: reserved %d/%d, payload %+v", id, j.CPUMillis, j.MemoryMB, p)
		}
		if j.State != "assigned" {
			t.Fatalf("job %d is %s", id, j.State)
		}
	}
	var cpu, mem, disk, bw int
	db.Pool.QueryRow(ctx, "SELECT cpu_millis, memory_mb, disk_mb, bandwidth_kbit FROM apps WHERE id = $1", app).Scan(&cpu, &mem, &disk, &bw)
	if cpu != 500 || mem != 256 || disk != 1024 || bw != 10000 {
		t.Fatalf("app row %d/%d/%d/%d", cpu, mem, disk, bw)
	}
	var line string
	db.Pool.QueryRow(ctx, "SELECT line FROM deployment_logs WHERE deployment_id = $1", dep).Scan(&line)
	if !strings.Contains(line, `plan "free"`) || !strings.Contains(line, "memory_mb 2048 → 256") || !strings.Contains(line, "disk_mb unlimited → 1024") {
		t.Fatalf("deployment log %q", line)
	}
}

// Within the plan (or on a plan without limits) nothing changes.
func TestPlacementWithinThePlanUnchanged(t *testing.T) {
	t.Parallel()
	db := pgtest.New(t)
	ctx := context.Background()
	reg := testPlans(t)
	seedWorkers(t, db.Pool, 1, "1 hour")
	_, dep, job := deployJob(t, db, "free", "small", 250, 128, 512, 5000)
	_, _, job2 := deployJob(t, db, "big", "huge", 16000, 32768, 0, 0)
	if placed := assign(t, db, reg); len(placed) != 2 {
		t.Fatalf("placed %+v", placed)
	}
	j, _ := jobs.Get(ctx, db.Pool, job)
	j2, _ := jobs.Get(ctx, db.Pool, job2)
	if j.CPUMillis != 250 || j.MemoryMB != 128 || j2.CPUMillis != 16000 || j2.MemoryMB != 32768 {
		t.Fatalf("reservations changed: %+v %+v", j, j2)
	}
	var n int
	db.Pool.QueryRow(ctx, "SELECT count(*) FROM deployment_logs WHERE deployment_id = $1", dep).Scan(&n)
	if n != 0 {
		t.Fatalf("%d log lines for a deploy within its plan", n)
	}
}

// A team whose plan is not configured gets no placement: the job and the
// deployment fail with the plan named.
func TestPlacementRefusedOnUnknownPlan(t *testing.T) {
	t.Parallel()
	db := pgtest.New(t)
	ctx := context.Background()
	seedWorkers(t, db.Pool, 1, "1 hour")
	_, dep, job := deployJob(t, db, "gold", "goldie", 100, 100, 0, 0)
	if placed := assign(t, db, testPlans(t)); len(placed) != 0 {
		t.Fatalf("placed %+v", placed)
	}
	j, _ := jobs.Get(ctx, db.Pool, job)
	var status, derr string
	db.Pool.QueryRow(ctx, "SELECT status, error FROM deployments WHERE id = $1", dep).Scan(&status, &derr)
	if j.State != "failed" || !strings.Contains(j.Error, `plan "gold", which is not configured`) || status != "failed" || !strings.Contains(derr, "gold") {
		t.Fatalf("job %s %q, deployment %s %q", j.State, j.Error, status, derr)
	}
}

// A draining worker gets no new deploy, even of an app it runs, but still
// gets the stop and delete jobs of its apps; it stays draining when it
// reconnects.
func TestDrainingWorker(t *testing.T) {
	t.Parallel()
	db := pgtest.New(t)
	ctx := context.Background()
	ids := seedWorkers(t, db.Pool, 2, "1 hour")
	drained, other := ids[0], ids[1]
	var team, app int64
	db.Pool.QueryRow(ctx, "INSERT INTO teams (name, slug) VALUES ('t', 't') RETURNING id").Scan(&team)
	db.Pool.QueryRow(ctx, "INSERT INTO apps (team_id, slug, name, status, worker_id) VALUES ($1, 'a', 'a', 'running', $2) RETURNING id", team, drained).Scan(&app)
	var name string
	db.Pool.QueryRow(ctx, "SELECT name FROM workers WHERE id = $1", drained).Scan(&name)
	if w, err := workers.SetDraining(ctx, db.Pool, name, true); err != nil || w.Status != "draining" {
		t.Fatalf("drain: %+v %v", w, err)
	}
	if err := workers.Connected(ctx, db.Pool, drained, nil); err != nil {
		t.Fatal(err)
	}
	if err := workers.Connected(ctx, db.Pool, drained, &wsproto.Hello{CPUMillis: 100000, MemoryMB: 100000}); err != nil {
		t.Fatal(err)
	}
	deploy, _ := jobs.Enqueue(ctx, db.Pool, jobs.New{Kind: wsproto.JobDeploy, AppID: app, Payload: wsproto.DeployPayload{Slug: "a"}})
	stop, _ := jobs.Enqueue(ctx, db.Pool, jobs.New{Kind: wsproto.JobStop, AppID: app})
	placed := assign(t, db, testPlans(t))
	where := map[int64]int64{}
	for _, p := range placed {
		where[p.JobID] = p.WorkerID
	}
	if len(placed) != 2 || where[deploy] != other || where[stop] != drained {
		t.Fatalf("placed %+v; want deploy %d on %d, stop %d on %d", placed, deploy, other, stop, drained)
	}
	if w, _ := workers.Get(ctx, db.Pool, drained); w.Status != "draining" {
		t.Fatalf("after reconnecting the worker is %s", w.Status)
	}
	// Resumed, it takes deploys again (once the app's stop job there has
	// ended: one job per app at a time on a worker).
	workers.SetDraining(ctx, db.Pool, name, false)
	db.Pool.Exec(ctx, "UPDATE jobs SET state = 'succeeded', finished_at = now() WHERE id = $1", stop)
	db.Pool.Exec(ctx, "UPDATE workers SET status = 'offline' WHERE id = $1", other)
	jobs.Enqueue(ctx, db.Pool, jobs.New{Kind: wsproto.JobDeploy, AppID: app, Payload: wsproto.DeployPayload{Slug: "a"}})
	if placed := assign(t, db, nil); len(placed) != 1 || placed[0].WorkerID != drained {
		t.Fatalf("after resume: %+v", placed)
	}
}

// A draining worker is never marked offline, but once it stops sending
// heartbeats its jobs are recovered like an offline worker's, not left
// until their deadline.
func TestSilentDrainingWorkerJobsRecovered(t *testing.T) {
	t.Parallel()
	db := pgtest.New(t)
	ctx := context.Background()
	ids := seedWorkers(t, db.Pool, 1, "1 hour")
	var team, app int64
	db.Pool.QueryRow(ctx, "INSERT INTO teams (name, slug) VALUES ('t', 't') RETURNING id").Scan(&team)
	db.Pool.QueryRow(ctx, "INSERT INTO apps (team_id, slug, name, status, worker_id) VALUES ($1, 'a', 'a', 'running', $2) RETURNING id", team, ids[0]).Scan(&app)
	stop, _ := jobs.Enqueue(ctx, db.Pool, jobs.New{Kind: wsproto.JobStop, AppID: app})
	if placed := assign(t, db, nil); len(placed) != 1 {
		t.Fatalf("placed %+v", placed)
	}
	db.Pool.Exec(ctx, "UPDATE jobs SET state = 'running', deadline_at = now() + interval '1 hour' WHERE id = $1", stop)
	db.Pool.Exec(ctx, "UPDATE workers SET status = 'draining' WHERE id = $1", ids[0])
	recover := func() []jobs.Recovered {
		var out []jobs.Recovered
		pgx.BeginFunc(ctx, db.Pool, func(tx pgx.Tx) error {
			var err error
			out, err = jobs.RecoverJobs(ctx, tx, 30*time.Second)
			return err
		})
		return out
	}
	if rc := recover(); len(rc) != 0 {
		t.Fatalf("a live draining worker's job was recovered: %+v", rc)
	}
	db.Pool.Exec(ctx, "UPDATE workers SET last_seen = now() - interval '1 minute' WHERE id = $1", ids[0])
	rc := recover()
	if len(rc) != 1 || rc[0].JobID != stop || rc[0].State != "pending" {
		t.Fatalf("recovered %+v", rc)
	}
	if w, _ := workers.Get(ctx, db.Pool, ids[0]); w.Status != "draining" {
		t.Fatalf("worker is %s", w.Status)
	}
}
