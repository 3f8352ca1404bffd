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
	"testing"
	"time"

	"github.com/wisehosting/wisehosting/agent/runtime/podmantest"
)

// TestPerInstanceVolumes is the journey of an app whose volume is declared
// per instance, through the public API and CLI on two real workers (two
// agents on loopback, each with its own Podman): with 2 replicas over the
// 2 workers, each instance writes its own random id into its own copy of
// the volume (wh-vol-<id>-<slot>, on its worker); after a redeploy each
// instance, still on its worker, serves the id it wrote; scaling to 1
// releases the second instance's copy with its removal time, while the
// first keeps its data.
func TestPerInstanceVolumes(t *testing.T) {
	ctx := context.Background()
	work := t.TempDir()
	_, dbURL := startPostgres(t)
	cpAddr := freeAddr(t)
	workers := []*replicaWorker{
		{name: "wa", ip: "127.0.0.1", zone: "za.test", zoneAddr: freeAddr(t), svc: podmantest.Start(t)},
		{name: "wb", ip: "127.0.0.2", zone: "zb.test", zoneAddr: freeAddr(t), svc: podmantest.Start(t)},
	}
	for _, w := range workers {
		t.Cleanup(func() {
			out, _ := w.svc.Podman(context.Background(), "ps", "-aq", "--filter", "label=io.wisehosting.slug=shards")
			for _, id := range strings.Fields(out) {
				w.svc.Podman(context.Background(), "rm", "-f", "-t", "1", id)
			}
			out, _ = w.svc.Podman(context.Background(), "volume", "ls", "-q", "--filter", "label=io.wisehosting.volume")
			for _, v := range strings.Fields(out) {
				w.svc.Podman(context.Background(), "volume", "rm", "-f", v)
			}
		})
	}
	cpFile := filepath.Join(work, "cp.Caddyfile")
	os.WriteFile(cpFile, []byte(fmt.Sprintf(`{
	admin off
	wisehosting_scheduler {
		poll_interval 200ms
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
		wisehosting_hub
		wisehosting_api
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
	commit(t, repo, "<h1>shards version one</h1>\n")
	created := api.call("POST", fmt.Sprintf("/api/teams/%d/apps", team), map[string]any{"name": "Shards", "slug": "shards",
		"git_repo": repo, "git_branch": "main", "cpu_millis": 100, "memory_mb": 32}, 201)
	id := int64(created["id"].(float64))
	ap := func(p string, a ...any) string { return fmt.Sprintf("/api/apps/%d", id) + fmt.Sprintf(p, a...) }
	// Each instance writes a random id into its volume once, and serves it.
	api.call("PATCH", ap(""), map[string]any{"replicas": 2,
		"start_command": "test -f /cache/id.txt || cat /proc/sys/kernel/random/uuid > /cache/id.txt; httpd -f -p $PORT -h /cache"}, 200)

	// A shared volume is refused on 2 replicas; one per instance is not.
	api.wantError("POST", ap("/volumes"), map[string]any{"name": "cache", "mount_path": "/cache", "size_mb": 32}, 409, "", regexp.MustCompile("per instance"))
	vol := api.call("POST", ap("/volumes"), map[string]any{"name": "cache", "mount_path": "/cache", "size_mb": 32, "per_instance": true}, 201)
	vid := int64(vol["id"].(float64))
	if vol["per_instance"] != true || len(vol["instances"].([]any)) != 2 {
		t.Fatalf("per-instance volume: %v", vol)
	}

	// instances waits for n instances running deployment dep and returns
	// the worker of each slot.
	instances := func(n int, dep float64) map[int]string {
		t.Helper()
		var at map[int]string
		waitFor(t, fmt.Sprintf("%d instances at deployment %v", n, dep), 4*time.Minute, func() bool {
			at = map[int]string{}
			for _, x := range api.call("GET", ap(""), nil, 200)["instances"].([]any) {
				in := x.(map[string]any)
				if in["deployment_id"] != dep || in["status"] != "running" {
					return false
				}
				at[int(in["slot"].(float64))] = in["worker"].(string)
			}
			return len(at) == n
		})
		return at
	}
	zone := &http.Client{Timeout: 10 * time.Second}
	// ids reads the id each worker's instance serves from its volume.
	ids := func(at map[int]string) map[string]string {
		t.Helper()
		out := map[string]string{}
		for _, w := range workers {
			var body string
			waitFor(t, "the instance on "+w.name+" to serve its id", time.Minute, func() bool {
				code, b, err := getHost(zone, "http://"+w.zoneAddr, "shards."+w.zone, "/id.txt")
				body = strings.TrimSpace(b)
				return err == nil && code == 200 && len(body) == 36
			})
			out[w.name] = body
		}
		return out
	}
	deploy := func() float64 {
		t.Helper()
		dep := api.call("POST", ap("/deployments"), map[string]any{}, 202)["deployment_id"].(float64)
		api.waitDeployment(id, dep-1, 4*time.Minute)
		return dep
	}

	first := deploy()
	at := instances(2, first)
	if at[0] == at[1] {
		t.Fatalf("both instances on %s, want one per worker", at[0])
	}
	before := ids(at)
	if before["wa"] == before["wb"] {
		t.Fatalf("both instances read the same id %q: their volumes are not their own", before["wa"])
	}
	t.Logf("instances %v with ids %v", at, before)
	// Each slot's copy is bound to its instance's worker, and exists there.
	workerIDs := map[float64]string{}
	for _, x := range api.call("GET", "/api/workers", nil, 200)["workers"].([]any) {
		w := x.(map[string]any)
		workerIDs[w["id"].(float64)] = w["name"].(string)
	}
	copies := func() []map[string]any {
		var out []map[string]any
		v := api.call("GET", ap("/volumes"), nil, 200)["volumes"].([]any)[0].(map[string]any)
		for _, c := range v["instances"].([]any) {
			out = append(out, c.(map[string]any))
		}
		return out
	}
	for _, c := range copies() {
		slot := int(c["slot"].(float64))
		name := fmt.Sprintf("wh-vol-%d-%d", vid, slot)
		if c["podman_name"] != name || workerIDs[c["worker_id"].(float64)] != at[slot] {
			t.Fatalf("copy %v: want %s on %s", c, name, at[slot])
		}
		for _, w := range workers {
			out, _ := w.svc.Podman(ctx, "volume", "ls", "-q", "--filter", "name="+w.name+"-vol-")
			if has := strings.Contains(out, fmt.Sprintf("vol-%d-%d", vid, slot)); has != (w.name == at[slot]) {
				t.Fatalf("worker %s has volumes %q; copy of slot %d belongs on %s", w.name, out, slot, at[slot])
			}
		}
	}

	// A redeploy (a new commit): each slot stays on its worker and its
	// instance still reads its own id.
	commit(t, repo, "<h1>shards version two</h1>\n")
	second := deploy()
	if again := instances(2, second); again[0] != at[0] || again[1] != at[1] {
		t.Fatalf("after the redeploy the slots run on %v, before on %v: they are pinned to their volumes", again, at)
	}
	if after := ids(at); after["wa"] != before["wa"] || after["wb"] != before["wb"] {
		t.Fatalf("after the redeploy the instances read %v, before %v", after, before)
	}

	// Scale to 1 with the CLI: the second instance's copy is released,
	// with the grace period; the first keeps its copy and its id.
	if out, err := exec.Command(bins.cp, "app", "scale", "shards", "1", "--config", cpFile, "--adapter", "caddyfile").CombinedOutput(); err != nil {
		t.Fatalf("app scale: %v\n%s", err, out)
	}
	instances(1, second)
	var released map[string]any
	for _, c := range copies() {
		if c["remove_after"] != nil {
			if released != nil {
				t.Fatalf("two copies released: %v", copies())
			}
			released = c
		}
	}
	if released == nil || released["slot"].(float64) != 1 || released["podman_name"] != fmt.Sprintf("wh-vol-%d-1", vid) {
		t.Fatalf("copies after scaling to 1: %v", copies())
	}
	after, _ := time.Parse(time.RFC3339Nano, released["remove_after"].(string))
	if d := time.Until(after); d < 6*24*time.Hour {
		t.Fatalf("the released copy goes in %s, want the 7-day grace period", d)
	}
	for _, w := range workers {
		switch w.name {
		case at[0]:
			if code, body, err := getHost(zone, "http://"+w.zoneAddr, "shards."+w.zone, "/id.txt"); err != nil || code != 200 ||
				strings.TrimSpace(body) != before[w.name] {
				t.Fatalf("the first instance reads %d %q %v, want %q", code, body, err, before[w.name])
			}
		case at[1]:
			// The released copy keeps its data on its worker until then.
			if out, err := w.svc.Podman(ctx, "volume", "exists", fmt.Sprintf("wh-%s-vol-%d-1", w.name, vid)); err != nil {
				t.Fatalf("the released copy is gone from %s within its grace period: %v %s", w.name, err, out)
			}
		}
	}
	// The operator sees each copy, the released one with its removal time.
	out, err := exec.Command(bins.cp, "volume", "list", "--config", cpFile, "--adapter", "caddyfile").CombinedOutput()
	want := regexp.MustCompile(fmt.Sprintf(`wh-vol-%d-1\s+\S+\s+shards\s+/cache\s+32MB\s+\S+\s+%s\s+%s`, vid, at[1], after.Local().Format("2006-01-02")))
	if err != nil || !want.Match(out) || !strings.Contains(string(out), fmt.Sprintf("wh-vol-%d-0 ", vid)) {
		t.Fatalf("volume list: %v\n%s", err, out)
	}

	// The operator declares another per-instance volume with the CLI: one
	// copy for the one instance left.
	out, err = exec.Command(bins.cp, "volume", "add", "shards", "logs", "/logs", "16", "--per-instance", "--config", cpFile, "--adapter", "caddyfile").CombinedOutput()
	if err != nil || !strings.Contains(string(out), "one copy of 16 MB per instance (1 now)") {
		t.Fatalf("volume add: %v\n%s", err, out)
	}
	vs := api.call("GET", ap("/volumes"), nil, 200)["volumes"].([]any)
	if len(vs) != 2 || vs[1].(map[string]any)["name"] != "logs" || len(vs[1].(map[string]any)["instances"].([]any)) != 1 {
		t.Fatalf("volumes after volume add: %v", vs)
	}
}
