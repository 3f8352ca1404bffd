package jobs_test

import (
	"context"
	"encoding/json"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/wisehosting/wisehosting/internal/deploys"
	"github.com/wisehosting/wisehosting/internal/jobs"
	"github.com/wisehosting/wisehosting/internal/pgtest"
	"github.com/wisehosting/wisehosting/internal/store"
	"github.com/wisehosting/wisehosting/internal/workerbus"
	"github.com/wisehosting/wisehosting/internal/wsproto"
)

// fleet simulates the workers connected to one control-plane replica: it
// is that replica's hub (a workerbus.Sender) and answers job assignments
// the way an agent does.
type fleet struct {
	bus       *workerbus.Bus
	connected map[int64]bool
	// behaviour per job: "ok" (ack + succeed), "hang" (ack only), "mute".
	mode     func(workerID int64, job wsproto.JobAssign) string
	mu       sync.Mutex
	assigned map[int64]int    // job id → times sent
	runs     map[int64]int    // job id → times sent to any worker of the fleet
	perWork  map[[2]int64]int // (worker, job) → times sent: each agent deduplicates its own

	total atomic.Int64
	// cancels counts job.cancel messages per job; a cancelled job that
	// hangs reports a failure, as an agent does, unless muteCancel.
	cancels    map[int64]int
	muteCancel bool
	// resultAcks counts job.result.ack messages per job.
	resultAcks map[int64]int
}

func newFleet(ids ...int64) *fleet {
	f := &fleet{bus: new(workerbus.Bus), connected: map[int64]bool{}, assigned: map[int64]int{}, runs: map[int64]int{}, perWork: map[[2]int64]int{}, cancels: map[int64]int{}, resultAcks: map[int64]int{},
		mode: func(int64, wsproto.JobAssign) string { return "ok" }}
	for _, id := range ids {
		f.connected[id] = true
	}
	f.bus.SetSender(f)
	return f
}

func (f *fleet) connectAll() {
	for id := range f.connected {
		f.bus.NotifyConnection(id, true)
	}
}

func (f *fleet) Connected(id int64) bool { return f.connected[id] }

func (f *fleet) Send(workerID int64, typ string, p json.RawMessage) error {
	if !f.connected[workerID] {
		return workerbus.ErrNotConnected
	}
	if typ == wsproto.TypeJobCancel {
		var c wsproto.JobCancel
		json.Unmarshal(p, &c)
		f.mu.Lock()
		f.cancels[c.JobID]++
		mute := f.muteCancel
		f.mu.Unlock()
		if !mute {
			go func() {
				res, _ := json.Marshal(wsproto.JobResult{JobID: c.JobID, Error: "context canceled"})
				f.bus.Dispatch(context.Background(), workerID, wsproto.TypeJobResult, res)
			}()
		}
		return nil
	}
	if typ == wsproto.TypeJobResultAck {
		var a wsproto.JobResultAck
		json.Unmarshal(p, &a)
		f.mu.Lock()
		f.resultAcks[a.JobID]++
		f.mu.Unlock()
		return nil
	}
	if typ != wsproto.TypeJobAssign {
		return nil
	}
	var ja wsproto.JobAssign
	json.Unmarshal(p, &ja)
	f.mu.Lock()
	f.assigned[ja.JobID]++
	f.runs[ja.JobID]++
	first := f.perWork[[2]int64{workerID, ja.JobID}] == 0
	f.perWork[[2]int64{workerID, ja.JobID}]++
	f.mu.Unlock()
	f.total.Add(1)
	mode := f.mode(workerID, ja)
	if mode == "mute" {
		return nil
	}
	go func() {
		ctx := context.Background()
		ack, _ := json.Marshal(wsproto.JobAck{JobID: ja.JobID})
		f.bus.Dispatch(ctx, workerID, wsproto.TypeJobAck, ack)
		// Idempotent job ids: a redelivered job is acknowledged, not rerun.
		if !first || mode == "hang" {
			return
		}
		res, _ := json.Marshal(wsproto.JobResult{JobID: ja.JobID, OK: true, Output: json.RawMessage(`{"image":"localhost/app:1","host_port":30001}`)})
		f.bus.Dispatch(ctx, workerID, wsproto.TypeJobResult, res)
	}()
	return nil
}

func seedWorkers(t testing.TB, pool *pgxpool.Pool, n int, lastSeen string) []int64 {
	t.Helper()
	ids := make([]int64, n)
	for i := range ids {
		err := pool.QueryRow(context.Background(), `INSERT INTO workers (name, api_key_hash, status, cpu_millis, memory_mb, max_jobs, last_seen)
			VALUES ($1::text, sha256(convert_to($1::text, 'UTF8')), 'online', 100000, 100000, 100000, now() + $2::interval) RETURNING id`,
			fmt.Sprintf("w%d-%d", i, time.Now().UnixNano()), lastSeen).Scan(&ids[i])
		if err != nil {
			t.Fatal(err)
		}
	}
	return ids
}

func enqueueN(t testing.TB, pool *pgxpool.Pool, n int) {
	t.Helper()
	ctx := context.Background()
	for i := 0; i < n; i++ {
		if _, err := jobs.Enqueue(ctx, pool, jobs.New{Kind: "deploy", CPUMillis: 1, MemoryMB: 1}); err != nil {
			t.Fatal(err)
		}
	}
}

func runScheduler(t testing.TB, pool *pgxpool.Pool, f *fleet, tweak func(*jobs.Config)) (*jobs.Scheduler, context.CancelFunc) {
	// The process's one LISTEN connection, as the control plane gives it.
	l := store.NewListener(pool.Config().ConnConfig, nil)
	cfg := jobs.Config{Pool: pool, Notify: l, Workers: f.bus, PollInterval: 200 * time.Millisecond, Resend: 500 * time.Millisecond,
		RecoverInterval: 200 * time.Millisecond, Kinds: deploys.Lifecycle{}.Kinds()}
	if tweak != nil {
		tweak(&cfg)
	}
	s := jobs.NewScheduler(cfg)
	ctx, cancel := context.WithCancel(context.Background())
	done, listening := make(chan struct{}), make(chan struct{})
	go func() { l.Run(ctx); close(listening) }()
	go func() { s.Run(ctx); close(done) }()
	stop := func() { cancel(); <-done; <-listening }
	t.Cleanup(stop)
	f.connectAll()
	return s, stop
}

func countState(t testing.TB, pool *pgxpool.Pool, state string) int {
	var n int
	pool.QueryRow(context.Background(), "SELECT count(*) FROM jobs WHERE state = $1", state).Scan(&n)
	return n
}

func eventually(t testing.TB, what string, d time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// Two replicas' schedulers race over one queue: every job must be assigned
// exactly once and run exactly once.
func TestTwoSchedulersNeverDoubleAssign(t *testing.T) {
	t.Parallel()
	db := pgtest.New(t)
	ids := seedWorkers(t, db.Pool, 10, "1 hour")
	a, b := newFleet(ids[:5]...), newFleet(ids[5:]...)
	const n = 3000
	enqueueN(t, db.Pool, n)
	runScheduler(t, db.Pool, a, nil)
	runScheduler(t, db.Pool, b, nil)
	eventually(t, "all jobs done", 60*time.Second, func() bool { return countState(t, db.Pool, "succeeded") == n })

	seen := map[int64]int{}
	for _, f := range []*fleet{a, b} {
		f.mu.Lock()
		for id, c := range f.runs {
			seen[id] += c
		}
		f.mu.Unlock()
	}
	if len(seen) != n {
		t.Fatalf("%d distinct jobs delivered, want %d", len(seen), n)
	}
	for id, c := range seen {
		if c != 1 {
			t.Fatalf("job %d delivered %d times", id, c)
		}
	}
	var maxAttempt int
	db.Pool.QueryRow(t.Context(), "SELECT max(attempt) FROM jobs").Scan(&maxAttempt)
	if maxAttempt != 1 {
		t.Fatalf("a job was assigned %d times", maxAttempt)
	}
	// Both replicas did work.
	if a.total.Load() == 0 || b.total.Load() == 0 {
		t.Fatalf("work split a=%d b=%d", a.total.Load(), b.total.Load())
	}
}

func TestPlacementLowestUtilisationAndCapacity(t *testing.T) {
	t.Parallel()
	db := pgtest.New(t)
	ctx := context.Background()
	ids := seedWorkers(t, db.Pool, 3, "1 hour")
	// w0 is busy, w1 and w2 idle: w1 wins the tie by id.
	db.Pool.Exec(ctx, "UPDATE workers SET cpu_millis = 4000, memory_mb = 4096, max_jobs = 4")
	var team int64
	db.Pool.QueryRow(ctx, "INSERT INTO teams (name, slug) VALUES ('t', 't') RETURNING id").Scan(&team)
	db.Pool.Exec(ctx, `INSERT INTO apps (team_id, slug, name, status, worker_id, cpu_millis, memory_mb) VALUES ($1, 'busy', 'busy', 'running', $2, 3000, 1024)`, team, ids[0])

	id1, _ := jobs.Enqueue(ctx, db.Pool, jobs.New{Kind: "deploy", CPUMillis: 1000, MemoryMB: 1024})
	placed, err := jobs.AssignBatch(ctx, db.Pool, 10, time.Minute, time.Minute)
	if err != nil || len(placed) != 1 || placed[0].WorkerID != ids[1] {
		t.Fatalf("placed %+v %v, want job %d on worker %d", placed, err, id1, ids[1])
	}
	// Now w1 carries 1000m: w2 is the least utilised.
	jobs.Enqueue(ctx, db.Pool, jobs.New{Kind: "deploy", CPUMillis: 1000, MemoryMB: 512})
	placed, _ = jobs.AssignBatch(ctx, db.Pool, 10, time.Minute, time.Minute)
	if len(placed) != 1 || placed[0].WorkerID != ids[2] {
		t.Fatalf("second job on %+v, want worker %d", placed, ids[2])
	}
	// A job larger than any worker's free capacity waits.
	big, _ := jobs.Enqueue(ctx, db.Pool, jobs.New{Kind: "deploy", CPUMillis: 3500, MemoryMB: 512})
	placed, _ = jobs.AssignBatch(ctx, db.Pool, 10, time.Minute, time.Minute)
	if len(placed) != 0 {
		t.Fatalf("oversized job placed: %+v", placed)
	}
	j, _ := jobs.Get(ctx, db.Pool, big)
	if j.State != "pending" {
		t.Fatalf("oversized job %s", j.State)
	}
	// Offline and stale workers get nothing.
	db.Pool.Exec(ctx, "UPDATE workers SET status = 'offline' WHERE id <> $1", ids[0])
	db.Pool.Exec(ctx, "UPDATE workers SET last_seen = now() - interval '10 minutes' WHERE id = $1", ids[0])
	jobs.Enqueue(ctx, db.Pool, jobs.New{Kind: "deploy"})
	if placed, _ = jobs.AssignBatch(ctx, db.Pool, 10, time.Minute, time.Minute); len(placed) != 0 {
		t.Fatalf("placed on an offline worker: %+v", placed)
	}
}

// A worker dies mid-job: it stops sending heartbeats, is marked offline,
// and its job runs again elsewhere.
func TestWorkerKilledMidJobIsRecovered(t *testing.T) {
	t.Parallel()
	db := pgtest.New(t)
	ctx := context.Background()
	ids := seedWorkers(t, db.Pool, 2, "1 hour")
	dead, alive := ids[0], ids[1]
	// The doomed worker is the only candidate at first.
	db.Pool.Exec(ctx, "UPDATE workers SET status = 'offline' WHERE id = $1", alive)
	f := newFleet(ids...)
	f.mode = func(w int64, _ wsproto.JobAssign) string {
		if w == dead {
			return "hang"
		}
		return "ok"
	}
	runScheduler(t, db.Pool, f, func(c *jobs.Config) { c.Heartbeat = time.Second })
	id, _ := jobs.Enqueue(ctx, db.Pool, jobs.New{Kind: "deploy"})
	eventually(t, "job running on the doomed worker", 10*time.Second, func() bool {
		j, _ := jobs.Get(ctx, db.Pool, id)
		return j.State == "running" && j.WorkerID == dead
	})
	// The worker dies (no more heartbeats); the other one comes online.
	db.Pool.Exec(ctx, "UPDATE workers SET last_seen = now() - interval '1 minute' WHERE id = $1", dead)
	db.Pool.Exec(ctx, "UPDATE workers SET status = 'online' WHERE id = $1", alive)
	eventually(t, "job recovered and finished elsewhere", 15*time.Second, func() bool {
		j, _ := jobs.Get(ctx, db.Pool, id)
		return j.State == "succeeded" && j.WorkerID == alive && j.Attempt == 2
	})
	var status string
	db.Pool.QueryRow(ctx, "SELECT status FROM workers WHERE id = $1", dead).Scan(&status)
	if status != "offline" {
		t.Fatalf("dead worker is %s", status)
	}
}

// Jobs assigned by a control plane that then stops are delivered by the
// next one: nothing lives only in memory.
func TestRestartLosesNoJob(t *testing.T) {
	t.Parallel()
	db := pgtest.New(t)
	ctx := context.Background()
	ids := seedWorkers(t, db.Pool, 1, "1 hour")
	// First CP: the worker is not connected to it, so jobs are assigned
	// but cannot be delivered.
	first := newFleet()
	_, stop := runScheduler(t, db.Pool, first, nil)
	enqueueN(t, db.Pool, 20)
	eventually(t, "jobs assigned", 10*time.Second, func() bool { return countState(t, db.Pool, "assigned") == 20 })
	stop()
	// Jobs enqueued while no scheduler runs.
	enqueueN(t, db.Pool, 5)
	// Second CP, with the worker connected.
	second := newFleet(ids...)
	runScheduler(t, db.Pool, second, nil)
	eventually(t, "every job done", 15*time.Second, func() bool { return countState(t, db.Pool, "succeeded") == 25 })
	_ = ctx
}

// A worker that never acknowledges: the job is retried up to max_attempts
// and then fails visibly, with its deployment.
func TestUnacknowledgedJobFailsVisibly(t *testing.T) {
	t.Parallel()
	db := pgtest.New(t)
	ctx := context.Background()
	ids := seedWorkers(t, db.Pool, 1, "1 hour")
	var team, app, dep int64
	db.Pool.QueryRow(ctx, "INSERT INTO teams (name, slug) VALUES ('t', 't') RETURNING id").Scan(&team)
	db.Pool.QueryRow(ctx, "INSERT INTO apps (team_id, slug, name) VALUES ($1, 'a', 'a') RETURNING id", team).Scan(&app)
	db.Pool.QueryRow(ctx, "INSERT INTO deployments (app_id) VALUES ($1) RETURNING id", app).Scan(&dep)
	f := newFleet(ids...)
	f.mode = func(int64, wsproto.JobAssign) string { return "mute" }
	runScheduler(t, db.Pool, f, func(c *jobs.Config) { c.AckTimeout = 300 * time.Millisecond; c.Resend = time.Hour })
	id, _ := jobs.Enqueue(ctx, db.Pool, jobs.New{Kind: "deploy", AppID: app, DeploymentID: dep, MaxAttempts: 2})
	eventually(t, "job failed", 15*time.Second, func() bool { j, _ := jobs.Get(ctx, db.Pool, id); return j.State == "failed" })
	j, _ := jobs.Get(ctx, db.Pool, id)
	if j.Attempt != 2 {
		t.Fatalf("attempts %d, want 2", j.Attempt)
	}
	var depStatus, depErr, appStatus string
	db.Pool.QueryRow(ctx, "SELECT status, error FROM deployments WHERE id = $1", dep).Scan(&depStatus, &depErr)
	db.Pool.QueryRow(ctx, "SELECT status FROM apps WHERE id = $1", app).Scan(&appStatus)
	if depStatus != "failed" || depErr == "" || appStatus != "failed" {
		t.Fatalf("deployment %s (%q), app %s", depStatus, depErr, appStatus)
	}
	f.mu.Lock()
	sent := f.assigned[id]
	f.mu.Unlock()
	if sent != 2 {
		t.Fatalf("sent %d times, want once per attempt", sent)
	}
}

func TestResultUpdatesDeploymentAndApp(t *testing.T) {
	t.Parallel()
	db := pgtest.New(t)
	ctx := context.Background()
	ids := seedWorkers(t, db.Pool, 1, "1 hour")
	var team, app, dep int64
	db.Pool.QueryRow(ctx, "INSERT INTO teams (name, slug) VALUES ('t', 't') RETURNING id").Scan(&team)
	db.Pool.QueryRow(ctx, "INSERT INTO apps (team_id, slug, name, status) VALUES ($1, 'a', 'a', 'building') RETURNING id", team).Scan(&app)
	db.Pool.QueryRow(ctx, "INSERT INTO deployments (app_id) VALUES ($1) RETURNING id", app).Scan(&dep)
	f := newFleet(ids...)
	runScheduler(t, db.Pool, f, nil)
	jobs.Enqueue(ctx, db.Pool, jobs.New{Kind: "deploy", AppID: app, DeploymentID: dep})
	eventually(t, "app running", 10*time.Second, func() bool {
		var s string
		db.Pool.QueryRow(ctx, "SELECT status FROM apps WHERE id = $1 AND worker_id = $2 AND host_port = 30001", app, ids[0]).Scan(&s)
		return s == "running"
	})
	var status, image string
	db.Pool.QueryRow(ctx, "SELECT status, image FROM deployments WHERE id = $1", dep).Scan(&status, &image)
	if status != "succeeded" || image != "localhost/app:1" {
		t.Fatalf("deployment %s %s", status, image)
	}
	// A result for a job that is not the sender's is ignored.
	other, _ := jobs.Enqueue(ctx, db.Pool, jobs.New{Kind: "deploy"})
	eventually(t, "other job done", 10*time.Second, func() bool { j, _ := jobs.Get(ctx, db.Pool, other); return j.State == "succeeded" })
	res, _ := json.Marshal(wsproto.JobResult{JobID: other, OK: false, Error: "forged"})
	f.bus.Dispatch(ctx, ids[0]+1000, wsproto.TypeJobResult, res)
	if j, _ := jobs.Get(ctx, db.Pool, other); j.State != "succeeded" {
		t.Fatalf("a foreign result changed the job: %s", j.State)
	}
}
