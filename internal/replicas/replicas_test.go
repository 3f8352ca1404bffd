package replicas_test

import (
	"context"
	"encoding/json"
	"fmt"
	"regexp"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/wisehosting/wisehosting/internal/deploys"
	"github.com/wisehosting/wisehosting/internal/errs"
	"github.com/wisehosting/wisehosting/internal/jobs"
	"github.com/wisehosting/wisehosting/internal/network"
	"github.com/wisehosting/wisehosting/internal/pgtest"
	"github.com/wisehosting/wisehosting/internal/replicas"
	"github.com/wisehosting/wisehosting/internal/volumes"
	"github.com/wisehosting/wisehosting/internal/workerbus"
	"github.com/wisehosting/wisehosting/internal/wsproto"
)

// fleet answers job assignments the way agents do: ack, then a result
// with a fresh host port; fail decides which jobs fail their health check.
type fleet struct {
	bus  *workerbus.Bus
	ids  []int64
	port atomic.Int64
	mu   sync.Mutex
	fail func(workerID int64, p wsproto.DeployPayload, depID int64) bool
	seen map[int64]bool
	runs []run
}

type run struct {
	kind               string
	worker, deployment int64
	p                  wsproto.DeployPayload
}

func (f *fleet) Connected(id int64) bool {
	for _, x := range f.ids {
		if x == id {
			return true
		}
	}
	return false
}

func (f *fleet) Send(workerID int64, typ string, raw json.RawMessage) error {
	if typ != wsproto.TypeJobAssign {
		return nil
	}
	var ja wsproto.JobAssign
	json.Unmarshal(raw, &ja)
	var p wsproto.DeployPayload
	json.Unmarshal(ja.Payload, &p)
	f.mu.Lock()
	if f.seen[ja.JobID] {
		f.mu.Unlock()
		return nil
	}
	f.seen[ja.JobID] = true
	f.runs = append(f.runs, run{ja.Kind, workerID, ja.DeploymentID, p})
	fail := f.fail != nil && f.fail(workerID, p, ja.DeploymentID)
	f.mu.Unlock()
	go func() {
		ctx := context.Background()
		ack, _ := json.Marshal(wsproto.JobAck{JobID: ja.JobID})
		f.bus.Dispatch(ctx, workerID, wsproto.TypeJobAck, ack)
		r := wsproto.JobResult{JobID: ja.JobID, OK: !fail}
		if fail {
			r.Error = "health check failed"
		} else {
			r.Output, _ = json.Marshal(map[string]any{"image": fmt.Sprintf("localhost/wisehosting/app:d%d", ja.DeploymentID),
				"host_port": 20000 + f.port.Add(1), "port": 8080})
		}
		res, _ := json.Marshal(r)
		f.bus.Dispatch(ctx, workerID, wsproto.TypeJobResult, res)
	}()
	return nil
}

type bundle struct {
	pool    *pgxpool.Pool
	fleet   *fleet
	workers []int64
	app     deploys.App
	sched   *jobs.Scheduler
}

func setup(t *testing.T) *bundle {
	t.Helper()
	db := pgtest.New(t)
	ctx := context.Background()
	b := &bundle{pool: db.Pool}
	for i, zone := range []string{"za.test", "zb.test"} {
		var id int64
		if err := db.Pool.QueryRow(ctx, `INSERT INTO workers (name, api_key_hash, status, zone, wg_ip, cpu_millis, memory_mb, max_jobs, last_seen)
			VALUES ($1, sha256(convert_to($1, 'UTF8')), 'online', $2, $3, 4000, 4096, 8, now() + interval '1 hour') RETURNING id`,
			fmt.Sprintf("w%d", i), zone, fmt.Sprintf("127.0.0.%d", i+1)).Scan(&id); err != nil {
			t.Fatal(err)
		}
		b.workers = append(b.workers, id)
	}
	var team, app int64
	db.Pool.QueryRow(ctx, "INSERT INTO teams (name, slug) VALUES ('t', 't') RETURNING id").Scan(&team)
	if err := db.Pool.QueryRow(ctx, `INSERT INTO apps (team_id, slug, name, git_repo, port, cpu_millis, memory_mb, replicas)
		VALUES ($1, 'app', 'App', 'https://git.example/app.git', 8080, 100, 64, 3) RETURNING id`, team).Scan(&app); err != nil {
		t.Fatal(err)
	}
	var err error
	if b.app, err = deploys.LoadApp(ctx, db.Pool, app); err != nil {
		t.Fatal(err)
	}
	b.fleet = &fleet{bus: new(workerbus.Bus), ids: b.workers, seen: map[int64]bool{}}
	b.fleet.bus.SetSender(b.fleet)
	b.sched = jobs.NewScheduler(jobs.Config{Pool: db.Pool, Workers: b.fleet.bus, PollInterval: 100 * time.Millisecond,
		Resend: 300 * time.Millisecond, RecoverInterval: 200 * time.Millisecond, Heartbeat: 30 * time.Second,
		Kinds: deploys.Lifecycle{Instances: replicas.OnResult}.Kinds(),
		AfterRecover: func(ctx context.Context, tx pgx.Tx) error {
			_, err := replicas.Recover(ctx, tx, 30*time.Second, time.Minute)
			return err
		},
	})
	rctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { b.sched.Run(rctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
	for _, id := range b.workers {
		b.fleet.bus.NotifyConnection(id, true)
	}
	return b
}

func (b *bundle) deploy(t *testing.T) int64 {
	t.Helper()
	var c deploys.Created
	err := pgx.BeginFunc(context.Background(), b.pool, func(tx pgx.Tx) error {
		var err error
		c, err = deploys.Trigger(context.Background(), tx, b.app, deploys.Spec{Trigger: "manual"})
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return c.DeploymentID
}

func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// allAt waits until the app has n instances, all at dep and running.
func (b *bundle) allAt(t *testing.T, n int, dep int64) []replicas.Instance {
	t.Helper()
	var ins []replicas.Instance
	eventually(t, fmt.Sprintf("%d instances at deployment %d", n, dep), func() bool {
		var err error
		if ins, err = replicas.List(context.Background(), b.pool, b.app.ID); err != nil {
			t.Fatal(err)
		}
		if len(ins) != n {
			return false
		}
		for _, in := range ins {
			if in.DeploymentID != dep || in.Status != "running" {
				return false
			}
		}
		return true
	})
	return ins
}

func perWorker(ins []replicas.Instance) map[int64]int {
	out := map[int64]int{}
	for _, in := range ins {
		out[in.WorkerID]++
	}
	return out
}

// A deployment of a 3-instance app builds once and rolls over the slots
// one at a time, spread 2/1 over two workers in two zones; routing lists
// every instance. A failing instance stops the next roll: the deployment
// fails and the slots it moved go back to the previous deployment. A
// worker that goes offline leaves routing and its instances move.
func TestRollSpreadFailAndReplace(t *testing.T) {
	b := setup(t)
	ctx := context.Background()
	d1 := b.deploy(t)
	ins := b.allAt(t, 3, d1)
	pw := perWorker(ins)
	if len(pw) != 2 || pw[b.workers[0]]+pw[b.workers[1]] != 3 {
		t.Fatalf("instances not spread over both workers: %+v", ins)
	}
	b.fleet.mu.Lock()
	for i, r := range b.fleet.runs {
		if r.p.Slot != i {
			t.Errorf("run %d is slot %d: the roll goes one slot at a time, in order", i, r.p.Slot)
		}
		if i > 0 && r.p.Image == "" {
			t.Errorf("slot %d was sent without the image: it would build again", r.p.Slot)
		}
	}
	b.fleet.mu.Unlock()

	snap, err := network.Load(ctx, b.pool, "apps.test")
	if err != nil {
		t.Fatal(err)
	}
	if len(snap.Apps) != 1 || len(snap.Apps[0].Instances) != 3 {
		t.Fatalf("routing: %+v", snap.Apps)
	}
	table := network.BuildTable(snap)
	if n := len(table.Hosts["app.apps.test"].Paths[0].Upstreams); n != 3 {
		t.Fatalf("proxy table has %d upstreams, want 3", n)
	}
	doc, _ := network.Traefik{}.Render(snap)
	var tf struct {
		HTTP struct {
			Services map[string]struct {
				LoadBalancer struct {
					Servers []struct{ URL string } `json:"servers"`
				} `json:"loadBalancer"`
			} `json:"services"`
		} `json:"http"`
	}
	json.Unmarshal(doc, &tf)
	if n := len(tf.HTTP.Services["app-app"].LoadBalancer.Servers); n != 3 {
		t.Fatalf("traefik service has %d servers, want 3: %s", n, doc)
	}
	for _, w := range b.workers {
		if got, want := len(snap.ForWorker(w).Apps[0].Instances), pw[w]; got != want {
			t.Fatalf("worker %d's zone routing lists %d instances, want %d", w, got, want)
		}
	}

	// The third instance of the next deployment fails its health check.
	b.fleet.mu.Lock()
	b.fleet.fail = func(_ int64, p wsproto.DeployPayload, dep int64) bool { return dep != d1 && p.Slot == 2 && !p.Restore }
	b.fleet.mu.Unlock()
	d2 := b.deploy(t)
	eventually(t, "the deployment to fail", func() bool {
		var st string
		b.pool.QueryRow(ctx, "SELECT status FROM deployments WHERE id = $1", d2).Scan(&st)
		return st == "failed"
	})
	var derr string
	var stopLines int
	b.pool.QueryRow(ctx, `SELECT d.error, (SELECT count(*) FROM deployment_logs l WHERE l.deployment_id = d.id
			AND l.line = 'deployment failed, the roll stops: instance 3 failed: health check failed')
		FROM deployments d WHERE d.id = $1`, d2).Scan(&derr, &stopLines)
	if derr != "instance 3 failed: health check failed" || stopLines != 1 {
		t.Fatalf("deployment %d: error %q, %d log lines saying the roll stops; want the failed instance's, 1", d2, derr, stopLines)
	}
	// Slot 0 counts as back as soon as d2 failed (its current deployment
	// is the newest succeeded one); its container follows with its job.
	eventually(t, "the two slots the roll moved to go back", func() bool {
		var restored, pending int
		b.pool.QueryRow(ctx, `SELECT count(*) FILTER (WHERE state = 'succeeded'), count(*) FILTER (WHERE state <> 'succeeded')
			FROM jobs WHERE deployment_id = $1 AND payload->>'restore' = 'true'`, d1).Scan(&restored, &pending)
		if restored > 2 || restored+pending > 2 {
			t.Fatalf("%d slots went back, want 2 (the two the roll moved)", restored+pending)
		}
		return restored == 2
	})
	b.allAt(t, 3, d1)

	// Worker 1 goes offline: routing keeps worker 0's instances only and
	// its instances start again on worker 0.
	lost := b.workers[1]
	if _, err := b.pool.Exec(ctx, "UPDATE workers SET status = 'offline', last_seen = now() - interval '1 hour', offline_at = now() - interval '1 hour' WHERE id = $1", lost); err != nil {
		t.Fatal(err)
	}
	snap, _ = network.Load(ctx, b.pool, "apps.test")
	for _, in := range snap.Apps[0].Instances {
		if in.WorkerID == lost {
			t.Fatalf("routing still lists the offline worker's instance: %+v", snap.Apps[0].Instances)
		}
	}
	eventually(t, "the lost worker's instances to move", func() bool {
		ins, _ := replicas.List(ctx, b.pool, b.app.ID)
		return len(ins) == 3 && perWorker(ins)[b.workers[0]] == 3
	})

	// With max_unavailable 1, a second instance moves at the same time,
	// stopping its old container first.
	if _, err := b.pool.Exec(ctx, "UPDATE workers SET status = 'online', last_seen = now() + interval '1 hour' WHERE id = $1", lost); err != nil {
		t.Fatal(err)
	}
	err = pgx.BeginFunc(ctx, b.pool, func(tx pgx.Tx) error {
		_, err := replicas.Scale(ctx, tx, b.app.ID, replicas.Settings{Replicas: 3, MaxSurge: 1, MaxUnavailable: 1})
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	b.fleet.mu.Lock()
	b.fleet.fail = nil
	from := len(b.fleet.runs)
	b.fleet.mu.Unlock()
	d3 := b.deploy(t)
	b.allAt(t, 3, d3)
	b.fleet.mu.Lock()
	stopFirst := 0
	for _, r := range b.fleet.runs[from:] {
		if r.p.StopFirst {
			stopFirst++
		}
	}
	b.fleet.mu.Unlock()
	if stopFirst != 1 {
		t.Fatalf("%d instances stopped first, want 1 (max_unavailable 1 beside max_surge 1)", stopFirst)
	}

	// Scale down: the slots beyond leave at once.
	err = pgx.BeginFunc(ctx, b.pool, func(tx pgx.Tx) error {
		_, err := replicas.Scale(ctx, tx, b.app.ID, replicas.Settings{Replicas: 1, MaxSurge: 1})
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	if ins, _ := replicas.List(ctx, b.pool, b.app.ID); len(ins) != 1 {
		t.Fatalf("after scaling to 1: %+v", ins)
	}
}

// Settings are checked with sentences.
func TestSettingsCheck(t *testing.T) {
	for _, c := range []struct {
		s     replicas.Settings
		field string
	}{
		{replicas.Settings{Replicas: 0, MaxSurge: 1}, "replicas"},
		{replicas.Settings{Replicas: 2, MaxSurge: 0}, "max_surge"},
		{replicas.Settings{Replicas: 2, MaxSurge: 1, MaxUnavailable: -1}, "max_unavailable"},
		{replicas.Settings{Replicas: 2, MaxSurge: 1, MaxUnavailable: 2}, "max_unavailable"},
		{replicas.Settings{Replicas: 3, MaxSurge: 2, MaxUnavailable: 1}, ""},
		{replicas.Settings{Replicas: 1, MaxSurge: 1}, ""},
	} {
		if f, _ := c.s.Check(); f != c.field {
			t.Errorf("%+v: field %q, want %q", c.s, f, c.field)
		}
	}
}

// workersRan is the set of workers a job of kind ran on.
func (b *bundle) workersRan(kind string) map[int64]bool {
	b.fleet.mu.Lock()
	defer b.fleet.mu.Unlock()
	out := map[int64]bool{}
	for _, r := range b.fleet.runs {
		if r.kind == kind {
			out[r.worker] = true
		}
	}
	return out
}

// A restart of an app whose instances run on two workers restarts them on
// both; deleting it removes its containers and images on both, and its row
// goes only once both workers are done.
func TestRestartAndDeleteReachEveryWorker(t *testing.T) {
	b := setup(t)
	ctx := context.Background()
	d1 := b.deploy(t)
	ins := b.allAt(t, 3, d1)
	if got := perWorker(ins); len(got) != 2 {
		t.Fatalf("instances on %d workers, want 2: %+v", len(got), ins)
	}
	if _, err := jobs.Enqueue(ctx, b.pool, jobs.New{Kind: wsproto.JobRestart, AppID: b.app.ID}); err != nil {
		t.Fatal(err)
	}
	eventually(t, "a restart job on each worker", func() bool { return len(b.workersRan(wsproto.JobRestart)) == 2 })
	eventually(t, "the restart jobs to succeed", func() bool {
		var n int
		b.pool.QueryRow(ctx, "SELECT count(*) FROM jobs WHERE kind = 'restart' AND state = 'succeeded'").Scan(&n)
		return n == 2
	})
	err := pgx.BeginFunc(ctx, b.pool, func(tx pgx.Tx) error {
		_, err := deploys.Delete(ctx, tx, b.app, "deleted")
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	eventually(t, "a delete job on each worker", func() bool { return len(b.workersRan(wsproto.JobDelete)) == 2 })
	eventually(t, "the app's row to go", func() bool {
		var n int
		b.pool.QueryRow(ctx, "SELECT count(*) FROM apps WHERE id = $1", b.app.ID).Scan(&n)
		return n == 0
	})
}

// recoverNow runs one pass of Recover (heartbeat 30 s, grace 1 min).
func (b *bundle) recoverNow(t *testing.T) replicas.Lost {
	t.Helper()
	var l replicas.Lost
	err := pgx.BeginFunc(context.Background(), b.pool, func(tx pgx.Tx) error {
		var err error
		l, err = replicas.Recover(context.Background(), tx, 30*time.Second, time.Minute)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return l
}

// A single-instance app whose worker goes offline stays there during the
// grace period, counted from when the worker was found offline (an agent
// that restarts quickly moves nothing, and neither do the stale heartbeats
// a control plane finds after its own outage), then starts on the other
// worker from the same image; the former worker's desired state no longer
// names it. An app with a volume stays on its worker.
func TestSingleInstanceReplaced(t *testing.T) {
	b := setup(t)
	ctx := context.Background()
	if _, err := b.pool.Exec(ctx, "UPDATE apps SET replicas = 1 WHERE id = $1", b.app.ID); err != nil {
		t.Fatal(err)
	}
	d1 := b.deploy(t)
	ins := b.allAt(t, 1, d1)
	lost := ins[0].WorkerID
	other := b.workers[0]
	if other == lost {
		other = b.workers[1]
	}
	// Silent for an hour, as a control plane back from its own outage
	// finds it: offline from now on, not gone.
	if _, err := b.pool.Exec(ctx, "UPDATE workers SET status = 'offline', last_seen = now() - interval '1 hour' WHERE id = $1", lost); err != nil {
		t.Fatal(err)
	}
	if l := b.recoverNow(t); l.Replaced != 0 {
		t.Fatalf("%d instances re-placed within the grace period", l.Replaced)
	}
	var found bool
	b.pool.QueryRow(ctx, "SELECT offline_at > now() - interval '10 seconds' FROM workers WHERE id = $1", lost).Scan(&found)
	if !found {
		t.Fatal("the worker's offline time was not recorded")
	}
	if _, err := b.pool.Exec(ctx, "UPDATE workers SET offline_at = now() - interval '2 minutes' WHERE id = $1", lost); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the instance to run on the other worker", func() bool {
		ins, _ := replicas.List(ctx, b.pool, b.app.ID)
		return len(ins) == 1 && ins[0].WorkerID == other && ins[0].DeploymentID == d1 && ins[0].Status == "running"
	})
	b.fleet.mu.Lock()
	last := b.fleet.runs[len(b.fleet.runs)-1]
	b.fleet.mu.Unlock()
	if last.worker != other || last.p.Image == "" || last.deployment != d1 {
		t.Fatalf("the re-placement ran %+v: want deployment %d's image on worker %d", last, d1, other)
	}
	for w, want := range map[int64]int{lost: 0, other: 1} {
		ds, err := deploys.Desired(ctx, b.pool, nil, w)
		if err != nil {
			t.Fatal(err)
		}
		if len(ds.Apps) != want {
			t.Fatalf("worker %d's desired state has %d apps, want %d: %+v", w, len(ds.Apps), want, ds.Apps)
		}
	}
	snap, _ := network.Load(ctx, b.pool, "apps.test")
	if len(snap.Apps) != 1 || snap.Apps[0].WorkerID != other {
		t.Fatalf("routing: %+v", snap.Apps)
	}

	// With a volume bound to its worker, the app waits for that worker.
	if _, err := b.pool.Exec(ctx, `INSERT INTO volumes (team_id, app_id, app_slug, name, mount_path, size_mb, worker_id)
		VALUES ($1, $2, 'app', 'data', '/data', 10, $3)`, b.app.TeamID, b.app.ID, other); err != nil {
		t.Fatal(err)
	}
	if _, err := b.pool.Exec(ctx, "UPDATE workers SET status = 'offline', last_seen = now() - interval '2 minutes', offline_at = now() - interval '2 minutes' WHERE id = $1", other); err != nil {
		t.Fatal(err)
	}
	if _, err := b.pool.Exec(ctx, "UPDATE workers SET status = 'online', last_seen = now() + interval '1 hour' WHERE id = $1", lost); err != nil {
		t.Fatal(err)
	}
	if l := b.recoverNow(t); l.Replaced != 0 {
		t.Fatalf("an app with a volume was re-placed (%d instances)", l.Replaced)
	}
}

// A stop job reaches every worker that runs an instance. Deleting an app
// one of whose workers is gone for good (revoked) completes: the
// instances there are forgotten.
func TestStopEveryWorkerAndDeleteWithGoneWorker(t *testing.T) {
	b := setup(t)
	ctx := context.Background()
	d1 := b.deploy(t)
	ins := b.allAt(t, 3, d1)
	if got := perWorker(ins); len(got) != 2 {
		t.Fatalf("instances on %d workers, want 2: %+v", len(got), ins)
	}
	if _, err := jobs.Enqueue(ctx, b.pool, jobs.New{Kind: wsproto.JobStop, AppID: b.app.ID}); err != nil {
		t.Fatal(err)
	}
	eventually(t, "a stop job on each worker", func() bool { return len(b.workersRan(wsproto.JobStop)) == 2 })

	// Worker 1 is revoked while the app is deleted: its delete job is
	// given up, worker 0's runs, and the row goes.
	gone := b.workers[1]
	b.fleet.mu.Lock()
	b.fleet.ids = b.workers[:1]
	b.fleet.mu.Unlock()
	b.fleet.bus.NotifyConnection(gone, false)
	if _, err := b.pool.Exec(ctx, "UPDATE workers SET status = 'revoked', revoked_at = now() WHERE id = $1", gone); err != nil {
		t.Fatal(err)
	}
	err := pgx.BeginFunc(ctx, b.pool, func(tx pgx.Tx) error {
		_, err := deploys.Delete(ctx, tx, b.app, "deleted")
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	eventually(t, "the app's row to go", func() bool {
		var n int
		b.pool.QueryRow(ctx, "SELECT count(*) FROM apps WHERE id = $1", b.app.ID).Scan(&n)
		return n == 0
	})
	if ran := b.workersRan(wsproto.JobDelete); ran[gone] || !ran[b.workers[0]] {
		t.Fatalf("delete jobs ran on %v: want worker %d only", ran, b.workers[0])
	}
}

// A restart goes one instance at a time, in slot order, each on its own
// worker and out of routing meanwhile; every instance is routed again at
// the end. A stopped app does not restart.
func TestRestartOneAtATime(t *testing.T) {
	b := setup(t)
	ctx := context.Background()
	d1 := b.deploy(t)
	ins := b.allAt(t, 3, d1)
	b.fleet.mu.Lock()
	from := len(b.fleet.runs)
	b.fleet.mu.Unlock()
	var n int
	err := pgx.BeginFunc(ctx, b.pool, func(tx pgx.Tx) error {
		var err error
		n, err = replicas.Restart(ctx, tx, b.app.ID)
		return err
	})
	if err != nil || n != 3 {
		t.Fatalf("restart: %d instances, %v", n, err)
	}
	// Out of routing from the moment its restart is queued.
	snap, _ := network.Load(ctx, b.pool, "apps.test")
	if len(snap.Apps) != 1 || len(snap.Apps[0].Instances) > 2 {
		t.Fatalf("the restarting instance is still routed: %+v", snap.Apps)
	}
	eventually(t, "three restarts", func() bool {
		var done int
		b.pool.QueryRow(ctx, "SELECT count(*) FROM jobs WHERE kind = 'restart' AND state = 'succeeded'").Scan(&done)
		return done == 3
	})
	b.fleet.mu.Lock()
	var restarts []run
	for _, r := range b.fleet.runs[from:] {
		if r.kind == wsproto.JobRestart {
			restarts = append(restarts, r)
		}
	}
	b.fleet.mu.Unlock()
	if len(restarts) != 3 {
		t.Fatalf("%d restart jobs, want 3", len(restarts))
	}
	for i, r := range restarts {
		if r.p.Slot != i || r.worker != ins[i].WorkerID {
			t.Fatalf("restart %d: slot %d on worker %d, want slot %d on worker %d", i, r.p.Slot, r.worker, i, ins[i].WorkerID)
		}
	}
	snap, _ = network.Load(ctx, b.pool, "apps.test")
	if len(snap.Apps) != 1 || len(snap.Apps[0].Instances) != 3 {
		t.Fatalf("after the restart, routing lists %+v, want 3 instances", snap.Apps)
	}
	var logs string
	b.pool.QueryRow(ctx, "SELECT string_agg(line, '\n' ORDER BY id) FROM deployment_logs WHERE deployment_id = $1", d1).Scan(&logs)
	if !regexp.MustCompile(`every instance has restarted`).MatchString(logs) {
		t.Fatalf("the deployment's log does not tell the restart:\n%s", logs)
	}

	if _, err := b.pool.Exec(ctx, "UPDATE apps SET status = 'stopped' WHERE id = $1", b.app.ID); err != nil {
		t.Fatal(err)
	}
	err = pgx.BeginFunc(ctx, b.pool, func(tx pgx.Tx) error {
		_, err := replicas.Restart(ctx, tx, b.app.ID)
		return err
	})
	if !errs.Is(err, errs.Conflict) {
		t.Fatalf("restarting a stopped app: %v, want a conflict", err)
	}
}

// A per-instance volume follows the slots: each slot's job mounts the
// slot's own copy; once a deploy bound the copies, the next deployment's
// job of each slot is pinned to the worker holding its copy; scaling down
// releases the removed slot's copy and scaling up starts the slot with a
// fresh one, unpinned.
func TestPerInstanceVolumesFollowSlots(t *testing.T) {
	b := setup(t)
	ctx := context.Background()
	var vol volumes.Volume
	err := pgx.BeginFunc(ctx, b.pool, func(tx pgx.Tx) (err error) {
		vol, err = volumes.Create(ctx, tx, b.app.TeamID, b.app.ID, volumes.New{Name: "cache", MountPath: "/cache", SizeMB: 8, PerInstance: true})
		return err
	})
	if err != nil || len(vol.Instances) != 3 {
		t.Fatalf("%+v %v", vol, err)
	}
	mounted := func(p wsproto.DeployPayload) string {
		if len(p.Volumes) != 1 || p.Volumes[0].Path != "/cache" {
			t.Fatalf("slot %d mounts %+v", p.Slot, p.Volumes)
		}
		return p.Volumes[0].Name
	}
	d1 := b.deploy(t)
	ins := b.allAt(t, 3, d1)
	at := map[int]int64{}
	for _, in := range ins {
		at[in.Slot] = in.WorkerID
	}
	b.fleet.mu.Lock()
	for _, r := range b.fleet.runs {
		if got, want := mounted(r.p), volumes.InstancePodmanName(vol.ID, r.p.Slot); got != want {
			t.Errorf("slot %d mounts %s, want %s", r.p.Slot, got, want)
		}
	}
	b.fleet.runs = nil
	b.fleet.mu.Unlock()
	for slot, w := range at {
		if got, _ := volumes.SlotWorker(ctx, b.pool, b.app.ID, slot); got != w {
			t.Fatalf("slot %d's copy is bound to %d, its instance runs on %d", slot, got, w)
		}
	}

	d2 := b.deploy(t)
	b.allAt(t, 3, d2)
	b.fleet.mu.Lock()
	for _, r := range b.fleet.runs {
		if r.worker != at[r.p.Slot] {
			t.Errorf("slot %d of the redeploy ran on %d, its volume is on %d", r.p.Slot, r.worker, at[r.p.Slot])
		}
	}
	b.fleet.mu.Unlock()
	var unpinned int
	b.pool.QueryRow(ctx, `SELECT count(*) FROM jobs WHERE deployment_id = $1 AND pin_worker_id IS NULL`, d2).Scan(&unpinned)
	if unpinned != 0 {
		t.Fatalf("%d jobs of the redeploy are not pinned to their slot's volume", unpinned)
	}

	scale := func(n int) {
		t.Helper()
		err := pgx.BeginFunc(ctx, b.pool, func(tx pgx.Tx) error {
			_, err := replicas.Scale(ctx, tx, b.app.ID, replicas.Settings{Replicas: n, MaxSurge: 1, VolumeGrace: time.Hour})
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	scale(2)
	list, _ := volumes.List(ctx, b.pool, b.app.ID)
	var released int
	for _, c := range list[0].Instances {
		if c.RemoveAfter != nil {
			released++
			if c.Slot != 2 || time.Until(*c.RemoveAfter) < 59*time.Minute {
				t.Fatalf("released copy %+v", c)
			}
		}
	}
	if released != 1 {
		t.Fatalf("%d copies released by scaling to 2: %+v", released, list[0].Instances)
	}
	b.fleet.mu.Lock()
	b.fleet.runs = nil
	b.fleet.mu.Unlock()
	scale(3)
	b.allAt(t, 3, d2)
	b.fleet.mu.Lock()
	if len(b.fleet.runs) != 1 || b.fleet.runs[0].p.Slot != 2 || mounted(b.fleet.runs[0].p) != volumes.InstancePodmanName(vol.ID, 3) {
		t.Fatalf("scaling up ran %+v, want slot 2 with a fresh copy (%s)", b.fleet.runs, volumes.InstancePodmanName(vol.ID, 3))
	}
	b.fleet.mu.Unlock()

	// A worker that is gone for good: the instances whose copies it holds
	// wait for it, none is started elsewhere with an empty copy.
	if _, err := b.pool.Exec(ctx, "UPDATE workers SET status = 'offline', last_seen = now() - interval '1 hour', offline_at = now() - interval '1 hour' WHERE id = $1", at[1]); err != nil {
		t.Fatal(err)
	}
	if l := b.recoverNow(t); l.Replaced != 0 {
		t.Fatalf("%d instances pinned to their volume copies were re-placed", l.Replaced)
	}
}

// Forget gives up the stop and restart jobs waiting for a gone worker
// (the stop counts as done: the app is stopped; the restart is
// cancelled) and leaves alone those of a worker that is still there.
func TestForgetJobsOfGoneWorker(t *testing.T) {
	db := pgtest.New(t)
	ctx := context.Background()
	var workers [2]int64
	for i, status := range []string{"revoked", "online"} {
		if err := db.Pool.QueryRow(ctx, `INSERT INTO workers (name, api_key_hash, status, wg_ip, cpu_millis, memory_mb, max_jobs, last_seen)
			VALUES ($1, sha256(convert_to($1, 'UTF8')), $2, $3, 4000, 4096, 8, now()) RETURNING id`,
			fmt.Sprintf("w%d", i), status, fmt.Sprintf("127.0.0.%d", i+1)).Scan(&workers[i]); err != nil {
			t.Fatal(err)
		}
	}
	var team int64
	db.Pool.QueryRow(ctx, "INSERT INTO teams (name, slug) VALUES ('t', 't') RETURNING id").Scan(&team)
	var apps [2]int64
	for i := range apps {
		if err := db.Pool.QueryRow(ctx, `INSERT INTO apps (team_id, slug, name, git_repo, port, cpu_millis, memory_mb, worker_id, status)
			VALUES ($1, $2, $2, 'https://git.example/app.git', 8080, 100, 64, $3, 'running') RETURNING id`,
			team, fmt.Sprintf("app%d", i), workers[i]).Scan(&apps[i]); err != nil {
			t.Fatal(err)
		}
	}
	enqueue := func(kind string, app int64) int64 {
		id, err := jobs.Enqueue(ctx, db.Pool, jobs.New{Kind: kind, AppID: app})
		if err != nil {
			t.Fatal(err)
		}
		return id
	}
	stop, restart, kept := enqueue(wsproto.JobStop, apps[0]), enqueue(wsproto.JobRestart, apps[0]), enqueue(wsproto.JobStop, apps[1])
	var n int
	err := pgx.BeginFunc(ctx, db.Pool, func(tx pgx.Tx) error {
		var err error
		n, err = replicas.Forget(ctx, tx, time.Minute)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	if n != 2 {
		t.Fatalf("Forget gave up %d jobs, want 2", n)
	}
	for _, c := range []struct {
		id           int64
		state, error string
	}{
		{stop, "succeeded", "worker w0 is gone: what ran there is forgotten (its containers are left on that host)"},
		{restart, "cancelled", "worker w0 is gone: its instances were not restarted"},
		{kept, "pending", ""},
	} {
		j, err := jobs.Get(ctx, db.Pool, c.id)
		if err != nil {
			t.Fatal(err)
		}
		if j.State != c.state || j.Error != c.error {
			t.Errorf("job %d (%s): %s %q, want %s %q", j.ID, j.Kind, j.State, j.Error, c.state, c.error)
		}
	}
	for i, want := range []string{"stopped", "running"} {
		var st string
		db.Pool.QueryRow(ctx, "SELECT status FROM apps WHERE id = $1", apps[i]).Scan(&st)
		if st != want {
			t.Errorf("app %d is %s, want %s", i, st, want)
		}
	}
}
