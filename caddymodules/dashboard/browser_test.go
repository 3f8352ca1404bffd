//go:build remote && containers_image_openpgp

package dashboard_test

import (
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/wisehosting/wisehosting/agent"
	"github.com/wisehosting/wisehosting/agent/runtime/podmantest"
	"github.com/wisehosting/wisehosting/caddymodules/cptest"
	"github.com/wisehosting/wisehosting/internal/pgtest"
	"github.com/wisehosting/wisehosting/internal/workers"
)

// A person in real Chromium signs in, creates an app from a repository,
// adds env vars and a domain, deploys and watches the live log until
// the app runs on a real worker, then opens the live runtime log, the usage
// charts, the team page and the Security page. Then every page and tab is
// visited in light and dark, at 1400×900 and 390×844: axe-core finds no
// serious or critical violation and nothing overflows on the phone.
// Screenshots of every step and page are kept under test-artifacts/dashboard.
func TestBrowserJourney(t *testing.T) {
	if _, err := os.Stat("browsertest/node_modules/playwright-core"); err != nil {
		t.Fatal("playwright-core is not installed: npm ci --prefix caddymodules/dashboard/browsertest (scripts/ci-deps.sh does it)")
	}
	chromium := "/usr/bin/chromium"
	if _, err := os.Stat(chromium); err != nil {
		t.Fatal("Chromium is not installed: apt-get install chromium (scripts/ci-deps.sh does it)")
	}
	db := pgtest.New(t)
	cp := cptest.Start(t, db, cptest.Options{
		Core:     map[string]any{"allow_local_git": true},
		Handlers: []map[string]any{{"handler": "wisehosting_dashboard", "insecure_cookie": true}},
		Apps: map[string]any{
			"wisehosting_scheduler": map[string]any{"poll_interval": "200ms", "resend_interval": "1s"},
			"wisehosting_logs":      map[string]any{},
			"wisehosting_usage":     map[string]any{"sample_interval": "1s"},
		},
	})
	ctx := context.Background()
	f := &fixture{t: t, db: db, base: cp.URL}
	team := f.team("web", "free")
	pat := f.user("pat@web.test", "pat-password-123", map[int64]string{team: "owner"})
	// Pat also administers the instance (the Workers page).
	if _, err := db.Pool.Exec(ctx, "UPDATE users SET is_admin = true WHERE id = $1", pat); err != nil {
		t.Fatal(err)
	}

	// A worker with a real agent, and a repository with a static site.
	svc := podmantest.Start(t)
	_, key, err := workers.Add(ctx, db.Pool, cptest.Keyring(t), "w1", "z.test", "127.0.0.1")
	if err != nil {
		t.Fatal(err)
	}
	actx, cancel := context.WithCancel(ctx)
	ag, err := agent.New(actx, agent.Config{ControlPlane: cp.URL, APIKey: key, MeshIP: "127.0.0.1", ZoneListen: "off",
		Podman: svc.URL, AllowLocalGit: true, Instance: "browser", DrainDelay: time.Second, StatsInterval: time.Second})
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { ag.Run(actx); close(done) }()
	t.Cleanup(func() {
		cancel()
		<-done
		out, _ := svc.Podman(context.Background(), "ps", "-aq", "--filter", "label=io.wisehosting.managed=browser")
		for _, id := range strings.Fields(out) {
			svc.Podman(context.Background(), "rm", "-f", "-t", "1", id)
		}
	})
	repo := t.TempDir()
	for _, args := range [][]string{{"init", "-q", "-b", "main"}, {"add", "-A"}, {"-c", "user.email=p@web.test", "-c", "user.name=p", "commit", "-q", "-m", "site"}} {
		if args[0] == "add" {
			os.WriteFile(filepath.Join(repo, "index.html"), []byte("<h1>made in a browser</h1>\n"), 0o644)
		}
		if out, err := exec.Command("git", append([]string{"-C", repo}, args...)...).CombinedOutput(); err != nil {
			t.Fatalf("git %v: %v %s", args, err, out)
		}
	}

	artifacts, _ := filepath.Abs("../../test-artifacts/dashboard")
	os.RemoveAll(artifacts)
	cmd := exec.Command("node", "browsertest/browser.mjs")
	cmd.Env = append(os.Environ(), "BASE="+cp.URL, "EMAIL=pat@web.test", "PASSWORD=pat-password-123", "REPO="+repo, "OUT="+artifacts, "CHROMIUM="+chromium)
	out, err := cmd.Output()
	var res struct {
		OK        bool     `json:"ok"`
		AppID     int64    `json:"appId"`
		Steps     []string `json:"steps"`
		Error     string   `json:"error"`
		PageError string   `json:"pageError"`
	}
	json.Unmarshal(out, &res)
	if err != nil || !res.OK {
		var stderr string
		if ee, ok := err.(*exec.ExitError); ok {
			stderr = string(ee.Stderr)
		}
		t.Fatalf("browser journey failed after %v: %s (page shows %q)\n%s\n%s\nscreenshots: %s", res.Steps, res.Error, res.PageError, out, stderr, artifacts)
	}
	t.Logf("browser journey: %v; screenshots in %s", res.Steps, artifacts)
	// What the person did is in the database.
	var envN, domN int
	var status string
	db.Pool.QueryRow(ctx, "SELECT count(*) FROM env_vars e JOIN apps a ON a.id = e.app_id WHERE a.slug = 'browser-site' AND e.key = 'GREETING'").Scan(&envN)
	db.Pool.QueryRow(ctx, "SELECT count(*) FROM domains WHERE hostname = 'www.browser-site.test'").Scan(&domN)
	db.Pool.QueryRow(ctx, "SELECT status FROM apps WHERE slug = 'browser-site'").Scan(&status)
	if envN != 1 || domN != 1 || status != "running" {
		t.Fatalf("after the journey: env %d, domains %d, status %s", envN, domN, status)
	}
	for _, shot := range []string{"01-login", "03-app-created", "05-deploy-live-log", "06-deployed", "07-live-logs", "08-usage-charts", "09-team",
		"10-security-2fa-setup", "11-2fa-on", "12-2fa-code-replay-refused", "13-signed-in-with-2fa"} {
		if st, err := os.Stat(filepath.Join(artifacts, shot+".png")); err != nil || st.Size() < 1000 {
			t.Errorf("screenshot %s missing", shot)
		}
	}

	// The tour: every page and tab, both themes, desktop and phone.
	tour := exec.Command("node", "browsertest/tour.mjs")
	tour.Env = append(os.Environ(), "BASE="+cp.URL, "EMAIL=pat@web.test", "PASSWORD=pat-password-123", "OUT="+artifacts, "CHROMIUM="+chromium,
		"APP="+strconv.FormatInt(res.AppID, 10))
	out, err = tour.Output()
	var rep struct {
		OK            bool             `json:"ok"`
		Visited       []string         `json:"visited"`
		Violations    []map[string]any `json:"violations"`
		Overflow      []map[string]any `json:"overflow"`
		Patterns      []map[string]any `json:"patterns"`
		Errors        []string         `json:"errors"`
		ConsoleErrors []string         `json:"consoleErrors"`
	}
	if jerr := json.Unmarshal(out, &rep); jerr != nil || err != nil || !rep.OK {
		var stderr string
		if ee, ok := err.(*exec.ExitError); ok {
			stderr = string(ee.Stderr)
		}
		t.Fatalf("tour of the dashboard: %d pages; serious/critical axe violations %v; overflow at 390 px %v; patterns %v; errors %v; console %v\n%s\n%s",
			len(rep.Visited), rep.Violations, rep.Overflow, rep.Patterns, rep.Errors, rep.ConsoleErrors, out, stderr)
	}
	if len(rep.Visited) < 60 {
		t.Fatalf("the tour visited %d pages: %v", len(rep.Visited), rep.Visited)
	}
	t.Logf("tour: %d pages in light and dark at 1400×900 and 390×844, 0 serious or critical axe violations, no overflow", len(rep.Visited))
}
