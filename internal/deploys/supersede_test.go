package deploys

import (
	"context"
	"sync"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/wisehosting/wisehosting/internal/jobs"
	"github.com/wisehosting/wisehosting/internal/pgtest"
	"github.com/wisehosting/wisehosting/internal/wsproto"
)

func trigger(t *testing.T, db *pgtest.DB, app App, commit string) Created {
	t.Helper()
	var c Created
	err := pgx.BeginFunc(context.Background(), db.Pool, func(tx pgx.Tx) error {
		var err error
		c, err = Trigger(context.Background(), tx, app, Spec{Commit: commit, Trigger: "api"})
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// Fifty deploys of one app requested at once leave one queued job: the
// others end superseded (jobs cancelled, no failure), whatever order their
// transactions commit in.
func TestParallelDeploysCoalesce(t *testing.T) {
	t.Parallel()
	db := pgtest.New(t)
	app := seedApp(t, db, "burst")
	var wg sync.WaitGroup
	for i := 0; i < 50; i++ {
		wg.Add(1)
		go func() { defer wg.Done(); trigger(t, db, app, "") }()
	}
	wg.Wait()
	if n := count(t, db, "SELECT count(*) FROM jobs WHERE app_id = $1 AND state = 'pending'", app.ID); n != 1 {
		t.Fatalf("%d queued jobs, want 1", n)
	}
	if n := count(t, db, "SELECT count(*) FROM deployments WHERE app_id = $1 AND status = 'superseded'", app.ID); n != 49 {
		t.Fatalf("%d superseded deployments, want 49", n)
	}
	if n := count(t, db, "SELECT count(*) FROM deployments WHERE app_id = $1 AND status = 'failed'", app.ID); n != 0 {
		t.Fatalf("%d failed deployments", n)
	}
	// The one left is the newest.
	if n := count(t, db, `SELECT count(*) FROM jobs WHERE app_id = $1 AND state = 'pending'
		AND deployment_id = (SELECT max(id) FROM deployments WHERE app_id = $1)`, app.ID); n != 1 {
		t.Fatal("the queued job is not the newest deployment's")
	}
	// A rollback supersedes nothing (another source).
	db.Pool.Exec(t.Context(), "UPDATE deployments SET status = 'succeeded', image = 'localhost/wisehosting/burst:d1' WHERE id = (SELECT min(id) FROM deployments WHERE app_id = $1)", app.ID)
	var first int64
	db.Pool.QueryRow(t.Context(), "SELECT min(id) FROM deployments WHERE app_id = $1", app.ID).Scan(&first)
	err := pgx.BeginFunc(t.Context(), db.Pool, func(tx pgx.Tx) error {
		_, err := Trigger(t.Context(), tx, app, Spec{RollbackOf: first})
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	if n := count(t, db, "SELECT count(*) FROM jobs WHERE app_id = $1 AND state = 'pending'", app.ID); n != 2 {
		t.Fatalf("%d queued jobs after a rollback, want 2", n)
	}
}

// A deploy still building on a worker when a newer one arrives is asked to
// stop; its failed result ends it superseded, not failed. A deploy already
// starting its container is left to finish.
func TestBuildingDeploySuperseded(t *testing.T) {
	t.Parallel()
	db := pgtest.New(t)
	ctx := context.Background()
	app := seedApp(t, db, "mid")
	var worker int64
	db.Pool.QueryRow(ctx, `INSERT INTO workers (name, api_key_hash, status) VALUES ('w', '\x01', 'online') RETURNING id`).Scan(&worker)
	old := trigger(t, db, app, "")
	db.Pool.Exec(ctx, "UPDATE jobs SET state = 'running', worker_id = $2 WHERE id = $1", old.JobID, worker)
	db.Pool.Exec(ctx, "UPDATE deployments SET status = 'building' WHERE id = $1", old.DeploymentID)
	starting := seedApp(t, db, "starting")
	keep := trigger(t, db, starting, "")
	db.Pool.Exec(ctx, "UPDATE jobs SET state = 'running', worker_id = $2 WHERE id = $1", keep.JobID, worker)
	db.Pool.Exec(ctx, "UPDATE deployments SET status = 'deploying' WHERE id = $1", keep.DeploymentID)

	trigger(t, db, app, "")
	trigger(t, db, starting, "")
	if n := count(t, db, "SELECT count(*) FROM jobs WHERE id = $1 AND cancel_requested_at IS NOT NULL AND superseded_by IS NOT NULL", old.JobID); n != 1 {
		t.Fatal("the building deploy was not asked to stop")
	}
	if n := count(t, db, "SELECT count(*) FROM jobs WHERE id = $1 AND cancel_requested_at IS NULL", keep.JobID); n != 1 {
		t.Fatal("a deploy starting its container was cancelled")
	}
	// The worker reports the stop as a failure.
	err := pgx.BeginFunc(ctx, db.Pool, func(tx pgx.Tx) error {
		j, ok, err := jobs.Finish(ctx, tx, worker, old.JobID, false, "build cancelled: context canceled")
		if err != nil || !ok || j.State != "cancelled" {
			t.Fatalf("finish: %+v %v %v", j, ok, err)
		}
		return Lifecycle{}.ended(ctx, tx, jobs.End{Job: j, WorkerID: worker, Result: &wsproto.JobResult{JobID: j.ID, Error: "build cancelled: context canceled"}})
	})
	if err != nil {
		t.Fatal(err)
	}
	var status string
	db.Pool.QueryRow(ctx, "SELECT status FROM deployments WHERE id = $1", old.DeploymentID).Scan(&status)
	if status != "superseded" {
		t.Fatalf("deployment %s, want superseded", status)
	}
}

// The worker is the truth about containers: a running report moves the
// app's host port even when the state word is unchanged, and a running
// deployment newer than the newest recorded success is adopted.
func TestAppStateAdoptsNewerDeployment(t *testing.T) {
	t.Parallel()
	db := pgtest.New(t)
	ctx := context.Background()
	app := seedApp(t, db, "adopt")
	var worker, d1, d2 int64
	db.Pool.QueryRow(ctx, `INSERT INTO workers (name, api_key_hash, status) VALUES ('w', '\x02', 'online') RETURNING id`).Scan(&worker)
	db.Pool.QueryRow(ctx, `INSERT INTO deployments (app_id, status, image, worker_id) VALUES ($1, 'succeeded', 'img:1', $2) RETURNING id`, app.ID, worker).Scan(&d1)
	db.Pool.QueryRow(ctx, `INSERT INTO deployments (app_id, status, error) VALUES ($1, 'failed', 'timed out') RETURNING id`, app.ID).Scan(&d2)
	db.Pool.Exec(ctx, "UPDATE apps SET status = 'running', worker_id = $2, host_port = 21000 WHERE id = $1", app.ID, worker)
	apply := func(st wsproto.AppState) AppStateResult {
		t.Helper()
		var res AppStateResult
		err := pgx.BeginFunc(ctx, db.Pool, func(tx pgx.Tx) error {
			var err error
			res, err = ApplyAppState(ctx, tx, worker, st)
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
		return res
	}
	// Same deployment, same state word, new port: routing must follow.
	if res := apply(wsproto.AppState{AppID: app.ID, DeploymentID: d1, State: "running", HostPort: 21001, Image: "img:1"}); !res.PortChanged || res.StatusChanged || res.Adopted != 0 {
		t.Fatalf("port change: %+v", res)
	}
	// The newer deployment runs: adopted.
	res := apply(wsproto.AppState{AppID: app.ID, DeploymentID: d2, State: "running", HostPort: 21002, Image: "img:2"})
	if res.Adopted != d2 || !res.PortChanged {
		t.Fatalf("adoption: %+v", res)
	}
	var status, image string
	db.Pool.QueryRow(ctx, "SELECT status, image FROM deployments WHERE id = $1", d2).Scan(&status, &image)
	if status != "succeeded" || image != "img:2" {
		t.Fatalf("deployment %d: %s %s", d2, status, image)
	}
	ds, err := Desired(ctx, db.Pool, nil, worker)
	if err != nil || len(ds.Apps) != 1 || ds.Apps[0].DeploymentID != d2 || ds.Apps[0].HostPort != 21002 {
		t.Fatalf("desired after adoption: %+v %v", ds, err)
	}
	// An older deployment is never adopted back, and its reports move
	// neither the port nor the status: routing stays on the newer one.
	if res := apply(wsproto.AppState{AppID: app.ID, DeploymentID: d1, State: "running", HostPort: 21005, Image: "img:1"}); res.Adopted != 0 || res.PortChanged || res.StatusChanged {
		t.Fatalf("older deployment's report applied: %+v", res)
	}
	if res := apply(wsproto.AppState{AppID: app.ID, DeploymentID: d1, State: "crashed", HostPort: 21005}); res.PortChanged || res.StatusChanged {
		t.Fatalf("older deployment's crash applied: %+v", res)
	}
	var port int
	db.Pool.QueryRow(ctx, "SELECT status, host_port FROM apps WHERE id = $1", app.ID).Scan(&status, &port)
	if status != "running" || port != 21002 {
		t.Fatalf("app after an older deployment's reports: %s on %d, want running on 21002", status, port)
	}
}

// An instance beyond the app's first follows the same rule: a report about
// a deployment older than the one the slot runs (its retiring container)
// moves neither the instance's port nor its status, so routing stays on
// the newer container; reports about the slot's deployment still apply.
func TestInstanceStateIgnoresOlderDeployment(t *testing.T) {
	t.Parallel()
	db := pgtest.New(t)
	ctx := context.Background()
	app := seedApp(t, db, "inst")
	var worker, d1, d2 int64
	db.Pool.QueryRow(ctx, `INSERT INTO workers (name, api_key_hash, status) VALUES ('w', '\x03', 'online') RETURNING id`).Scan(&worker)
	db.Pool.QueryRow(ctx, `INSERT INTO deployments (app_id, status, image, worker_id) VALUES ($1, 'succeeded', 'img:1', $2) RETURNING id`, app.ID, worker).Scan(&d1)
	db.Pool.QueryRow(ctx, `INSERT INTO deployments (app_id, status, image, worker_id) VALUES ($1, 'succeeded', 'img:2', $2) RETURNING id`, app.ID, worker).Scan(&d2)
	db.Pool.Exec(ctx, "UPDATE apps SET status = 'running', worker_id = $2, host_port = 21000, replicas = 2 WHERE id = $1", app.ID, worker)
	if _, err := db.Pool.Exec(ctx, `INSERT INTO app_instances (app_id, slot, worker_id, deployment_id, host_port, status)
		VALUES ($1, 1, $2, $3, 22002, 'running')`, app.ID, worker, d2); err != nil {
		t.Fatal(err)
	}
	apply := func(st wsproto.AppState) AppStateResult {
		t.Helper()
		var res AppStateResult
		err := pgx.BeginFunc(ctx, db.Pool, func(tx pgx.Tx) error {
			var err error
			res, err = ApplyAppState(ctx, tx, worker, st)
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
		return res
	}
	// The slot's previous container, retiring, still reports.
	if res := apply(wsproto.AppState{AppID: app.ID, Slot: 1, DeploymentID: d1, State: "running", HostPort: 22005, Image: "img:1"}); res.PortChanged || res.StatusChanged {
		t.Fatalf("older deployment's report applied to the instance: %+v", res)
	}
	if res := apply(wsproto.AppState{AppID: app.ID, Slot: 1, DeploymentID: d1, State: "crashed", HostPort: 22005}); res.PortChanged || res.StatusChanged {
		t.Fatalf("older deployment's crash applied to the instance: %+v", res)
	}
	var status string
	var port int
	var dep int64
	db.Pool.QueryRow(ctx, "SELECT status, host_port, deployment_id FROM app_instances WHERE app_id = $1 AND slot = 1", app.ID).Scan(&status, &port, &dep)
	if status != "running" || port != 22002 || dep != d2 {
		t.Fatalf("instance after an older deployment's reports: %s on %d at %d, want running on 22002 at %d", status, port, dep, d2)
	}
	ds, err := Desired(ctx, db.Pool, nil, worker)
	if err != nil || len(ds.Apps) != 2 || ds.Apps[1].Slot != 1 || ds.Apps[1].DeploymentID != d2 || ds.Apps[1].HostPort != 22002 {
		t.Fatalf("desired after an older deployment's reports: %+v %v", ds, err)
	}
	// The slot's own deployment still moves it.
	if res := apply(wsproto.AppState{AppID: app.ID, Slot: 1, DeploymentID: d2, State: "running", HostPort: 22003, Image: "img:2"}); !res.PortChanged || res.StatusChanged {
		t.Fatalf("the slot's deployment's new port: %+v", res)
	}
	if res := apply(wsproto.AppState{AppID: app.ID, Slot: 1, DeploymentID: d2, State: "crashed", HostPort: 22003}); !res.StatusChanged {
		t.Fatalf("the slot's deployment's crash: %+v", res)
	}
}

// A running report about a newer deployment on an instance beyond the
// first is adopted whatever status the control plane recorded for it (a
// deployment failed by a job given up on while the worker could not be
// heard went live all the same), but not a deployment never built (no
// image: the report cannot be about it), nor while a job of the slot is in
// progress (it may be taking the slot back after a failed roll: its result
// records what the slot runs).
func TestInstanceAdoptsWhatItsWorkerRuns(t *testing.T) {
	t.Parallel()
	db := pgtest.New(t)
	ctx := context.Background()
	app := seedApp(t, db, "adopt-inst")
	var worker, d1, failed, unbuilt, later int64
	db.Pool.QueryRow(ctx, `INSERT INTO workers (name, api_key_hash, status) VALUES ('w', '\x04', 'online') RETURNING id`).Scan(&worker)
	db.Pool.QueryRow(ctx, `INSERT INTO deployments (app_id, status, image, worker_id) VALUES ($1, 'succeeded', 'img:1', $2) RETURNING id`, app.ID, worker).Scan(&d1)
	db.Pool.QueryRow(ctx, `INSERT INTO deployments (app_id, status, image, worker_id) VALUES ($1, 'building', '', $2) RETURNING id`, app.ID, worker).Scan(&unbuilt)
	db.Pool.QueryRow(ctx, `INSERT INTO deployments (app_id, status, image, worker_id, error) VALUES ($1, 'failed', 'img:3', $2, 'worker w went offline') RETURNING id`, app.ID, worker).Scan(&failed)
	db.Pool.QueryRow(ctx, `INSERT INTO deployments (app_id, status, image, worker_id) VALUES ($1, 'succeeded', 'img:4', $2) RETURNING id`, app.ID, worker).Scan(&later)
	db.Pool.Exec(ctx, "UPDATE apps SET status = 'running', worker_id = $2, host_port = 21000, replicas = 2 WHERE id = $1", app.ID, worker)
	if _, err := db.Pool.Exec(ctx, `INSERT INTO app_instances (app_id, slot, worker_id, deployment_id, host_port, status)
		VALUES ($1, 1, $2, $3, 22002, 'running')`, app.ID, worker, d1); err != nil {
		t.Fatal(err)
	}
	report := func(dep int64, port int, image string) AppStateResult {
		t.Helper()
		res, err := ReportAppState(ctx, db.Pool, worker, wsproto.AppState{AppID: app.ID, Slot: 1, DeploymentID: dep, State: "running", HostPort: port, Image: image})
		if err != nil {
			t.Fatal(err)
		}
		return res
	}
	instanceDep := func() int64 {
		var dep int64
		db.Pool.QueryRow(ctx, "SELECT deployment_id FROM app_instances WHERE app_id = $1 AND slot = 1", app.ID).Scan(&dep)
		return dep
	}
	// Never built: not adopted (the container on its port is still
	// recorded: routing follows the worker).
	if res := report(unbuilt, 22003, "img:2"); res.InstanceAdopted != 0 || instanceDep() != d1 || !res.PortChanged {
		t.Fatalf("a deployment without an image adopted: %+v, instance at %d", res, instanceDep())
	}
	// Failed in the control plane's records, running on the worker:
	// adopted, and the log says so.
	if res := report(failed, 22004, "img:3"); res.InstanceAdopted != failed || instanceDep() != failed {
		t.Fatalf("a failed deployment the worker runs not adopted: %+v, instance at %d", res, instanceDep())
	}
	var lines int
	db.Pool.QueryRow(ctx, "SELECT count(*) FROM deployment_logs WHERE deployment_id = $1 AND line LIKE 'instance 2 runs this deployment%'", failed).Scan(&lines)
	if lines != 1 {
		t.Fatalf("%d adoption lines in the deployment's log", lines)
	}
	ds, err := Desired(ctx, db.Pool, nil, worker)
	if err != nil || len(ds.Apps) != 2 || ds.Apps[1].DeploymentID != failed || ds.Apps[1].HostPort != 22004 {
		t.Fatalf("desired after the adoption: %+v %v", ds, err)
	}
	// A job of the slot in progress decides: not adopted meanwhile.
	if _, err := jobs.Enqueue(ctx, db.Pool, jobs.New{Kind: wsproto.JobRollback, AppID: app.ID, DeploymentID: d1,
		Payload: map[string]any{"slot": 1, "restore": true}}); err != nil {
		t.Fatal(err)
	}
	if res := report(later, 22005, "img:4"); res.InstanceAdopted != 0 || instanceDep() != failed {
		t.Fatalf("adopted while the slot's job is in progress: %+v, instance at %d", res, instanceDep())
	}
	// A job of another slot does not hold the adoption back.
	db.Pool.Exec(ctx, "UPDATE jobs SET payload = payload || '{\"slot\": 0}'")
	if res := report(later, 22005, "img:4"); res.InstanceAdopted != later || instanceDep() != later {
		t.Fatalf("a succeeded deployment the worker runs not adopted: %+v, instance at %d", res, instanceDep())
	}
	var events int
	db.Pool.QueryRow(ctx, "SELECT count(*) FROM event_outbox WHERE kind = 'deployment.finished'").Scan(&events)
	if events != 0 {
		t.Fatalf("%d deployment.finished events for instance adoptions (the deployment's status is its first instance's)", events)
	}
}
