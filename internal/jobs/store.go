package jobs

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// AssignChannel is the NOTIFY channel telling replicas that jobs were
// assigned; the payload is the worker id, so only the replica holding that
// worker's connection does anything.
const AssignChannel = "wisehosting_assign"

// Job is a row of the jobs table.
type Job struct {
	ID           int64
	Kind         string
	AppID        int64
	DeploymentID int64
	WorkerID     int64
	State        string
	Payload      json.RawMessage
	Attempt      int
	MaxAttempts  int
	TimeoutS     int
	CPUMillis    int
	MemoryMB     int
	Error        string
	CreatedAt    time.Time
	AssignedAt   *time.Time
}

const jobColumns = `id, kind, COALESCE(app_id, 0), COALESCE(deployment_id, 0), COALESCE(worker_id, 0), state, payload,
	attempt, max_attempts, timeout_s, cpu_millis, memory_mb, error, created_at, assigned_at`

// jColumns are jobColumns of the table aliased j.
const jColumns = `j.id, j.kind, COALESCE(j.app_id, 0), COALESCE(j.deployment_id, 0), COALESCE(j.worker_id, 0), j.state, j.payload,
	j.attempt, j.max_attempts, j.timeout_s, j.cpu_millis, j.memory_mb, j.error, j.created_at, j.assigned_at`

func scanJob(row pgx.Row) (Job, error) {
	var j Job
	err := row.Scan(&j.ID, &j.Kind, &j.AppID, &j.DeploymentID, &j.WorkerID, &j.State, &j.Payload, &j.Attempt,
		&j.MaxAttempts, &j.TimeoutS, &j.CPUMillis, &j.MemoryMB, &j.Error, &j.CreatedAt, &j.AssignedAt)
	return j, err
}

// Get reads one job.
func Get(ctx context.Context, q Querier, id int64) (Job, error) {
	return scanJob(q.QueryRow(ctx, "SELECT "+jobColumns+" FROM jobs WHERE id = $1", id))
}

// workerLoad is a worker's capacity and what its assigned work reserves.
type workerLoad struct {
	id                int64
	cpu, mem, maxJobs int
	usedCPU, usedMem  int
	running           int
	// draining: the operator stopped new placements; only the stop and
	// delete jobs of the apps it still runs go there.
	draining bool
}

// utilisation is the larger of CPU and memory use, as a fraction; workers
// that report no capacity count as full-ish but usable for zero-size jobs.
func (w *workerLoad) utilisation() float64 {
	u := 0.0
	if w.cpu > 0 {
		u = float64(w.usedCPU) / float64(w.cpu)
	}
	if w.mem > 0 {
		u = max(u, float64(w.usedMem)/float64(w.mem))
	}
	return u
}

func (w *workerLoad) fits(j *Job) bool {
	if w.draining || w.running >= w.maxJobs {
		return false
	}
	if w.cpu > 0 && w.usedCPU+j.CPUMillis > w.cpu {
		return false
	}
	if w.mem > 0 && w.usedMem+j.MemoryMB > w.mem {
		return false
	}
	return true
}

// loadWorkers locks the rows of the online and draining workers (so
// concurrent schedulers on other replicas place one batch at a time
// against a consistent view of capacity) and reads their reservations:
// running apps plus active jobs.
func loadWorkers(ctx context.Context, tx pgx.Tx, heartbeat time.Duration) (map[int64]*workerLoad, error) {
	rows, err := tx.Query(ctx, `SELECT w.id, w.cpu_millis, w.memory_mb, w.max_jobs, w.status = 'draining' FROM workers w
		WHERE w.status IN ('online', 'draining') AND w.last_seen > now() - $1::interval
		ORDER BY w.id FOR UPDATE`, heartbeat.String())
	if err != nil {
		return nil, err
	}
	out := map[int64]*workerLoad{}
	for rows.Next() {
		w := &workerLoad{}
		if err := rows.Scan(&w.id, &w.cpu, &w.mem, &w.maxJobs, &w.draining); err != nil {
			rows.Close()
			return nil, err
		}
		out[w.id] = w
	}
	rows.Close()
	if err := rows.Err(); err != nil || len(out) == 0 {
		return out, err
	}
	rows, err = tx.Query(ctx, `SELECT worker_id, sum(cpu_millis), sum(memory_mb), 0 FROM apps
			WHERE worker_id IS NOT NULL AND status IN ('running', 'deploying', 'crashed') GROUP BY worker_id
		UNION ALL
		SELECT i.worker_id, sum(a.cpu_millis), sum(a.memory_mb), 0 FROM app_instances i JOIN apps a ON a.id = i.app_id
			WHERE i.worker_id IS NOT NULL AND i.slot < a.replicas AND a.status <> 'stopped' GROUP BY i.worker_id
		UNION ALL
		SELECT worker_id, sum(cpu_millis), sum(memory_mb), count(*) FROM jobs
			WHERE state IN ('assigned', 'running') AND worker_id IS NOT NULL GROUP BY worker_id`)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	for rows.Next() {
		var id, cpu, mem, n int64
		if err := rows.Scan(&id, &cpu, &mem, &n); err != nil {
			return nil, err
		}
		if w := out[id]; w != nil {
			w.usedCPU += int(cpu)
			w.usedMem += int(mem)
			w.running += int(n)
		}
	}
	return out, rows.Err()
}

// spread is where an app's other instances run, for anti-affinity.
type spread struct {
	perWorker map[int64]int
	perZone   map[string]int
	zoneOf    map[int64]string
}

// spreadOf reads where the app's instances other than slot run (and the
// workers chosen for its jobs earlier in the batch), with every worker's
// zone.
func spreadOf(ctx context.Context, tx pgx.Tx, appID int64, slot int, batch []int64) (*spread, error) {
	sp := &spread{perWorker: map[int64]int{}, perZone: map[string]int{}, zoneOf: map[int64]string{}}
	rows, err := tx.Query(ctx, `SELECT id, zone FROM workers WHERE status IN ('online', 'draining')`)
	if err != nil {
		return nil, err
	}
	for rows.Next() {
		var id int64
		var zone string
		if err := rows.Scan(&id, &zone); err != nil {
			rows.Close()
			return nil, err
		}
		sp.zoneOf[id] = zone
	}
	rows.Close()
	if appID == 0 {
		return sp, rows.Err()
	}
	rows, err = tx.Query(ctx, `SELECT worker_id FROM apps WHERE id = $1 AND worker_id IS NOT NULL AND $2 <> 0
		UNION ALL SELECT i.worker_id FROM app_instances i JOIN apps a ON a.id = i.app_id
			WHERE i.app_id = $1 AND i.slot <> $2 AND i.slot < a.replicas AND i.worker_id IS NOT NULL`, appID, slot)
	if err != nil {
		return nil, err
	}
	ids, err := pgx.CollectRows(rows, pgx.RowTo[int64])
	if err != nil {
		return nil, err
	}
	for _, id := range append(ids, batch...) {
		sp.perWorker[id]++
		if z := sp.zoneOf[id]; z != "" {
			sp.perZone[z]++
		}
	}
	return sp, nil
}

// less orders candidate workers for one instance: fewer instances of the
// app on the worker, then in its zone, then lower utilisation, fewer
// running jobs, lower id.
func (sp *spread) less(a, b *workerLoad) bool {
	if x, y := sp.perWorker[a.id], sp.perWorker[b.id]; x != y {
		return x < y
	}
	if x, y := sp.perZone[sp.zoneOf[a.id]], sp.perZone[sp.zoneOf[b.id]]; x != y {
		return x < y
	}
	if a.utilisation() != b.utilisation() {
		return a.utilisation() < b.utilisation()
	}
	if a.running != b.running {
		return a.running < b.running
	}
	return a.id < b.id
}

// Placement records where one job goes.
type Placement struct {
	JobID, WorkerID int64
}

// AssignBatch is Assign without hooks.
func AssignBatch(ctx context.Context, pool *pgxpool.Pool, limit int, heartbeat, ackTimeout time.Duration) ([]Placement, error) {
	return Assign(ctx, pool, AssignOptions{Limit: limit, Heartbeat: heartbeat, AckTimeout: ackTimeout})
}

// AssignOptions configures one placement round.
type AssignOptions struct {
	Limit                 int // jobs claimed
	Heartbeat, AckTimeout time.Duration
	// Kinds' Place hooks see each claimed job before it is placed (e.g.
	// the limits of its team's plan, see internal/deploys).
	Kinds Kinds
}

// Assign claims up to o.Limit pending jobs (FOR UPDATE SKIP LOCKED, so
// concurrent schedulers never claim the same job) and places each on the
// online worker with the lowest utilisation that has room, preferring the
// worker that already runs the job's app (cut-over is local). Draining
// workers get only the stop and delete jobs of the apps they run. Jobs
// that fit nowhere stay pending, and so do jobs of an app that has a job
// on a worker (one job per app at a time). It returns the placements made.
func Assign(ctx context.Context, pool *pgxpool.Pool, o AssignOptions) ([]Placement, error) {
	var placed []Placement
	err := pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
		placed = placed[:0]
		// A job of an instance beyond the first (payload slot > 0) belongs
		// to the worker that runs that instance, not the app's row's.
		rows, err := tx.Query(ctx, `SELECT j.id, j.kind, COALESCE(j.app_id, 0), COALESCE(j.deployment_id, 0), j.cpu_millis, j.memory_mb,
				j.payload, CASE WHEN COALESCE((j.payload->>'slot')::int, 0) > 0 AND j.kind IN ('deploy', 'rollback')
					THEN COALESCE((SELECT worker_id FROM app_instances WHERE app_id = j.app_id AND slot = (j.payload->>'slot')::int), 0)
					WHEN j.kind IN ('restart', 'stop', 'delete') AND j.payload->>'worker_id' ~ '^[1-9][0-9]{0,17}$'
					THEN (j.payload->>'worker_id')::bigint
					ELSE COALESCE(a.worker_id, 0) END, COALESCE(j.pin_worker_id, 0)
			FROM jobs j LEFT JOIN apps a ON a.id = j.app_id
			WHERE j.state = 'pending' AND j.run_after <= now()
			ORDER BY j.priority DESC, j.id LIMIT $1 FOR UPDATE OF j SKIP LOCKED`, o.Limit)
		if err != nil {
			return err
		}
		var batch []pending
		for rows.Next() {
			var p pending
			if err := rows.Scan(&p.ID, &p.Kind, &p.AppID, &p.DeploymentID, &p.CPUMillis, &p.MemoryMB, &p.Payload, &p.appWorker, &p.pinWorker); err != nil {
				rows.Close()
				return err
			}
			batch = append(batch, p)
		}
		rows.Close()
		if err := rows.Err(); err != nil || len(batch) == 0 {
			return err
		}
		if batch, err = o.Kinds.place(ctx, tx, batch); err != nil {
			return err
		}
		load, err := loadWorkers(ctx, tx, o.Heartbeat)
		if err != nil {
			return err
		}
		// One job per app at a time on a worker: an app with a job on the
		// worker that runs it (or placed there earlier in this batch)
		// waits, whatever the job, and is not moved elsewhere meanwhile;
		// the job's end wakes placement. The worker rows locked above make
		// concurrent placements take turns.
		// Scheduled runs (kind cron) run beside the app's other jobs and
		// neither wait for them nor hold them up.
		rows, err = tx.Query(ctx, `SELECT DISTINCT app_id, worker_id FROM jobs
			WHERE state IN ('assigned', 'running') AND app_id IS NOT NULL AND worker_id IS NOT NULL AND kind <> 'cron'`)
		if err != nil {
			return err
		}
		busyOn := map[[2]int64]bool{}
		for rows.Next() {
			var app, worker int64
			if err := rows.Scan(&app, &worker); err != nil {
				rows.Close()
				return err
			}
			busyOn[[2]int64{app, worker}] = true
			busyOn[[2]int64{app, 0}] = true // somewhere
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return err
		}
		var jobIDs, workerIDs []int64
		var noWorker []int64
		placedFor := map[int64][]int64{} // app → workers chosen in this batch
		for i := range batch {
			j := &batch[i]
			// A pinned job (a volume's removal) goes to its worker only.
			if j.pinWorker != 0 && j.AppID == 0 {
				if w := load[j.pinWorker]; w != nil && w.running < w.maxJobs {
					w.running++
					jobIDs, workerIDs = append(jobIDs, j.ID), append(workerIDs, w.id)
				}
				continue
			}
			// A scheduled run needs the app's image, which is on the
			// worker that runs the app: it goes there when it has room.
			if j.Kind == "cron" {
				if w := load[j.appWorker]; w != nil && w.fits(&j.Job) {
					w.usedCPU += j.CPUMillis
					w.usedMem += j.MemoryMB
					w.running++
					jobIDs, workerIDs = append(jobIDs, j.ID), append(workerIDs, w.id)
				}
				continue
			}
			// An app with no worker yet (first deploy) waits for any job of
			// its own.
			if j.AppID != 0 && busyOn[[2]int64{j.AppID, j.appWorker}] {
				continue
			}
			// Stop and delete jobs belong to the worker that runs the app;
			// with no such worker there is nothing to do.
			if j.Kind == "stop" || j.Kind == "delete" {
				if j.appWorker == 0 {
					noWorker = append(noWorker, j.ID)
					continue
				}
				if w := load[j.appWorker]; w != nil {
					w.running++
					jobIDs, workerIDs = append(jobIDs, j.ID), append(workerIDs, w.id)
					busyOn[[2]int64{j.AppID, w.id}], busyOn[[2]int64{j.AppID, 0}] = true, true
				}
				continue
			}
			// A restart job's copy for another worker that runs instances
			// of the app (see Enqueue), or an instance's restart, waits for
			// that worker (also a draining one: it adds no load).
			if j.Kind == "restart" && pinnedWorker(j.Payload) != 0 {
				if w := load[j.appWorker]; w != nil && w.running < w.maxJobs {
					w.running++
					jobIDs, workerIDs = append(jobIDs, j.ID), append(workerIDs, w.id)
					busyOn[[2]int64{j.AppID, w.id}], busyOn[[2]int64{j.AppID, 0}] = true, true
				}
				continue
			}
			var best *workerLoad
			if j.pinWorker != 0 {
				// The app's volumes live on that worker: only there.
				if w := load[j.pinWorker]; w != nil && w.fits(&j.Job) {
					best = w
				}
			} else if w := load[j.appWorker]; w != nil && w.fits(&j.Job) {
				best = w
			} else {
				spread, err := spreadOf(ctx, tx, j.AppID, PayloadSlot(j.Payload), placedFor[j.AppID])
				if err != nil {
					return err
				}
				for _, w := range load {
					if !w.fits(&j.Job) {
						continue
					}
					// Fewest instances of the app on the worker, then in
					// its zone (anti-affinity), then lowest utilisation,
					// fewest running jobs, lowest id: deterministic ties.
					if best == nil || spread.less(w, best) {
						best = w
					}
				}
			}
			if best == nil {
				continue
			}
			if j.AppID != 0 {
				placedFor[j.AppID] = append(placedFor[j.AppID], best.id)
			}
			best.usedCPU += j.CPUMillis
			best.usedMem += j.MemoryMB
			best.running++
			jobIDs, workerIDs = append(jobIDs, j.ID), append(workerIDs, best.id)
			if j.AppID != 0 {
				busyOn[[2]int64{j.AppID, best.id}], busyOn[[2]int64{j.AppID, 0}] = true, true
			}
		}
		if len(noWorker) > 0 {
			// Done: nothing runs anywhere (an app being deleted that runs
			// nowhere goes now, see the kind's Ended hook).
			rows, err := tx.Query(ctx, `UPDATE jobs j SET state = 'succeeded', finished_at = now(), error = 'no worker runs this app'
				WHERE id = ANY($1) RETURNING `+jColumns, noWorker)
			if err != nil {
				return err
			}
			done, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (Job, error) { return scanJob(r) })
			if err != nil {
				return err
			}
			for _, d := range done {
				if err := o.Kinds.ended(ctx, tx, End{Job: d, Reason: d.Error}); err != nil {
					return err
				}
			}
		}
		if len(jobIDs) == 0 {
			return nil
		}
		_, err = tx.Exec(ctx, `UPDATE jobs j SET state = 'assigned', worker_id = p.worker_id, attempt = j.attempt + 1,
				assigned_at = now(), acked_at = NULL, sent_at = NULL, deadline_at = now() + $3::interval
			FROM unnest($1::bigint[], $2::bigint[]) AS p(job_id, worker_id) WHERE j.id = p.job_id`,
			jobIDs, workerIDs, o.AckTimeout.String())
		if err != nil {
			return fmt.Errorf("recording assignments: %w", err)
		}
		notified := map[int64]bool{}
		for i, id := range jobIDs {
			placed = append(placed, Placement{JobID: id, WorkerID: workerIDs[i]})
			if !notified[workerIDs[i]] {
				notified[workerIDs[i]] = true
				if _, err := tx.Exec(ctx, "SELECT pg_notify($1, $2)", AssignChannel, fmt.Sprint(workerIDs[i])); err != nil {
					return err
				}
			}
		}
		return nil
	})
	return placed, err
}

// Undelivered returns a worker's assigned jobs that were never sent or
// were sent more than resend ago without an acknowledgement, and marks
// them sent.
func Undelivered(ctx context.Context, pool *pgxpool.Pool, workerID int64, resend time.Duration) ([]Job, error) {
	rows, err := pool.Query(ctx, `UPDATE jobs SET sent_at = now()
		WHERE id IN (SELECT id FROM jobs WHERE state = 'assigned' AND worker_id = $1 AND cancel_requested_at IS NULL
			AND (sent_at IS NULL OR sent_at < now() - $2::interval) ORDER BY id LIMIT 500 FOR UPDATE SKIP LOCKED)
		RETURNING `+jobColumns, workerID, resend.String())
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []Job
	for rows.Next() {
		j, err := scanJob(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, j)
	}
	return out, rows.Err()
}

// Ack records that workerID took the job. Acks of jobs not assigned to that
// worker are ignored (a worker cannot claim another's job).
func Ack(ctx context.Context, q Querier, workerID, jobID int64) (bool, error) {
	tag, err := q.Exec(ctx, `UPDATE jobs SET state = 'running', acked_at = now(), deadline_at = now() + make_interval(secs => timeout_s)
		WHERE id = $1 AND worker_id = $2 AND state = 'assigned'`, jobID, workerID)
	return tag.RowsAffected() == 1, err
}

// Finish records a job's result. It reports false when the job is not an
// active job of workerID (late or foreign results are ignored); a job
// requeued from workerID and not placed again yet counts as its job (the
// worker ran it after all). A failure
// of a job whose cancellation was requested ends it as cancelled.
func Finish(ctx context.Context, tx pgx.Tx, workerID, jobID int64, ok bool, errMsg string) (Job, bool, error) {
	state := "failed"
	if ok {
		state = "succeeded"
	}
	j, err := scanJob(tx.QueryRow(ctx, `UPDATE jobs SET state = CASE WHEN $3 = 'failed' AND cancel_requested_at IS NOT NULL THEN 'cancelled' ELSE $3 END,
			error = $4, finished_at = now()
		WHERE id = $1 AND worker_id = $2 AND state IN ('pending', 'assigned', 'running') RETURNING `+jobColumns,
		jobID, workerID, state, truncate(errMsg, 2000)))
	if err == pgx.ErrNoRows {
		return j, false, nil
	}
	return j, err == nil, err
}

func truncate(s string, n int) string {
	if len(s) > n {
		return s[:n]
	}
	return s
}
