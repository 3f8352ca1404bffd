package e2e

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/wisehosting/wisehosting/agent/runtime/podmantest"
)

// TestLostWorker is the journey of a worker that dies, through the public
// API and CLI on two real workers (two agents on loopback, each with its
// own Podman): a rolling restart of two instances under a request loop
// fails no request; then, with one instance, the agent of its worker is
// killed (kill -9, kept down) and its container stopped: after the
// heartbeat timeout and the grace period the app serves again from the
// other worker, through the proxy; when the killed agent comes back with
// its stale container running again, that container is removed and
// exactly one instance runs. A worker the operator revokes is gone at
// once: its instance starts elsewhere, and deleting the app completes
// without it.
func TestLostWorker(t *testing.T) {
	ctx := context.Background()
	work := t.TempDir()
	_, dbURL := startPostgres(t)
	cpAddr, pxAddr := freeAddr(t), freeAddr(t)
	workers := []*replicaWorker{
		{name: "wa", ip: "127.0.0.1", zone: "za.test", zoneAddr: freeAddr(t), svc: podmantest.Start(t)},
		{name: "wb", ip: "127.0.0.2", zone: "zb.test", zoneAddr: freeAddr(t), svc: podmantest.Start(t)},
	}
	for _, w := range workers {
		t.Cleanup(func() {
			out, _ := w.svc.Podman(context.Background(), "ps", "-aq", "--filter", "label=io.wisehosting.slug=solo")
			for _, id := range strings.Fields(out) {
				w.svc.Podman(context.Background(), "rm", "-f", "-t", "1", id)
			}
		})
	}

	// A worker silent for 20 s is offline, and gone 10 s later.
	const heartbeat, grace = 20 * time.Second, 10 * time.Second
	cpFile := filepath.Join(work, "cp.Caddyfile")
	os.WriteFile(cpFile, []byte(fmt.Sprintf(`{
	admin off
	wisehosting_scheduler {
		poll_interval 200ms
		heartbeat_timeout %s
		offline_grace %s
		recover_interval 1s
	}
	wisehosting {
		database_url %s
		secret %s
		proxy_token %s
		subdomain_base apps.test
		admin_email owner@acme.test
		allow_local_git on
		public_url http://%s
	}
}
http://%s {
	route {
		wisehosting_hub {
			ping_interval 2s
		}
		wisehosting_api {
			proxy_entry_points web
			cert_resolver off
		}
		wisehosting_dashboard {
			insecure_cookie
		}
	}
}
`, heartbeat, grace, dbURL, secret, proxyToken, cpAddr, cpAddr)), 0o600)
	cp := startProc(t, "cp", work, nil, bins.cp, "run", "--config", cpFile, "--adapter", "caddyfile")
	waitListen(t, cp, cpAddr)
	keys := map[string]string{}
	startAgent := func(w *replicaWorker, run int) {
		dir := filepath.Join(work, w.name)
		os.MkdirAll(dir, 0o700)
		w.agent = startProc(t, fmt.Sprintf("agent-%s-%d", w.name, run), work, []string{"WISEHOSTING_WORKER_KEY=" + keys[w.name]}, bins.agent,
			"-cp", "http://"+cpAddr, "-name", w.name, "-mesh-ip", w.ip, "-zone", w.zone, "-zone-listen", w.zoneAddr,
			"-podman", w.svc.URL, "-allow-local-git", "-work-dir", dir, "-instance", w.name)
		waitListen(t, w.agent, w.zoneAddr)
	}
	for _, w := range workers {
		keys[w.name] = addWorker(t, cpFile, w.name, w.zone, w.ip)
		startAgent(w, 1)
	}

	// The proxy mode, on plain HTTP.
	startPlainProxy(t, work, cpAddr, pxAddr)

	api, team := signInOwner(t, cp.log, cpAddr)
	workerStatus := func(name string) string {
		for _, w := range api.call("GET", "/api/workers", nil, 200)["workers"].([]any) {
			if w := w.(map[string]any); w["name"] == name {
				return fmt.Sprint(w["status"])
			}
		}
		return ""
	}
	waitFor(t, "both workers online", 60*time.Second, func() bool {
		return workerStatus("wa") == "online" && workerStatus("wb") == "online"
	})

	repo := t.TempDir()
	git(t, repo, "init", "-q", "-b", "main")
	commit(t, repo, "<h1>solo serves</h1>\n")
	id := int64(api.call("POST", fmt.Sprintf("/api/teams/%d/apps", team), map[string]any{"name": "Solo", "slug": "solo",
		"git_repo": repo, "git_branch": "main", "framework": "static", "cpu_millis": 100, "memory_mb": 32}, 201)["id"].(float64))
	appPath := fmt.Sprintf("/api/apps/%d", id)
	api.call("PATCH", appPath, map[string]any{"replicas": 2}, 200)

	instances := func() []map[string]any {
		var out []map[string]any
		for _, in := range api.call("GET", appPath, nil, 200)["instances"].([]any) {
			out = append(out, in.(map[string]any))
		}
		return out
	}
	// instancesAt waits for n running instances at deployment dep.
	instancesAt := func(n int, dep float64, d time.Duration) []map[string]any {
		t.Helper()
		var last []map[string]any
		waitFor(t, fmt.Sprintf("%d instances at deployment %v", n, dep), d, func() bool {
			last = instances()
			if len(last) != n {
				return false
			}
			for _, in := range last {
				if in["deployment_id"] != dep || in["status"] != "running" {
					return false
				}
			}
			return true
		})
		return last
	}
	// started lists the app's running containers on each worker with the
	// time each started.
	started := func() map[string][]string {
		out := map[string][]string{}
		for _, w := range workers {
			ps, err := w.svc.Podman(ctx, "ps", "--filter", "label=io.wisehosting.slug=solo", "--format", "{{.ID}} {{.StartedAt}}")
			if err != nil {
				t.Fatalf("podman ps on %s: %v %s", w.name, err, ps)
			}
			lines := strings.Split(strings.TrimSpace(ps), "\n")
			if lines[0] == "" {
				lines = nil
			}
			sort.Strings(lines)
			out[w.name] = lines
		}
		return out
	}
	logsOf := func(dep float64) string {
		return fmt.Sprint(api.call("GET", fmt.Sprintf("%s/deployments/%d/logs", appPath, int64(dep)), nil, 200))
	}

	dep := api.call("POST", appPath+"/deployments", map[string]any{}, 202)["deployment_id"].(float64)
	api.waitDeployment(id, dep-1, 4*time.Minute)
	ins := instancesAt(2, dep, 4*time.Minute)
	if ins[0]["worker"] == ins[1]["worker"] {
		t.Fatalf("the two instances are not spread over both workers: %v", ins)
	}
	plain := &http.Client{Timeout: 10 * time.Second}
	proxy := path{"caddy proxy", plain, "http://" + pxAddr, "solo.apps.test"}
	waitBodyFor(t, proxy, "solo serves", 60*time.Second)
	want := regexp.MustCompile(`solo serves`)

	// A rolling restart of the two instances under a request loop: no
	// request fails, and both containers started again.
	before := started()
	l := startLoop([]path{proxy}, want)
	t0 := time.Now()
	if out := api.call("POST", appPath+"/restart", map[string]any{}, 202); out["instances"] != 2.0 {
		t.Fatalf("restart: %v", out)
	}
	api.call("POST", appPath+"/restart", map[string]any{}, 409) // one at a time
	waitFor(t, "the restart to reach every instance", 3*time.Minute, func() bool {
		return strings.Contains(logsOf(dep), "every instance has restarted")
	})
	restarted := time.Since(t0)
	time.Sleep(2 * time.Second)
	ok, failed, last := l.end()
	t.Logf("rolling restart of 2 instances: %s; %d requests, %d failed", restarted.Round(100*time.Millisecond), ok, failed)
	if failed != 0 || ok < 50 {
		t.Fatalf("rolling restart: %d ok, %d failed; last failure: %v", ok, failed, last)
	}
	after := started()
	for _, w := range workers {
		if len(after[w.name]) != 1 || len(before[w.name]) != 1 || after[w.name][0] == before[w.name][0] {
			t.Fatalf("worker %s's container did not restart: before %v, after %v", w.name, before[w.name], after[w.name])
		}
	}

	// One instance: it runs on worker x; y is the other.
	api.call("PATCH", appPath, map[string]any{"replicas": 1}, 200)
	ins = instancesAt(1, dep, 60*time.Second)
	var x, y *replicaWorker
	for _, w := range workers {
		if w.name == ins[0]["worker"] {
			x = w
		} else {
			y = w
		}
	}
	waitFor(t, "the removed instance's container to go", 60*time.Second, func() bool {
		s := started()
		return len(s[x.name]) == 1 && len(s[y.name]) == 0
	})

	// x's agent dies (kill -9, kept down) and its container stops: the app
	// is down until it runs on y.
	syscall.Kill(-x.agent.cmd.Process.Pid, syscall.SIGKILL)
	died := time.Now()
	<-x.agent.done
	stale := strings.Fields(func() string {
		out, _ := x.svc.Podman(ctx, "ps", "-aq", "--filter", "label=io.wisehosting.slug=solo")
		return out
	}())
	if len(stale) != 1 {
		t.Fatalf("%s holds containers %v, want one", x.name, stale)
	}
	if out, err := x.svc.Podman(ctx, "stop", "-t", "0", stale[0]); err != nil {
		t.Fatalf("stopping %s's container: %v %s", x.name, err, out)
	}
	// Within the grace period the app stays placed on x (an agent that
	// restarts quickly moves nothing).
	waitFor(t, x.name+" to be seen offline", heartbeat+time.Minute, func() bool { return workerStatus(x.name) == "offline" })
	if in := instances(); len(in) != 1 || in[0]["worker"] != x.name {
		t.Fatalf("the instance moved before the grace period ended: %v", in)
	}
	var outage time.Duration
	waitFor(t, "the app to serve from "+y.name, heartbeat+grace+3*time.Minute, func() bool {
		code, body, err := proxy.get()
		if err == nil && code == 200 && want.MatchString(body) {
			outage = time.Since(died)
			return true
		}
		return false
	})
	ins = instancesAt(1, dep, 30*time.Second)
	if ins[0]["worker"] != y.name {
		t.Fatalf("the instance does not run on %s: %v", y.name, ins)
	}
	if s := started(); len(s[y.name]) != 1 {
		t.Fatalf("%s runs %v", y.name, s)
	}
	t.Logf("single instance re-placed: serving again %s after its worker died (heartbeat timeout %s + grace %s)",
		outage.Round(100*time.Millisecond), heartbeat, grace)
	if outage > heartbeat+grace+2*time.Minute {
		t.Fatalf("serving again took %s", outage)
	}
	if lg := logsOf(dep); !strings.Contains(lg, "worker "+x.name+" is gone") || !strings.Contains(lg, "runs on worker "+y.name+" now") {
		t.Errorf("the deployment log does not tell the move: %s", lg)
	}

	// x comes back, with its stale container running again (as after a
	// reboot): the control plane's placement wins, the container goes and
	// exactly one instance runs, on y; the app serves throughout.
	if out, err := x.svc.Podman(ctx, "start", stale[0]); err != nil {
		t.Fatalf("starting %s's stale container: %v %s", x.name, err, out)
	}
	if s := started(); len(s[x.name]) != 1 {
		t.Fatalf("the stale container does not run on %s: %v", x.name, s)
	}
	l = startLoop([]path{proxy}, want)
	startAgent(x, 2)
	waitFor(t, x.name+" online again", 60*time.Second, func() bool { return workerStatus(x.name) == "online" })
	waitFor(t, "the stale container to go", 90*time.Second, func() bool {
		all, _ := x.svc.Podman(ctx, "ps", "-aq", "--filter", "label=io.wisehosting.slug=solo")
		return strings.TrimSpace(all) == ""
	})
	for range 10 {
		if s := started(); len(s[x.name]) != 0 || len(s[y.name]) != 1 {
			t.Fatalf("after %s came back: %v, want one instance, on %s", x.name, s, y.name)
		}
		time.Sleep(500 * time.Millisecond)
	}
	ok, failed, last = l.end()
	t.Logf("worker back: %d requests, %d failed", ok, failed)
	if failed != 0 || ok < 20 {
		t.Fatalf("while the lost worker came back: %d ok, %d failed; last failure: %v", ok, failed, last)
	}
	if in := instances(); len(in) != 1 || in[0]["worker"] != y.name {
		t.Fatalf("instances after the return: %v", in)
	}

	// The CLI restarts the single instance (in place).
	out, err := exec.Command(bins.cp, "app", "restart", "solo", "--config", cpFile, "--adapter", "caddyfile").CombinedOutput()
	if err != nil || !strings.Contains(string(out), "1 instance restarts") {
		t.Fatalf("app restart: %v\n%s", err, out)
	}
	waitFor(t, "the CLI's restart", 2*time.Minute, func() bool {
		return strings.Count(logsOf(dep), "every instance has restarted") == 2
	})
	waitBodyFor(t, proxy, "solo serves", 30*time.Second)

	// The operator revokes y, gone for good: the instance starts on x at
	// once (no grace), and deleting the app completes without y (what ran
	// there is forgotten; its host is the operator's to clean).
	if out, err := exec.Command(bins.cp, "worker", "revoke", y.name, "--config", cpFile, "--adapter", "caddyfile").CombinedOutput(); err != nil {
		t.Fatalf("worker revoke: %v\n%s", err, out)
	}
	revoked := time.Now()
	waitFor(t, "the instance to run on "+x.name, 3*time.Minute, func() bool {
		in := instances()
		return len(in) == 1 && in[0]["worker"] == x.name && in[0]["status"] == "running"
	})
	t.Logf("worker revoked: the instance runs on %s %s later", x.name, time.Since(revoked).Round(100*time.Millisecond))
	waitBodyFor(t, proxy, "solo serves", 60*time.Second)
	if got := api.call("DELETE", appPath, nil, 202)["status"]; got != "deleting" {
		t.Fatalf("delete: %v", got)
	}
	waitFor(t, "the app to be deleted", 2*time.Minute, func() bool {
		code, _, _ := api.rawCall("GET", appPath, nil)
		return code == 404
	})
	waitFor(t, x.name+"'s container to go", 60*time.Second, func() bool {
		all, _ := x.svc.Podman(ctx, "ps", "-aq", "--filter", "label=io.wisehosting.slug=solo")
		return strings.TrimSpace(all) == ""
	})
}
