package dashboard_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"testing"

	"github.com/wisehosting/wisehosting/caddymodules/cptest"
	"github.com/wisehosting/wisehosting/caddymodules/dashboard"
	"github.com/wisehosting/wisehosting/internal/auth"
	"github.com/wisehosting/wisehosting/internal/pgtest"
)

type fixture struct {
	t    *testing.T
	db   *pgtest.DB
	base string
}

func start(t *testing.T, core map[string]any) *fixture {
	t.Helper()
	db := pgtest.New(t)
	cp := cptest.Start(t, db, cptest.Options{Core: core,
		Handlers: []map[string]any{{"handler": "wisehosting_dashboard", "insecure_cookie": true}}})
	return &fixture{t: t, db: db, base: cp.URL}
}

// user creates a user with a password and the given memberships.
func (f *fixture) user(email, password string, roles map[int64]string) int64 {
	f.t.Helper()
	hash, _ := auth.HashPassword(context.Background(), password)
	var id int64
	if err := f.db.Pool.QueryRow(context.Background(), "INSERT INTO users (email, password_hash) VALUES ($1, $2) RETURNING id", email, hash).Scan(&id); err != nil {
		f.t.Fatal(err)
	}
	for team, role := range roles {
		f.db.Pool.Exec(context.Background(), "INSERT INTO memberships (team_id, user_id, role) VALUES ($1, $2, $3)", team, id, role)
	}
	return id
}

func (f *fixture) team(slug, plan string) int64 {
	var id int64
	f.db.Pool.QueryRow(context.Background(), "INSERT INTO teams (name, slug, plan) VALUES ($1, $1, $2) RETURNING id", slug, plan).Scan(&id)
	return id
}

// client is a signed-in caller: a session (cookie + CSRF) or a token.
type client struct {
	f      *fixture
	cookie string
	csrf   string
	token  string
}

func (f *fixture) login(email, password string) *client {
	f.t.Helper()
	c := &client{f: f}
	code, out, resp := c.do("POST", "/api/login", map[string]any{"email": email, "password": password})
	if code != 200 {
		f.t.Fatalf("login %s: %d %v", email, code, out)
	}
	for _, ck := range resp.Cookies() {
		if ck.Name == dashboard.CookieName {
			c.cookie = ck.Value
			if !ck.HttpOnly || ck.SameSite != http.SameSiteStrictMode {
				f.t.Fatalf("session cookie flags: %+v", ck)
			}
		}
	}
	c.csrf = out["csrf_token"].(string)
	return c
}

func (c *client) do(method, path string, body any) (int, map[string]any, *http.Response) {
	c.f.t.Helper()
	var r io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		r = bytes.NewReader(b)
	}
	req, _ := http.NewRequest(method, c.f.base+path, r)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if c.cookie != "" {
		req.AddCookie(&http.Cookie{Name: dashboard.CookieName, Value: c.cookie})
	}
	if c.csrf != "" {
		req.Header.Set("X-CSRF-Token", c.csrf)
	}
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		c.f.t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	var out map[string]any
	json.Unmarshal(raw, &out)
	if out == nil {
		out = map[string]any{"raw": string(raw)}
	}
	return resp.StatusCode, out, resp
}

func (c *client) want(code int, method, path string, body any) map[string]any {
	c.f.t.Helper()
	got, out, _ := c.do(method, path, body)
	if got != code {
		c.f.t.Fatalf("%s %s: %d %v, want %d", method, path, got, out, code)
	}
	return out
}

func TestAPIAndTeamIsolation(t *testing.T) {
	f := start(t, nil)
	ctx := context.Background()
	teamA, teamB := f.team("acme", "free"), f.team("globex", "free")
	f.user("alice@acme.test", "alice-password-1", map[int64]string{teamA: "owner"})
	f.user("bob@globex.test", "bob-password-1", map[int64]string{teamB: "owner"})
	f.user("carol@acme.test", "carol-password-1", map[int64]string{teamA: "member"})
	alice, bob, carol := f.login("alice@acme.test", "alice-password-1"), f.login("bob@globex.test", "bob-password-1"), f.login("carol@acme.test", "carol-password-1")

	anon := &client{f: f}
	anon.want(401, "GET", "/api/me", nil)
	anon.want(401, "POST", "/api/login", map[string]any{"email": "alice@acme.test", "password": "wrong"})

	me := alice.want(200, "GET", "/api/me", nil)
	if len(me["teams"].([]any)) != 1 {
		t.Fatalf("me: %v", me)
	}
	app := alice.want(201, "POST", fmt.Sprintf("/api/teams/%d/apps", teamA), map[string]any{"name": "Shop", "slug": "shop", "git_repo": "https://git.example/shop.git"})
	appID := int64(app["id"].(float64))
	alice.want(409, "POST", fmt.Sprintf("/api/teams/%d/apps", teamA), map[string]any{"name": "Shop 2", "slug": "shop"})
	alice.want(422, "POST", fmt.Sprintf("/api/teams/%d/apps", teamA), map[string]any{"name": "", "slug": "Bad Slug"})
	alice.want(200, "PUT", fmt.Sprintf("/api/apps/%d/env/DATABASE_URL", appID), map[string]any{"value": "postgres://secret-value"})
	alice.want(422, "PUT", fmt.Sprintf("/api/apps/%d/env/1BAD", appID), map[string]any{"value": "x"})
	dep := alice.want(202, "POST", fmt.Sprintf("/api/apps/%d/deployments", appID), map[string]any{})
	depID := int64(dep["deployment_id"].(float64))
	dom := alice.want(201, "POST", fmt.Sprintf("/api/apps/%d/domains", appID), map[string]any{"hostname": "www.shop.example"})
	domID := int64(dom["id"].(float64))
	if !strings.Contains(fmt.Sprint(dom["instructions"]), "_wisehosting.www.shop.example") {
		t.Fatalf("domain instructions: %v", dom)
	}

	// Values are write-only: no response carries them; the database holds
	// ciphertext.
	env := alice.want(200, "GET", fmt.Sprintf("/api/apps/%d/env", appID), nil)
	if strings.Contains(fmt.Sprint(env), "secret-value") || !strings.Contains(fmt.Sprint(env), "DATABASE_URL") {
		t.Fatalf("env listing: %v", env)
	}
	var stored string
	f.db.Pool.QueryRow(ctx, "SELECT value_enc FROM env_vars WHERE app_id = $1", appID).Scan(&stored)
	if strings.Contains(stored, "secret-value") {
		t.Fatal("variable stored in clear")
	}

	// Another team's caller sees nothing and changes nothing: 404 as if
	// the things did not exist.
	for _, c := range []struct {
		method, path string
		body         any
	}{
		{"GET", fmt.Sprintf("/api/apps/%d", appID), nil},
		{"PATCH", fmt.Sprintf("/api/apps/%d", appID), map[string]any{"memory_mb": 64}},
		{"GET", fmt.Sprintf("/api/apps/%d/deployments", appID), nil},
		{"POST", fmt.Sprintf("/api/apps/%d/deployments", appID), map[string]any{}},
		{"GET", fmt.Sprintf("/api/apps/%d/deployments/%d/logs", appID, depID), nil},
		{"GET", fmt.Sprintf("/api/apps/%d/env", appID), nil},
		{"PUT", fmt.Sprintf("/api/apps/%d/env/EVIL", appID), map[string]any{"value": "x"}},
		{"DELETE", fmt.Sprintf("/api/apps/%d/env/DATABASE_URL", appID), nil},
		{"GET", fmt.Sprintf("/api/apps/%d/domains", appID), nil},
		{"POST", fmt.Sprintf("/api/apps/%d/domains", appID), map[string]any{"hostname": "evil.example"}},
		{"POST", fmt.Sprintf("/api/apps/%d/domains/%d/verify", appID, domID), nil},
		{"GET", fmt.Sprintf("/api/teams/%d/apps", teamA), nil},
		{"POST", fmt.Sprintf("/api/teams/%d/apps", teamA), map[string]any{"name": "x", "slug": "xx"}},
		{"GET", fmt.Sprintf("/api/teams/%d/audit", teamA), nil},
	} {
		bob.want(404, c.method, c.path, c.body)
	}
	// A deployment of one app cannot be read through another app.
	bobApp := bob.want(201, "POST", fmt.Sprintf("/api/teams/%d/apps", teamB), map[string]any{"name": "B", "slug": "bee"})
	bob.want(404, "GET", fmt.Sprintf("/api/apps/%d/deployments/%d/logs", int64(bobApp["id"].(float64)), depID), nil)
	// Bob cannot revoke Alice's session.
	sess := alice.want(200, "GET", "/api/sessions", nil)["sessions"].([]any)
	aliceSession := int64(sess[0].(map[string]any)["id"].(float64))
	bob.want(404, "DELETE", fmt.Sprintf("/api/sessions/%d", aliceSession), nil)
	var n int
	f.db.Pool.QueryRow(ctx, "SELECT count(*) FROM env_vars WHERE key = 'EVIL'").Scan(&n)
	if n != 0 {
		t.Fatal("cross-team write went through")
	}

	// Roles: a member reads and deploys, but does not create apps or set
	// variables.
	carol.want(200, "GET", fmt.Sprintf("/api/apps/%d", appID), nil)
	carol.want(403, "POST", fmt.Sprintf("/api/teams/%d/apps", teamA), map[string]any{"name": "c", "slug": "cc"})
	carol.want(403, "PUT", fmt.Sprintf("/api/apps/%d/env/X", appID), map[string]any{"value": "1"})
	carol.want(202, "POST", fmt.Sprintf("/api/apps/%d/deployments", appID), map[string]any{})
	carol.want(403, "GET", fmt.Sprintf("/api/teams/%d/audit", teamA), nil)

	// CSRF: a session's write without the token is refused.
	noCSRF := &client{f: f, cookie: alice.cookie}
	noCSRF.want(403, "POST", fmt.Sprintf("/api/apps/%d/deployments", appID), map[string]any{})
	noCSRF.want(200, "GET", fmt.Sprintf("/api/apps/%d", appID), nil)

	// API tokens: one team, read or write.
	tok := alice.want(201, "POST", "/api/tokens", map[string]any{"team_id": teamA, "name": "ci", "scopes": []string{"read"}, "expires_in_days": 30})
	reader := &client{f: f, token: tok["token"].(string)}
	reader.want(200, "GET", fmt.Sprintf("/api/apps/%d", appID), nil)
	reader.want(403, "POST", fmt.Sprintf("/api/apps/%d/deployments", appID), map[string]any{})
	tok = alice.want(201, "POST", "/api/tokens", map[string]any{"team_id": teamA, "name": "deployer", "scopes": []string{"read", "write"}})
	writer := &client{f: f, token: tok["token"].(string)}
	writer.want(202, "POST", fmt.Sprintf("/api/apps/%d/deployments", appID), map[string]any{})
	writer.want(403, "POST", "/api/tokens", map[string]any{"team_id": teamA, "name": "more"})
	alice.want(404, "POST", "/api/tokens", map[string]any{"team_id": teamB, "name": "steal"})
	// Bad input answers a sentence about the field at fault.
	for _, bad := range []struct {
		body  map[string]any
		field string
	}{
		{map[string]any{"team_id": teamA, "name": ""}, "name"},
		{map[string]any{"team_id": teamA, "name": "x", "scopes": []string{"admin"}}, "scopes"},
		{map[string]any{"team_id": teamA, "name": "x", "expires_in_days": -1}, "expires_in_days"},
		{map[string]any{"team_id": teamA, "name": "x", "expires_in_days": 1 << 40}, "expires_in_days"},
	} {
		out := alice.want(422, "POST", "/api/tokens", bad.body)
		if out["field"] != bad.field || !strings.HasSuffix(out["error"].(string), ".") {
			t.Fatalf("token %v: %v, want a sentence about %s", bad.body, out, bad.field)
		}
	}
	var hashOnly int
	f.db.Pool.QueryRow(ctx, "SELECT count(*) FROM api_tokens WHERE token_hash = sha256(convert_to($1, 'UTF8'))", tok["token"]).Scan(&hashOnly)
	if hashOnly != 1 {
		t.Fatal("API token not stored as its SHA-256")
	}
	(&client{f: f, token: "wht_forged"}).want(401, "GET", "/api/me", nil)

	// Every change left an audit event.
	events := alice.want(200, "GET", fmt.Sprintf("/api/teams/%d/audit", teamA), nil)["events"].([]any)
	seen := map[string]bool{}
	for _, e := range events {
		seen[e.(map[string]any)["action"].(string)] = true
	}
	for _, a := range []string{"app.create", "env.set", "deployment.create", "domain.add", "token.create"} {
		if !seen[a] {
			t.Errorf("no %s in the audit log: %v", a, seen)
		}
	}

	// Logout ends the session.
	alice.want(200, "POST", "/api/logout", nil)
	alice.want(401, "GET", "/api/me", nil)
}

func TestPlanLimitsAtTheEdges(t *testing.T) {
	f := start(t, map[string]any{"plans": map[string]any{
		"free": map[string]any{"apps": 1, "memory_mb": 256, "replicas": 2},
	}})
	team := f.team("small", "free")
	f.user("dana@small.test", "dana-password-1", map[int64]string{team: "owner"})
	dana := f.login("dana@small.test", "dana-password-1")
	out := dana.want(403, "POST", fmt.Sprintf("/api/teams/%d/apps", team), map[string]any{"name": "Many", "slug": "many", "replicas": 5})
	if !strings.Contains(fmt.Sprint(out["error"]), "replicas is at most 2") {
		t.Fatalf("error %v", out)
	}
	out = dana.want(403, "POST", fmt.Sprintf("/api/teams/%d/apps", team), map[string]any{"name": "Big", "slug": "big", "memory_mb": 1024})
	if !strings.Contains(fmt.Sprint(out["error"]), "memory_mb is at most 256") {
		t.Fatalf("error %v", out)
	}
	app := dana.want(201, "POST", fmt.Sprintf("/api/teams/%d/apps", team), map[string]any{"name": "One", "slug": "one"})
	out = dana.want(403, "POST", fmt.Sprintf("/api/teams/%d/apps", team), map[string]any{"name": "Two", "slug": "two"})
	if !strings.Contains(fmt.Sprint(out["error"]), "allows 1 apps") {
		t.Fatalf("error %v", out)
	}
	id := int64(app["id"].(float64))
	dana.want(403, "PATCH", fmt.Sprintf("/api/apps/%d", id), map[string]any{"memory_mb": 512})
	dana.want(200, "PATCH", fmt.Sprintf("/api/apps/%d", id), map[string]any{"memory_mb": 128})
	// Instances within the plan; the rolling-deploy bounds are checked.
	out = dana.want(403, "PATCH", fmt.Sprintf("/api/apps/%d", id), map[string]any{"replicas": 3})
	if !strings.Contains(fmt.Sprint(out["error"]), "replicas is at most 2 (asked for 3)") {
		t.Fatalf("error %v", out)
	}
	out = dana.want(422, "PATCH", fmt.Sprintf("/api/apps/%d", id), map[string]any{"replicas": 2, "max_unavailable": 2})
	if out["field"] != "max_unavailable" {
		t.Fatalf("error %v", out)
	}
	if v := dana.want(200, "PATCH", fmt.Sprintf("/api/apps/%d", id), map[string]any{"replicas": 2, "max_surge": 2}); v["replicas"] != 2.0 || v["max_surge"] != 2.0 {
		t.Fatalf("scaled: %v", v)
	}
	// Another team's member cannot scale it.
	other := f.team("other", "free")
	f.user("olga@other.test", "olga-password-1", map[int64]string{other: "owner"})
	olga := f.login("olga@other.test", "olga-password-1")
	if code, _, _ := olga.do("PATCH", fmt.Sprintf("/api/apps/%d", id), map[string]any{"replicas": 1}); code != http.StatusNotFound && code != http.StatusForbidden {
		t.Fatalf("another team scaled the app: %d", code)
	}
	var n int
	f.db.Pool.QueryRow(context.Background(), "SELECT replicas FROM apps WHERE id = $1", id).Scan(&n)
	if n != 2 {
		t.Fatalf("replicas %d after another team's request, want 2", n)
	}
	out = dana.want(403, "POST", fmt.Sprintf("/api/apps/%d/domains", id), map[string]any{"hostname": "www.small.test"})
	if !strings.Contains(fmt.Sprint(out["error"]), "custom_domains") {
		t.Fatalf("error %v", out)
	}
	// A plan downgrade leaves the app above the limit: deploys are refused.
	f.db.Pool.Exec(context.Background(), "UPDATE apps SET memory_mb = 2048 WHERE id = $1", id)
	out = dana.want(403, "POST", fmt.Sprintf("/api/apps/%d/deployments", id), map[string]any{})
	if !strings.Contains(fmt.Sprint(out["error"]), "memory_mb") {
		t.Fatalf("error %v", out)
	}
}

func TestLoginRateLimitPerAccount(t *testing.T) {
	f := start(t, nil)
	f.user("eve@x.test", "right-password-1", nil)
	anon := &client{f: f}
	limited := false
	for i := 0; i < 12; i++ {
		code, _, _ := anon.do("POST", "/api/login", map[string]any{"email": "eve@x.test", "password": "guess"})
		if code == http.StatusTooManyRequests {
			limited = true
			break
		}
	}
	if !limited {
		t.Fatal("12 wrong passwords in a row were never rate limited")
	}
	// Even the right password waits now.
	if code, _, _ := anon.do("POST", "/api/login", map[string]any{"email": "eve@x.test", "password": "right-password-1"}); code != http.StatusTooManyRequests {
		t.Fatalf("right password during the lockout: %d", code)
	}
}

// Every API route is in the OpenAPI document and the document names no
// route that does not exist.
func TestOpenAPIMatchesRoutes(t *testing.T) {
	f := start(t, nil)
	code, doc, _ := (&client{f: f}).do("GET", "/api/openapi.json", nil)
	if code != 200 {
		t.Fatalf("openapi: %d", code)
	}
	paths := doc["paths"].(map[string]any)
	documented := map[string]bool{}
	for p, ops := range paths {
		for m := range ops.(map[string]any) {
			documented[strings.ToUpper(m)+" "+p] = true
		}
	}
	for _, r := range dashboard.Patterns() {
		if !documented[r] {
			t.Errorf("route %s is not in openapi.json", r)
		}
		delete(documented, r)
	}
	for r := range documented {
		t.Errorf("openapi.json documents %s, which does not exist", r)
	}
	b, _ := os.ReadFile("openapi.json")
	if !json.Valid(b) {
		t.Fatal("openapi.json is not valid JSON")
	}
}

// The API stores only repository URLs and branches a worker would accept
// (the same rules, internal/gitsource): a local path, an option smuggled
// after a space, a shell separator, a newline or a leading dash in a
// branch never reach the database.
func TestAppSourceValidatedLikeTheAgent(t *testing.T) {
	f := start(t, nil)
	team := f.team("acme", "free")
	f.user("alice@acme.test", "alice-password-1", map[int64]string{team: "owner"})
	alice := f.login("alice@acme.test", "alice-password-1")
	path := fmt.Sprintf("/api/teams/%d/apps", team)
	for i, in := range []map[string]any{
		{"git_repo": "/etc"},
		{"git_repo": "file:///etc"},
		{"git_repo": "https://x --upload-pack=y"},
		{"git_repo": "https://user:pw@git.example/a.git"},
		{"git_repo": "ext::sh -c id"},
		{"git_repo": "https://git.example/a.git", "git_branch": "main;id"},
		{"git_repo": "https://git.example/a.git", "git_branch": "main\nid"},
		{"git_repo": "https://git.example/a.git", "git_branch": "-upload-pack=x"},
		{"git_repo": "https://git.example/a.git", "git_branch": "--orphan"},
	} {
		in["name"], in["slug"] = "App", fmt.Sprintf("app-%d", i)
		if out := alice.want(422, "POST", path, in); out["error"] == "" {
			t.Errorf("%v: no message", in)
		}
	}
	alice.want(201, "POST", path, map[string]any{"name": "Ok", "slug": "ok", "git_repo": "https://git.example/a.git", "git_branch": "feature/x"})
	var n int
	f.db.Pool.QueryRow(context.Background(), "SELECT count(*) FROM apps").Scan(&n)
	if n != 1 {
		t.Fatalf("%d apps stored, want only the valid one", n)
	}
}

func TestWronglyTypedFieldAnsweredWithASentence(t *testing.T) {
	f := start(t, nil)
	team := f.team("acme", "free")
	f.user("alice@acme.test", "alice-password-1", map[int64]string{team: "owner"})
	alice := f.login("alice@acme.test", "alice-password-1")
	out := alice.want(400, "POST", fmt.Sprintf("/api/teams/%d/apps", team), map[string]any{"name": "App", "slug": "app", "port": "eighty"})
	if out["error"] != "invalid JSON body: port must be a whole number, not a string" || out["field"] != "port" {
		t.Fatalf("create with a wrongly typed port: %v", out)
	}
	app := alice.want(201, "POST", fmt.Sprintf("/api/teams/%d/apps", team), map[string]any{"name": "App", "slug": "app"})
	path := fmt.Sprintf("/api/apps/%d", int64(app["id"].(float64)))
	out = alice.want(400, "PATCH", path, map[string]any{"auto_deploy": "yes"})
	if out["error"] != "invalid JSON body: auto_deploy must be true or false, not a string" || out["field"] != "auto_deploy" {
		t.Fatalf("update with a wrongly typed auto_deploy: %v", out)
	}
	out = alice.want(400, "PATCH", path, map[string]any{"colour": "red"})
	if out["error"] != `invalid JSON body: there is no field "colour" here` || out["field"] != "colour" {
		t.Fatalf("update with an unknown field: %v", out)
	}
}
