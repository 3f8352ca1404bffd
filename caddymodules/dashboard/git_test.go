package dashboard_test

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/caddyserver/caddy/v2"

	"github.com/wisehosting/wisehosting/caddymodules/cptest"
	"github.com/wisehosting/wisehosting/caddymodules/dashboard"
	"github.com/wisehosting/wisehosting/internal/gitproviders/gitfake"
	"github.com/wisehosting/wisehosting/internal/pgtest"
)

// startGit runs the dashboard with GitHub's sign-in application pointed
// at a loopback stand-in.
func startGit(t *testing.T) (*fixture, *gitfake.Server) {
	t.Helper()
	gh := gitfake.Start(t)
	db := pgtest.New(t)
	cp := cptest.Start(t, db, cptest.Options{Core: map[string]any{"public_url": "https://cp.example.test"},
		Handlers: []map[string]any{{"handler": "wisehosting_dashboard", "insecure_cookie": true,
			"oauth": map[string]any{"github": map[string]any{"client_id": "gh-client", "client_secret": "gh-secret", "base_url": gh.API}}}}})
	return &fixture{t: t, db: db, base: cp.URL}, gh
}

// A team's connections, repositories, hooks and tokens are invisible to
// other teams, and only admins change them; the token is sealed at rest
// and never answered.
func TestGitConnectionsAreTeamScoped(t *testing.T) {
	f, gh := startGit(t)
	gh.AddToken("ghp_alice", "alice")
	gh.CreateRepo("alice/site")
	gh.Commit("alice/site", "main", map[string]string{"index.html": "hi"}, "first")
	a, b := f.team("team-a", "free"), f.team("team-b", "free")
	f.user("alice@a.test", "alice password 1", map[int64]string{a: "owner"})
	f.user("carol@a.test", "carol password 1", map[int64]string{a: "member"})
	f.user("bob@b.test", "bob password 12", map[int64]string{b: "owner"})
	alice, carol, bob := f.login("alice@a.test", "alice password 1"), f.login("carol@a.test", "carol password 1"), f.login("bob@b.test", "bob password 12")

	carol.want(403, "POST", fmt.Sprintf("/api/teams/%d/git/connections", a), map[string]any{"provider": "github", "token": "ghp_alice"})
	conn := alice.want(201, "POST", fmt.Sprintf("/api/teams/%d/git/connections", a), map[string]any{"provider": "github", "token": "ghp_alice"})
	cid := int64(conn["id"].(float64))
	var enc string
	f.db.Pool.QueryRow(context.Background(), "SELECT token_enc FROM git_connections WHERE id = $1", cid).Scan(&enc)
	if enc == "" || strings.Contains(enc, "ghp_alice") {
		t.Fatalf("token at rest: %q", enc)
	}
	app := alice.want(201, "POST", fmt.Sprintf("/api/teams/%d/apps", a), map[string]any{"name": "Site", "slug": "site", "git_connection_id": cid, "repo": "alice/site"})
	appID := int64(app["id"].(float64))
	if hk := app["hook"].(map[string]any); hk["installed"] != true || hk["url"] != fmt.Sprintf("https://cp.example.test/v1/hooks/github/%d", appID) {
		t.Fatalf("hook: %v", hk)
	}

	// Team B sees none of it.
	bob.want(404, "GET", fmt.Sprintf("/api/teams/%d/git/connections", a), nil)
	for _, p := range []string{"/repos", "/branches?repo=alice/site", "/detect?repo=alice/site&branch=main"} {
		bob.want(404, "GET", fmt.Sprintf("/api/teams/%d/git/connections/%d%s", b, cid, p), nil)
	}
	bob.want(404, "DELETE", fmt.Sprintf("/api/teams/%d/git/connections/%d", b, cid), nil)
	got := bob.want(422, "POST", fmt.Sprintf("/api/teams/%d/apps", b), map[string]any{"name": "Steal", "slug": "steal", "git_connection_id": cid, "repo": "alice/site"})
	if got["field"] != "git_connection_id" {
		t.Fatalf("foreign connection: %v", got)
	}
	bob.want(404, "GET", fmt.Sprintf("/api/apps/%d/hook", appID), nil)
	bob.want(404, "POST", fmt.Sprintf("/api/apps/%d/hook", appID), nil)
	bob.want(404, "PUT", fmt.Sprintf("/api/apps/%d/git-token", appID), map[string]any{"token": "x"})
	bob.want(404, "PATCH", fmt.Sprintf("/api/apps/%d", appID), map[string]any{"git_branch": "dev"})
	carol.want(403, "POST", fmt.Sprintf("/api/apps/%d/hook", appID), nil)
	carol.want(403, "PUT", fmt.Sprintf("/api/apps/%d/git-token", appID), map[string]any{"token": "x"})

	// The listing never carries the token; the deploy token is write-only.
	list := carol.want(200, "GET", fmt.Sprintf("/api/teams/%d/git/connections", a), nil)
	if s := fmt.Sprint(list); strings.Contains(s, "ghp_alice") || !strings.Contains(s, "alice") {
		t.Fatalf("listing: %s", s)
	}
	alice.want(200, "PUT", fmt.Sprintf("/api/apps/%d/git-token", appID), map[string]any{"token": "glpat-deploy"})
	if v := alice.want(200, "GET", fmt.Sprintf("/api/apps/%d", appID), nil); v["has_git_token"] != true || strings.Contains(fmt.Sprint(v), "glpat") {
		t.Fatalf("app view: %v", v)
	}
	if got := alice.want(422, "PUT", fmt.Sprintf("/api/apps/%d/git-token", appID), map[string]any{"token": "two words"}); got["field"] != "token" {
		t.Fatalf("bad token: %v", got)
	}
	// Settings errors name their field.
	for field, body := range map[string]map[string]any{"framework": {"framework": "cobol"}, "git_branch": {"git_branch": "-x"},
		"health_path": {"health_path": "no-slash"}, "port": {"port": 70000}, "root_dir": {"root_dir": "../etc"}, "dockerfile": {"dockerfile": "/etc/passwd"},
		"build_command": {"build_command": "make\nRUN id"}, "start_command": {"start_command": "a\x00b"}} {
		if got := alice.want(422, "PATCH", fmt.Sprintf("/api/apps/%d", appID), body); got["field"] != field {
			t.Errorf("%v: %v", body, got)
		}
	}
	if v := alice.want(200, "PATCH", fmt.Sprintf("/api/apps/%d", appID), map[string]any{"auto_deploy": false, "framework": "static", "health_path": "/up"}); v["auto_deploy"] != false || v["framework"] != "static" || v["health_path"] != "/up" {
		t.Fatalf("update: %v", v)
	}
	if v := alice.want(200, "PATCH", fmt.Sprintf("/api/apps/%d", appID), map[string]any{"build_command": "make site", "start_command": "./serve --port $PORT"}); v["build_command"] != "make site" || v["start_command"] != "./serve --port $PORT" {
		t.Fatalf("commands: %v", v)
	}
	if ev := fmt.Sprint(alice.want(200, "GET", fmt.Sprintf("/api/teams/%d/audit", a), nil)["events"]); !strings.Contains(ev, "start_command:./serve --port $PORT") {
		t.Errorf("the audit log has no start command: %s", ev)
	}
}

// An app without a connection gets a hook URL and a secret shown once;
// rotating gives a new one.
func TestManualHook(t *testing.T) {
	f, _ := startGit(t)
	a := f.team("team-m", "free")
	f.user("m@a.test", "m password 123", map[int64]string{a: "owner"})
	c := f.login("m@a.test", "m password 123")
	app := c.want(201, "POST", fmt.Sprintf("/api/teams/%d/apps", a), map[string]any{"name": "Own", "slug": "own",
		"git_repo": "https://gitlab.example.com/me/own.git", "git_provider": "gitlab"})
	hk := app["hook"].(map[string]any)
	if hk["installed"] != false || len(fmt.Sprint(hk["secret"])) < 20 || !strings.Contains(fmt.Sprint(hk["steps"]), "Secret token") {
		t.Fatalf("manual hook: %v", hk)
	}
	id := int64(app["id"].(float64))
	if v := c.want(200, "GET", fmt.Sprintf("/api/apps/%d/hook", id), nil); v["secret"] != nil || v["installed"] != false {
		t.Fatalf("hook view shows the secret: %v", v)
	}
	rot := c.want(200, "POST", fmt.Sprintf("/api/apps/%d/hook", id), nil)
	if rot["secret"] == hk["secret"] || len(fmt.Sprint(rot["secret"])) < 20 {
		t.Fatalf("rotation: %v then %v", hk["secret"], rot["secret"])
	}
}

// OAuth connect: the provider's consent asks for repository scopes; the
// callback spends the state once and stores the grant; a sign-in callback
// does not accept a connect state.
func TestConnectWithOAuth(t *testing.T) {
	f, gh := startGit(t)
	a := f.team("team-o", "free")
	f.user("o@a.test", "o password 123", map[int64]string{a: "owner"})
	c := f.login("o@a.test", "o password 123")
	noRedirect := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	begin := func() (string, *http.Cookie) {
		req, _ := http.NewRequest("GET", fmt.Sprintf("%s/api/teams/%d/git/oauth/github", f.base, a), nil)
		req.AddCookie(&http.Cookie{Name: dashboard.CookieName, Value: c.cookie})
		resp, err := noRedirect.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		loc, _ := url.Parse(resp.Header.Get("Location"))
		if resp.StatusCode != 302 || !strings.HasPrefix(loc.String(), gh.API+"/login/oauth/authorize") ||
			loc.Query().Get("scope") != "repo admin:repo_hook read:user" || loc.Query().Get("redirect_uri") != "https://cp.example.test/oauth/github/callback/connect" {
			t.Fatalf("start: %d %s", resp.StatusCode, loc)
		}
		for _, ck := range resp.Cookies() {
			if ck.Name == "wh_oauth_state" {
				return loc.Query().Get("state"), ck
			}
		}
		t.Fatal("no state cookie")
		return "", nil
	}
	back := func(path, state string, ck *http.Cookie, code string) *http.Response {
		req, _ := http.NewRequest("GET", f.base+path+"?code="+code+"&state="+url.QueryEscape(state), nil)
		req.AddCookie(ck)
		resp, err := noRedirect.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp
	}
	// A connect state is not a sign-in.
	state, ck := begin()
	gh.AddCode("code-1", "gho_oauth")
	gh.AddToken("gho_oauth", "octo")
	if resp := back("/oauth/github/callback", state, ck, "code-1"); resp.StatusCode != 400 {
		t.Fatalf("connect state at the sign-in callback: %d", resp.StatusCode)
	}
	state, ck = begin()
	resp := back("/oauth/github/callback/connect", state, ck, "code-1")
	if resp.StatusCode != 303 || !strings.HasPrefix(resp.Header.Get("Location"), "/?git_connected=") {
		t.Fatalf("callback: %d %s", resp.StatusCode, resp.Header.Get("Location"))
	}
	if resp := back("/oauth/github/callback/connect", state, ck, "code-1"); resp.StatusCode != 400 {
		t.Fatalf("replayed state: %d", resp.StatusCode)
	}
	list := c.want(200, "GET", fmt.Sprintf("/api/teams/%d/git/connections", a), nil)["connections"].([]any)
	if len(list) != 1 || list[0].(map[string]any)["method"] != "oauth" || list[0].(map[string]any)["account"] != "octo" {
		t.Fatalf("connections: %v", list)
	}

	// Expiring tokens: the grant is renewed with its refresh token before
	// a call, and the renewed token is kept.
	gh.ExpiringTokens(30)
	gh.AddCode("code-2", "gho_short")
	gh.AddToken("gho_short", "octo")
	gh.CreateRepo("octo/app")
	state, ck = begin()
	if resp := back("/oauth/github/callback/connect", state, ck, "code-2"); resp.StatusCode != 303 {
		t.Fatalf("second connection: %d", resp.StatusCode)
	}
	id := newestConnection(t, c, a)
	for i := 0; i < 2; i++ {
		repos := c.want(200, "GET", fmt.Sprintf("/api/teams/%d/git/connections/%s/repos", a, id), nil)
		if repos["total"].(float64) != 1 {
			t.Fatalf("repos after refresh: %v", repos)
		}
	}
	refreshes := 0
	for _, r := range gh.Requests() {
		if r == "POST /login/oauth/access_token" {
			refreshes++
		}
	}
	// Two code exchanges, then one refresh per call: the renewed token
	// expires within the minute too.
	if refreshes != 2+2 {
		t.Fatalf("token endpoint calls: %d (%v)", refreshes, gh.Requests())
	}
	var enc string
	f.db.Pool.QueryRow(context.Background(), "SELECT token_enc FROM git_connections WHERE id = $1", id).Scan(&enc)
	if strings.Contains(enc, "ghu_") || strings.Contains(enc, "gho_") {
		t.Fatal("a token is stored in clear")
	}
}

// newestConnection returns the id of the team's newest connection.
func newestConnection(t *testing.T, c *client, team int64) string {
	t.Helper()
	list := c.want(200, "GET", fmt.Sprintf("/api/teams/%d/git/connections", team), nil)["connections"].([]any)
	return fmt.Sprint(list[len(list)-1].(map[string]any)["id"])
}

// A person in real Chromium connects GitHub (the wrong token is refused
// next to its field), picks a repository (its framework detected through
// the provider), creates the app with its webhook installed, and edits its
// settings. Screenshots go to test-artifacts/dashboard-git.
func TestBrowserGitJourney(t *testing.T) {
	if _, err := os.Stat("browsertest/node_modules/playwright-core"); err != nil {
		t.Fatal("playwright-core is not installed: npm ci --prefix caddymodules/dashboard/browsertest (scripts/ci-deps.sh does it)")
	}
	f, gh := startGit(t)
	gh.AddToken("ghp_alice", "alice")
	for _, r := range []string{"alice/shop", "alice/blog"} {
		gh.CreateRepo(r)
	}
	gh.Commit("alice/blog", "main", map[string]string{"package.json": `{"dependencies":{"next":"15.0.0"}}`}, "blog")
	team := f.team("web", "free")
	f.user("pat@web.test", "pat-password-123", map[int64]string{team: "owner"})
	artifacts, _ := filepath.Abs("../../test-artifacts/dashboard-git")
	os.RemoveAll(artifacts)
	cmd := exec.Command("node", "browsertest/git.mjs")
	cmd.Env = append(os.Environ(), "BASE="+f.base, "EMAIL=pat@web.test", "PASSWORD=pat-password-123", "OUT="+artifacts,
		"CHROMIUM=/usr/bin/chromium", "TOKEN=ghp_alice")
	out, err := cmd.Output()
	if err != nil || !strings.Contains(string(out), `"ok":true`) {
		t.Fatalf("browser git journey: %v\n%s\nscreenshots: %s", err, out, artifacts)
	}
	var app struct {
		repo   string
		hook   string
		deploy bool
		health string
	}
	f.db.Pool.QueryRow(context.Background(), "SELECT git_repo_name, hook_id, auto_deploy, health_path FROM apps WHERE slug = 'browser-blog'").
		Scan(&app.repo, &app.hook, &app.deploy, &app.health)
	if app.repo != "alice/blog" || app.hook == "" || app.deploy || app.health != "/healthz" || len(gh.Hooks("alice/blog")) != 1 {
		t.Fatalf("after the journey: %+v, hooks %v", app, gh.Hooks("alice/blog"))
	}
}

// Codeberg/Gitea through the same screens: the connection reads the
// instance's API (/api/v1), the hook is a Gitea hook, and a push it
// delivers, signed Gitea's way with the secret it received, deploys.
func TestGiteaConnection(t *testing.T) {
	gh := gitfake.Start(t)
	db := pgtest.New(t)
	// The control plane's public address is where the provider delivers.
	addr := cptest.FreeAddr(t)
	cfg := cptest.Config(db, addr, cptest.Options{Core: map[string]any{"public_url": "http://" + addr},
		Handlers: []map[string]any{{"handler": "wisehosting_dashboard", "insecure_cookie": true,
			"oauth": map[string]any{"codeberg": map[string]any{"client_id": "cb-client", "client_secret": "cb-secret", "base_url": gh.API}}}}})
	if err := caddy.Load(cfg, true); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { caddy.Stop() })
	f := &fixture{t: t, db: db, base: "http://" + addr}
	gh.AddToken("cb_token", "dora")
	gh.CreateRepo("dora/site")
	sha := gh.Commit("dora/site", "main", map[string]string{"go.mod": "module site\n"}, "first")
	team := f.team("team-g", "free")
	f.user("dora@g.test", "dora password 1", map[int64]string{team: "owner"})
	c := f.login("dora@g.test", "dora password 1")
	conn := c.want(201, "POST", fmt.Sprintf("/api/teams/%d/git/connections", team), map[string]any{"provider": "codeberg", "token": "cb_token"})
	cid := int64(conn["id"].(float64))
	if fw := c.want(200, "GET", fmt.Sprintf("/api/teams/%d/git/connections/%d/detect?repo=dora/site&branch=main", team, cid), nil)["framework"]; fw != "go" {
		t.Fatalf("detect: %v", fw)
	}
	app := c.want(201, "POST", fmt.Sprintf("/api/teams/%d/apps", team), map[string]any{"name": "Site", "slug": "gsite", "git_connection_id": cid, "repo": "dora/site"})
	if app["hook"].(map[string]any)["installed"] != true || app["git_provider"] != "codeberg" {
		t.Fatalf("app: %v", app)
	}
	codes, bodies := gh.Push("dora/site", "main", sha)
	if len(codes) != 1 || codes[0] != 202 || !strings.Contains(bodies[0], `"deployed"`) {
		t.Fatalf("Gitea push delivery: %v %v", codes, bodies)
	}
}
