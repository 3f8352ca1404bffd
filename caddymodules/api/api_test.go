package api_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"testing"

	"github.com/wisehosting/wisehosting/caddymodules/cptest"
	"github.com/wisehosting/wisehosting/internal/pgtest"
)

const testSecret = cptest.Secret

// startCP runs a real control plane on loopback for db.
func startCP(t *testing.T, db *pgtest.DB) string {
	t.Helper()
	return cptest.Start(t, db, cptest.Options{}).URL
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
