package apps

import (
	"context"

	"github.com/jackc/pgx/v5"
)

// Placed is an app as the platform's operator lists it: team, plan,
// status, placement and limits.
type Placed struct {
	ID            int64  `json:"id"`
	TeamID        int64  `json:"team_id"`
	Plan          string `json:"plan"`
	Slug          string `json:"slug"`
	Status        string `json:"status"`
	WorkerID      *int64 `json:"worker_id,omitempty"`
	HostPort      int    `json:"host_port,omitempty"`
	Preview       bool   `json:"preview,omitempty"`
	CPUMillis     int    `json:"cpu_millis"`
	MemoryMB      int    `json:"memory_mb"`
	DiskMB        int    `json:"disk_mb"`
	BandwidthKbit int    `json:"bandwidth_kbit"`
}

// All lists every app of every team by slug (at most 10,000): for the
// platform's operator, never for a team.
func All(ctx context.Context, q interface {
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
}) ([]Placed, error) {
	rows, err := q.Query(ctx, `SELECT a.id, a.team_id, t.plan, a.slug, a.status, a.worker_id, a.host_port,
			a.preview_of IS NOT NULL, a.cpu_millis, a.memory_mb, a.disk_mb, a.bandwidth_kbit
		FROM apps a JOIN teams t ON t.id = a.team_id ORDER BY a.slug LIMIT 10000`)
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, func(row pgx.CollectableRow) (Placed, error) {
		var x Placed
		err := row.Scan(&x.ID, &x.TeamID, &x.Plan, &x.Slug, &x.Status, &x.WorkerID, &x.HostPort, &x.Preview,
			&x.CPUMillis, &x.MemoryMB, &x.DiskMB, &x.BandwidthKbit)
		return x, err
	})
}
