package cron_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/wisehosting/wisehosting/internal/cron"
	"github.com/wisehosting/wisehosting/internal/errs"
	"github.com/wisehosting/wisehosting/internal/jobs"
	"github.com/wisehosting/wisehosting/internal/pgtest"
	"github.com/wisehosting/wisehosting/internal/wsproto"
)

func TestParse(t *testing.T) {
	t.Parallel()
	at := time.Date(2026, 3, 28, 23, 59, 30, 0, time.UTC)
	for _, c := range []struct {
		spec, tz string
		want     time.Time
	}{
		{"* * * * *", "", time.Date(2026, 3, 29, 0, 0, 0, 0, time.UTC)},
		{"*/15 * * * *", "UTC", time.Date(2026, 3, 29, 0, 0, 0, 0, time.UTC)},
		{"30 2 * * *", "UTC", time.Date(2026, 3, 29, 2, 30, 0, 0, time.UTC)},
		// 02:30 does not exist in Berlin on 29 March 2026 (clocks jump
		// from 02:00 to 03:00): the run moves with the jump.
		{"0 9 * * mon-fri", "Europe/Berlin", time.Date(2026, 3, 30, 7, 0, 0, 0, time.UTC)},
		{"@daily", "America/New_York", time.Date(2026, 3, 29, 4, 0, 0, 0, time.UTC)},
	} {
		s, err := cron.Parse(c.spec, c.tz)
		if err != nil {
			t.Errorf("%q %q: %v", c.spec, c.tz, err)
			continue
		}
		if got := s.Next(at); !got.Equal(c.want) {
			t.Errorf("%q in %q: next after %s is %s, want %s", c.spec, c.tz, at, got, c.want)
		}
	}
	for _, c := range []struct{ spec, tz, field string }{
		{"", "", "schedule"},
		{"* * * *", "", "schedule"},
		{"* * * * * *", "", "schedule"},
		{"@every 1m", "", "schedule"},
		{"CRON_TZ=UTC * * * * *", "", "schedule"},
		{"61 * * * *", "", "schedule"},
		{"* * 31 2 *", "", "schedule"},
		{"* * * * *", "Mars/Olympus", "timezone"},
		{"* * * * *", "Local", "timezone"},
		{"* * * * *", "../../etc/passwd", "timezone"},
	} {
		_, err := cron.Parse(c.spec, c.tz)
		if e, ok := errs.As(err); !ok || e.Kind != errs.Invalid || e.Field != c.field {
			t.Errorf("%q %q: got %v, want an error on %s", c.spec, c.tz, err, c.field)
		}
	}
	s, _ := cron.Parse("* * * * *", "")
	from := time.Date(2026, 1, 1, 10, 0, 0, 0, time.UTC)
	if got := s.Latest(from, from.Add(90*time.Minute+30*time.Second)); !got.Equal(from.Add(90 * time.Minute)) {
		t.Errorf("latest missed minute: %s", got)
	}
	if got := s.Latest(from, from.Add(30*time.Second)); !got.IsZero() {
		t.Errorf("nothing due: %s", got)
	}
}

// FuzzParse: any schedule text and time zone is either refused with a
// user error or gives a schedule whose next time is after the start.
func FuzzParse(f *testing.F) {
	for _, s := range []string{"* * * * *", "*/5 1-3 * jan,feb mon", "@hourly", "0 0 L * *", "1-60/0 * * * *", "?"} {
		f.Add(s, "UTC")
	}
	f.Add("0 9 * * *", "Europe/Berlin")
	start := time.Date(2026, 6, 1, 12, 0, 0, 0, time.UTC)
	f.Fuzz(func(t *testing.T, spec, tz string) {
		s, err := cron.Parse(spec, tz)
		if err != nil {
			if e, ok := errs.As(err); !ok || e.Kind != errs.Invalid || e.Msg == "" {
				t.Fatalf("%q %q: %T %v is not a user error", spec, tz, err, err)
			}
			return
		}
		if n := s.Next(start); !n.After(start) {
			t.Fatalf("%q %q: next %s is not after %s", spec, tz, n, start)
		}
	})
}

func TestCheckCommand(t *testing.T) {
	t.Parallel()
	for _, bad := range [][]string{nil, {""}, {" "}, {"a\x00b"}, {"x", string([]byte{0xff})}, make([]string, 65)} {
		if err := cron.CheckCommand(bad); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
	if err := cron.CheckCommand([]string{"/bin/sh", "-c", "echo $HOME; rm -rf /tmp/x"}); err != nil {
		t.Error(err)
	}
}

type fixture struct {
	db                     *pgtest.DB
	team, app, worker, job int64
}

func setup(t *testing.T, spec cron.Spec) fixture {
	t.Helper()
	ctx := context.Background()
	f := fixture{db: pgtest.New(t)}
	p := f.db.Pool
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(p.QueryRow(ctx, "INSERT INTO teams (name, slug) VALUES ('t', 't') RETURNING id").Scan(&f.team))
	must(p.QueryRow(ctx, `INSERT INTO workers (name, api_key_hash, status, cpu_millis, memory_mb, max_jobs, last_seen)
		VALUES ('w', 'k', 'online', 4000, 4096, 4, now()) RETURNING id`).Scan(&f.worker))
	must(p.QueryRow(ctx, `INSERT INTO apps (team_id, slug, name, status, worker_id, port) VALUES ($1, 'site', 'Site', 'running', $2, 8080) RETURNING id`,
		f.team, f.worker).Scan(&f.app))
	_, err := p.Exec(ctx, `INSERT INTO deployments (app_id, status, image, worker_id, finished_at) VALUES
		($1, 'succeeded', 'localhost/wisehosting/site:1', $2, now() - interval '1 hour'),
		($1, 'succeeded', 'localhost/wisehosting/site:2', $2, now())`, f.app, f.worker)
	must(err)
	must(pgx.BeginFunc(ctx, p, func(tx pgx.Tx) error {
		j, err := cron.Create(ctx, tx, f.app, spec)
		f.job = j.ID
		return err
	}))
	return f
}

func str(s string) *string { return &s }

// Replicas ticking at once, with the schedule missed for several minutes
// (every replica was down): one run, for the latest missed minute, and
// one queue job carrying the app's current image and the argv.
func TestTickRunsOnceAcrossReplicas(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	f := setup(t, cron.Spec{Name: str("tick"), Schedule: str("* * * * *"), Command: &[]string{"/bin/echo", "tick"}})
	if _, err := f.db.Pool.Exec(ctx, "UPDATE cron_jobs SET next_run_at = date_trunc('minute', now()) - interval '5 minutes'"); err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	for i := 0; i < 8; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, err := cron.Tick(ctx, f.db.Pool); err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	var runs, queued int
	var scheduled, next, now time.Time
	f.db.Pool.QueryRow(ctx, "SELECT count(*), max(scheduled_at) FROM cron_runs").Scan(&runs, &scheduled)
	f.db.Pool.QueryRow(ctx, "SELECT count(*) FROM jobs WHERE kind = 'cron'").Scan(&queued)
	f.db.Pool.QueryRow(ctx, "SELECT next_run_at, now() FROM cron_jobs").Scan(&next, &now)
	if runs != 1 || queued != 1 {
		t.Fatalf("%d runs and %d queue jobs, want 1 and 1", runs, queued)
	}
	if want := now.Truncate(time.Minute); !scheduled.Equal(want) {
		t.Errorf("the run is for %s, want the latest missed minute %s", scheduled, want)
	}
	if !next.After(now) {
		t.Errorf("next run %s is not after now %s", next, now)
	}
	var payload []byte
	f.db.Pool.QueryRow(ctx, "SELECT payload FROM jobs WHERE kind = 'cron'").Scan(&payload)
	var p wsproto.CronPayload
	json.Unmarshal(payload, &p)
	if p.Image != "localhost/wisehosting/site:2" || strings.Join(p.Command, " ") != "/bin/echo tick" || p.Slug != "site" || p.RunID == 0 {
		t.Errorf("payload: %+v", p)
	}

	// Due again while the first run is still queued: skipped, with the
	// reason.
	f.db.Pool.Exec(ctx, "UPDATE cron_jobs SET next_run_at = now() - interval '1 second'")
	if _, err := cron.Tick(ctx, f.db.Pool); err != nil {
		t.Fatal(err)
	}
	runsList, err := cron.Runs(ctx, f.db.Pool, f.app, f.job, 10)
	if err != nil || len(runsList) != 2 {
		t.Fatalf("runs: %v %v", runsList, err)
	}
	if runsList[0].State != "skipped" || !strings.Contains(runsList[0].Error, "still running") || runsList[1].State != "pending" {
		t.Fatalf("overlap: %+v", runsList)
	}

	// The worker's result: recorded on the run in the completing
	// transaction.
	var jobID int64
	f.db.Pool.QueryRow(ctx, "SELECT job_id FROM cron_runs WHERE id = $1", runsList[1].ID).Scan(&jobID)
	qj, err := jobs.Get(ctx, f.db.Pool, jobID)
	if err != nil {
		t.Fatal(err)
	}
	out, _ := json.Marshal(wsproto.CronOutput{ExitCode: 3, DurationMS: 1200, LogTail: "line one\nline two"})
	err = pgx.BeginFunc(ctx, f.db.Pool, func(tx pgx.Tx) error {
		fin, ok, err := cron.Finish(ctx, tx, qj, wsproto.JobResult{JobID: jobID, OK: false, Error: "exited with code 3", Output: out})
		if err == nil && (!ok || fin.Name != "tick" || fin.ExitCode != 3) {
			t.Errorf("finish: %+v %v", fin, ok)
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	got, _ := cron.Get(ctx, f.db.Pool, f.app, f.job)
	runsList, _ = cron.Runs(ctx, f.db.Pool, f.app, f.job, 10)
	r := runsList[1]
	if r.State != "failed" || r.ExitCode == nil || *r.ExitCode != 3 || r.DurationMS == nil || *r.DurationMS != 1200 || r.LogTail != "line one\nline two" {
		t.Fatalf("recorded run: %+v", r)
	}
	if got.LastRun == nil {
		t.Fatal("no last run")
	}
	// Another app's id does not reach this job.
	if _, err := cron.Get(ctx, f.db.Pool, f.app+1, f.job); !errors.Is(err, cron.ErrNotFound) {
		t.Errorf("other app: %v", err)
	}
}

// An app without a successful deployment has no image: its runs are
// skipped with the reason, and a stopped app's too.
func TestTickSkipsWithoutImage(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	f := setup(t, cron.Spec{Name: str("x"), Schedule: str("* * * * *"), Command: &[]string{"true"}})
	f.db.Pool.Exec(ctx, "DELETE FROM deployments")
	f.db.Pool.Exec(ctx, "UPDATE cron_jobs SET next_run_at = now() - interval '1 second'")
	if _, err := cron.Tick(ctx, f.db.Pool); err != nil {
		t.Fatal(err)
	}
	runs, _ := cron.Runs(ctx, f.db.Pool, f.app, f.job, 10)
	if len(runs) != 1 || runs[0].State != "skipped" || !strings.Contains(runs[0].Error, "no successful deployment") {
		t.Fatalf("runs: %+v", runs)
	}
}

// A run whose worker restarted without it, on its last attempt, is given
// up by the control plane (the hello's reconciliation): the run records
// the failure and cron.failed is emitted, never a deployment event; a run
// put back in the queue records nothing yet.
func TestRunGivenUpIsACronFailure(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	f := setup(t, cron.Spec{Name: str("nightly"), Schedule: str("0 3 * * *"), Command: &[]string{"/bin/true"}})
	var run cron.Run
	err := pgx.BeginFunc(ctx, f.db.Pool, func(tx pgx.Tx) error {
		var err error
		run, err = cron.RunNow(ctx, tx, f.app, f.job)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	var jobID int64
	f.db.Pool.QueryRow(ctx, "SELECT job_id FROM cron_runs WHERE id = $1", run.ID).Scan(&jobID)
	reconcile := func() []jobs.Recovered {
		t.Helper()
		f.db.Pool.Exec(ctx, "UPDATE jobs SET state = 'running', worker_id = $2, attempt = attempt + 1 WHERE id = $1", jobID, f.worker)
		var out []jobs.Recovered
		err := pgx.BeginFunc(ctx, f.db.Pool, func(tx pgx.Tx) error {
			var err error
			if out, err = jobs.ReconcileWorker(ctx, tx, f.worker, nil); err != nil {
				return err
			}
			return cron.Kinds(nil).Recovered(ctx, tx, out)
		})
		if err != nil {
			t.Fatal(err)
		}
		return out
	}
	stateOf := func() (state, errMsg string) {
		f.db.Pool.QueryRow(ctx, "SELECT state, error FROM cron_runs WHERE id = $1", run.ID).Scan(&state, &errMsg)
		return
	}
	if rc := reconcile(); len(rc) != 1 || rc[0].State != "pending" {
		t.Fatalf("first attempt: %+v", rc)
	}
	if state, _ := stateOf(); state != "pending" {
		t.Fatalf("run %s after its job was requeued", state)
	}
	if rc := reconcile(); len(rc) != 1 || rc[0].State != "failed" {
		t.Fatalf("last attempt: %+v", rc)
	}
	if state, msg := stateOf(); state != "failed" || !strings.Contains(msg, "no longer runs the job") {
		t.Fatalf("run %s (%q) after its job was given up", state, msg)
	}
	rows, err := f.db.Pool.Query(ctx, "SELECT kind, payload->'data'->>'run_id' FROM event_outbox ORDER BY id")
	if err != nil {
		t.Fatal(err)
	}
	type ev struct{ kind, run string }
	evs, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (ev, error) {
		var e ev
		var run *string
		err := r.Scan(&e.kind, &run)
		if run != nil {
			e.run = *run
		}
		return e, err
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(evs) != 1 || evs[0].kind != "cron.failed" || evs[0].run != fmt.Sprint(run.ID) {
		t.Fatalf("events %+v, want one cron.failed for run %d", evs, run.ID)
	}
}
