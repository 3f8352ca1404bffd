package usage_test

import (
	"context"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"

	"github.com/wisehosting/wisehosting/agent/transport"
	"github.com/wisehosting/wisehosting/caddymodules/cptest"
	"github.com/wisehosting/wisehosting/caddymodules/usage"
	"github.com/wisehosting/wisehosting/internal/pgtest"
	"github.com/wisehosting/wisehosting/internal/workers"
	"github.com/wisehosting/wisehosting/internal/wsproto"
)

// Stats a worker sends become usage samples; stats for apps it does not
// run are ignored.
func TestStatsBecomeSamples(t *testing.T) {
	db := pgtest.New(t)
	cp := cptest.Start(t, db, cptest.Options{Apps: map[string]any{"wisehosting_usage": map[string]any{"sample_interval": "100ms"}}})
	ctx := context.Background()
	w, key, _ := workers.Add(ctx, db.Pool, cptest.Keyring(t), "w1", "", "")
	var team, mine, other int64
	db.Pool.QueryRow(ctx, "INSERT INTO teams (name, slug) VALUES ('t', 't') RETURNING id").Scan(&team)
	db.Pool.QueryRow(ctx, "INSERT INTO apps (team_id, slug, name, worker_id) VALUES ($1, 'mine', 'mine', $2) RETURNING id", team, w.ID).Scan(&mine)
	db.Pool.QueryRow(ctx, "INSERT INTO apps (team_id, slug, name) VALUES ($1, 'other', 'other') RETURNING id", team).Scan(&other)
	agent, _ := transport.New(transport.Config{URL: cp.URL, APIKey: key})
	actx, cancel := context.WithCancel(ctx)
	defer cancel()
	go agent.Run(actx)
	deadline := time.Now().Add(10 * time.Second)
	for agent.Connects() == 0 && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	agent.Send(ctx, wsproto.TypeStats, wsproto.Stats{TS: time.Now().Unix(), Apps: []wsproto.AppStats{
		{AppID: mine, CPUPercent: 42, MemBytes: 64 << 20}, {AppID: other, CPUPercent: 99},
	}})
	a, _ := caddy.ActiveContext().App("wisehosting_usage")
	m := a.(*usage.App).Meter()
	for time.Now().Before(deadline) {
		var n int
		db.Pool.QueryRow(ctx, "SELECT count(*) FROM usage_samples WHERE app_id = $1 AND cpu_pct_max = 42", mine).Scan(&n)
		if n == 1 {
			if _, ok := m.Latest(other); ok {
				t.Fatal("stats for another worker's app were kept")
			}
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatal("no usage sample written")
}
