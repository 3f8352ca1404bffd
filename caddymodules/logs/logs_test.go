package logs_test

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"

	"github.com/wisehosting/wisehosting/agent/transport"
	"github.com/wisehosting/wisehosting/caddymodules/cptest"
	"github.com/wisehosting/wisehosting/caddymodules/logs"
	"github.com/wisehosting/wisehosting/internal/pgtest"
	"github.com/wisehosting/wisehosting/internal/workers"
	"github.com/wisehosting/wisehosting/internal/wsproto"
)

// connect runs a worker's transport (prepared by prep) until the test ends
// and waits for its first connection.
func connect(t *testing.T, url, key string, prep func(*transport.Client)) *transport.Client {
	t.Helper()
	c, err := transport.New(transport.Config{URL: url, APIKey: key})
	if err != nil {
		t.Fatal(err)
	}
	if prep != nil {
		prep(c)
	}
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	go c.Run(ctx)
	deadline := time.Now().Add(10 * time.Second)
	for c.Connects() == 0 && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	return c
}

// A worker's log lines reach the app's live ring and runtime_logs; lines
// for an app the worker does not run are refused (an app it is deploying
// for the first time counts as its own); build lines land in the
// deployment's log while its job runs on that worker.
func TestWorkerLogsReachTheBus(t *testing.T) {
	db := pgtest.New(t)
	cp := cptest.Start(t, db, cptest.Options{Apps: map[string]any{"wisehosting_logs": map[string]any{}}})
	ctx := context.Background()
	w, key, _ := workers.Add(ctx, db.Pool, cptest.Keyring(t), "w1", "", "")
	var team, mine, other, dep, fresh, freshDep int64
	db.Pool.QueryRow(ctx, "INSERT INTO teams (name, slug) VALUES ('t', 't') RETURNING id").Scan(&team)
	db.Pool.QueryRow(ctx, "INSERT INTO apps (team_id, slug, name, worker_id) VALUES ($1, 'mine', 'mine', $2) RETURNING id", team, w.ID).Scan(&mine)
	db.Pool.QueryRow(ctx, "INSERT INTO apps (team_id, slug, name) VALUES ($1, 'other', 'other') RETURNING id", team).Scan(&other)
	db.Pool.QueryRow(ctx, "INSERT INTO deployments (app_id) VALUES ($1) RETURNING id", mine).Scan(&dep)
	db.Pool.Exec(ctx, "INSERT INTO jobs (kind, app_id, deployment_id, worker_id, state) VALUES ('deploy', $1, $2, $3, 'running')", mine, dep, w.ID)
	db.Pool.QueryRow(ctx, "INSERT INTO apps (team_id, slug, name) VALUES ($1, 'fresh', 'fresh') RETURNING id", team).Scan(&fresh)
	db.Pool.QueryRow(ctx, "INSERT INTO deployments (app_id) VALUES ($1) RETURNING id", fresh).Scan(&freshDep)
	db.Pool.Exec(ctx, "INSERT INTO jobs (kind, app_id, deployment_id, worker_id, state) VALUES ('deploy', $1, $2, $3, 'running')", fresh, freshDep, w.ID)

	agent := connect(t, cp.URL, key, nil)
	deadline := time.Now().Add(10 * time.Second)
	now := time.Now().UnixNano()
	err := agent.Send(ctx, wsproto.TypeLogs, wsproto.Logs{Lines: []wsproto.LogLine{
		{AppID: mine, TS: now, Stream: "stdout", Line: "listening on :8080"},
		{AppID: other, TS: now, Stream: "stdout", Line: "forged line"},
		{AppID: fresh, TS: now, Stream: "stdout", Line: "first start, health check pending"},
		{AppID: mine, DeploymentID: dep, TS: now, Stream: "build", Line: "STEP 1/3: FROM scratch"},
	}})
	if err != nil {
		t.Fatal(err)
	}
	a, _ := caddy.ActiveContext().App("wisehosting_logs")
	bus := a.(*logs.App).Bus()
	for time.Now().Before(deadline) && len(bus.Recent(mine, 10)) == 0 {
		time.Sleep(20 * time.Millisecond)
	}
	if r := bus.Recent(mine, 10); len(r) != 1 || r[0].Text != "listening on :8080" {
		t.Fatalf("ring %+v", r)
	}
	if r := bus.Recent(other, 10); len(r) != 0 {
		t.Fatalf("a worker wrote into another app's log: %+v", r)
	}
	if r := bus.Recent(fresh, 10); len(r) != 1 {
		t.Fatalf("lines of an app in its first deploy: %+v", r)
	}
	var stored, build int
	for time.Now().Before(deadline) {
		db.Pool.QueryRow(ctx, "SELECT count(*) FROM runtime_logs WHERE app_id = $1", mine).Scan(&stored)
		db.Pool.QueryRow(ctx, "SELECT count(*) FROM deployment_logs WHERE deployment_id = $1 AND line = 'STEP 1/3: FROM scratch'", dep).Scan(&build)
		if stored == 1 && build == 1 {
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("stored %d runtime lines, %d build lines", stored, build)
}

// A batch with an id is acknowledged after its lines are committed; the
// same batch sent again (its ack lost) is acknowledged again and stored
// once; lines with NUL bytes and half characters are stored cleaned.
func TestLogBatchesAckedAfterCommitAndStoredOnce(t *testing.T) {
	db := pgtest.New(t)
	cp := cptest.Start(t, db, cptest.Options{Apps: map[string]any{"wisehosting_logs": map[string]any{}}})
	ctx := context.Background()
	w, key, _ := workers.Add(ctx, db.Pool, cptest.Keyring(t), "w1", "", "")
	var team, app int64
	db.Pool.QueryRow(ctx, "INSERT INTO teams (name, slug) VALUES ('t', 't') RETURNING id").Scan(&team)
	db.Pool.QueryRow(ctx, "INSERT INTO apps (team_id, slug, name, worker_id) VALUES ($1, 'mine', 'mine', $2) RETURNING id", team, w.ID).Scan(&app)

	acks := make(chan wsproto.LogsAck, 4)
	agent := connect(t, cp.URL, key, func(c *transport.Client) {
		c.Handle(wsproto.TypeLogsAck, func(_ context.Context, p json.RawMessage) error {
			var a wsproto.LogsAck
			json.Unmarshal(p, &a)
			acks <- a
			return nil
		})
	})
	batch := wsproto.Logs{Batch: "b1", Lines: []wsproto.LogLine{
		{AppID: app, TS: time.Now().UnixNano(), Stream: "stdout", Line: "nul\x00byte"},
		{AppID: app, TS: time.Now().UnixNano(), Stream: "stdout", Line: "half a euro \xe2\x82"},
	}}
	count := func() int {
		var n int
		db.Pool.QueryRow(ctx, "SELECT count(*) FROM runtime_logs WHERE app_id = $1", app).Scan(&n)
		return n
	}
	for round := range 2 {
		if err := agent.Send(ctx, wsproto.TypeLogs, batch); err != nil {
			t.Fatal(err)
		}
		select {
		case a := <-acks:
			if a.Batch != "b1" || a.Retry {
				t.Fatalf("ack %+v", a)
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("round %d: no ack", round)
		}
		// The ack comes after the commit: the lines are there already.
		if n := count(); n != 2 {
			t.Fatalf("round %d: %d rows at the ack", round, n)
		}
	}
	var lines []string
	rows, _ := db.Pool.Query(ctx, "SELECT line FROM runtime_logs WHERE app_id = $1 ORDER BY id", app)
	for rows.Next() {
		var l string
		rows.Scan(&l)
		lines = append(lines, l)
	}
	// (JSON on the wire already turns each invalid byte into U+FFFD.)
	if len(lines) != 2 || lines[0] != "nulbyte" || !strings.HasPrefix(lines[1], "half a euro \uFFFD") {
		t.Fatalf("%q", lines)
	}
}
