//go:build remote && containers_image_openpgp

package agent_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zaptest"

	"github.com/wisehosting/wisehosting/agent"
	"github.com/wisehosting/wisehosting/caddymodules/cptest"
	"github.com/wisehosting/wisehosting/internal/deploys"
	"github.com/wisehosting/wisehosting/internal/secrets"
)

// BenchmarkPushToFirst200 is the time from a git push webhook to the
// first 200 with the new content through the worker's zone router, for a
// static site with a warm build cache (the base image and layers are
// local; each push changes the page).
func BenchmarkPushToFirst200(b *testing.B) {
	repo := gitRepo(b, "<h1>warm-up</h1>\n")
	e := setup(b, repo)
	ctx := context.Background()
	e.db.Pool.Exec(ctx, "UPDATE apps SET git_provider = 'github' WHERE id = $1", e.app.ID)
	kr, _ := secrets.NewKeyring(cptest.Secret)
	secret, err := deploys.HookSecret(ctx, e.db.Pool, kr, e.app.ID, true)
	if err != nil {
		b.Fatal(err)
	}
	// Production drain delay: the old container stays 15 s after a switch.
	ag := e.startAgent(zaptest.NewLogger(b, zaptest.Level(zap.ErrorLevel)), func(c *agent.Config) { c.DrainDelay = 15 * time.Second })
	zoneAddr := ag.a.ZoneAddr().String()
	host := e.app.Slug + ".z.test"
	url := fmt.Sprintf("%s/v1/hooks/github/%d", e.cp.URL, e.app.ID)
	push := func(i int, body string) time.Duration {
		sha := commitSite(b, repo, body)
		start := time.Now()
		payload := fixture(b, "github_push.json", map[string]any{"ref": "refs/heads/main", "after": sha, "head_commit.id": sha})
		if code, out := hook(b, url, "push", fmt.Sprintf("bench-%d-%d", i, time.Now().UnixNano()), []byte(secret), payload); code != 202 {
			b.Fatalf("push: %d %v", code, out)
		}
		waitBody(b, zoneAddr, host, body)
		return time.Since(start)
	}
	push(-1, "<h1>first build fills the cache</h1>\n")
	b.ResetTimer()
	var total time.Duration
	for i := 0; i < b.N; i++ {
		total += push(i, fmt.Sprintf("<h1>release %d</h1>\n", i))
	}
	b.ReportMetric(total.Seconds()/float64(b.N), "push-to-200-s")
}
