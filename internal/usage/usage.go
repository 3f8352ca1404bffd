// Package usage meters apps' resource use: the latest stats of each app
// (reported by workers every few seconds) are sampled every minute into
// 5-minute buckets of usage_samples (averages and peaks of CPU and memory,
// network bytes, disk size, the disk its volumes use), which back the
// usage charts and alert rules.
// Buckets are kept 90 days.
package usage

import (
	"context"
	"sync"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/wisehosting/wisehosting/internal/store"
	"github.com/wisehosting/wisehosting/internal/volumes"
	"github.com/wisehosting/wisehosting/internal/wsproto"
)

// Bucket is the width of a usage_samples row.
const Bucket = 5 * time.Minute

// Meter keeps the latest stats per app and writes samples.
type Meter struct {
	pool *pgxpool.Pool

	mu     sync.Mutex
	latest map[int64]wsproto.AppStats
	prevRx map[int64]int64 // counters at the previous sample
	prevTx map[int64]int64
}

// New returns a meter writing to pool.
func New(pool *pgxpool.Pool) *Meter {
	return &Meter{pool: pool, latest: map[int64]wsproto.AppStats{}, prevRx: map[int64]int64{}, prevTx: map[int64]int64{}}
}

// Observe records the latest stats of apps (called for each stats message,
// after checking the apps run on the sending worker).
func (m *Meter) Observe(apps []wsproto.AppStats) {
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, a := range apps {
		m.latest[a.AppID] = a
	}
}

// Latest returns an app's latest stats.
func (m *Meter) Latest(appID int64) (wsproto.AppStats, bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	s, ok := m.latest[appID]
	return s, ok
}

// delta is counter growth since the last sample; a counter that went down
// (container restarted) counts from zero.
func delta(cur, prev int64, seen bool) int64 {
	switch {
	case !seen:
		return 0
	case cur < prev:
		return cur
	}
	return cur - prev
}

// Sample folds the latest stats of every app into its bucket at now.
func (m *Meter) Sample(ctx context.Context, now time.Time) (int, error) {
	bucket := now.UTC().Truncate(Bucket)
	m.mu.Lock()
	var ids []int64
	var cpu, mem []float64
	var memMax, rx, tx, disk []int64
	var curRx, curTx []int64
	for id, s := range m.latest {
		pr, seen := m.prevRx[id]
		rxd := delta(s.NetRxBytes, pr, seen)
		txd := delta(s.NetTxBytes, m.prevTx[id], seen)
		curRx, curTx = append(curRx, s.NetRxBytes), append(curTx, s.NetTxBytes)
		ids = append(ids, id)
		cpu = append(cpu, s.CPUPercent)
		mem = append(mem, float64(s.MemBytes))
		memMax = append(memMax, s.MemBytes)
		rx, tx, disk = append(rx, rxd), append(tx, txd), append(disk, s.DiskBytes)
	}
	m.mu.Unlock()
	if len(ids) == 0 {
		return 0, nil
	}
	// The disk of the apps' volumes, as their workers last measured it.
	used, err := volumes.UsedBytes(ctx, m.pool, ids)
	if err != nil {
		return 0, err
	}
	vol := make([]int64, len(ids))
	for i, id := range ids {
		vol[i] = used[id]
	}
	_, err = m.pool.Exec(ctx, `INSERT INTO usage_samples (app_id, bucket, samples, cpu_pct_sum, cpu_pct_max, mem_bytes_sum, mem_bytes_max, net_rx_bytes, net_tx_bytes, disk_bytes, volume_bytes)
		SELECT u.app_id, $1, 1, u.cpu, u.cpu, u.mem, u.mem_max, u.rx, u.tx, u.disk, u.vol
		FROM unnest($2::bigint[], $3::float8[], $4::float8[], $5::bigint[], $6::bigint[], $7::bigint[], $8::bigint[], $9::bigint[])
			AS u(app_id, cpu, mem, mem_max, rx, tx, disk, vol)
		WHERE EXISTS (SELECT 1 FROM apps WHERE id = u.app_id)
		ON CONFLICT (app_id, bucket) DO UPDATE SET
			samples = usage_samples.samples + 1,
			cpu_pct_sum = usage_samples.cpu_pct_sum + EXCLUDED.cpu_pct_sum,
			cpu_pct_max = greatest(usage_samples.cpu_pct_max, EXCLUDED.cpu_pct_max),
			mem_bytes_sum = usage_samples.mem_bytes_sum + EXCLUDED.mem_bytes_sum,
			mem_bytes_max = greatest(usage_samples.mem_bytes_max, EXCLUDED.mem_bytes_max),
			net_rx_bytes = usage_samples.net_rx_bytes + EXCLUDED.net_rx_bytes,
			net_tx_bytes = usage_samples.net_tx_bytes + EXCLUDED.net_tx_bytes,
			disk_bytes = EXCLUDED.disk_bytes,
			volume_bytes = EXCLUDED.volume_bytes`,
		bucket, ids, cpu, mem, memMax, rx, tx, disk, vol)
	if err != nil {
		// The counters stay where they were: the next sample carries this
		// minute's traffic too.
		return 0, err
	}
	m.mu.Lock()
	for i, id := range ids {
		m.prevRx[id], m.prevTx[id] = curRx[i], curTx[i]
	}
	m.mu.Unlock()
	return len(ids), nil
}

// Prune deletes buckets older than keep and returns how many.
func Prune(ctx context.Context, q store.Execer, now time.Time, keep time.Duration) (int64, error) {
	tag, err := q.Exec(ctx, "DELETE FROM usage_samples WHERE bucket < $1", now.Add(-keep))
	return tag.RowsAffected(), err
}

// Point is one bucket of an app's usage.
type Point struct {
	Bucket time.Time `json:"bucket"`
	Figures
}

// Figures are the usage of a bucket or of a chart's point: CPU and memory
// averages and peaks, network bytes, disk and volume sizes.
type Figures struct {
	CPUAvg     float64 `json:"cpu_pct_avg"`
	CPUMax     float64 `json:"cpu_pct_max"`
	MemAvg     float64 `json:"mem_bytes_avg"`
	MemMax     int64   `json:"mem_bytes_max"`
	NetRxBytes int64   `json:"net_rx_bytes"`
	NetTxBytes int64   `json:"net_tx_bytes"`
	DiskBytes  int64   `json:"disk_bytes"`
	// VolumeBytes is the disk the app's volumes used (at a bucket's last
	// sample; the largest of a point's buckets).
	VolumeBytes int64 `json:"volume_bytes"`
}

// Series returns an app's buckets since since, scoped by team.
func Series(ctx context.Context, pool *pgxpool.Pool, teamID, appID int64, since time.Time) ([]Point, error) {
	rows, err := pool.Query(ctx, `SELECT u.bucket, u.cpu_pct_sum / u.samples, u.cpu_pct_max, u.mem_bytes_sum / u.samples, u.mem_bytes_max,
			u.net_rx_bytes, u.net_tx_bytes, u.disk_bytes, u.volume_bytes
		FROM usage_samples u JOIN apps a ON a.id = u.app_id
		WHERE a.team_id = $1 AND u.app_id = $2 AND u.bucket >= $3 ORDER BY u.bucket`, teamID, appID, since)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []Point
	for rows.Next() {
		var p Point
		if err := rows.Scan(&p.Bucket, &p.CPUAvg, &p.CPUMax, &p.MemAvg, &p.MemMax, &p.NetRxBytes, &p.NetTxBytes, &p.DiskBytes, &p.VolumeBytes); err != nil {
			return nil, err
		}
		out = append(out, p)
	}
	return out, rows.Err()
}
