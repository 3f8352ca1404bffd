package jobs

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// NotifyChannel is the LISTEN/NOTIFY channel announcing new pending jobs.
const NotifyChannel = "wisehosting_jobs"

// Querier is satisfied by pgx.Tx, *pgx.Conn and *pgxpool.Pool.
type Querier interface {
	Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error)
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
}

// New describes a job to enqueue.
type New struct {
	Kind         string // wsproto.JobDeploy, …
	AppID        int64
	DeploymentID int64
	Payload      any // marshalled to JSON; nil for {}
	Priority     int16
	CPUMillis    int // capacity the job reserves on its worker
	MemoryMB     int
	TimeoutS     int // 0: 900
	MaxAttempts  int // 0: 3
	// PinWorker, when set, is the only worker the job may run on (it
	// waits while that worker is away); such a job reserves no capacity
	// check beyond the worker's job slots.
	PinWorker int64
}

func nullID(id int64) any {
	if id == 0 {
		return nil
	}
	return id
}

// Enqueue inserts a pending job and notifies schedulers (the notification
// is delivered when q's transaction commits).
//
// A restart, stop or delete job of an app reaches every worker concerned:
// the job goes to the worker of the app's first instance, and Enqueue adds
// a copy for each other worker (payload worker_id, placed only there) that
// runs an instance (restart, stop) or ran one, its image included (delete:
// instances and succeeded deploy and rollback jobs). It returns the first
// job's id.
func Enqueue(ctx context.Context, q Querier, j New) (int64, error) {
	id, err := enqueueOne(ctx, q, j)
	if err != nil || j.AppID == 0 || (j.Kind != "restart" && j.Kind != "stop" && j.Kind != "delete") {
		return id, err
	}
	var fields map[string]any
	raw, _ := json.Marshal(j.Payload)
	if json.Unmarshal(raw, &fields) != nil || fields == nil {
		fields = map[string]any{}
	}
	if _, ok := fields["worker_id"]; ok {
		return id, nil // already a copy for one worker
	}
	var workers []int64
	if err := q.QueryRow(ctx, `SELECT COALESCE(array_agg(w ORDER BY w), '{}') FROM (
			SELECT i.worker_id FROM app_instances i WHERE i.app_id = $1 AND i.worker_id IS NOT NULL
			UNION SELECT worker_id FROM jobs WHERE $2 AND app_id = $1 AND kind IN ('deploy', 'rollback') AND state = 'succeeded'
				AND worker_id IS NOT NULL
			EXCEPT SELECT worker_id FROM apps WHERE id = $1 AND worker_id IS NOT NULL) x(w)`,
		j.AppID, j.Kind == "delete").Scan(&workers); err != nil {
		return 0, fmt.Errorf("listing the app's workers: %w", err)
	}
	for _, w := range workers {
		fields["worker_id"] = w
		c := j
		c.Payload = fields
		if _, err := enqueueOne(ctx, q, c); err != nil {
			return 0, err
		}
	}
	return id, nil
}

// pinnedWorker is the worker_id a job's payload names (0 when none).
func pinnedWorker(payload json.RawMessage) int64 {
	var p struct {
		WorkerID int64 `json:"worker_id"`
	}
	json.Unmarshal(payload, &p)
	return max(p.WorkerID, 0)
}

func enqueueOne(ctx context.Context, q Querier, j New) (int64, error) {
	payload := []byte("{}")
	if j.Payload != nil {
		var err error
		if payload, err = json.Marshal(j.Payload); err != nil {
			return 0, fmt.Errorf("encoding job payload: %w", err)
		}
	}
	if j.TimeoutS <= 0 {
		j.TimeoutS = 900
	}
	if j.MaxAttempts <= 0 {
		j.MaxAttempts = 3
	}
	var id int64
	err := q.QueryRow(ctx, `INSERT INTO jobs (kind, app_id, deployment_id, payload, priority, cpu_millis, memory_mb, timeout_s, max_attempts, pin_worker_id)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) RETURNING id`,
		j.Kind, nullID(j.AppID), nullID(j.DeploymentID), payload, j.Priority, j.CPUMillis, j.MemoryMB, j.TimeoutS, j.MaxAttempts, nullID(j.PinWorker)).Scan(&id)
	if err != nil {
		return 0, fmt.Errorf("enqueuing %s job: %w", j.Kind, err)
	}
	if _, err := q.Exec(ctx, "SELECT pg_notify($1, $2)", NotifyChannel, fmt.Sprint(id)); err != nil {
		return 0, fmt.Errorf("notifying schedulers: %w", err)
	}
	return id, nil
}
