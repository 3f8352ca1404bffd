package usage

import (
	"context"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// Reports reads usage for people: charts and a team's apps.
type Reports struct {
	Pool *pgxpool.Pool
}

// ChartPoint is one point of a usage chart.
type ChartPoint struct {
	At time.Time `json:"at"`
	Figures
}

// Chart folds an app's (or, with app 0, all the team's apps') 5-minute
// buckets since since into points of step: CPU and memory averages
// weighted by samples, peaks, network bytes summed, the largest disk and
// volume sizes. For a team, the apps' values add up per point. Never nil.
func (s *Reports) Chart(ctx context.Context, teamID, appID int64, since time.Time, step time.Duration) ([]ChartPoint, error) {
	rows, err := s.Pool.Query(ctx, `WITH per_app AS (
			SELECT date_bin(make_interval(secs => $4), u.bucket, TIMESTAMPTZ '2000-01-01 00:00:00+00') AS at, u.app_id,
				sum(u.cpu_pct_sum) / NULLIF(sum(u.samples), 0) AS cpu_avg, max(u.cpu_pct_max) AS cpu_max,
				sum(u.mem_bytes_sum) / NULLIF(sum(u.samples), 0) AS mem_avg, max(u.mem_bytes_max) AS mem_max,
				sum(u.net_rx_bytes) AS rx, sum(u.net_tx_bytes) AS tx, max(u.disk_bytes) AS disk, max(u.volume_bytes) AS vol
			FROM usage_samples u JOIN apps a ON a.id = u.app_id
			WHERE a.team_id = $1 AND ($2 = 0 OR u.app_id = $2) AND u.bucket >= $3
			GROUP BY 1, 2)
		SELECT at, COALESCE(sum(cpu_avg), 0), COALESCE(sum(cpu_max), 0), COALESCE(sum(mem_avg), 0), COALESCE(sum(mem_max), 0)::bigint,
			sum(rx)::bigint, sum(tx)::bigint, sum(disk)::bigint, sum(vol)::bigint
		FROM per_app GROUP BY at ORDER BY at`, teamID, appID, since, step.Seconds())
	if err != nil {
		return nil, err
	}
	out, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (ChartPoint, error) {
		var p ChartPoint
		err := row.Scan(&p.At, &p.CPUAvg, &p.CPUMax, &p.MemAvg, &p.MemMax, &p.NetRxBytes, &p.NetTxBytes, &p.DiskBytes, &p.VolumeBytes)
		return p, err
	})
	if out == nil {
		out = []ChartPoint{}
	}
	return out, err
}

// AppSum is an app's share of a team's usage over a range.
type AppSum struct {
	ID         int64   `json:"id"`
	Slug       string  `json:"slug"`
	Name       string  `json:"name"`
	Status     string  `json:"status"`
	CPUAvg     float64 `json:"cpu_pct_avg"`
	CPUMax     float64 `json:"cpu_pct_max"`
	MemMax     int64   `json:"mem_bytes_max"`
	NetRxBytes int64   `json:"net_rx_bytes"`
	NetTxBytes int64   `json:"net_tx_bytes"`
	DiskBytes  int64   `json:"disk_bytes"`
}

// TeamApps sums each of the team's apps since since (never nil), by name.
func (s *Reports) TeamApps(ctx context.Context, teamID int64, since time.Time) ([]AppSum, error) {
	rows, err := s.Pool.Query(ctx, `SELECT a.id, a.slug, a.name, a.status,
			COALESCE(sum(u.cpu_pct_sum) / NULLIF(sum(u.samples), 0), 0), COALESCE(max(u.cpu_pct_max), 0),
			COALESCE(max(u.mem_bytes_max), 0), COALESCE(sum(u.net_rx_bytes), 0)::bigint, COALESCE(sum(u.net_tx_bytes), 0)::bigint,
			COALESCE((SELECT s.disk_bytes FROM usage_samples s WHERE s.app_id = a.id ORDER BY s.bucket DESC LIMIT 1), 0)
		FROM apps a LEFT JOIN usage_samples u ON u.app_id = a.id AND u.bucket >= $2
		WHERE a.team_id = $1 GROUP BY a.id ORDER BY a.name, a.id`, teamID, since)
	if err != nil {
		return nil, err
	}
	out, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (AppSum, error) {
		var a AppSum
		err := row.Scan(&a.ID, &a.Slug, &a.Name, &a.Status, &a.CPUAvg, &a.CPUMax, &a.MemMax, &a.NetRxBytes, &a.NetTxBytes, &a.DiskBytes)
		return a, err
	})
	if out == nil {
		out = []AppSum{}
	}
	return out, err
}
