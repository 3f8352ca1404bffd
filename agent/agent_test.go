//go:build remote && containers_image_openpgp

package agent_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/jackc/pgx/v5"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest"

	"github.com/wisehosting/wisehosting/agent"
	"github.com/wisehosting/wisehosting/agent/runtime/podmantest"
	"github.com/wisehosting/wisehosting/caddymodules/core"
	"github.com/wisehosting/wisehosting/caddymodules/cptest"
	"github.com/wisehosting/wisehosting/internal/deploys"
	"github.com/wisehosting/wisehosting/internal/events"
	"github.com/wisehosting/wisehosting/internal/pgtest"
	"github.com/wisehosting/wisehosting/internal/workers"
)

// gitRepo makes a local repository with a static site on branch main.
func gitRepo(t testing.TB, body string) string {
	t.Helper()
	dir := t.TempDir()
	git(t, dir, "init", "-q", "-b", "main")
	commitSite(t, dir, body)
	return dir
}

func git(t testing.TB, dir string, args ...string) string {
	t.Helper()
	cmd := exec.Command("git", append([]string{"-C", dir, "-c", "user.email=t@example.test", "-c", "user.name=t"}, args...)...)
	cmd.Env = append(os.Environ(), "GIT_CONFIG_GLOBAL=/dev/null", "GIT_CONFIG_NOSYSTEM=1")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("git %v: %v: %s", args, err, out)
	}
	return strings.TrimSpace(string(out))
}

func commitSite(t testing.TB, dir, body string) string {
	t.Helper()
	if err := os.WriteFile(filepath.Join(dir, "index.html"), []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
	git(t, dir, "add", "-A")
	git(t, dir, "commit", "-q", "-m", "site: "+body)
	return git(t, dir, "rev-parse", "HEAD")
}

type env struct {
	t      testing.TB
	db     *pgtest.DB
	cp     *cptest.CP
	svc    *podmantest.Service
	key    string
	worker int64
	app    deploys.App
	inst   string
	work   string
}

// setup starts a control plane (core overrides its wisehosting app's
// fields), Podman, a worker and an app of repo.
func setup(t testing.TB, repo string, core ...func(*pgtest.DB) map[string]any) *env {
	t.Helper()
	db := pgtest.New(t)
	var coreCfg map[string]any
	for _, f := range core {
		coreCfg = f(db)
	}
	cp := cptest.Start(t, db, cptest.Options{Core: coreCfg, Apps: map[string]any{
		"wisehosting_scheduler": map[string]any{"poll_interval": "200ms", "resend_interval": "1s"},
		"wisehosting_usage":     map[string]any{"sample_interval": "1s"},
		"wisehosting_logs":      map[string]any{},
	}})
	svc := podmantest.Start(t)
	ctx := context.Background()
	wk, key, err := workers.Add(ctx, db.Pool, cptest.Keyring(t), "w1", "z.test", "127.0.0.1")
	if err != nil {
		t.Fatal(err)
	}
	var team, appID int64
	db.Pool.QueryRow(ctx, "INSERT INTO teams (name, slug) VALUES ('t', 't') RETURNING id").Scan(&team)
	slug := fmt.Sprintf("site%d", time.Now().UnixNano()%1e6)
	if err := db.Pool.QueryRow(ctx, `INSERT INTO apps (team_id, slug, name, git_repo, git_branch, framework, port, cpu_millis, memory_mb, health_path)
		VALUES ($1, $2, 'site', $3, 'main', 'auto', 0, 250, 64, '/') RETURNING id`, team, slug, repo).Scan(&appID); err != nil {
		t.Fatal(err)
	}
	app, err := deploys.LoadApp(ctx, db.Pool, appID)
	if err != nil {
		t.Fatal(err)
	}
	e := &env{t: t, db: db, cp: cp, svc: svc, key: key, worker: wk.ID, app: app, inst: "e" + slug, work: t.TempDir()}
	t.Cleanup(func() {
		out, _ := svc.Podman(context.Background(), "ps", "-aq", "--filter", "label=io.wisehosting.managed="+e.inst)
		for _, id := range strings.Fields(out) {
			svc.Podman(context.Background(), "rm", "-f", "-t", "1", id)
		}
	})
	return e
}

type running struct {
	a      *agent.Agent
	cancel context.CancelFunc
	done   chan error
}

func (e *env) startAgent(logger *zap.Logger, tune ...func(*agent.Config)) *running {
	e.t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	cfg := agent.Config{ControlPlane: e.cp.URL, APIKey: e.key, Name: "w1", MeshIP: "127.0.0.1",
		ZoneListen: "127.0.0.1:0", Podman: e.svc.URL, AllowLocalGit: true, Instance: e.inst, WorkDir: e.work,
		DrainDelay: 3 * time.Second, HealthTimeout: 8 * time.Second, ReconcileInterval: 300 * time.Millisecond,
		StatsInterval: time.Second, ZoneInterval: 200 * time.Millisecond, Logger: logger}
	for _, f := range tune {
		f(&cfg)
	}
	a, err := agent.New(ctx, cfg)
	if err != nil {
		cancel()
		e.t.Fatal(err)
	}
	r := &running{a: a, cancel: cancel, done: make(chan error, 1)}
	go func() { r.done <- a.Run(ctx) }()
	e.t.Cleanup(r.stop)
	return r
}

func (r *running) stop() {
	r.cancel()
	select {
	case <-r.done:
	case <-time.After(20 * time.Second):
	}
}

func (e *env) deploy(commit string) int64 {
	e.t.Helper()
	var c deploys.Created
	err := pgx.BeginFunc(context.Background(), e.db.Pool, func(tx pgx.Tx) error {
		var err error
		c, err = deploys.Trigger(context.Background(), tx, e.app, deploys.Spec{Commit: commit, Trigger: "manual"})
		return err
	})
	if err != nil {
		e.t.Fatal(err)
	}
	return c.DeploymentID
}

func (e *env) waitDeployment(id int64) {
	e.t.Helper()
	deadline := time.Now().Add(90 * time.Second)
	for {
		var status, errMsg string
		e.db.Pool.QueryRow(context.Background(), "SELECT status, error FROM deployments WHERE id = $1", id).Scan(&status, &errMsg)
		switch status {
		case "succeeded":
			return
		case "failed", "cancelled":
			var logs []string
			rows, _ := e.db.Pool.Query(context.Background(), "SELECT line FROM deployment_logs WHERE deployment_id = $1 ORDER BY id", id)
			for rows.Next() {
				var l string
				rows.Scan(&l)
				logs = append(logs, l)
			}
			rows.Close()
			e.t.Fatalf("deployment %d %s: %s\n%s", id, status, errMsg, strings.Join(logs, "\n"))
		}
		if time.Now().After(deadline) {
			e.t.Fatalf("deployment %d still %s", id, status)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func (e *env) appRow() (status string, hostPort, port int) {
	e.db.Pool.QueryRow(context.Background(), "SELECT status, host_port, port FROM apps WHERE id = $1", e.app.ID).Scan(&status, &hostPort, &port)
	return
}

var client = &http.Client{Timeout: 3 * time.Second}

func getVia(zone, host string) (int, string, error) {
	req, _ := http.NewRequest("GET", "http://"+zone+"/", nil)
	req.Host = host
	resp, err := client.Do(req)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), nil
}

func waitBody(t testing.TB, zone, host, want string) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		code, body, err := getVia(zone, host)
		if err == nil && code == 200 && strings.Contains(body, want) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s via %s: %d %q %v (want %q)", host, zone, code, body, err, want)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func waitFor(t testing.TB, what string, d time.Duration, ok func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !ok() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// The whole worker life cycle against a real control plane, Postgres and
// Podman: deploy from a local git repository (static preset, no
// registry), reach the app through the zone router, redeploy with zero
// failed requests, detect a killed container, and reconcile after an
// agent restart.
func TestAgentLifecycle(t *testing.T) {
	repo := gitRepo(t, "<h1>version one</h1>\n")
	e := setup(t, repo)
	logger := zaptest.NewLogger(t, zaptest.Level(zap.WarnLevel))
	ag := e.startAgent(logger)
	zoneAddr := ag.a.ZoneAddr().String()
	host := e.app.Slug + ".z.test"

	// 1. Deploy.
	d1 := e.deploy("")
	e.waitDeployment(d1)
	status, hp1, port := e.appRow()
	if status != "running" || hp1 < 20000 || port != 8080 {
		t.Fatalf("after deploy: status %s host_port %d port %d", status, hp1, port)
	}
	var commit, image string
	e.db.Pool.QueryRow(context.Background(), "SELECT commit_sha, image FROM deployments WHERE id = $1", d1).Scan(&commit, &image)
	if len(commit) != 40 || !strings.HasPrefix(image, "localhost/wisehosting/"+e.app.Slug+":d") {
		t.Fatalf("deployment record: commit %q image %q", commit, image)
	}
	var buildLines int
	e.db.Pool.QueryRow(context.Background(), "SELECT count(*) FROM deployment_logs WHERE deployment_id = $1", d1).Scan(&buildLines)
	if buildLines < 5 {
		t.Fatalf("only %d deployment log lines (progress and build output expected)", buildLines)
	}
	waitBody(t, zoneAddr, host, "version one")
	// The hello reported the host: capacity and the probed disk-quota mode.
	var quota, version string
	var cpu int
	e.db.Pool.QueryRow(context.Background(), "SELECT disk_quota, agent_version, cpu_millis FROM workers WHERE id = $1", e.worker).Scan(&quota, &version, &cpu)
	if quota != ag.a.DiskQuota().Mode || version != agent.Version || cpu < 1000 {
		t.Fatalf("worker row: quota %q (probed %q), version %q, cpu %d", quota, ag.a.DiskQuota().Mode, version, cpu)
	}
	// The container runs with the app's limits and labels.
	cs, err := ag.a.RT.List(context.Background())
	if err != nil || len(cs) != 1 {
		t.Fatalf("containers %+v %v", cs, err)
	}
	if lim, _ := ag.a.RT.MemoryLimit(context.Background(), cs[0].ID); lim != 64<<20 {
		t.Fatalf("memory limit %d", lim)
	}

	// 2. Redeploy under a request loop: no request may fail.
	var ok, failed atomic.Int64
	var lastErr atomic.Value
	stopLoop := make(chan struct{})
	var wg sync.WaitGroup
	for i := 0; i < 4; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stopLoop:
					return
				default:
				}
				code, body, err := getVia(zoneAddr, host)
				if err != nil || code != 200 || !strings.Contains(body, "version") {
					failed.Add(1)
					lastErr.Store(fmt.Sprintf("%d %q %v", code, body, err))
				} else {
					ok.Add(1)
				}
			}
		}()
	}
	c2 := commitSite(t, repo, "<h1>version two</h1>\n")
	d2 := e.deploy(c2)
	e.waitDeployment(d2)
	waitBody(t, zoneAddr, host, "version two")
	// Past the drain delay the old container is gone, and traffic still flows.
	waitFor(t, "the old container to be removed", 20*time.Second, func() bool {
		cs, _ := ag.a.RT.List(context.Background())
		return len(cs) == 1 && cs[0].DeploymentID == d2
	})
	time.Sleep(500 * time.Millisecond)
	close(stopLoop)
	wg.Wait()
	t.Logf("cut-over: %d requests, %d failed", ok.Load(), failed.Load())
	if failed.Load() != 0 || ok.Load() < 50 {
		t.Fatalf("cut-over: %d ok, %d failed (last: %v)", ok.Load(), failed.Load(), lastErr.Load())
	}
	_, hp2, _ := e.appRow()
	if hp2 == hp1 {
		t.Fatalf("new deployment kept host port %d", hp1)
	}

	// 3. A failing health check keeps the running deployment.
	e.db.Pool.Exec(context.Background(), "UPDATE apps SET port = 9999 WHERE id = $1", e.app.ID)
	e.app.Port = 9999 // nothing listens there: the health check fails
	d3 := e.deploy(c2)
	waitFor(t, "the unhealthy deployment to fail", 60*time.Second, func() bool {
		var s string
		e.db.Pool.QueryRow(context.Background(), "SELECT status FROM deployments WHERE id = $1", d3).Scan(&s)
		return s == "failed"
	})
	var d3err string
	e.db.Pool.QueryRow(context.Background(), "SELECT error FROM deployments WHERE id = $1", d3).Scan(&d3err)
	if !strings.Contains(d3err, "health check failed, the previous deployment keeps running") {
		t.Fatalf("failed deployment error %q", d3err)
	}
	// Its log ends with what the container wrote (httpd wrote nothing).
	var tail int
	e.db.Pool.QueryRow(context.Background(), `SELECT count(*) FROM deployment_logs WHERE deployment_id = $1
		AND line = '[health] the container wrote nothing'`, d3).Scan(&tail)
	if tail != 1 {
		t.Fatalf("the failed deployment's log has %d lines about the container's output", tail)
	}
	if status, _, _ := e.appRow(); status != "running" {
		t.Fatalf("app status after a failed redeploy: %s", status)
	}
	e.db.Pool.Exec(context.Background(), "UPDATE apps SET port = 8080 WHERE id = $1", e.app.ID)
	e.app.Port = 8080
	waitBody(t, zoneAddr, host, "version two")

	// 4. Kill the container: the crash is reported and the app restarted.
	cs, _ = ag.a.RT.List(context.Background())
	if len(cs) != 1 {
		t.Fatalf("containers after failed deploy: %+v", cs)
	}
	crashes := make(chan string, 16)
	unsub := subscribeStatus(t, e, crashes)
	defer unsub()
	if err := ag.a.RT.Kill(context.Background(), cs[0].ID); err != nil {
		t.Fatal(err)
	}
	select {
	case st := <-crashes:
		if st != "crashed" {
			t.Fatalf("reported %q", st)
		}
	case <-time.After(15 * time.Second):
		t.Fatal("crash not reported")
	}
	waitBody(t, zoneAddr, host, "version two")
	waitFor(t, "the app to be running again", 15*time.Second, func() bool { s, _, _ := e.appRow(); return s == "running" })

	// 5. Restart the agent: the container keeps running and is adopted,
	// not recreated.
	before, _ := ag.a.RT.List(context.Background())
	ag.stop()
	after, _ := ag.a.RT.List(context.Background())
	if len(after) != 1 || !after[0].Running() || after[0].ID != before[0].ID {
		t.Fatalf("container did not survive the agent stopping: %+v", after)
	}
	ag2 := e.startAgent(logger)
	zone2 := ag2.a.ZoneAddr().String()
	waitBody(t, zone2, host, "version two")
	waitFor(t, "the second agent to hold the desired state", 15*time.Second, func() bool { return len(ag2.a.Sup.Desired()) == 1 })
	time.Sleep(time.Second) // a few reconcile passes
	again, _ := ag2.a.RT.List(context.Background())
	if len(again) != 1 || again[0].ID != before[0].ID {
		t.Fatalf("adopted container replaced: %+v", again)
	}

	// 6. While the agent is away the container disappears (host reboot):
	// the next agent recreates it from the image, without a rebuild.
	ag2.stop()
	if _, err := e.svc.Podman(context.Background(), "rm", "-f", "-t", "1", again[0].ID); err != nil {
		t.Fatal(err)
	}
	ag3 := e.startAgent(logger)
	waitBody(t, ag3.a.ZoneAddr().String(), host, "version two")
	var deployments int
	e.db.Pool.QueryRow(context.Background(), "SELECT count(*) FROM deployments WHERE app_id = $1", e.app.ID).Scan(&deployments)
	if deployments != 3 {
		t.Fatalf("reconcile created deployments: %d", deployments)
	}
}

// subscribeStatus forwards the states the control plane records for the
// app (from the worker's app.state reports).
func subscribeStatus(t testing.TB, e *env, ch chan<- string) func() {
	t.Helper()
	a, err := caddy.ActiveContext().App(core.AppName)
	if err != nil {
		t.Fatal(err)
	}
	return a.(*core.App).Events().Subscribe(func(ev events.Event) {
		if ev.Kind != events.AppStatusChanged || ev.AppID != e.app.ID {
			return
		}
		if s, ok := ev.Data["state"].(string); ok && s != "running" {
			select {
			case ch <- s:
			default:
			}
		}
	})
}

// An app that keeps exiting is reported as a crash loop (status crashed,
// which the crash-loop alert watches) and restarted only after a back-off;
// its output and resource use reach the control plane meanwhile.
func TestCrashLoopStatsAndLogs(t *testing.T) {
	repo := t.TempDir()
	git(t, repo, "init", "-q", "-b", "main")
	os.WriteFile(filepath.Join(repo, "Dockerfile"), []byte("FROM "+podmantest.BaseImage+"\nCOPY index.html /srv/index.html\n"+
		`CMD ["sh", "-c", "echo app starting; httpd -p 8080 -h /srv; sleep 2; echo app giving up >&2; exit 3"]`+"\n"), 0o644)
	commitSite(t, repo, "<h1>flaky</h1>\n")
	e := setup(t, repo)
	logger := zaptest.NewLogger(t, zaptest.Level(zap.ErrorLevel))
	states := make(chan string, 64)
	unsub := subscribeStatus(t, e, states)
	defer unsub()
	e.startAgent(logger, func(c *agent.Config) { c.CrashLoopCrashes = 3 })
	d := e.deploy("")
	e.waitDeployment(d)
	seen := map[string]int{}
	deadline := time.After(40 * time.Second)
	for seen["crashloop"] == 0 {
		select {
		case s := <-states:
			seen[s]++
		case <-deadline:
			t.Fatalf("no crash loop reported; states %v", seen)
		}
	}
	if seen["crashed"] < 2 {
		t.Fatalf("states before the crash loop: %v", seen)
	}
	waitFor(t, "status crashed", 10*time.Second, func() bool { s, _, _ := e.appRow(); return s == "crashed" })
	// Runtime output, both streams, reached the log history.
	waitFor(t, "runtime logs", 15*time.Second, func() bool {
		var out, errs int
		e.db.Pool.QueryRow(context.Background(), `SELECT count(*) FILTER (WHERE line LIKE 'app starting%'), count(*) FILTER (WHERE line LIKE 'app giving up%')
			FROM runtime_logs WHERE app_id = $1`, e.app.ID).Scan(&out, &errs)
		return out >= 2 && errs >= 1
	})
	// And stats were metered while it ran.
	waitFor(t, "usage samples", 15*time.Second, func() bool {
		var n int
		e.db.Pool.QueryRow(context.Background(), "SELECT count(*) FROM usage_samples WHERE app_id = $1", e.app.ID).Scan(&n)
		return n > 0
	})
}
