package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/wisehosting/wisehosting/agent/runtime/podmantest"
	"github.com/wisehosting/wisehosting/internal/deploys"
	"github.com/wisehosting/wisehosting/internal/gitproviders/gitfake"
)

// rawCall is one API request whose status and headers the test inspects.
func (c *apiClient) rawCall(method, path string, body any) (int, http.Header, map[string]any) {
	c.t.Helper()
	var r io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		r = bytes.NewReader(b)
	}
	req, _ := http.NewRequest(method, c.base+path, r)
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("X-CSRF-Token", c.csrf)
	req.AddCookie(c.cookie)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		c.t.Fatal(err)
	}
	defer resp.Body.Close()
	var out map[string]any
	json.NewDecoder(resp.Body).Decode(&out)
	return resp.StatusCode, resp.Header, out
}

// wantError checks an error answer: its status, that it names what to do,
// and (when field is set) the form field it belongs to.
func (c *apiClient) wantError(method, path string, body any, code int, field string, msg *regexp.Regexp) {
	c.t.Helper()
	got, _, out := c.rawCall(method, path, body)
	e, _ := out["error"].(string)
	if got != code || !msg.MatchString(e) || (field != "" && out["field"] != field) {
		c.t.Fatalf("%s %s: got %d %v, want %d field %q error matching %s", method, path, got, out, code, field, msg)
	}
}

// waitDeployment waits for the newest deployment of app to end and
// returns it (through the API, as the dashboard polls it).
func (c *apiClient) waitDeployment(app int64, after float64, d time.Duration) map[string]any {
	c.t.Helper()
	var last map[string]any
	waitFor(c.t, fmt.Sprintf("a deployment of app %d to finish", app), d, func() bool {
		deps := c.call("GET", fmt.Sprintf("/api/apps/%d/deployments", app), nil, 200)["deployments"].([]any)
		if len(deps) == 0 {
			return false
		}
		last = deps[0].(map[string]any)
		return last["id"].(float64) > after && (last["status"] == "succeeded" || last["status"] == "failed")
	})
	if last["status"] != "succeeded" {
		c.t.Fatalf("deployment of app %d: %v", app, last)
	}
	return last
}

// TestPushToDeploy is the push-to-deploy journey through the public
// surface only: a team connects GitHub (a loopback stand-in speaking its
// JSON, with a real git smart-HTTP server holding a private repository),
// picks the repository, and the platform installs the hook, builds pushes
// on a real worker, previews pull requests with a commit status, and
// removes the preview when the pull request closes. The error cases a
// user meets (wrong and revoked token, deleted repository, hook refused,
// rate limit) answer clear messages, never a 500.
func TestPushToDeploy(t *testing.T) {
	work := t.TempDir()
	_, dbURL := startPostgres(t)
	svc := podmantest.Start(t)
	gh := gitfake.Start(t)
	t.Cleanup(func() {
		for _, slug := range []string{"store", "store-pr-7", "store-pr-8", "docs"} {
			out, _ := svc.Podman(context.Background(), "ps", "-aq", "--filter", "label=io.wisehosting.slug="+slug)
			for _, id := range strings.Fields(out) {
				svc.Podman(context.Background(), "rm", "-f", "-t", "1", id)
			}
		}
	})
	j := startJourney(t, work, dbURL, svc, fmt.Sprintf(`			oauth github {
				client_id gh-client
				client_secret gh-secret
				base_url %s
			}`, gh.API), "-git-ca-file", gh.CAFile)
	cpAddr, zoneAddr, api, team := j.cpAddr, j.zoneAddr, j.api, j.team
	tp := func(p string, a ...any) string { return fmt.Sprintf("/api/teams/%d", team) + fmt.Sprintf(p, a...) }

	// At GitHub: alice's private repositories and her token.
	gh.AddToken("ghp_alice", "alice")
	for _, r := range []string{"alice/shop", "alice/blog", "alice/docs"} {
		gh.CreateRepo(r)
	}
	// The site lives in site/ (the app's root directory); the top-level
	// page must not be what is served.
	sha1 := gh.Commit("alice/shop", "main", map[string]string{"index.html": "<h1>the repository's top level</h1>\n",
		"site/index.html": "<h1>shop version one</h1>\n"}, "first")
	gh.Commit("alice/blog", "main", map[string]string{"package.json": `{"dependencies":{"next":"15.0.0"}}`}, "blog")
	gh.Commit("alice/docs", "main", map[string]string{"index.html": "docs"}, "docs")

	// Connect: a wrong token is refused next to the token field.
	api.wantError("POST", tp("/git/connections"), map[string]any{"provider": "github", "token": "ghp_wrong"}, 422, "token",
		regexp.MustCompile(`GitHub refused the token`))
	api.wantError("POST", tp("/git/connections"), map[string]any{"provider": "github", "token": "ghp_x", "api_url": "http://10.0.0.1/api"}, 422, "api_url",
		regexp.MustCompile(`https://`))
	conn := api.call("POST", tp("/git/connections"), map[string]any{"provider": "github", "token": "ghp_alice"}, 201)
	if conn["account"] != "alice" || conn["token"] != nil {
		t.Fatalf("connection: %v", conn)
	}
	cid := int64(conn["id"].(float64))
	list := api.call("GET", tp("/git/connections"), nil, 200)
	if b, _ := json.Marshal(list); strings.Contains(string(b), "ghp_alice") {
		t.Fatalf("the token is shown again: %s", b)
	}

	// List, search and page the repositories; branches; detection.
	page := api.call("GET", tp("/git/connections/%d/repos?per_page=2&page=2", cid), nil, 200)
	if page["total"].(float64) != 3 || len(page["repos"].([]any)) != 1 {
		t.Fatalf("page 2 of 2: %v", page)
	}
	found := api.call("GET", tp("/git/connections/%d/repos?q=SHO", cid), nil, 200)["repos"].([]any)
	if len(found) != 1 || found[0].(map[string]any)["full_name"] != "alice/shop" || found[0].(map[string]any)["clone_url"] != gh.CloneURL("alice/shop") {
		t.Fatalf("search: %v", found)
	}
	br := api.call("GET", tp("/git/connections/%d/branches?repo=alice/shop", cid), nil, 200)["branches"].([]any)
	if len(br) != 1 || br[0].(map[string]any)["name"] != "main" || br[0].(map[string]any)["commit"] != sha1 {
		t.Fatalf("branches: %v", br)
	}
	for repo, want := range map[string]string{"alice/shop": "static", "alice/blog": "nextjs"} {
		if fw := api.call("GET", tp("/git/connections/%d/detect?repo=%s&branch=main", cid, repo), nil, 200)["framework"]; fw != want {
			t.Fatalf("detect %s: %v, want %s", repo, fw, want)
		}
	}

	// A rate-limited provider: 429 with its wait, in words.
	gh.RateLimit(42 * time.Second)
	code, hdr, body := api.rawCall("GET", tp("/git/connections/%d/repos", cid), nil)
	if code != 429 || hdr.Get("Retry-After") != "42" || !strings.Contains(fmt.Sprint(body["error"]), "try again in 42 seconds") {
		t.Fatalf("rate limited: %d %v %v", code, hdr, body)
	}
	gh.RateLimit(0)

	// Hook creation refused: the app is created, with the hook URL, the
	// secret (once) and the steps to add it by hand.
	gh.RefuseHooks(true)
	docs := api.call("POST", tp("/apps"), map[string]any{"name": "Docs", "slug": "docs", "git_connection_id": cid, "repo": "alice/docs"}, 201)
	hk := docs["hook"].(map[string]any)
	if hk["installed"] != false || len(fmt.Sprint(hk["secret"])) < 20 || hk["steps"] == nil ||
		!strings.Contains(fmt.Sprint(hk["reason"]), "GitHub answered not found while creating the webhook") {
		t.Fatalf("refused hook: %v", hk)
	}
	docsID := int64(docs["id"].(float64))
	if h := api.call("GET", fmt.Sprintf("/api/apps/%d/hook", docsID), nil, 200); h["secret"] != nil || h["url"] != fmt.Sprintf("http://%s/v1/hooks/github/%d", cpAddr, docsID) {
		t.Fatalf("hook view: %v", h)
	}
	gh.RefuseHooks(false)
	// Rotating installs it now that the provider allows it.
	if h := api.call("POST", fmt.Sprintf("/api/apps/%d/hook", docsID), nil, 200); h["installed"] != true || h["secret"] != nil {
		t.Fatalf("rotate: %v", h)
	}
	if hs := gh.Hooks("alice/docs"); len(hs) != 1 || hs[0].Secret == fmt.Sprint(hk["secret"]) {
		t.Fatalf("rotated hook at the provider: %+v", hs)
	}

	// Create the app from the repository: the hook is registered at the
	// provider with a fresh secret.
	shop := api.call("POST", tp("/apps"), map[string]any{"name": "Shop", "slug": "store", "git_connection_id": cid, "repo": "alice/shop",
		"cpu_millis": 250, "memory_mb": 64}, 201)
	shopID := int64(shop["id"].(float64))
	if shop["git_repo"] != gh.CloneURL("alice/shop") || shop["git_branch"] != "main" || shop["hook"].(map[string]any)["installed"] != true {
		t.Fatalf("created: %v", shop)
	}
	api.wantError("PATCH", fmt.Sprintf("/api/apps/%d", shopID), map[string]any{"root_dir": "../etc"}, 422, "root_dir", regexp.MustCompile(`not valid`))
	api.call("PATCH", fmt.Sprintf("/api/apps/%d", shopID), map[string]any{"root_dir": "site"}, 200)
	// Build and start commands: one line each, run by the containers'
	// own shell (the build writes a copy of the site, the start command
	// serves that copy on $PORT).
	api.wantError("PATCH", fmt.Sprintf("/api/apps/%d", shopID), map[string]any{"build_command": "true\nUSER root"}, 422, "build_command", regexp.MustCompile(`one line`))
	api.call("PATCH", fmt.Sprintf("/api/apps/%d", shopID), map[string]any{
		"build_command": "echo built-by-command > built.txt && mkdir copy && cp index.html built.txt copy/ && echo served-from-the-copy > copy/started.txt",
		"start_command": `exec httpd -f -p "$PORT" -h /srv/copy`}, 200)
	hooks := gh.Hooks("alice/shop")
	if len(hooks) != 1 || hooks[0].URL != fmt.Sprintf("http://%s/v1/hooks/github/%d", cpAddr, shopID) || len(hooks[0].Secret) < 20 {
		t.Fatalf("hooks at the provider: %+v", hooks)
	}

	// Push → build on the worker (cloning the private repository with the
	// connection's token) → served through the zone router.
	codes, bodies := gh.Push("alice/shop", "main", sha1)
	if codes[0] != 202 {
		t.Fatalf("push delivery: %v %v", codes, bodies)
	}
	api.waitDeployment(shopID, 0, 3*time.Minute)
	zone := &http.Client{Timeout: 10 * time.Second}
	waitServes := func(host, want string) {
		t.Helper()
		waitFor(t, host+" to serve "+want, 60*time.Second, func() bool {
			c, b, err := getHost(zone, "http://"+zoneAddr, host, "/")
			return err == nil && c == 200 && strings.Contains(b, want)
		})
	}
	waitServes("store.z.test", "shop version one")
	for path, want := range map[string]string{"/built.txt": "built-by-command", "/started.txt": "served-from-the-copy"} {
		if c, b, err := getHost(zone, "http://"+zoneAddr, "store.z.test", path); err != nil || c != 200 || !strings.Contains(b, want) {
			t.Fatalf("%s: %d %q %v", path, c, b, err)
		}
	}
	waitStatus := func(sha, state, url string) {
		t.Helper()
		waitFor(t, "status "+state+" on "+sha, 30*time.Second, func() bool {
			for _, s := range gh.Statuses() {
				if s.Repo == "alice/shop" && s.SHA == sha && s.State == state && s.TargetURL == url && s.Context == "wisehosting/deploy" {
					return true
				}
			}
			return false
		})
	}
	waitStatus(sha1, "pending", "https://store.apps.test")
	waitStatus(sha1, "success", "https://store.apps.test")

	// A pull request → preview at shop-pr-7 with its commit status.
	sha2 := gh.Commit("alice/shop", "feature", map[string]string{"site/index.html": "<h1>shop pull request seven</h1>\n"}, "feature")
	codes, bodies = gh.PullRequest("alice/shop", 7, "opened", "feature", sha2, "")
	var outcome struct {
		Action string `json:"action"`
		AppID  int64  `json:"app_id"`
	}
	json.Unmarshal([]byte(bodies[0]), &outcome)
	if codes[0] != 202 || outcome.Action != "preview_deployed" {
		t.Fatalf("pull request delivery: %v %v", codes, bodies)
	}
	previewID := outcome.AppID
	api.waitDeployment(previewID, 0, 3*time.Minute)
	waitServes("store-pr-7.z.test", "shop pull request seven")
	waitStatus(sha2, "success", "https://store-pr-7.apps.test")

	// A fork's pull request: no preview unless the app allows forks; then
	// one without the app's secrets, saying so in its log.
	gh.CreatePublicRepo("mallory/shop")
	sha3 := gh.Commit("mallory/shop", "evil", map[string]string{"site/index.html": "<h1>from a fork</h1>\n"}, "fork")
	codes, bodies = gh.PullRequest("alice/shop", 8, "opened", "evil", sha3, "mallory/shop")
	if codes[0] != 200 || !strings.Contains(bodies[0], "forks get no preview") {
		t.Fatalf("fork pull request, forks not allowed: %v %v", codes, bodies)
	}
	api.call("PATCH", fmt.Sprintf("/api/apps/%d", shopID), map[string]any{"fork_previews": true}, 200)
	api.call("PUT", fmt.Sprintf("/api/apps/%d/env/API_KEY", shopID), map[string]any{"value": "parent-secret"}, 200)
	codes, bodies = gh.PullRequest("alice/shop", 8, "opened", "evil", sha3, "mallory/shop")
	json.Unmarshal([]byte(bodies[0]), &outcome)
	if codes[0] != 202 || outcome.Action != "preview_deployed" {
		t.Fatalf("fork pull request, forks allowed: %v %v", codes, bodies)
	}
	forkDep := api.waitDeployment(outcome.AppID, 0, 3*time.Minute)
	logs := api.call("GET", fmt.Sprintf("/api/apps/%d/deployments/%d/logs", outcome.AppID, int64(forkDep["id"].(float64))), nil, 200)
	if b, _ := json.Marshal(logs); !strings.Contains(string(b), deploys.ForkBanner) {
		t.Fatalf("no fork banner in the fork preview's log: %s", b)
	}
	waitServes("store-pr-8.z.test", "from a fork")

	// The pull request closes: the preview goes.
	codes, bodies = gh.PullRequest("alice/shop", 7, "closed", "feature", sha2, "")
	if codes[0] != 202 || !strings.Contains(bodies[0], "preview_closed") {
		t.Fatalf("close delivery: %v %v", codes, bodies)
	}
	waitFor(t, "the preview to be gone", 60*time.Second, func() bool {
		c, _, _ := api.rawCall("GET", fmt.Sprintf("/api/apps/%d", previewID), nil)
		zc, _, _ := getHost(zone, "http://"+zoneAddr, "store-pr-7.z.test", "/")
		return c == 404 && zc != 200
	})

	// Settings: another branch of a deleted repository is refused in words.
	gh.DeleteRepo("alice/docs")
	api.wantError("PATCH", fmt.Sprintf("/api/apps/%d", docsID), map[string]any{"git_branch": "dev"}, 422, "repo",
		regexp.MustCompile(`not found .*deleted or renamed`))

	// Deleting the app removes its hook at the provider.
	api.call("DELETE", fmt.Sprintf("/api/apps/%d", shopID), nil, 202)
	if hs := gh.Hooks("alice/shop"); len(hs) != 0 {
		t.Fatalf("hooks left after deleting the app: %+v", hs)
	}

	// The token is revoked at GitHub: every call says so.
	gh.RevokeToken("ghp_alice")
	api.wantError("GET", tp("/git/connections/%d/repos", cid), nil, 422, "", regexp.MustCompile(`refused the token .*revoked`))
	del := api.call("DELETE", tp("/git/connections/%d", cid), nil, 200)
	if del["ok"] != true {
		t.Fatalf("delete connection: %v", del)
	}
	api.wantError("GET", tp("/git/connections/%d/repos", cid), nil, 404, "", regexp.MustCompile(`not found`))

	// Every change is in the audit log.
	audit, _ := json.Marshal(api.call("GET", tp("/audit"), nil, 200))
	for _, a := range []string{"git_connection.create", "app.hook_install", "app.hook_rotate", "app.update", "git_connection.delete"} {
		if !strings.Contains(string(audit), `"`+a+`"`) {
			t.Fatalf("audit log lacks %s", a)
		}
	}
}
