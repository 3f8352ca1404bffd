package dashboard_test

import (
	"context"
	"fmt"
	"testing"
)

// Cancelling a queued deployment ends it (no worker is online in this
// control plane); another team's caller, a read-only token and a second
// cancel are refused.
func TestCancelDeployment(t *testing.T) {
	f := start(t, nil)
	ctx := context.Background()
	teamA, teamB := f.team("acme", "free"), f.team("globex", "free")
	f.user("alice@acme.test", "alice-password-1", map[int64]string{teamA: "owner"})
	f.user("bob@globex.test", "bob-password-1", map[int64]string{teamB: "owner"})
	alice, bob := f.login("alice@acme.test", "alice-password-1"), f.login("bob@globex.test", "bob-password-1")
	app := alice.want(201, "POST", fmt.Sprintf("/api/teams/%d/apps", teamA), map[string]any{"name": "Shop", "slug": "shop", "git_repo": "https://git.example/shop.git"})
	appID := int64(app["id"].(float64))
	dep := int64(alice.want(202, "POST", fmt.Sprintf("/api/apps/%d/deployments", appID), map[string]any{})["deployment_id"].(float64))
	path := fmt.Sprintf("/api/apps/%d/deployments/%d/cancel", appID, dep)

	bob.want(404, "POST", path, nil)
	bobApp := int64(bob.want(201, "POST", fmt.Sprintf("/api/teams/%d/apps", teamB), map[string]any{"name": "B", "slug": "bee"})["id"].(float64))
	bob.want(404, "POST", fmt.Sprintf("/api/apps/%d/deployments/%d/cancel", bobApp, dep), nil)
	tok := alice.want(201, "POST", "/api/tokens", map[string]any{"team_id": teamA, "name": "ro", "scopes": []string{"read"}})
	(&client{f: f, token: tok["token"].(string)}).want(403, "POST", path, nil)
	var status string
	f.db.Pool.QueryRow(ctx, "SELECT status FROM deployments WHERE id = $1", dep).Scan(&status)
	if status != "queued" {
		t.Fatalf("refused cancels changed the deployment: %s", status)
	}

	out := alice.want(200, "POST", path, nil)
	if out["status"] != "cancelled" {
		t.Fatalf("cancel: %v", out)
	}
	f.db.Pool.QueryRow(ctx, "SELECT status FROM deployments WHERE id = $1", dep).Scan(&status)
	var jobState string
	f.db.Pool.QueryRow(ctx, "SELECT state FROM jobs WHERE deployment_id = $1", dep).Scan(&jobState)
	if status != "cancelled" || jobState != "cancelled" {
		t.Fatalf("deployment %s, job %s", status, jobState)
	}
	alice.want(409, "POST", path, nil)
	var audited int
	f.db.Pool.QueryRow(ctx, "SELECT count(*) FROM audit_events WHERE action = 'deployment.cancel' AND team_id = $1", teamA).Scan(&audited)
	if audited != 1 {
		t.Fatalf("%d audit events for the cancel", audited)
	}
}
