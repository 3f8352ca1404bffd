//go:build remote && containers_image_openpgp

package agent_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zaptest"

	"github.com/jackc/pgx/v5"
	"github.com/wisehosting/wisehosting/caddymodules/cptest"
	"github.com/wisehosting/wisehosting/internal/deploys"
	"github.com/wisehosting/wisehosting/internal/gitproviders"
	"github.com/wisehosting/wisehosting/internal/secrets"
)

// fixture loads a provider's documented payload and applies edits (dotted
// paths) so that it points at the test's repository.
func fixture(t testing.TB, name string, edits map[string]any) []byte {
	t.Helper()
	raw, err := os.ReadFile("../internal/gitproviders/testdata/" + name)
	if err != nil {
		t.Fatal(err)
	}
	var doc map[string]any
	if err := json.Unmarshal(raw, &doc); err != nil {
		t.Fatal(err)
	}
	for path, v := range edits {
		parts := strings.Split(path, ".")
		m := doc
		for _, p := range parts[:len(parts)-1] {
			m = m[p].(map[string]any)
		}
		m[parts[len(parts)-1]] = v
	}
	b, _ := json.Marshal(doc)
	return b
}

func hook(t testing.TB, url, event, delivery string, secret, body []byte) (int, map[string]any) {
	t.Helper()
	req, _ := http.NewRequest("POST", url, bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("X-GitHub-Event", event)
	req.Header.Set("X-GitHub-Delivery", delivery)
	if secret != nil {
		k, v := gitproviders.Sign(gitproviders.GitHub, secret, body)
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var out map[string]any
	json.NewDecoder(resp.Body).Decode(&out)
	return resp.StatusCode, out
}

func deploymentID(t testing.TB, out map[string]any) int64 {
	t.Helper()
	f, ok := out["deployment_id"].(float64)
	if !ok || f <= 0 {
		t.Fatalf("no deployment in %v", out)
	}
	return int64(f)
}

// The deploy pipeline end to end: a signed GitHub push webhook deploys the
// pushed commit onto a real worker; replays and bad signatures deploy
// nothing; a pull request opens a preview at <slug>-pr-<n> and closing it
// removes the preview; a rollback runs an earlier image without building.
func TestPushWebhookPreviewAndRollback(t *testing.T) {
	repo := gitRepo(t, "<h1>version one</h1>\n")
	sha1 := git(t, repo, "rev-parse", "HEAD")
	e := setup(t, repo)
	ctx := context.Background()
	e.db.Pool.Exec(ctx, "UPDATE apps SET git_provider = 'github' WHERE id = $1", e.app.ID)
	kr, err := secrets.NewKeyring(cptest.Secret)
	if err != nil {
		t.Fatal(err)
	}
	secret, err := deploys.HookSecret(ctx, e.db.Pool, kr, e.app.ID, true)
	if err != nil {
		t.Fatal(err)
	}
	ag := e.startAgent(zaptest.NewLogger(t, zaptest.Level(zap.ErrorLevel)))
	zoneAddr := ag.a.ZoneAddr().String()
	url := fmt.Sprintf("%s/v1/hooks/github/%d", e.cp.URL, e.app.ID)

	push := func(sha, msg string) []byte {
		return fixture(t, "github_push.json", map[string]any{"ref": "refs/heads/main", "after": sha,
			"head_commit.id": sha, "head_commit.message": msg})
	}
	body := push(sha1, "first")
	if code, _ := hook(t, url, "push", "d-bad", []byte("wrong secret"), body); code != http.StatusUnauthorized {
		t.Fatalf("bad signature: %d", code)
	}
	code, out := hook(t, url, "push", "d-1", []byte(secret), body)
	if code != http.StatusAccepted || out["action"] != "deployed" {
		t.Fatalf("push: %d %v", code, out)
	}
	d1 := deploymentID(t, out)
	if code, out := hook(t, url, "push", "d-1", []byte(secret), body); code != http.StatusOK || out["action"] != "duplicate" {
		t.Fatalf("replayed delivery: %d %v", code, out)
	}
	e.waitDeployment(d1)
	waitBody(t, zoneAddr, e.app.Slug+".z.test", "version one")
	var built string
	e.db.Pool.QueryRow(ctx, "SELECT commit_sha FROM deployments WHERE id = $1", d1).Scan(&built)
	if built != sha1 {
		t.Fatalf("deployed commit %q, pushed %q", built, sha1)
	}

	// A second push deploys the new head.
	sha2 := commitSite(t, repo, "<h1>version two</h1>\n")
	code, out = hook(t, url, "push", "d-2", []byte(secret), push(sha2, "second"))
	if code != http.StatusAccepted {
		t.Fatalf("second push: %d %v", code, out)
	}
	e.waitDeployment(deploymentID(t, out))
	waitBody(t, zoneAddr, e.app.Slug+".z.test", "version two")

	// Pull request → preview app on its own host name.
	git(t, repo, "checkout", "-q", "-b", "feature")
	shaPR := commitSite(t, repo, "<h1>preview of a feature</h1>\n")
	git(t, repo, "checkout", "-q", "main")
	pr := func(action string) []byte {
		return fixture(t, "github_pull_request.json", map[string]any{"action": action, "number": 7,
			"pull_request.number": 7, "pull_request.head.ref": "feature", "pull_request.head.sha": shaPR})
	}
	code, out = hook(t, url, "pull_request", "d-pr-open", []byte(secret), pr("opened"))
	if code != http.StatusAccepted || out["action"] != "preview_deployed" {
		t.Fatalf("PR opened: %d %v", code, out)
	}
	e.waitDeployment(deploymentID(t, out))
	previewHost := deploys.PreviewSlug(e.app.Slug, 7) + ".z.test"
	waitBody(t, zoneAddr, previewHost, "preview of a feature")
	waitBody(t, zoneAddr, e.app.Slug+".z.test", "version two") // production untouched

	code, out = hook(t, url, "pull_request", "d-pr-close", []byte(secret), pr("closed"))
	if code != http.StatusAccepted || out["action"] != "preview_closed" {
		t.Fatalf("PR closed: %d %v", code, out)
	}
	waitFor(t, "the preview app to be removed", 30*time.Second, func() bool {
		var n int
		e.db.Pool.QueryRow(ctx, "SELECT count(*) FROM apps WHERE preview_of = $1", e.app.ID).Scan(&n)
		return n == 0
	})
	waitFor(t, "the preview container to be removed", 15*time.Second, func() bool {
		cs, _ := ag.a.RT.List(ctx)
		for _, c := range cs {
			if c.AppID != e.app.ID {
				return false
			}
		}
		return true
	})
	waitFor(t, "the closed preview to leave the zone router", 10*time.Second, func() bool {
		code, _, _ := getVia(zoneAddr, previewHost)
		return code == http.StatusNotFound
	})

	// Roll back to the first deployment: its image runs again, no build.
	var rb deploys.Created
	pgx.BeginFunc(ctx, e.db.Pool, func(tx pgx.Tx) error {
		rb, err = deploys.Trigger(ctx, tx, e.app, deploys.Spec{RollbackOf: d1, Trigger: "rollback"})
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	e.waitDeployment(rb.DeploymentID)
	waitBody(t, zoneAddr, e.app.Slug+".z.test", "version one")
	var reused, buildLines int
	e.db.Pool.QueryRow(ctx, `SELECT count(*) FILTER (WHERE line LIKE '%reusing image%'), count(*) FILTER (WHERE stream = 'build' AND line LIKE 'STEP%')
		FROM deployment_logs WHERE deployment_id = $1`, rb.DeploymentID).Scan(&reused, &buildLines)
	if reused != 1 || buildLines != 0 {
		t.Fatalf("rollback rebuilt: reused %d, build steps %d", reused, buildLines)
	}
}
