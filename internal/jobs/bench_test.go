package jobs_test

import (
	"context"
	"sort"
	"testing"
	"time"

	"github.com/wisehosting/wisehosting/internal/jobs"
	"github.com/wisehosting/wisehosting/internal/pgtest"
)

// BenchmarkSchedulerThroughput: a backlog of jobs is placed on 10 simulated
// workers (which acknowledge and finish each job); reports jobs assigned per
// second.
func BenchmarkSchedulerThroughput(b *testing.B) {
	db := pgtest.New(b)
	ids := seedWorkers(b, db.Pool, 10, "1 hour")
	n := max(b.N, 5000)
	ctx := context.Background()
	// Bulk backlog: the producer is not what is measured here.
	if _, err := db.Pool.Exec(ctx, `INSERT INTO jobs (kind, cpu_millis, memory_mb) SELECT 'deploy', 1, 1 FROM generate_series(1, $1)`, n); err != nil {
		b.Fatal(err)
	}
	f := newFleet(ids...)
	b.ResetTimer()
	start := time.Now()
	runScheduler(b, db.Pool, f, nil)
	eventually(b, "all assigned", 5*time.Minute, func() bool {
		var left int
		db.Pool.QueryRow(ctx, "SELECT count(*) FROM jobs WHERE assigned_at IS NULL AND state = 'pending'").Scan(&left)
		return left == 0
	})
	elapsed := time.Since(start)
	b.StopTimer()
	b.ReportMetric(float64(n)/elapsed.Seconds(), "jobs/s")
}

// BenchmarkSchedulerLatency: jobs enqueued one by one (each in its own
// transaction, NOTIFY waking the scheduler) at about 1,000/s; reports the
// enqueue→assign latency percentiles, measured on the database clock.
func BenchmarkSchedulerLatency(b *testing.B) {
	db := pgtest.New(b)
	ids := seedWorkers(b, db.Pool, 10, "1 hour")
	f := newFleet(ids...)
	runScheduler(b, db.Pool, f, func(c *jobs.Config) { c.PollInterval = 10 * time.Second })
	ctx := context.Background()
	n := max(b.N, 3000)
	b.ResetTimer()
	tick := time.NewTicker(time.Millisecond)
	for i := 0; i < n; i++ {
		<-tick.C
		if _, err := jobs.Enqueue(ctx, db.Pool, jobs.New{Kind: "deploy", CPUMillis: 1, MemoryMB: 1}); err != nil {
			b.Fatal(err)
		}
	}
	tick.Stop()
	eventually(b, "all assigned", 2*time.Minute, func() bool {
		var left int
		db.Pool.QueryRow(ctx, "SELECT count(*) FROM jobs WHERE assigned_at IS NULL AND state = 'pending'").Scan(&left)
		return left == 0
	})
	b.StopTimer()
	rows, err := db.Pool.Query(ctx, "SELECT extract(epoch FROM assigned_at - created_at) * 1000 FROM jobs WHERE assigned_at IS NOT NULL")
	if err != nil {
		b.Fatal(err)
	}
	var lat []float64
	for rows.Next() {
		var ms float64
		rows.Scan(&ms)
		lat = append(lat, ms)
	}
	rows.Close()
	if len(lat) < n {
		b.Fatalf("%d latencies for %d jobs", len(lat), n)
	}
	sort.Float64s(lat)
	b.ReportMetric(lat[len(lat)/2], "p50-ms")
	b.ReportMetric(lat[len(lat)*99/100], "p99-ms")
}
