package api_test

import (
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"testing"

	"github.com/caddyserver/caddy/v2"

	_ "github.com/caddyserver/caddy/v2/modules/standard"
	_ "github.com/wisehosting/wisehosting/caddymodules/api"
	"github.com/wisehosting/wisehosting/internal/pgtest"
)

const testSecret = "0123456789abcdef0123456789abcdef"

// startCP runs a real control plane (the caddy config a Caddyfile with
// `wisehosting_api` adapts to) on loopback for db, and returns its URL.
// caddy.Load is process-wide, so tests using it do not run in parallel.
func startCP(t *testing.T, db *pgtest.DB) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	cfg := map[string]any{
		"admin":   map[string]any{"disabled": true},
		"logging": map[string]any{"logs": map[string]any{"default": map[string]any{"level": "ERROR"}}},
		"apps": map[string]any{
			"wisehosting": map[string]any{"database_url": db.URL, "secret": testSecret, "admin_email": "off"},
			"http": map[string]any{"servers": map[string]any{"cp": map[string]any{
				"listen": []string{addr},
				"routes": []any{map[string]any{"handle": []any{map[string]any{"handler": "wisehosting_api"}}}},
			}}},
		},
	}
	b, _ := json.Marshal(cfg)
	if err := caddy.Load(b, true); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { caddy.Stop() })
	return "http://" + addr
}

func TestHealth(t *testing.T) {
	db := pgtest.New(t)
	base := startCP(t, db)
	for _, p := range []string{"/health", "/healthz"} {
		resp, err := http.Get(base + p)
		if err != nil {
			t.Fatal(err)
		}
		var body map[string]any
		json.NewDecoder(resp.Body).Decode(&body)
		resp.Body.Close()
		if resp.StatusCode != 200 || body["status"] != "ok" || body["database"] != "ok" {
			t.Fatalf("%s: %d %v", p, resp.StatusCode, body)
		}
	}
	// Paths the API does not serve fall through (here: to Caddy's empty 200).
	resp, err := http.Get(base + "/not-an-api-path")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if ct := resp.Header.Get("Content-Type"); ct == "application/json" {
		t.Fatalf("unknown path answered by the API")
	}
}

func TestHealthReportsDatabaseDown(t *testing.T) {
	db := pgtest.New(t)
	base := startCP(t, db)
	// Kill every connection and forbid new ones: the pool cannot reach it.
	admin := pgtest.New(t)
	admin.Pool.Exec(t.Context(), fmt.Sprintf("ALTER DATABASE %s ALLOW_CONNECTIONS false", db.Name))
	admin.Pool.Exec(t.Context(), "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1", db.Name)
	t.Cleanup(func() { admin.Pool.Exec(t.Context(), fmt.Sprintf("ALTER DATABASE %s ALLOW_CONNECTIONS true", db.Name)) })

	resp, err := http.Get(base + "/health")
	if err != nil {
		t.Fatal(err)
	}
	var body map[string]any
	json.NewDecoder(resp.Body).Decode(&body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusServiceUnavailable || body["database"] != "unreachable" {
		t.Fatalf("db down: %d %v", resp.StatusCode, body)
	}
}
