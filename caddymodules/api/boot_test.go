package api_test

import (
	"context"
	"encoding/json"
	"net/http"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/jackc/pgx/v5"

	"github.com/wisehosting/wisehosting/caddymodules/cptest"
	"github.com/wisehosting/wisehosting/internal/pgtest"
	"github.com/wisehosting/wisehosting/internal/store"
)

func health(t *testing.T, base string) (int, map[string]any) {
	t.Helper()
	resp, err := http.Get(base + "/health")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var body map[string]any
	json.NewDecoder(resp.Body).Decode(&body)
	return resp.StatusCode, body
}

// TestStartsBeforeTheDatabase: a control plane whose database is down at
// boot starts anyway, answers /health 503 while it retries, and becomes
// ready (migrated, 200) once the database runs. The database is a private
// cluster started after the control plane.
func TestStartsBeforeTheDatabase(t *testing.T) {
	pg, db := pgtest.StartCluster(t)
	pg.Stop()
	addr := cptest.FreeAddr(t)
	if err := caddy.Load(cptest.Config(db, addr, cptest.Options{}), true); err != nil {
		t.Fatalf("the control plane did not start without its database: %v", err)
	}
	t.Cleanup(func() { caddy.Stop() })
	base := "http://" + addr
	if code, body := health(t, base); code != http.StatusServiceUnavailable || body["status"] != "starting" {
		t.Fatalf("health before the database: %d %v", code, body)
	}

	pg.Start(t)
	deadline := time.Now().Add(2 * time.Minute)
	for {
		code, body := health(t, base)
		if code == http.StatusOK && body["database"] == "ok" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("not ready 2 minutes after the database started: %d %v", code, body)
		}
		time.Sleep(200 * time.Millisecond)
	}
	conn, err := pgx.Connect(context.Background(), db.URL)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	var v uint
	var dirty bool
	if err := conn.QueryRow(context.Background(), "SELECT version, dirty FROM schema_migrations").Scan(&v, &dirty); err != nil || dirty || v != store.LatestVersion() {
		t.Fatalf("schema after ready: version %d dirty %v (%v), want %d", v, dirty, err, store.LatestVersion())
	}
}
