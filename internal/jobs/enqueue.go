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
}

func nullID(id int64) any {
	if id == 0 {
		return nil
	}
	return id
}

// Enqueue inserts a pending job and notifies schedulers (the notification
// is delivered when q's transaction commits).
func Enqueue(ctx context.Context, q Querier, j New) (int64, error) {
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
	err := q.QueryRow(ctx, `INSERT INTO jobs (kind, app_id, deployment_id, payload, priority, cpu_millis, memory_mb, timeout_s, max_attempts)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) RETURNING id`,
		j.Kind, nullID(j.AppID), nullID(j.DeploymentID), payload, j.Priority, j.CPUMillis, j.MemoryMB, j.TimeoutS, j.MaxAttempts).Scan(&id)
	if err != nil {
		return 0, fmt.Errorf("enqueuing %s job: %w", j.Kind, err)
	}
	if _, err := q.Exec(ctx, "SELECT pg_notify($1, $2)", NotifyChannel, fmt.Sprint(id)); err != nil {
		return 0, fmt.Errorf("notifying schedulers: %w", err)
	}
	return id, nil
}
