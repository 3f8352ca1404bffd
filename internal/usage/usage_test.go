package usage

import (
	"context"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/wisehosting/wisehosting/internal/pgtest"
	"github.com/wisehosting/wisehosting/internal/volumes"
	"github.com/wisehosting/wisehosting/internal/wsproto"
)

func TestSamplingIntoBuckets(t *testing.T) {
	t.Parallel()
	db := pgtest.New(t)
	ctx := context.Background()
	var teamA, teamB, app int64
	db.Pool.QueryRow(ctx, "INSERT INTO teams (name, slug) VALUES ('a', 'a') RETURNING id").Scan(&teamA)
	db.Pool.QueryRow(ctx, "INSERT INTO teams (name, slug) VALUES ('b', 'b') RETURNING id").Scan(&teamB)
	db.Pool.QueryRow(ctx, "INSERT INTO apps (team_id, slug, name) VALUES ($1, 'a', 'a') RETURNING id", teamA).Scan(&app)
	m := New(db.Pool)
	t0 := time.Date(2026, 11, 22, 10, 0, 0, 0, time.UTC)
	// Three samples in one 5-minute bucket, the network counter restarting once.
	for i, s := range []wsproto.AppStats{
		{AppID: app, CPUPercent: 10, MemBytes: 100, NetRxBytes: 1000, NetTxBytes: 10, DiskBytes: 5},
		{AppID: app, CPUPercent: 30, MemBytes: 300, NetRxBytes: 1500, NetTxBytes: 30, DiskBytes: 6},
		{AppID: app, CPUPercent: 20, MemBytes: 200, NetRxBytes: 200, NetTxBytes: 40, DiskBytes: 7},
	} {
		m.Observe([]wsproto.AppStats{s, {AppID: 999999, CPUPercent: 1}}) // a deleted app is ignored
		if _, err := m.Sample(ctx, t0.Add(time.Duration(i)*time.Minute)); err != nil {
			t.Fatal(err)
		}
	}
	m.Observe([]wsproto.AppStats{{AppID: app, CPUPercent: 50, MemBytes: 50, NetRxBytes: 300, NetTxBytes: 40}})
	m.Sample(ctx, t0.Add(6*time.Minute)) // next bucket

	pts, err := Series(ctx, db.Pool, teamA, app, t0.Add(-time.Hour))
	if err != nil || len(pts) != 2 {
		t.Fatalf("%+v %v", pts, err)
	}
	p := pts[0]
	if p.CPUAvg != 20 || p.CPUMax != 30 || p.MemAvg != 200 || p.MemMax != 300 || p.DiskBytes != 7 {
		t.Fatalf("bucket %+v", p)
	}
	// rx: first sample 0 (no baseline), then +500, then restart → +200.
	if p.NetRxBytes != 700 || p.NetTxBytes != 30 || pts[1].NetRxBytes != 100 {
		t.Fatalf("network %+v / %+v", p, pts[1])
	}
	if leak, _ := Series(ctx, db.Pool, teamB, app, t0.Add(-time.Hour)); len(leak) != 0 {
		t.Fatal("another team read the usage")
	}
	n, err := Prune(ctx, db.Pool, t0.Add(91*24*time.Hour), 90*24*time.Hour)
	if err != nil || n != 2 {
		t.Fatalf("pruned %d %v", n, err)
	}
}

// A sample whose insert fails leaves the network counters where they were:
// the next sample counts that minute's traffic too.
func TestFailedSampleKeepsCounters(t *testing.T) {
	t.Parallel()
	db := pgtest.New(t)
	ctx := context.Background()
	var team, app int64
	db.Pool.QueryRow(ctx, "INSERT INTO teams (name, slug) VALUES ('a', 'a') RETURNING id").Scan(&team)
	db.Pool.QueryRow(ctx, "INSERT INTO apps (team_id, slug, name) VALUES ($1, 'a', 'a') RETURNING id", team).Scan(&app)
	m := New(db.Pool)
	t0 := time.Date(2026, 11, 22, 10, 0, 0, 0, time.UTC)
	m.Observe([]wsproto.AppStats{{AppID: app, NetRxBytes: 1000, NetTxBytes: 100}})
	if _, err := m.Sample(ctx, t0); err != nil {
		t.Fatal(err)
	}
	m.Observe([]wsproto.AppStats{{AppID: app, NetRxBytes: 1600, NetTxBytes: 160}})
	down, cancel := context.WithCancel(ctx)
	cancel() // the database is unreachable for this sample
	if _, err := m.Sample(down, t0.Add(time.Minute)); err == nil {
		t.Fatal("sample with a cancelled context succeeded")
	}
	m.Observe([]wsproto.AppStats{{AppID: app, NetRxBytes: 2000, NetTxBytes: 200}})
	if _, err := m.Sample(ctx, t0.Add(2*time.Minute)); err != nil {
		t.Fatal(err)
	}
	pts, err := Series(ctx, db.Pool, team, app, t0.Add(-time.Hour))
	if err != nil || len(pts) != 1 || pts[0].NetRxBytes != 1000 || pts[0].NetTxBytes != 100 {
		t.Fatalf("%+v %v", pts, err)
	}
}

// The disk an app's volumes use (as their workers last measured it) is
// sampled with its other usage: a shared volume and the copies of a
// per-instance one on two workers add up.
func TestVolumeBytesSampled(t *testing.T) {
	t.Parallel()
	db := pgtest.New(t)
	ctx := context.Background()
	var team, app, w1, w2 int64
	db.Pool.QueryRow(ctx, "INSERT INTO teams (name, slug) VALUES ('a', 'a') RETURNING id").Scan(&team)
	db.Pool.QueryRow(ctx, "INSERT INTO apps (team_id, slug, name, replicas) VALUES ($1, 'a', 'a', 2) RETURNING id", team).Scan(&app)
	db.Pool.QueryRow(ctx, "INSERT INTO workers (name, api_key_hash) VALUES ('w1', 'k1') RETURNING id").Scan(&w1)
	db.Pool.QueryRow(ctx, "INSERT INTO workers (name, api_key_hash) VALUES ('w2', 'k2') RETURNING id").Scan(&w2)
	var cache volumes.Volume
	err := pgx.BeginFunc(ctx, db.Pool, func(tx pgx.Tx) (err error) {
		cache, err = volumes.Create(ctx, tx, team, app, volumes.New{Name: "cache", MountPath: "/cache", SizeMB: 10, PerInstance: true})
		if err != nil {
			return err
		}
		if err := volumes.Bind(ctx, tx, app, 0, w1); err != nil {
			return err
		}
		return volumes.Bind(ctx, tx, app, 1, w2)
	})
	if err != nil {
		t.Fatal(err)
	}
	volumes.RecordUsage(ctx, db.Pool, w1, []wsproto.VolumeUsage{{Name: volumes.InstancePodmanName(cache.ID, 0), Bytes: 3000}})
	volumes.RecordUsage(ctx, db.Pool, w2, []wsproto.VolumeUsage{{Name: volumes.InstancePodmanName(cache.ID, 1), Bytes: 4000}})
	m := New(db.Pool)
	t0 := time.Date(2026, 11, 22, 10, 0, 0, 0, time.UTC)
	m.Observe([]wsproto.AppStats{{AppID: app, CPUPercent: 1, DiskBytes: 5}})
	if _, err := m.Sample(ctx, t0); err != nil {
		t.Fatal(err)
	}
	volumes.RecordUsage(ctx, db.Pool, w2, []wsproto.VolumeUsage{{Name: volumes.InstancePodmanName(cache.ID, 1), Bytes: 6000}})
	if _, err := m.Sample(ctx, t0.Add(time.Minute)); err != nil {
		t.Fatal(err)
	}
	pts, err := Series(ctx, db.Pool, team, app, t0.Add(-time.Hour))
	if err != nil || len(pts) != 1 {
		t.Fatalf("%+v %v", pts, err)
	}
	if pts[0].VolumeBytes != 9000 || pts[0].DiskBytes != 5 {
		t.Fatalf("bucket %+v: want the volumes' 9000 bytes of the last sample", pts[0])
	}
}
