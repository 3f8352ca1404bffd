package api_test

import (
	"context"
	"testing"
	"time"

	"github.com/wisehosting/wisehosting/agent/transport"
	"github.com/wisehosting/wisehosting/agent/zone"
	"github.com/wisehosting/wisehosting/caddymodules/cptest"
	"github.com/wisehosting/wisehosting/internal/network"
	"github.com/wisehosting/wisehosting/internal/pgtest"
	"github.com/wisehosting/wisehosting/internal/workers"
	"github.com/wisehosting/wisehosting/internal/wsproto"
)

func waitUntil(t *testing.T, what string, d time.Duration, ok func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !ok() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", d, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func hasHost(r *zone.Router, host string) bool {
	for _, h := range r.Table().Hosts() {
		if h == host {
			return true
		}
	}
	return false
}

// The agent's zone router gets its table over the worker's WebSocket at
// connect and on every change, without polling; it polls again only when
// the connection that carried the pushes is gone.
func TestZoneTablePushedOverWebSocket(t *testing.T) {
	db := pgtest.New(t)
	cp := cptest.Start(t, db, cptest.Options{})
	ctx := t.Context()
	w, key, err := workers.Add(ctx, db.Pool, cptest.Keyring(t), "w1", "de.apps.test", "127.0.0.5")
	if err != nil {
		t.Fatal(err)
	}
	var team int64
	db.Pool.QueryRow(ctx, "INSERT INTO teams (name, slug) VALUES ('t', 't') RETURNING id").Scan(&team)
	db.Pool.Exec(ctx, "INSERT INTO apps (team_id, slug, name, status, worker_id, port, host_port) VALUES ($1, 'site', 'site', 'running', $2, 8080, 30001)", team, w.ID)

	client, err := transport.New(transport.Config{URL: cp.URL, APIKey: key, Name: "w1", MinBackoff: 50 * time.Millisecond, MaxBackoff: 200 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	// A poll interval no test waits for: only pushes can update the table.
	r := zone.New(zone.Config{URL: cp.URL, WorkerID: client.WorkerID, Token: client.BearerToken, Client: client.HTTPClient(),
		Interval: time.Hour, LocalIP: "127.0.0.5"})
	client.Handle(wsproto.TypeZoneTable, r.HandlePush)
	client.SetHello(func() wsproto.Hello {
		return wsproto.Hello{Version: "test", WGIP: "127.0.0.5", CPUMillis: 1000, MemoryMB: 1024, DiskQuota: "none", MaxJobs: 1}
	})
	runCtx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{}, 2)
	defer func() { cancel(); <-done; <-done }()
	go func() { client.Run(runCtx); done <- struct{}{} }()
	go func() { r.Run(runCtx); done <- struct{}{} }()

	waitUntil(t, "the table pushed at connect", 10*time.Second, func() bool { return r.Pushes() > 0 && hasHost(r, "site.de.apps.test") })
	polls := r.Polls()

	// A change committed elsewhere (NOTIFY): pushed in well under the
	// 2 s poll interval the router used to depend on.
	db.Pool.Exec(ctx, "INSERT INTO apps (team_id, slug, name, status, worker_id, port, host_port) VALUES ($1, 'shop', 'shop', 'running', $2, 3000, 30002)", team, w.ID)
	start := time.Now()
	network.NotifyChanged(ctx, db.Pool)
	waitUntil(t, "the new app pushed", 5*time.Second, func() bool { return hasHost(r, "shop.de.apps.test") })
	t.Logf("change reached the zone router in %s", time.Since(start).Round(time.Millisecond))
	db.Pool.Exec(ctx, "UPDATE apps SET status = 'stopped' WHERE slug = 'site'")
	network.NotifyChanged(ctx, db.Pool)
	waitUntil(t, "the stopped app removed", 5*time.Second, func() bool { return !hasHost(r, "site.de.apps.test") })
	if r.Polls() != polls {
		t.Fatalf("the router polled (%d → %d) while pushes kept it current", polls, r.Polls())
	}
}
