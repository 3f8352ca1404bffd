package dashboard_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
)

// Token listing and revocation, domain removal and app deletion, each
// tried across teams first.
func TestTokensDomainsAndAppDeletion(t *testing.T) {
	f := start(t, nil)
	ctx := context.Background()
	teamA, teamB := f.team("acme", "pro"), f.team("globex", "pro")
	f.user("alice@acme.test", "alice-password-1", map[int64]string{teamA: "owner"})
	f.user("bob@globex.test", "bob-password-1", map[int64]string{teamB: "owner"})
	f.user("carol@acme.test", "carol-password-1", map[int64]string{teamA: "member"})
	alice, bob, carol := f.login("alice@acme.test", "alice-password-1"), f.login("bob@globex.test", "bob-password-1"), f.login("carol@acme.test", "carol-password-1")

	// Tokens: listed without the secret; only the owner revokes, from a
	// session; a revoked token stops working.
	created := alice.want(201, "POST", "/api/tokens", map[string]any{"team_id": teamA, "name": "ci", "scopes": []string{"read", "write"}})
	raw, tokID := created["token"].(string), int64(created["id"].(float64))
	list := alice.want(200, "GET", "/api/tokens", nil)["tokens"].([]any)
	if len(list) != 1 || fmt.Sprint(list) == "" || strings.Contains(fmt.Sprint(list), raw) {
		t.Fatalf("tokens: %v", list)
	}
	if n := len(bob.want(200, "GET", "/api/tokens", nil)["tokens"].([]any)); n != 0 {
		t.Fatalf("bob sees %d tokens", n)
	}
	bob.want(404, "DELETE", fmt.Sprintf("/api/tokens/%d", tokID), nil)
	tok := &client{f: f, token: raw}
	tok.want(200, "GET", "/api/tokens", nil)
	tok.want(403, "DELETE", fmt.Sprintf("/api/tokens/%d", tokID), nil)
	alice.want(200, "DELETE", fmt.Sprintf("/api/tokens/%d", tokID), nil)
	tok.want(401, "GET", "/api/me", nil)
	alice.want(404, "DELETE", fmt.Sprintf("/api/tokens/%d", tokID), nil)

	// Domains.
	app := int64(alice.want(201, "POST", fmt.Sprintf("/api/teams/%d/apps", teamA), map[string]any{"name": "Shop", "slug": "shop"})["id"].(float64))
	dom := int64(alice.want(201, "POST", fmt.Sprintf("/api/apps/%d/domains", app), map[string]any{"hostname": "www.shop.example"})["id"].(float64))
	bobApp := int64(bob.want(201, "POST", fmt.Sprintf("/api/teams/%d/apps", teamB), map[string]any{"name": "B", "slug": "bee"})["id"].(float64))
	bob.want(404, "DELETE", fmt.Sprintf("/api/apps/%d/domains/%d", app, dom), nil)
	bob.want(404, "DELETE", fmt.Sprintf("/api/apps/%d/domains/%d", bobApp, dom), nil)
	carol.want(403, "DELETE", fmt.Sprintf("/api/apps/%d/domains/%d", app, dom), nil)
	alice.want(200, "DELETE", fmt.Sprintf("/api/apps/%d/domains/%d", app, dom), nil)
	if n := len(alice.want(200, "GET", fmt.Sprintf("/api/apps/%d/domains", app), nil)["domains"].([]any)); n != 0 {
		t.Fatalf("%d domains left", n)
	}

	// Apps: one that ran waits for its worker; one that never ran goes.
	bob.want(404, "DELETE", fmt.Sprintf("/api/apps/%d", app), nil)
	carol.want(403, "DELETE", fmt.Sprintf("/api/apps/%d", app), nil)
	var worker int64
	f.db.Pool.QueryRow(ctx, `INSERT INTO workers (name, api_key_hash, status) VALUES ('w1', sha256('k'::bytea), 'online') RETURNING id`).Scan(&worker)
	f.db.Pool.Exec(ctx, "UPDATE apps SET worker_id = $1, status = 'running', host_port = 30001 WHERE id = $2", worker, app)
	out := alice.want(202, "DELETE", fmt.Sprintf("/api/apps/%d", app), nil)
	if out["status"] != "deleting" {
		t.Fatalf("delete: %v", out)
	}
	if st := alice.want(200, "GET", fmt.Sprintf("/api/apps/%d", app), nil)["status"]; st != "deleting" {
		t.Fatalf("status %v", st)
	}
	alice.want(403, "POST", fmt.Sprintf("/api/apps/%d/deployments", app), map[string]any{})
	alice.want(409, "PATCH", fmt.Sprintf("/api/apps/%d", app), map[string]any{"memory_mb": 128})
	var jobs int
	f.db.Pool.QueryRow(ctx, "SELECT count(*) FROM jobs WHERE app_id = $1 AND kind = 'delete' AND state = 'pending'", app).Scan(&jobs)
	if jobs != 1 {
		t.Fatalf("%d delete jobs", jobs)
	}
	other := int64(alice.want(201, "POST", fmt.Sprintf("/api/teams/%d/apps", teamA), map[string]any{"name": "Other", "slug": "other"})["id"].(float64))
	if out := alice.want(200, "DELETE", fmt.Sprintf("/api/apps/%d", other), nil); out["status"] != "deleted" {
		t.Fatalf("delete: %v", out)
	}
	alice.want(404, "GET", fmt.Sprintf("/api/apps/%d", other), nil)
	var audited int
	f.db.Pool.QueryRow(ctx, "SELECT count(*) FROM audit_events WHERE team_id = $1 AND action IN ('token.revoke', 'domain.remove', 'app.delete')", teamA).Scan(&audited)
	if audited != 4 {
		t.Fatalf("%d audit events, want 4", audited)
	}
}
