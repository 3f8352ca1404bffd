// Package workers is the control plane's record of worker hosts: adding one
// (its raw API key is shown once and only its SHA-256 is stored),
// authenticating it, its capacity and liveness, and the short-lived JWTs it
// connects with.
package workers

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"errors"
	"fmt"
	"net/netip"
	"regexp"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/wisehosting/wisehosting/internal/auth"
	"github.com/wisehosting/wisehosting/internal/jobs"
	"github.com/wisehosting/wisehosting/internal/wsproto"
)

// KeyPrefix starts every raw worker API key, so a leaked key is recognisable
// by secret scanners.
const KeyPrefix = "whk_"

// Worker is a row of the workers table.
type Worker struct {
	ID        int64      `json:"id"`
	Name      string     `json:"name"`
	KeyHash   []byte     `json:"-"`
	WGIP      string     `json:"wg_ip,omitempty"`
	Zone      string     `json:"zone,omitempty"`
	Status    string     `json:"status"`
	CPUMillis int        `json:"cpu_millis"`
	MemoryMB  int        `json:"memory_mb"`
	DiskMB    int        `json:"disk_mb"`
	MaxJobs   int        `json:"max_jobs"`
	DiskQuota string     `json:"disk_quota"`
	Version   string     `json:"agent_version,omitempty"`
	LastSeen  *time.Time `json:"last_seen,omitempty"`
	RevokedAt *time.Time `json:"revoked_at,omitempty"`
	CreatedAt time.Time  `json:"created_at"`
}

// Revoked reports whether the worker may no longer connect.
func (w Worker) Revoked() bool { return w.Status == "revoked" || w.RevokedAt != nil }

const columns = `id, name, api_key_hash, COALESCE(host(wg_ip), ''), zone, status, cpu_millis, memory_mb, disk_mb,
	max_jobs, disk_quota, agent_version, last_seen, revoked_at, created_at`

func scan(row pgx.Row) (Worker, error) {
	var w Worker
	err := row.Scan(&w.ID, &w.Name, &w.KeyHash, &w.WGIP, &w.Zone, &w.Status, &w.CPUMillis, &w.MemoryMB, &w.DiskMB,
		&w.MaxJobs, &w.DiskQuota, &w.Version, &w.LastSeen, &w.RevokedAt, &w.CreatedAt)
	if errors.Is(err, pgx.ErrNoRows) {
		return w, ErrNotFound
	}
	return w, err
}

// ErrNotFound means no such worker.
var ErrNotFound = errors.New("worker not found")

var nameRe = regexp.MustCompile(`^[a-z0-9]([a-z0-9.-]{0,61}[a-z0-9])?$`)

// Add creates a worker and returns its raw API key, which is not stored.
func Add(ctx context.Context, q jobs.Querier, name, zone, wgIP string) (Worker, string, error) {
	if !nameRe.MatchString(name) {
		return Worker{}, "", fmt.Errorf("invalid worker name %q: use lowercase letters, digits, dots and dashes", name)
	}
	var ip any
	if wgIP != "" {
		a, err := netip.ParseAddr(wgIP)
		if err != nil {
			return Worker{}, "", fmt.Errorf("invalid mesh IP %q", wgIP)
		}
		ip = a.String()
	}
	raw := KeyPrefix + auth.RandomToken(32)
	hash := sha256.Sum256([]byte(raw))
	w, err := scan(q.QueryRow(ctx, `INSERT INTO workers (name, api_key_hash, zone, wg_ip) VALUES ($1, $2, $3, $4) RETURNING `+columns,
		name, hash[:], zone, ip))
	if err != nil {
		return w, "", fmt.Errorf("adding worker %s: %w", name, err)
	}
	return w, raw, nil
}

// Get reads a worker by id.
func Get(ctx context.Context, q jobs.Querier, id int64) (Worker, error) {
	return scan(q.QueryRow(ctx, "SELECT "+columns+" FROM workers WHERE id = $1", id))
}

// Authenticate finds the worker whose raw key is raw. The lookup is by
// hash (unique index); the final comparison is constant-time.
func Authenticate(ctx context.Context, q jobs.Querier, raw string) (Worker, error) {
	if len(raw) < 16 || len(raw) > 200 {
		return Worker{}, ErrNotFound
	}
	hash := sha256.Sum256([]byte(raw))
	w, err := scan(q.QueryRow(ctx, "SELECT "+columns+" FROM workers WHERE api_key_hash = $1", hash[:]))
	if err != nil {
		return w, err
	}
	if subtle.ConstantTimeCompare(w.KeyHash, hash[:]) != 1 {
		return Worker{}, ErrNotFound
	}
	return w, nil
}

// List returns every worker, by name.
func List(ctx context.Context, q interface {
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
}) ([]Worker, error) {
	rows, err := q.Query(ctx, "SELECT "+columns+" FROM workers ORDER BY name")
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []Worker
	for rows.Next() {
		w, err := scan(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, w)
	}
	return out, rows.Err()
}

// SetDraining stops (true) or resumes (false) placing new jobs on a
// worker. A draining worker stays connected and its apps keep running.
// Resuming changes only a draining worker.
func SetDraining(ctx context.Context, q jobs.Querier, name string, draining bool) (Worker, error) {
	if draining {
		return scan(q.QueryRow(ctx, `UPDATE workers SET status = 'draining' WHERE name = $1 AND status IN ('online', 'offline', 'draining') RETURNING `+columns, name))
	}
	// A worker that has not been heard from lately resumes as offline (the
	// scheduler's heartbeat check would mark it so anyway).
	return scan(q.QueryRow(ctx, `UPDATE workers SET status = CASE WHEN status <> 'draining' THEN status
			WHEN last_seen > now() - interval '2 minutes' THEN 'online' ELSE 'offline' END
		WHERE name = $1 AND status <> 'revoked' RETURNING `+columns, name))
}

// Revoke stops a worker from registering, refreshing or connecting.
func Revoke(ctx context.Context, q jobs.Querier, name string) (Worker, error) {
	return scan(q.QueryRow(ctx, `UPDATE workers SET status = 'revoked', revoked_at = now() WHERE name = $1 RETURNING `+columns, name))
}

// Connected records a worker's connection and what it reported in Hello.
func Connected(ctx context.Context, q jobs.Querier, id int64, h *wsproto.Hello) error {
	if h == nil {
		// A drained worker stays draining across reconnects.
		_, err := q.Exec(ctx, `UPDATE workers SET status = CASE WHEN status = 'draining' THEN status ELSE 'online' END, last_seen = now()
			WHERE id = $1 AND status <> 'revoked'`, id)
		return err
	}
	var ip any
	if a, err := netip.ParseAddr(h.WGIP); err == nil {
		ip = a.String()
	}
	_, err := q.Exec(ctx, `UPDATE workers SET status = CASE WHEN status = 'draining' THEN status ELSE 'online' END,
		last_seen = now(), wg_ip = COALESCE($2, wg_ip), zone = CASE WHEN $3 = '' THEN zone ELSE $3 END,
		cpu_millis = $4, memory_mb = $5, disk_mb = $6, disk_quota = $7, max_jobs = CASE WHEN $8 > 0 THEN $8 ELSE max_jobs END,
		agent_version = $9
		WHERE id = $1 AND status <> 'revoked'`,
		id, ip, h.Zone, max(h.CPUMillis, 0), max(h.MemoryMB, 0), max(h.DiskMB, 0), h.DiskQuota, h.MaxJobs, h.Version)
	return err
}

// Seen refreshes a worker's heartbeat.
func Seen(ctx context.Context, q jobs.Querier, id int64) error {
	_, err := q.Exec(ctx, "UPDATE workers SET last_seen = now() WHERE id = $1", id)
	return err
}

// RecordImagesBytes stores the disk a worker's app images use (from its
// stats).
func RecordImagesBytes(ctx context.Context, q jobs.Querier, id, n int64) error {
	if n < 0 {
		return fmt.Errorf("invalid image disk use %d", n)
	}
	_, err := q.Exec(ctx, "UPDATE workers SET images_bytes = $2 WHERE id = $1", id, n)
	return err
}
