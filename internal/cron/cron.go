// Package cron keeps apps' scheduled jobs and runs them exactly once per
// scheduled time across control-plane replicas.
//
// Every replica calls Tick about once a second. Tick claims the due rows
// of cron_jobs (next_run_at <= now, FOR UPDATE SKIP LOCKED, so replicas
// never wait on each other nor claim the same row), and in the same
// transaction records the run (cron_runs, unique per job and scheduled
// time), enqueues the job that performs it and moves next_run_at past
// now. A replica that dies mid-transaction leaves nothing behind: the row
// is still due and the next Tick of any replica runs it, late but once.
// Times missed while every replica was down run once, at the next Tick.
// Time is the database's clock, so replicas' clocks do not matter.
//
// A run is a fresh container of the app's current image on the worker
// that runs the app (the image is there), with the app's variables and
// shared volumes (a run is no instance, so it mounts no per-instance
// volume), killed after the job's timeout. Unless the job allows overlap,
// a run due while the previous one is still queued or running is
// recorded as skipped.
//
// The queue job of a run (kind cron) is the queue's; what its end means
// is this package's: Kinds returns the hooks the scheduler calls, which
// add the app's variables just before delivery and record the run's end
// (Finish) in the transaction that ends its job, with cron.failed when it
// failed, whether the worker reported it or the control plane gave it up.
package cron

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/wisehosting/wisehosting/internal/errs"
	"github.com/wisehosting/wisehosting/internal/jobs"
	"github.com/wisehosting/wisehosting/internal/volumes"
	"github.com/wisehosting/wisehosting/internal/wsproto"
)

// Querier is a pool or a transaction.
type Querier interface {
	Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error)
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
}

// ErrNotFound means no such scheduled job in the caller's app.
var ErrNotFound = errs.New(errs.NotFound, "not found")

// Limits.
const (
	MaxPerApp     = 20
	MaxArgs       = 64
	MaxCommand    = 16 << 10
	MaxTimeoutS   = 86400
	DefaultTimeS  = 600
	LogTailLines  = 50
	MaxLogTail    = 16 << 10
	runJobSlackS  = 120 // the queue's deadline beyond the run's own timeout
	runMaxAttempt = 2
)

// Job is a scheduled job of an app.
type Job struct {
	ID           int64     `json:"id"`
	AppID        int64     `json:"app_id"`
	Name         string    `json:"name"`
	Schedule     string    `json:"schedule"`
	Timezone     string    `json:"timezone"`
	Command      []string  `json:"command"`
	TimeoutS     int       `json:"timeout_s"`
	AllowOverlap bool      `json:"allow_overlap"`
	Enabled      bool      `json:"enabled"`
	NextRunAt    time.Time `json:"next_run_at"`
	CreatedAt    time.Time `json:"created_at"`
	LastRun      *Run      `json:"last_run,omitempty"`
}

const jobColumns = `id, app_id, name, schedule, timezone, command, timeout_s, allow_overlap, enabled, next_run_at, created_at`

func scanJob(r pgx.Row) (Job, error) {
	var j Job
	err := r.Scan(&j.ID, &j.AppID, &j.Name, &j.Schedule, &j.Timezone, &j.Command, &j.TimeoutS, &j.AllowOverlap, &j.Enabled, &j.NextRunAt, &j.CreatedAt)
	return j, err
}

// Spec is what a user sets on a job (nil fields keep their value on an
// update).
type Spec struct {
	Name         *string   `json:"name"`
	Schedule     *string   `json:"schedule"`
	Timezone     *string   `json:"timezone"`
	Command      *[]string `json:"command"`
	TimeoutS     *int      `json:"timeout_s"`
	AllowOverlap *bool     `json:"allow_overlap"`
	Enabled      *bool     `json:"enabled"`
}

var nameRe = regexp.MustCompile(`^[a-z0-9]([a-z0-9-]{0,30}[a-z0-9])?$`)

// CheckCommand validates an argv: 1 to MaxArgs valid UTF-8 arguments
// without NUL bytes, the first (the program) not empty.
func CheckCommand(argv []string) error {
	if len(argv) == 0 || strings.TrimSpace(argv[0]) == "" {
		return errs.Field("command", "the command is required, as a list of arguments: [\"/app/bin/cleanup\", \"--days\", \"7\"]")
	}
	if len(argv) > MaxArgs {
		return errs.Field("command", fmt.Sprintf("the command has more than %d arguments", MaxArgs))
	}
	total := 0
	for _, a := range argv {
		total += len(a)
		if !utf8.ValidString(a) || strings.ContainsRune(a, 0) {
			return errs.Field("command", "the command's arguments must be text without NUL bytes")
		}
	}
	if total > MaxCommand {
		return errs.Field("command", fmt.Sprintf("the command is longer than %d bytes", MaxCommand))
	}
	return nil
}

// apply merges s into j and validates the result.
func (j *Job) apply(s Spec) (Schedule, error) {
	if s.Name != nil {
		j.Name = *s.Name
	}
	if s.Schedule != nil {
		j.Schedule = strings.TrimSpace(*s.Schedule)
	}
	if s.Timezone != nil {
		j.Timezone = *s.Timezone
	}
	if s.Command != nil {
		j.Command = *s.Command
	}
	if s.TimeoutS != nil {
		j.TimeoutS = *s.TimeoutS
	}
	if s.AllowOverlap != nil {
		j.AllowOverlap = *s.AllowOverlap
	}
	if s.Enabled != nil {
		j.Enabled = *s.Enabled
	}
	if j.Timezone == "" {
		j.Timezone = "UTC"
	}
	if j.TimeoutS == 0 {
		j.TimeoutS = DefaultTimeS
	}
	if !nameRe.MatchString(j.Name) {
		return Schedule{}, errs.Field("name", "the name must be 1 to 32 lowercase letters, digits or dashes, not starting or ending with a dash")
	}
	sched, err := Parse(j.Schedule, j.Timezone)
	if err != nil {
		return sched, err
	}
	if err := CheckCommand(j.Command); err != nil {
		return sched, err
	}
	if j.TimeoutS < 1 || j.TimeoutS > MaxTimeoutS {
		return sched, errs.Field("timeout_s", fmt.Sprintf("timeout_s must be between 1 and %d seconds", MaxTimeoutS))
	}
	return sched, nil
}

// Create adds a scheduled job to an app, in tx.
func Create(ctx context.Context, tx pgx.Tx, appID int64, s Spec) (Job, error) {
	j := Job{AppID: appID, Enabled: true}
	sched, err := j.apply(s)
	if err != nil {
		return j, err
	}
	var n int
	var clash bool
	if err := tx.QueryRow(ctx, `SELECT count(*), COALESCE(bool_or(name = $2), false) FROM cron_jobs WHERE app_id = $1`, appID, j.Name).Scan(&n, &clash); err != nil {
		return j, err
	}
	if clash {
		return j, errs.Field("name", fmt.Sprintf("the app already has a scheduled job named %s", j.Name))
	}
	if n >= MaxPerApp {
		return j, errs.Field("name", fmt.Sprintf("an app has at most %d scheduled jobs", MaxPerApp))
	}
	now, err := dbNow(ctx, tx)
	if err != nil {
		return j, err
	}
	return scanJob(tx.QueryRow(ctx, `INSERT INTO cron_jobs (app_id, name, schedule, timezone, command, timeout_s, allow_overlap, enabled, next_run_at)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) RETURNING `+jobColumns,
		appID, j.Name, j.Schedule, j.Timezone, j.Command, j.TimeoutS, j.AllowOverlap, j.Enabled, sched.Next(now)))
}

// Update changes a job of app, in tx; a new schedule or time zone takes
// effect from now.
func Update(ctx context.Context, tx pgx.Tx, appID, id int64, s Spec) (Job, error) {
	j, err := scanJob(tx.QueryRow(ctx, "SELECT "+jobColumns+" FROM cron_jobs WHERE id = $1 AND app_id = $2 FOR UPDATE", id, appID))
	if errors.Is(err, pgx.ErrNoRows) {
		return j, ErrNotFound
	}
	if err != nil {
		return j, err
	}
	oldName := j.Name
	sched, err := j.apply(s)
	if err != nil {
		return j, err
	}
	if j.Name != oldName {
		var clash bool
		if err := tx.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM cron_jobs WHERE app_id = $1 AND name = $2 AND id <> $3)`, appID, j.Name, id).Scan(&clash); err != nil {
			return j, err
		}
		if clash {
			return j, errs.Field("name", fmt.Sprintf("the app already has a scheduled job named %s", j.Name))
		}
	}
	now, err := dbNow(ctx, tx)
	if err != nil {
		return j, err
	}
	return scanJob(tx.QueryRow(ctx, `UPDATE cron_jobs SET name = $3, schedule = $4, timezone = $5, command = $6, timeout_s = $7,
		allow_overlap = $8, enabled = $9, next_run_at = $10, updated_at = now() WHERE id = $1 AND app_id = $2 RETURNING `+jobColumns,
		id, appID, j.Name, j.Schedule, j.Timezone, j.Command, j.TimeoutS, j.AllowOverlap, j.Enabled, sched.Next(now)))
}

// Delete removes a job of app and its runs (a run in progress finishes).
func Delete(ctx context.Context, q Querier, appID, id int64) error {
	tag, err := q.Exec(ctx, "DELETE FROM cron_jobs WHERE id = $1 AND app_id = $2", id, appID)
	if err == nil && tag.RowsAffected() == 0 {
		return ErrNotFound
	}
	return err
}

// Get reads a job of app with its newest run.
func Get(ctx context.Context, q Querier, appID, id int64) (Job, error) {
	j, err := scanJob(q.QueryRow(ctx, "SELECT "+jobColumns+" FROM cron_jobs WHERE id = $1 AND app_id = $2", id, appID))
	if errors.Is(err, pgx.ErrNoRows) {
		return j, ErrNotFound
	}
	if err != nil {
		return j, err
	}
	runs, err := Runs(ctx, q, appID, id, 1)
	if err == nil && len(runs) > 0 {
		j.LastRun = &runs[0]
	}
	return j, err
}

// List returns an app's jobs, each with its newest run.
func List(ctx context.Context, q Querier, appID int64) ([]Job, error) {
	rows, err := q.Query(ctx, "SELECT "+jobColumns+" FROM cron_jobs WHERE app_id = $1 ORDER BY name", appID)
	if err != nil {
		return nil, err
	}
	list, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (Job, error) { return scanJob(r) })
	if err != nil {
		return nil, err
	}
	for i := range list {
		runs, err := Runs(ctx, q, appID, list[i].ID, 1)
		if err != nil {
			return nil, err
		}
		if len(runs) > 0 {
			list[i].LastRun = &runs[0]
		}
	}
	return list, nil
}

// Run is one run of a job. State is pending (queued for a worker),
// running, succeeded, failed (non-zero exit, timeout, or the worker or
// its job failed) or skipped (with the reason in Error).
type Run struct {
	ID          int64      `json:"id"`
	JobID       int64      `json:"cron_job_id"`
	ScheduledAt time.Time  `json:"scheduled_at"`
	State       string     `json:"state"`
	ExitCode    *int       `json:"exit_code"`
	DurationMS  *int64     `json:"duration_ms"`
	LogTail     string     `json:"log_tail"`
	Error       string     `json:"error,omitempty"`
	WorkerID    int64      `json:"worker_id,omitempty"`
	StartedAt   *time.Time `json:"started_at,omitempty"`
	FinishedAt  *time.Time `json:"finished_at,omitempty"`
}

// runColumns derive a run's state from its queue job while the worker has
// not reported (running once acknowledged; failed when the queue gave the
// job up, e.g. its worker vanished or it passed its deadline).
const runColumns = `r.id, r.cron_job_id, r.scheduled_at,
	CASE WHEN r.state <> 'pending' THEN r.state
		WHEN j.state = 'running' THEN 'running'
		WHEN j.state IN ('failed', 'cancelled', 'succeeded') OR j.id IS NULL THEN 'failed'
		ELSE 'pending' END,
	r.exit_code, r.duration_ms, r.log_tail,
	CASE WHEN r.state = 'pending' AND (j.state IN ('failed', 'cancelled', 'succeeded') OR j.id IS NULL)
		THEN COALESCE(NULLIF(j.error, ''), 'the run was lost') ELSE r.error END,
	COALESCE(j.worker_id, 0), j.acked_at, COALESCE(r.finished_at, CASE WHEN j.state IN ('failed', 'cancelled') THEN j.finished_at END)`

func scanRun(r pgx.Row) (Run, error) {
	var x Run
	err := r.Scan(&x.ID, &x.JobID, &x.ScheduledAt, &x.State, &x.ExitCode, &x.DurationMS, &x.LogTail, &x.Error, &x.WorkerID, &x.StartedAt, &x.FinishedAt)
	return x, err
}

// Runs returns a job's newest runs (at most limit, newest first).
func Runs(ctx context.Context, q Querier, appID, jobID int64, limit int) ([]Run, error) {
	if limit <= 0 || limit > 500 {
		limit = 50
	}
	rows, err := q.Query(ctx, `SELECT `+runColumns+` FROM cron_runs r LEFT JOIN jobs j ON j.id = r.job_id
		WHERE r.cron_job_id = $1 AND r.app_id = $2 ORDER BY r.scheduled_at DESC, r.id DESC LIMIT $3`, jobID, appID, limit)
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, func(r pgx.CollectableRow) (Run, error) { return scanRun(r) })
}

func dbNow(ctx context.Context, q Querier) (time.Time, error) {
	var now time.Time
	err := q.QueryRow(ctx, "SELECT now()").Scan(&now)
	return now, err
}

// due is a claimed row of cron_jobs.
type due struct {
	Job
	sched Schedule
}

// Tick claims the due jobs (at most 100) and starts one run of each, in
// one transaction. It returns the runs it recorded (skipped ones
// included).
func Tick(ctx context.Context, pool *pgxpool.Pool) (int, error) {
	n := 0
	err := pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
		n = 0
		now, err := dbNow(ctx, tx)
		if err != nil {
			return err
		}
		rows, err := tx.Query(ctx, "SELECT "+jobColumns+` FROM cron_jobs WHERE enabled AND next_run_at <= $1
			ORDER BY next_run_at LIMIT 100 FOR UPDATE SKIP LOCKED`, now)
		if err != nil {
			return err
		}
		list, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (Job, error) { return scanJob(r) })
		if err != nil {
			return err
		}
		for _, j := range list {
			sched, err := Parse(j.Schedule, j.Timezone)
			if err != nil {
				// Stored before a stricter check: stop it rather than retry forever.
				if _, err := tx.Exec(ctx, "UPDATE cron_jobs SET enabled = false, updated_at = now() WHERE id = $1", j.ID); err != nil {
					return err
				}
				continue
			}
			at := sched.Latest(j.NextRunAt.Add(-time.Nanosecond), now)
			if at.IsZero() {
				at = j.NextRunAt
			}
			started, err := start(ctx, tx, j, at)
			if err != nil {
				return err
			}
			if started {
				n++
			}
			next := sched.Next(now)
			if next.IsZero() {
				_, err = tx.Exec(ctx, "UPDATE cron_jobs SET enabled = false, updated_at = now() WHERE id = $1", j.ID)
			} else {
				_, err = tx.Exec(ctx, "UPDATE cron_jobs SET next_run_at = $2 WHERE id = $1", j.ID, next)
			}
			if err != nil {
				return err
			}
		}
		return nil
	})
	return n, err
}

// RunNow starts a run of a job of app at once (outside its schedule), in
// tx, and returns it.
func RunNow(ctx context.Context, tx pgx.Tx, appID, id int64) (Run, error) {
	j, err := scanJob(tx.QueryRow(ctx, "SELECT "+jobColumns+" FROM cron_jobs WHERE id = $1 AND app_id = $2 FOR UPDATE", id, appID))
	if errors.Is(err, pgx.ErrNoRows) {
		return Run{}, ErrNotFound
	}
	if err != nil {
		return Run{}, err
	}
	now, err := dbNow(ctx, tx)
	if err != nil {
		return Run{}, err
	}
	if _, err := start(ctx, tx, j, now); err != nil {
		return Run{}, err
	}
	return scanRun(tx.QueryRow(ctx, `SELECT `+runColumns+` FROM cron_runs r LEFT JOIN jobs j ON j.id = r.job_id
		WHERE r.cron_job_id = $1 AND r.scheduled_at = $2`, id, now))
}

// start records the run of j at `at` and enqueues it, or records it as
// skipped with the reason. A run already recorded for that time (another
// replica's) makes it a no-op.
func start(ctx context.Context, tx pgx.Tx, j Job, at time.Time) (bool, error) {
	var runID int64
	err := tx.QueryRow(ctx, `INSERT INTO cron_runs (cron_job_id, app_id, scheduled_at) VALUES ($1, $2, $3)
		ON CONFLICT (cron_job_id, scheduled_at) DO NOTHING RETURNING id`, j.ID, j.AppID, at).Scan(&runID)
	if errors.Is(err, pgx.ErrNoRows) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	skip := func(reason string) (bool, error) {
		_, err := tx.Exec(ctx, "UPDATE cron_runs SET state = 'skipped', error = $2, finished_at = now() WHERE id = $1", runID, reason)
		return true, err
	}
	if !j.AllowOverlap {
		var prev int64
		err := tx.QueryRow(ctx, `SELECT r.id FROM cron_runs r JOIN jobs q ON q.id = r.job_id
			WHERE r.cron_job_id = $1 AND r.id <> $2 AND r.state = 'pending' AND q.state IN ('pending', 'assigned', 'running')
			ORDER BY r.id LIMIT 1`, j.ID, runID).Scan(&prev)
		if err == nil {
			return skip(fmt.Sprintf("the previous run (%d) was still running and this job does not allow overlapping runs", prev))
		}
		if !errors.Is(err, pgx.ErrNoRows) {
			return false, err
		}
	}
	var p wsproto.CronPayload
	var status string
	var deleting bool
	err = tx.QueryRow(ctx, `SELECT a.slug, a.team_id, a.cpu_millis, a.memory_mb, a.status, a.deleting_at IS NOT NULL,
			COALESCE((SELECT d.image FROM deployments d WHERE d.app_id = a.id AND d.status = 'succeeded' AND d.image <> ''
				AND d.worker_id = a.worker_id ORDER BY d.finished_at DESC NULLS LAST, d.id DESC LIMIT 1), '')
		FROM apps a WHERE a.id = $1`, j.AppID).Scan(&p.Slug, &p.TeamID, &p.CPUMillis, &p.MemoryMB, &status, &deleting, &p.Image)
	if err != nil {
		return false, err
	}
	switch {
	case deleting:
		return skip("the app is being deleted")
	case status == "stopped":
		return skip("the app is stopped")
	case p.Image == "":
		return skip("the app has no successful deployment yet, so there is no image to run")
	}
	if p.Volumes, err = volumes.Mounts(ctx, tx, j.AppID, -1); err != nil {
		return false, err
	}
	p.RunID, p.Command, p.TimeoutS = runID, j.Command, j.TimeoutS
	jobID, err := jobs.Enqueue(ctx, tx, jobs.New{Kind: wsproto.JobCron, AppID: j.AppID, Payload: p,
		CPUMillis: p.CPUMillis, MemoryMB: p.MemoryMB, TimeoutS: j.TimeoutS + runJobSlackS, MaxAttempts: runMaxAttempt})
	if err != nil {
		return false, err
	}
	_, err = tx.Exec(ctx, "UPDATE cron_runs SET job_id = $2 WHERE id = $1", runID, jobID)
	return true, err
}

// Finished is a run whose result was recorded.
type Finished struct {
	RunID, CronJobID, AppID int64
	Name                    string
	OK                      bool
	ExitCode                int
	Error                   string
}

// Finish records the result of a cron queue job, in the transaction that
// ends the job. ok is false when the run was already recorded or is gone.
func Finish(ctx context.Context, tx pgx.Tx, j jobs.Job, r wsproto.JobResult) (Finished, bool, error) {
	var p wsproto.CronPayload
	if err := json.Unmarshal(j.Payload, &p); err != nil || p.RunID == 0 {
		return Finished{}, false, nil
	}
	var out wsproto.CronOutput
	var exit *int
	var dur *int64
	if len(r.Output) > 0 && json.Unmarshal(r.Output, &out) == nil {
		exit, dur = &out.ExitCode, &out.DurationMS
	}
	state := "succeeded"
	if !r.OK {
		state = "failed"
	}
	tail := out.LogTail
	if len(tail) > MaxLogTail {
		tail = tail[len(tail)-MaxLogTail:]
	}
	tail = strings.ToValidUTF8(strings.ReplaceAll(tail, "\x00", ""), "\uFFFD")
	f := Finished{RunID: p.RunID, AppID: j.AppID, OK: r.OK, ExitCode: out.ExitCode, Error: r.Error}
	err := tx.QueryRow(ctx, `UPDATE cron_runs r SET state = $2, exit_code = $3, duration_ms = $4, log_tail = $5, error = $6, finished_at = now()
		FROM cron_jobs c WHERE r.id = $1 AND r.state = 'pending' AND c.id = r.cron_job_id RETURNING r.cron_job_id, c.name`,
		p.RunID, state, exit, dur, tail, truncate(r.Error, 2000)).Scan(&f.CronJobID, &f.Name)
	if errors.Is(err, pgx.ErrNoRows) {
		return f, false, nil
	}
	return f, err == nil, err
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n]
}
