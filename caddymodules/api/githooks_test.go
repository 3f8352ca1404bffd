package api_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"strings"
	"testing"

	"github.com/wisehosting/wisehosting/caddymodules/cptest"
	"github.com/wisehosting/wisehosting/internal/deploys"
	"github.com/wisehosting/wisehosting/internal/gitproviders"
	"github.com/wisehosting/wisehosting/internal/pgtest"
	"github.com/wisehosting/wisehosting/internal/secrets"
)

func seedHookApp(t *testing.T, db *pgtest.DB) (appID int64, secret string) {
	t.Helper()
	ctx := context.Background()
	var teamID int64
	db.Pool.QueryRow(ctx, "INSERT INTO teams (name, slug) VALUES ('t', 't') RETURNING id").Scan(&teamID)
	if err := db.Pool.QueryRow(ctx, `INSERT INTO apps (team_id, slug, name, git_repo, git_branch, git_provider, port)
		VALUES ($1, 'site', 'site', 'https://github.com/baxterthehacker/public-repo.git', 'main', 'github', 8080) RETURNING id`, teamID).Scan(&appID); err != nil {
		t.Fatal(err)
	}
	kr, _ := secrets.NewKeyring(testSecret)
	secret, err := deploys.HookSecret(ctx, db.Pool, kr, appID, true)
	if err != nil {
		t.Fatal(err)
	}
	return appID, secret
}

func deliver(t *testing.T, url, provider, event, delivery string, secret, body []byte) (int, map[string]any) {
	t.Helper()
	req, _ := http.NewRequest("POST", url, bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	switch provider {
	case gitproviders.GitHub:
		req.Header.Set("X-GitHub-Event", event)
		req.Header.Set("X-GitHub-Delivery", delivery)
	case gitproviders.GitLab:
		req.Header.Set("X-Gitlab-Event", event)
		req.Header.Set("X-Gitlab-Event-UUID", delivery)
	}
	if secret != nil {
		k, v := gitproviders.Sign(provider, secret, body)
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

func TestGitHookPushDeploys(t *testing.T) {
	db := pgtest.New(t)
	base := startCP(t, db)
	appID, secret := seedHookApp(t, db)
	body, _ := os.ReadFile("../../internal/gitproviders/testdata/github_push.json")
	url := fmt.Sprintf("%s/v1/hooks/github/%d", base, appID)

	code, out := deliver(t, url, "github", "push", "72d3162e-cc78-11e3-81ab-4c9367dc0958", []byte(secret), body)
	if code != http.StatusAccepted || out["action"] != "deployed" {
		t.Fatalf("push: %d %v", code, out)
	}
	var n int
	db.Pool.QueryRow(t.Context(), "SELECT count(*) FROM jobs WHERE app_id = $1 AND kind = 'deploy' AND payload->>'commit' = '0d1a26e67d8f5eaf1f6ba5c57fc3c7d91ac0fd1c'", appID).Scan(&n)
	if n != 1 {
		t.Fatalf("deploy jobs: %d", n)
	}

	// GitHub redelivers the same delivery: no second job.
	code, out = deliver(t, url, "github", "push", "72d3162e-cc78-11e3-81ab-4c9367dc0958", []byte(secret), body)
	if code != http.StatusOK || out["action"] != "duplicate" {
		t.Fatalf("replay: %d %v", code, out)
	}
	// Bad signature, missing signature, unknown app, unknown provider.
	if code, _ := deliver(t, url, "github", "push", "d2", []byte("wrong"), body); code != http.StatusUnauthorized {
		t.Fatalf("bad signature: %d", code)
	}
	if code, _ := deliver(t, url, "github", "push", "d3", nil, body); code != http.StatusUnauthorized {
		t.Fatalf("unsigned: %d", code)
	}
	if code, _ := deliver(t, fmt.Sprintf("%s/v1/hooks/github/%d", base, appID+999), "github", "push", "d4", []byte(secret), body); code != http.StatusUnauthorized {
		t.Fatalf("unknown app: %d", code)
	}
	if code, _ := deliver(t, fmt.Sprintf("%s/v1/hooks/svn/%d", base, appID), "github", "push", "d5", []byte(secret), body); code != http.StatusNotFound {
		t.Fatalf("unknown provider: %d", code)
	}
	// A GitLab delivery to the GitHub URL carries no GitHub signature.
	if code, _ := deliver(t, url, "gitlab", "Push Hook", "d6", []byte(secret), body); code != http.StatusUnauthorized {
		t.Fatalf("cross-provider: %d", code)
	}
	// Oversized body.
	big := bytes.Repeat([]byte(" "), 6<<20)
	if code, _ := deliver(t, url, "github", "push", "d7", []byte(secret), big); code != http.StatusRequestEntityTooLarge {
		t.Fatalf("oversized: %d", code)
	}
	db.Pool.QueryRow(t.Context(), "SELECT count(*) FROM jobs").Scan(&n)
	if n != 1 {
		t.Fatalf("rejected deliveries created jobs: %d", n)
	}
}

// The team's plan decides: a push for an app above the plan's limits is
// refused with the limit named (no job), a pull request on a plan without
// previews opens none; within the plan the push deploys.
func TestGitHookPlanPolicy(t *testing.T) {
	db := pgtest.New(t)
	base := cptest.Start(t, db, cptest.Options{Core: map[string]any{
		"plans": map[string]any{"free": map[string]any{"memory_mb": 128, "apps": 5}},
	}}).URL
	appID, secret := seedHookApp(t, db) // memory_mb 256 by default
	url := fmt.Sprintf("%s/v1/hooks/github/%d", base, appID)
	body, _ := os.ReadFile("../../internal/gitproviders/testdata/github_push.json")
	code, out := deliver(t, url, "github", "push", "plan-1", []byte(secret), body)
	if code != http.StatusOK || out["action"] != "refused" || !strings.Contains(fmt.Sprint(out["reason"]), "memory_mb is at most 128") {
		t.Fatalf("push above the plan: %d %v", code, out)
	}
	pr, _ := os.ReadFile("../../internal/gitproviders/testdata/github_pull_request.json")
	code, out = deliver(t, url, "github", "pull_request", "plan-2", []byte(secret), pr)
	if code != http.StatusOK || out["action"] != "ignored" || !strings.Contains(fmt.Sprint(out["reason"]), "previews") {
		t.Fatalf("PR without previews: %d %v", code, out)
	}
	var n int
	db.Pool.QueryRow(t.Context(), "SELECT count(*) FROM jobs").Scan(&n)
	if n != 0 {
		t.Fatalf("refused deliveries created %d jobs", n)
	}
	db.Pool.Exec(t.Context(), "UPDATE apps SET memory_mb = 128 WHERE id = $1", appID)
	if code, out := deliver(t, url, "github", "push", "plan-3", []byte(secret), body); code != http.StatusAccepted || out["action"] != "deployed" {
		t.Fatalf("push within the plan: %d %v", code, out)
	}
}

// Keep last in the package: it exhausts the per-IP budget of 127.0.0.1.
func TestGitHookRateLimit(t *testing.T) {
	db := pgtest.New(t)
	base := startCP(t, db)
	url := base + "/v1/hooks/github/1"
	limited := 0
	for i := 0; i < 70; i++ {
		if code, _ := deliver(t, url, "github", "ping", fmt.Sprint(i), []byte("x"), []byte("{}")); code == http.StatusTooManyRequests {
			limited++
		}
	}
	if limited < 5 {
		t.Fatalf("only %d of 70 deliveries in a burst were limited (limit 60/min)", limited)
	}
}
