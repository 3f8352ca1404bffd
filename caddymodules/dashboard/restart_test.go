package dashboard_test

import (
	"context"
	"fmt"
	"testing"
)

// Restarting an app queues the restart of its first instance on that
// instance's worker; an app that does not run, another team's caller, a
// read-only token and a second restart while one is in progress are
// refused.
func TestRestartApp(t *testing.T) {
	f := start(t, nil)
	ctx := context.Background()
	teamA, teamB := f.team("acme", "free"), f.team("globex", "free")
	f.user("alice@acme.test", "alice-password-1", map[int64]string{teamA: "owner"})
	f.user("bob@globex.test", "bob-password-1", map[int64]string{teamB: "owner"})
	alice, bob := f.login("alice@acme.test", "alice-password-1"), f.login("bob@globex.test", "bob-password-1")
	appID := int64(alice.want(201, "POST", fmt.Sprintf("/api/teams/%d/apps", teamA), map[string]any{"name": "Shop", "slug": "shop", "git_repo": "https://git.example/shop.git"})["id"].(float64))
	path := fmt.Sprintf("/api/apps/%d/restart", appID)

	if out := alice.want(409, "POST", path, nil); out["error"] == "" {
		t.Fatalf("restarting an app that never ran: %v", out)
	}
	// The app runs on a worker (as a deploy would leave it).
	var worker int64
	if err := f.db.Pool.QueryRow(ctx, `INSERT INTO workers (name, api_key_hash, status, last_seen) VALUES ('w1', 'h', 'online', now()) RETURNING id`).Scan(&worker); err != nil {
		t.Fatal(err)
	}
	if _, err := f.db.Pool.Exec(ctx, `WITH d AS (INSERT INTO deployments (app_id, status, image, worker_id, finished_at) VALUES ($1, 'succeeded', 'localhost/shop:1', $2, now()))
		UPDATE apps SET status = 'running', worker_id = $2 WHERE id = $1`, appID, worker); err != nil {
		t.Fatal(err)
	}

	bob.want(404, "POST", path, nil)
	tok := alice.want(201, "POST", "/api/tokens", map[string]any{"team_id": teamA, "name": "ro", "scopes": []string{"read"}})
	(&client{f: f, token: tok["token"].(string)}).want(403, "POST", path, nil)
	var jobs int
	f.db.Pool.QueryRow(ctx, "SELECT count(*) FROM jobs WHERE kind = 'restart'").Scan(&jobs)
	if jobs != 0 {
		t.Fatalf("refused restarts queued %d jobs", jobs)
	}

	out := alice.want(202, "POST", path, nil)
	if out["status"] != "restarting" || out["instances"] != 1.0 {
		t.Fatalf("restart: %v", out)
	}
	var slot, onWorker int64
	if err := f.db.Pool.QueryRow(ctx, `SELECT (payload->>'slot')::int, (payload->>'worker_id')::bigint FROM jobs
		WHERE kind = 'restart' AND app_id = $1 AND state = 'pending'`, appID).Scan(&slot, &onWorker); err != nil {
		t.Fatal(err)
	}
	if slot != 0 || onWorker != worker {
		t.Fatalf("the restart job is for slot %d on worker %d, want slot 0 on worker %d", slot, onWorker, worker)
	}
	alice.want(409, "POST", path, nil)
	var audited int
	f.db.Pool.QueryRow(ctx, "SELECT count(*) FROM audit_events WHERE action = 'app.restart' AND team_id = $1", teamA).Scan(&audited)
	if audited != 1 {
		t.Fatalf("%d audit events for the restart", audited)
	}
}
