package e2e

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/wisehosting/wisehosting/agent/runtime/podmantest"
	"github.com/wisehosting/wisehosting/internal/peers"
)

// replicaWorker is one worker of the replicas journey: its agent, its own
// Podman service and its zone router's address.
type replicaWorker struct {
	name, ip, zone, zoneAddr string
	svc                      *podmantest.Service
	agent                    *proc
}

// TestReplicas is the replicas journey through the public API on two real
// workers (two agents on loopback, each with its own Podman): an app
// scaled to 3 instances runs on both workers (2 + 1); the proxy mode,
// Traefik and each worker's zone router list its instances; a rolling deploy under a
// request loop fails no request; scaling down and up again is immediate
// (no rebuild); when one worker dies (its agent and its containers), the
// app keeps serving through the other once the worker is seen offline,
// and its instances are started again on the live worker.
func TestReplicas(t *testing.T) {
	ctx := context.Background()
	work := t.TempDir()
	_, dbURL := startPostgres(t)
	cpAddr, pxAddr, tfAddr := freeAddr(t), freeAddr(t), freeAddr(t)
	workers := []*replicaWorker{
		{name: "wa", ip: "127.0.0.1", zone: "za.test", zoneAddr: freeAddr(t), svc: podmantest.Start(t)},
		{name: "wb", ip: "127.0.0.2", zone: "zb.test", zoneAddr: freeAddr(t), svc: podmantest.Start(t)},
	}
	for _, w := range workers {
		t.Cleanup(func() {
			out, _ := w.svc.Podman(context.Background(), "ps", "-aq", "--filter", "label=io.wisehosting.slug=rep")
			for _, id := range strings.Fields(out) {
				w.svc.Podman(context.Background(), "rm", "-f", "-t", "1", id)
			}
		})
	}

	// The control plane: a worker silent for 20 s is offline (the health
	// window of this test), and gone 5 s later.
	cpFile := filepath.Join(work, "cp.Caddyfile")
	os.WriteFile(cpFile, []byte(fmt.Sprintf(`{
	admin off
	wisehosting_scheduler {
		poll_interval 200ms
		heartbeat_timeout 20s
		offline_grace 5s
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
`, dbURL, secret, proxyToken, cpAddr, cpAddr)), 0o600)
	cp := startProc(t, "cp", work, nil, bins.cp, "run", "--config", cpFile, "--adapter", "caddyfile")
	waitListen(t, cp, cpAddr)
	for _, w := range workers {
		key := addWorker(t, cpFile, w.name, w.zone, w.ip)
		dir := filepath.Join(work, w.name)
		os.MkdirAll(dir, 0o700)
		w.agent = startProc(t, "agent-"+w.name, work, []string{"WISEHOSTING_WORKER_KEY=" + key}, bins.agent,
			"-cp", "http://"+cpAddr, "-name", w.name, "-mesh-ip", w.ip, "-zone", w.zone, "-zone-listen", w.zoneAddr,
			"-podman", w.svc.URL, "-allow-local-git", "-work-dir", dir, "-instance", w.name)
		waitListen(t, w.agent, w.zoneAddr)
	}

	// The proxy mode, on plain HTTP.
	startPlainProxy(t, work, cpAddr, pxAddr)

	// Traefik on plain HTTP, from the same routing document.
	tf := startProc(t, "traefik", work, nil, peers.TraefikBin(t),
		"--entryPoints.web.address="+tfAddr,
		"--providers.http.endpoint=http://"+cpAddr+"/v1/traefik/proxy-config",
		"--providers.http.pollInterval=1s",
		"--providers.http.headers.Authorization=Bearer "+proxyToken,
		"--global.checkNewVersion=false", "--global.sendAnonymousUsage=false", "--log.level=INFO")
	waitListen(t, tf, tfAddr)

	api, team := signInOwner(t, cp.log, cpAddr)
	waitFor(t, "both workers online", 60*time.Second, func() bool {
		ws, _ := api.call("GET", "/api/workers", nil, 200)["workers"].([]any)
		n := 0
		for _, w := range ws {
			if w.(map[string]any)["status"] == "online" {
				n++
			}
		}
		return n == 2
	})

	repo := t.TempDir()
	git(t, repo, "init", "-q", "-b", "main")
	commit(t, repo, "<h1>rep version one</h1>\n")
	created := api.call("POST", fmt.Sprintf("/api/teams/%d/apps", team), map[string]any{"name": "Rep", "slug": "rep",
		"git_repo": repo, "git_branch": "main", "framework": "static", "cpu_millis": 100, "memory_mb": 32}, 201)
	id := int64(created["id"].(float64))
	appPath := fmt.Sprintf("/api/apps/%d", id)

	// Bounds are checked with sentences.
	api.wantError("PATCH", appPath, map[string]any{"replicas": 0}, 422, "replicas", regexp.MustCompile("at least 1"))
	api.wantError("PATCH", appPath, map[string]any{"replicas": 3, "max_unavailable": 3}, 422, "max_unavailable", regexp.MustCompile("below replicas"))
	api.wantError("PATCH", appPath, map[string]any{"max_surge": 0}, 422, "max_surge", regexp.MustCompile("at least 1"))
	if v := api.call("PATCH", appPath, map[string]any{"replicas": 3}, 200); v["replicas"] != 3.0 || v["max_surge"] != 1.0 || v["max_unavailable"] != 0.0 {
		t.Fatalf("scaled: %v", v)
	}

	// instancesAt waits for n instances, all running deployment dep.
	instancesAt := func(n int, dep float64, d time.Duration) []map[string]any {
		t.Helper()
		var last []map[string]any
		waitFor(t, fmt.Sprintf("%d instances at deployment %v", n, dep), d, func() bool {
			last = nil
			for _, in := range api.call("GET", appPath, nil, 200)["instances"].([]any) {
				last = append(last, in.(map[string]any))
			}
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
	perWorker := func(ins []map[string]any) map[string]int {
		out := map[string]int{}
		for _, in := range ins {
			out[in["worker"].(string)]++
		}
		return out
	}

	first := api.call("POST", appPath+"/deployments", map[string]any{}, 202)["deployment_id"].(float64)
	api.waitDeployment(id, first-1, 4*time.Minute)
	ins := instancesAt(3, first, 4*time.Minute)
	if pw := perWorker(ins); pw["wa"]+pw["wb"] != 3 || pw["wa"] == 0 || pw["wb"] == 0 {
		t.Fatalf("3 instances are not spread over both workers: %v", ins)
	}
	t.Logf("3 instances: %v", perWorker(ins))

	plain := &http.Client{Timeout: 10 * time.Second}
	paths := []path{{"caddy proxy", plain, "http://" + pxAddr, "rep.apps.test"}, {"traefik", plain, "http://" + tfAddr, "rep.apps.test"}}
	for _, w := range workers {
		paths = append(paths, path{"zone router " + w.name, plain, "http://" + w.zoneAddr, "rep." + w.zone})
	}
	for _, p := range paths {
		waitBodyFor(t, p, "rep version one", 60*time.Second)
	}

	// Rolling deploy under a request loop: no request fails.
	l := startLoop(paths, regexp.MustCompile(`rep version (one|two)`))
	commit(t, repo, "<h1>rep version two</h1>\n")
	start := time.Now()
	second := api.call("POST", appPath+"/deployments", map[string]any{}, 202)["deployment_id"].(float64)
	api.waitDeployment(id, second-1, 4*time.Minute)
	ins = instancesAt(3, second, 4*time.Minute)
	rolled := time.Since(start)
	for _, p := range paths {
		waitBodyFor(t, p, "rep version two", 60*time.Second)
	}
	time.Sleep(20 * time.Second) // past the drain delay: the old containers are gone
	ok, failed, last := l.end()
	t.Logf("rolling deploy of 3 instances over 2 workers: %s to the last instance; %d requests over four paths, %d failed", rolled.Round(100*time.Millisecond), ok, failed)
	if failed != 0 || ok < 100 {
		t.Fatalf("rolling deploy: %d ok, %d failed; last failure: %v", ok, failed, last)
	}
	if pw := perWorker(ins); pw["wa"] == 0 || pw["wb"] == 0 {
		t.Fatalf("after the roll the instances are not spread: %v", ins)
	}

	// Scale down to 1 with the CLI and up to 3 again with the API:
	// immediate, from the same image.
	if out, err := exec.Command(bins.cp, "app", "scale", "rep", "1", "--config", cpFile, "--adapter", "caddyfile").CombinedOutput(); err != nil ||
		!strings.Contains(string(out), "app rep runs 1 instance ") {
		t.Fatalf("app scale: %v\n%s", err, out)
	}
	instancesAt(1, second, 30*time.Second)
	// The removed instances drain, then their containers go.
	waitFor(t, "the removed instances' containers to go", 60*time.Second, func() bool {
		n := 0
		for _, w := range workers {
			out, _ := w.svc.Podman(ctx, "ps", "-q", "--filter", "label=io.wisehosting.slug=rep")
			n += len(strings.Fields(out))
		}
		return n == 1
	})
	logsPath := fmt.Sprintf("/api/apps/%d/deployments/%d/logs", id, int64(second))
	before := fmt.Sprint(api.call("GET", logsPath, nil, 200))
	scaled := time.Now()
	api.call("PATCH", appPath, map[string]any{"replicas": 3}, 200)
	ins = instancesAt(3, second, 2*time.Minute)
	t.Logf("scale 1 → 3: %s, %v", time.Since(scaled).Round(100*time.Millisecond), perWorker(ins))
	after := fmt.Sprint(api.call("GET", logsPath, nil, 200))
	if strings.Count(after, "reusing image")-strings.Count(before, "reusing image") != 2 ||
		strings.Count(after, "] building ") != strings.Count(before, "] building ") {
		t.Errorf("scaling up did not start both instances from the image: %s", after)
	}
	if pw := perWorker(ins); pw["wa"] == 0 || pw["wb"] == 0 {
		t.Fatalf("after scaling up the instances are not spread: %v", ins)
	}

	// Worker wb dies with its containers: after the health window the app
	// serves through wa alone, with no failed request, and its instances
	// come back on wa.
	var b *replicaWorker
	for _, w := range workers {
		if w.name == "wb" {
			b = w
		}
	}
	syscall.Kill(-b.agent.cmd.Process.Pid, syscall.SIGKILL)
	<-b.agent.done
	if out, err := b.svc.Podman(ctx, "rm", "-af", "-t", "0"); err != nil {
		t.Fatalf("removing wb's containers: %v %s", err, out)
	}
	died := time.Now()
	proxy := paths[:3] // the proxy mode, Traefik and wa's zone router
	waitFor(t, "wb to be seen offline", 90*time.Second, func() bool {
		for _, in := range api.call("GET", appPath, nil, 200)["instances"].([]any) {
			if m := in.(map[string]any); m["worker"] == "wb" && m["worker_status"] == "offline" {
				return true
			}
		}
		return false
	})
	// The proxies poll every second: wait for a run of successes on
	// each, then count.
	for _, p := range proxy {
		streak := 0
		waitFor(t, p.name+" to route around wb", 30*time.Second, func() bool {
			code, body, err := p.get()
			if err == nil && code == 200 && strings.Contains(body, "rep version two") {
				streak++
			} else {
				streak = 0
			}
			return streak >= 20
		})
	}
	window := time.Since(died)
	l = startLoop(proxy, regexp.MustCompile(`rep version two`))
	// wb's instance still reads running at the second deployment until
	// the one started on wa replaces it (once wb is gone): wait for that.
	waitFor(t, "wb's instance to start again on wa", 3*time.Minute, func() bool {
		ins = instancesAt(3, second, 3*time.Minute)
		return perWorker(ins)["wa"] == 3
	})
	time.Sleep(5 * time.Second)
	ok, failed, last = l.end()
	t.Logf("worker lost: health window %s; then %d requests, %d failed; instances %v", window.Round(100*time.Millisecond), ok, failed, perWorker(ins))
	if failed != 0 || ok < 50 {
		t.Fatalf("after losing a worker: %d ok, %d failed; last failure: %v", ok, failed, last)
	}
	if pw := perWorker(ins); pw["wa"] != 3 {
		t.Fatalf("the lost worker's instances did not move to wa: %v", ins)
	}
}

// waitBodyFor waits for p to answer 200 with want in the body.
func waitBodyFor(t *testing.T, p path, want string, d time.Duration) {
	t.Helper()
	waitFor(t, fmt.Sprintf("%s to serve %q", p.name, want), d, func() bool {
		code, body, err := p.get()
		return err == nil && code == 200 && strings.Contains(body, want)
	})
}
