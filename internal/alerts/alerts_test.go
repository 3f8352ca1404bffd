package alerts

import (
	"context"
	"testing"
	"time"

	"github.com/wisehosting/wisehosting/internal/pgtest"
)

type fx struct {
	db        *pgtest.DB
	app, rule int64
	e         *Evaluator
}

func setup(t *testing.T, kind string, threshold float64, sustain int) *fx {
	db := pgtest.New(t)
	ctx := context.Background()
	f := &fx{db: db, e: &Evaluator{Pool: db.Pool, ClearFor: time.Minute, MinDuration: 3 * time.Minute}}
	var team, worker int64
	db.Pool.QueryRow(ctx, "INSERT INTO teams (name, slug) VALUES ('t', 't') RETURNING id").Scan(&team)
	db.Pool.QueryRow(ctx, "INSERT INTO workers (name, api_key_hash, status) VALUES ('w', 'k', 'online') RETURNING id").Scan(&worker)
	db.Pool.QueryRow(ctx, "INSERT INTO apps (team_id, slug, name, status, worker_id) VALUES ($1, 'a', 'a', 'running', $2) RETURNING id", team, worker).Scan(&f.app)
	db.Pool.QueryRow(ctx, "INSERT INTO alert_rules (app_id, kind, threshold, sustain_s) VALUES ($1, $2, $3, $4) RETURNING id", f.app, kind, threshold, sustain).Scan(&f.rule)
	return f
}

// cpu sets the app's CPU in the 5-minute bucket of at.
func (f *fx) cpu(t *testing.T, at time.Time, pct float64) {
	_, err := f.db.Pool.Exec(context.Background(), `INSERT INTO usage_samples (app_id, bucket, samples, cpu_pct_sum, cpu_pct_max)
		VALUES ($1, $2, 1, $3, $3) ON CONFLICT (app_id, bucket) DO UPDATE SET samples = 1, cpu_pct_sum = $3, cpu_pct_max = $3`,
		f.app, at.Truncate(5*time.Minute), pct)
	if err != nil {
		t.Fatal(err)
	}
}

func (f *fx) eval(t *testing.T, at time.Time) []Change {
	ch, err := f.e.Evaluate(context.Background(), at)
	if err != nil {
		t.Fatal(err)
	}
	return ch
}

func (f *fx) open(t *testing.T) int {
	var n int
	f.db.Pool.QueryRow(context.Background(), "SELECT count(*) FROM alerts WHERE resolved_at IS NULL").Scan(&n)
	return n
}

func TestSustainFireAndResolveWithoutFlapping(t *testing.T) {
	t.Parallel()
	f := setup(t, "cpu", 80, 120)
	t0 := time.Date(2026, 11, 22, 10, 0, 0, 0, time.UTC)
	f.cpu(t, t0, 95)
	if ch := f.eval(t, t0); len(ch) != 0 {
		t.Fatalf("fired at once: %+v", ch)
	}
	if ch := f.eval(t, t0.Add(60*time.Second)); len(ch) != 0 {
		t.Fatal("fired before the sustain window")
	}
	ch := f.eval(t, t0.Add(130*time.Second))
	if len(ch) != 1 || !ch[0].Fired || ch[0].Kind != "cpu" || ch[0].Value != 95 {
		t.Fatalf("fire: %+v", ch)
	}
	// Hovering around the threshold: no resolve, no second alert.
	for i, pct := range []float64{70, 90, 70, 85, 75} {
		f.cpu(t, t0, pct)
		if ch := f.eval(t, t0.Add(time.Duration(140+i*20)*time.Second)); len(ch) != 0 {
			t.Fatalf("flapped at step %d: %+v", i, ch)
		}
	}
	if f.open(t) != 1 {
		t.Fatal("open alerts")
	}
	// Clear for longer than ClearFor and past MinDuration: resolves once.
	f.cpu(t, t0, 10)
	f.eval(t, t0.Add(250*time.Second))
	ch = f.eval(t, t0.Add(320*time.Second))
	if len(ch) != 1 || ch[0].Fired {
		t.Fatalf("resolve: %+v", ch)
	}
	if f.open(t) != 0 {
		t.Fatal("alert still open")
	}
	if ch := f.eval(t, t0.Add(400*time.Second)); len(ch) != 0 {
		t.Fatalf("resolved twice: %+v", ch)
	}
	// A short spike below the sustain window never fires.
	f.cpu(t, t0.Add(10*time.Minute), 99)
	f.eval(t, t0.Add(10*time.Minute))
	f.cpu(t, t0.Add(10*time.Minute), 5)
	if ch := f.eval(t, t0.Add(11*time.Minute)); len(ch) != 0 {
		t.Fatalf("spike fired: %+v", ch)
	}
	// Stale samples (older than 10 minutes) are no evidence.
	f.cpu(t, t0.Add(20*time.Minute), 99)
	f.eval(t, t0.Add(20*time.Minute))
	if ch := f.eval(t, t0.Add(40*time.Minute)); len(ch) != 0 {
		t.Fatalf("fired on stale data: %+v", ch)
	}
}

func TestStateRules(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	t0 := time.Date(2026, 11, 22, 10, 0, 0, 0, time.UTC)
	for kind, breach := range map[string]string{
		"offline":           "UPDATE workers SET status = 'offline'",
		"crashloop":         "UPDATE apps SET status = 'crashed'",
		"deployment_failed": "INSERT INTO deployments (app_id, status) SELECT id, 'failed' FROM apps",
		"cron_failed": `WITH j AS (INSERT INTO cron_jobs (app_id, name, schedule, command, next_run_at) SELECT id, 'x', '* * * * *', '{true}', now() FROM apps RETURNING id, app_id)
			INSERT INTO cron_runs (cron_job_id, app_id, scheduled_at, state) SELECT id, app_id, now(), 'failed' FROM j`,
	} {
		f := setup(t, kind, 0, 0)
		if ch := f.eval(t, t0); len(ch) != 0 {
			t.Fatalf("%s fired while healthy", kind)
		}
		if _, err := f.db.Pool.Exec(ctx, breach); err != nil {
			t.Fatal(err)
		}
		f.eval(t, t0.Add(time.Second)) // pending
		ch := f.eval(t, t0.Add(2*time.Second))
		if len(ch) != 1 || !ch[0].Fired || ch[0].Kind != kind {
			t.Fatalf("%s: %+v", kind, ch)
		}
	}
}

// A drained worker still runs its apps: they are not offline while it
// sends heartbeats, and are once it falls silent.
func TestDrainingWorkerIsNotOffline(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	t0 := time.Date(2026, 11, 22, 10, 0, 0, 0, time.UTC)
	f := setup(t, "offline", 0, 0)
	f.db.Pool.Exec(ctx, "UPDATE workers SET status = 'draining', last_seen = $1", t0)
	f.eval(t, t0.Add(time.Second))
	if ch := f.eval(t, t0.Add(2*time.Second)); len(ch) != 0 {
		t.Fatalf("fired for a draining worker: %+v", ch)
	}
	f.eval(t, t0.Add(3*time.Minute))
	if ch := f.eval(t, t0.Add(3*time.Minute+time.Second)); len(ch) != 1 || !ch[0].Fired {
		t.Fatalf("silent draining worker: %+v", ch)
	}
}
