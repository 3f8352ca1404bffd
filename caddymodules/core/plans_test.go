package core_test

import (
	"context"
	"strings"
	"testing"

	"github.com/caddyserver/caddy/v2"

	"github.com/wisehosting/wisehosting/caddymodules/cptest"
	"github.com/wisehosting/wisehosting/internal/pgtest"
)

// A team on a plan the configuration does not define stops the control
// plane from starting, with a message naming the plan.
func TestUnknownTeamPlanRefusedAtStart(t *testing.T) {
	db := pgtest.New(t)
	db.Pool.Exec(context.Background(), "INSERT INTO teams (name, slug, plan) VALUES ('a', 'a', 'enterprise')")
	cfg := cptest.Config(db, cptest.FreeAddr(t), cptest.Options{Core: map[string]any{
		"plans": map[string]any{"free": map[string]any{"apps": 3}, "pro": map[string]any{"apps": 30}},
	}})
	err := caddy.Load(cfg, true)
	if err == nil {
		caddy.Stop()
		t.Fatal("started with a team on an unknown plan")
	}
	if !strings.Contains(err.Error(), `"enterprise" (1 teams)`) || !strings.Contains(err.Error(), "configured: free, pro") {
		t.Fatalf("error %v", err)
	}
	// Defining the plan fixes it.
	cfg = cptest.Config(db, cptest.FreeAddr(t), cptest.Options{Core: map[string]any{
		"plans": map[string]any{"free": map[string]any{}, "enterprise": map[string]any{}},
	}})
	if err := caddy.Load(cfg, true); err != nil {
		t.Fatal(err)
	}
	caddy.Stop()
}
