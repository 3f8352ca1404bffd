package workers

import (
	"context"
	"errors"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/wisehosting/wisehosting/internal/errs"
)

// Service is the workers' record as the dashboard reads and changes it.
type Service struct {
	Pool *pgxpool.Pool
}

// Online counts the workers that take new deploys.
func (s *Service) Online(ctx context.Context) (int, error) { return Online(ctx, s.Pool) }

// ErrRevokedDrain: a revoked worker is neither drained nor resumed.
var ErrRevokedDrain = errs.New(errs.Conflict, "a revoked worker cannot be drained or resumed")

// Drain stops (draining) or restarts new placements on worker id.
func (s *Service) Drain(ctx context.Context, id int64, draining bool) (Worker, error) {
	w, err := Get(ctx, s.Pool, id)
	if errors.Is(err, ErrNotFound) {
		return w, errs.Wrap(errs.NotFound, "not found", err)
	}
	if err != nil {
		return w, err
	}
	w, err = SetDraining(ctx, s.Pool, w.Name, draining)
	if errors.Is(err, ErrNotFound) {
		return w, ErrRevokedDrain
	}
	return w, err
}

// Capacity is CPU, memory and disk, offered or reserved.
type Capacity struct {
	CPUMillis int `json:"cpu_millis"`
	MemoryMB  int `json:"memory_mb"`
	DiskMB    int `json:"disk_mb"`
}

// FleetWorker is a worker as instance administrators see it: status,
// last contact, capacity against what its apps reserve, and what the
// apps used in the latest usage buckets.
type FleetWorker struct {
	ID        int64      `json:"id"`
	Name      string     `json:"name"`
	Zone      string     `json:"zone"`
	Status    string     `json:"status"`
	Draining  bool       `json:"draining"`
	LastSeen  *time.Time `json:"last_seen,omitempty"`
	Version   string     `json:"agent_version"`
	DiskQuota string     `json:"disk_quota"`
	Capacity  Capacity   `json:"capacity"`
	MaxJobs   int        `json:"max_jobs"`
	// ImagesBytes is the disk the worker's app images use (its last
	// report).
	ImagesBytes int64    `json:"images_bytes"`
	Apps        int      `json:"apps"`
	Reserved    Capacity `json:"reserved"`
	ActiveJobs  int      `json:"active_jobs"`
	CPUPct      float64  `json:"cpu_pct"`
	MemBytes    int64    `json:"mem_bytes"`
}

// Fleet lists every worker by name (never nil).
func (s *Service) Fleet(ctx context.Context) ([]FleetWorker, error) {
	rows, err := s.Pool.Query(ctx, `SELECT w.id, w.name, w.zone, w.status, w.last_seen, w.agent_version, w.disk_quota,
			w.cpu_millis, w.memory_mb, w.disk_mb, w.max_jobs, w.images_bytes,
			count(a.id), COALESCE(sum(a.cpu_millis), 0), COALESCE(sum(a.memory_mb), 0), COALESCE(sum(a.disk_mb), 0),
			(SELECT count(*) FROM jobs j WHERE j.worker_id = w.id AND j.state IN ('assigned', 'running')),
			COALESCE((SELECT sum(u.cpu_pct_sum / NULLIF(u.samples, 0)) FROM usage_samples u JOIN apps x ON x.id = u.app_id
				WHERE x.worker_id = w.id AND u.bucket = (SELECT max(bucket) FROM usage_samples s WHERE s.app_id = u.app_id)
				AND u.bucket > now() - interval '15 minutes'), 0),
			COALESCE((SELECT sum(u.mem_bytes_max) FROM usage_samples u JOIN apps x ON x.id = u.app_id
				WHERE x.worker_id = w.id AND u.bucket = (SELECT max(bucket) FROM usage_samples s WHERE s.app_id = u.app_id)
				AND u.bucket > now() - interval '15 minutes'), 0)::bigint
		FROM workers w LEFT JOIN apps a ON a.worker_id = w.id AND a.status <> 'stopped'
		GROUP BY w.id ORDER BY w.name`)
	if err != nil {
		return nil, err
	}
	out, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (FleetWorker, error) {
		var v FleetWorker
		err := row.Scan(&v.ID, &v.Name, &v.Zone, &v.Status, &v.LastSeen, &v.Version, &v.DiskQuota,
			&v.Capacity.CPUMillis, &v.Capacity.MemoryMB, &v.Capacity.DiskMB, &v.MaxJobs, &v.ImagesBytes,
			&v.Apps, &v.Reserved.CPUMillis, &v.Reserved.MemoryMB, &v.Reserved.DiskMB, &v.ActiveJobs, &v.CPUPct, &v.MemBytes)
		v.Draining = v.Status == "draining"
		return v, err
	})
	if out == nil {
		out = []FleetWorker{}
	}
	return out, err
}
