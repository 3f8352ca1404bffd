package e2e

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/wisehosting/wisehosting/agent/runtime/podmantest"
)

// forwarder is the test's load balancer in front of the control-plane
// replicas: each connection goes to the first replica that accepts it, so
// when one dies its agent reconnects to the other, as behind any TCP load
// balancer.
type forwarder struct {
	addr     string
	mu       sync.Mutex
	backends []string
}

func startForwarder(t *testing.T, backends ...string) *forwarder {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	f := &forwarder{addr: l.Addr().String(), backends: backends}
	t.Cleanup(func() { l.Close() })
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			go f.serve(c)
		}
	}()
	return f
}

func (f *forwarder) serve(c net.Conn) {
	defer c.Close()
	f.mu.Lock()
	backends := append([]string(nil), f.backends...)
	f.mu.Unlock()
	for _, b := range backends {
		up, err := net.DialTimeout("tcp", b, 2*time.Second)
		if err != nil {
			continue
		}
		defer up.Close()
		done := make(chan struct{}, 2)
		go func() { io.Copy(up, c); done <- struct{}{} }()
		go func() { io.Copy(c, up); done <- struct{}{} }()
		<-done
		return
	}
}

// cluster is a private Postgres, two control-plane replicas on it behind a
// forwarder, and one worker agent connected through the forwarder.
type cluster struct {
	t       *testing.T
	work    string
	cpFiles [2]string
	cpAddrs [2]string
	cps     [2]*proc
	fwd     *forwarder
	api     *apiClient
	team    int64
	zone    string
}

func (c *cluster) startCP(i int) {
	c.t.Helper()
	c.cps[i] = startProc(c.t, fmt.Sprintf("cp%d", i), c.work, nil, bins.cp, "run", "--config", c.cpFiles[i], "--adapter", "caddyfile")
	waitListen(c.t, c.cps[i], c.cpAddrs[i])
}

func startCluster(t *testing.T, svc *podmantest.Service) *cluster {
	t.Helper()
	_, dbURL := startPostgres(t)
	c := &cluster{t: t, work: t.TempDir(), zone: freeAddr(t)}
	for i := range c.cpAddrs {
		c.cpAddrs[i] = freeAddr(t)
	}
	c.fwd = startForwarder(t, c.cpAddrs[0], c.cpAddrs[1])
	for i := range c.cpFiles {
		c.cpFiles[i] = filepath.Join(c.work, fmt.Sprintf("cp%d.Caddyfile", i))
		os.WriteFile(c.cpFiles[i], []byte(fmt.Sprintf(`{
	admin off
	wisehosting_scheduler {
		poll_interval 200ms
	}
	wisehosting {
		database_url %s
		secret %s
		proxy_token %s
		subdomain_base apps.test
		public_url http://%s
		admin_email owner@acme.test
		allow_local_git on
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
`, dbURL, secret, proxyToken, c.fwd.addr, c.cpAddrs[i])), 0o600)
	}
	// The first replica creates the first account; then the second starts.
	c.startCP(0)
	c.startCP(1)
	key := addWorker(t, c.cpFiles[0], "w1", "z.test", "127.0.0.1")
	agent := startProc(t, "agent", c.work, []string{"WISEHOSTING_WORKER_KEY=" + key}, bins.agent,
		"-cp", "http://"+c.fwd.addr, "-mesh-ip", "127.0.0.1", "-zone", "z.test", "-zone-listen", c.zone,
		"-podman", svc.URL, "-allow-local-git", "-work-dir", c.work)
	waitListen(t, agent, c.zone)
	c.api, c.team = signInOwner(t, c.cps[0].log, c.fwd.addr)
	return c
}

// TestVolumesAndCronAcrossReplicas is the journey of an app that keeps
// state, through the public API of two control-plane replicas on one
// database: a volume declared on the app keeps a file written by the
// app's first container across a redeploy and a rollback; a scheduled job
// running every minute appends a line to that volume and runs exactly
// once per minute for more than three minutes while one replica is killed
// (SIGKILL) at a minute boundary and started again — no minute twice, no
// minute missed, as the runs recorded and the lines on the volume show.
func TestVolumesAndCronAcrossReplicas(t *testing.T) {
	svc := podmantest.Start(t)
	t.Cleanup(func() {
		ctx := context.Background()
		out, _ := svc.Podman(ctx, "ps", "-aq", "--filter", "label=io.wisehosting.slug=notes")
		for _, id := range strings.Fields(out) {
			svc.Podman(ctx, "rm", "-f", "-t", "1", id)
		}
		out, _ = svc.Podman(ctx, "volume", "ls", "-q", "--filter", "label=io.wisehosting.volume")
		for _, v := range strings.Fields(out) {
			svc.Podman(ctx, "volume", "rm", "-f", v)
		}
	})
	c := startCluster(t, svc)
	api := c.api
	apps := fmt.Sprintf("/api/teams/%d/apps", c.team)

	repo := t.TempDir()
	git(t, repo, "init", "-q", "-b", "main")
	commit(t, repo, "<h1>notes version one</h1>\n")
	// The app's start command records its first boot on the volume once,
	// and serves the volume.
	app := api.call("POST", apps, map[string]any{"name": "Notes", "slug": "notes", "git_repo": repo, "git_branch": "main",
		"cpu_millis": 250, "memory_mb": 64}, 201)
	id := int64(app["id"].(float64))
	ap := func(p string, a ...any) string { return fmt.Sprintf("/api/apps/%d", id) + fmt.Sprintf(p, a...) }
	api.call("PATCH", ap(""), map[string]any{
		"start_command": "test -f /data/first.txt || cat /proc/sys/kernel/random/uuid > /data/first.txt; httpd -f -p $PORT -h /data"}, 200)

	// Volumes are checked where they enter.
	api.wantError("POST", ap("/volumes"), map[string]any{"name": "data", "mount_path": "/etc", "size_mb": 64}, 422, "mount_path", regexp.MustCompile("system directory"))
	api.wantError("POST", ap("/volumes"), map[string]any{"name": "data", "mount_path": "data", "size_mb": 64}, 422, "mount_path", regexp.MustCompile("absolute"))
	api.wantError("POST", ap("/volumes"), map[string]any{"name": "Data!", "mount_path": "/data", "size_mb": 64}, 422, "name", regexp.MustCompile("lowercase"))
	api.wantError("POST", ap("/volumes"), map[string]any{"name": "data", "mount_path": "/data", "size_mb": 0}, 422, "size_mb", regexp.MustCompile("between"))
	vol := api.call("POST", ap("/volumes"), map[string]any{"name": "data", "mount_path": "/data", "size_mb": 64}, 201)
	api.wantError("POST", ap("/volumes"), map[string]any{"name": "data", "mount_path": "/other", "size_mb": 64}, 422, "name", regexp.MustCompile("already has"))

	zone := &http.Client{Timeout: 10 * time.Second}
	get := func(path string) (int, string) {
		code, body, err := getHost(zone, "http://"+c.zone, "notes.z.test", path)
		if err != nil {
			return 0, err.Error()
		}
		return code, body
	}
	deploy := func(body map[string]any) float64 {
		t.Helper()
		dep := api.call("POST", ap("/deployments"), body, 202)["deployment_id"].(float64)
		api.waitDeployment(id, dep-1, 3*time.Minute)
		return dep
	}
	first := deploy(map[string]any{})
	var boot string
	waitFor(t, "the app to serve its first boot from the volume", time.Minute, func() bool {
		code, body := get("/first.txt")
		boot = strings.TrimSpace(body)
		return code == 200 && boot != ""
	})
	if v := api.call("GET", ap("/volumes"), nil, 200)["volumes"].([]any)[0].(map[string]any); v["worker_id"] == nil {
		t.Fatalf("the volume is not bound to the worker after the first deploy: %v", v)
	}

	// A scheduled job, every minute, appending to the volume.
	api.wantError("POST", ap("/cron"), map[string]any{"name": "tick", "schedule": "* * * *", "command": []string{"true"}}, 422, "schedule", regexp.MustCompile("5 fields"))
	api.wantError("POST", ap("/cron"), map[string]any{"name": "tick", "schedule": "* * * * *", "timezone": "Mars/Base", "command": []string{"true"}}, 422, "timezone", regexp.MustCompile("unknown time zone"))
	api.wantError("POST", ap("/cron"), map[string]any{"name": "tick", "schedule": "* * * * *", "command": []string{}}, 422, "command", regexp.MustCompile("required"))
	job := api.call("POST", ap("/cron"), map[string]any{"name": "tick", "schedule": "* * * * *", "timezone": "Europe/Berlin",
		"command": []string{"/bin/sh", "-c", "date +%s >> /data/ticks.txt; echo tick from the volume"}, "timeout_s": 50}, 201)
	jobID := int64(job["id"].(float64))

	// Redeploy (a new commit) and roll back: the first boot's file stays.
	commit(t, repo, "<h1>notes version two</h1>\n")
	deploy(map[string]any{})
	if code, body := get("/first.txt"); code != 200 || strings.TrimSpace(body) != boot {
		t.Fatalf("after the redeploy the volume holds %d %q, want %q", code, body, boot)
	}
	deploy(map[string]any{"rollback_of": first})
	if code, body := get("/first.txt"); code != 200 || strings.TrimSpace(body) != boot {
		t.Fatalf("after the rollback the volume holds %d %q, want %q", code, body, boot)
	}

	runs := func() []map[string]any {
		var out []map[string]any
		for _, r := range api.call("GET", ap("/cron/%d/runs?limit=100", jobID), nil, 200)["runs"].([]any) {
			out = append(out, r.(map[string]any))
		}
		return out
	}
	finished := func(rs []map[string]any) int {
		n := 0
		for _, r := range rs {
			if r["state"] != "pending" && r["state"] != "running" {
				n++
			}
		}
		return n
	}
	waitFor(t, "the first scheduled run", 3*time.Minute, func() bool { return finished(runs()) >= 1 })

	// Kill the replica the worker is connected to (the forwarder's first)
	// just after a minute starts, when runs are being claimed.
	now := time.Now()
	time.Sleep(now.Truncate(time.Minute).Add(time.Minute + 300*time.Millisecond).Sub(now))
	syscall.Kill(-c.cps[0].cmd.Process.Pid, syscall.SIGKILL)
	<-c.cps[0].done
	t.Logf("killed replica 0 at %s", time.Now().Format(time.RFC3339Nano))
	time.Sleep(40 * time.Second)
	c.startCP(0) // a restart of the killed replica

	waitFor(t, "four scheduled runs after the first", 6*time.Minute, func() bool { return finished(runs()) >= 5 })
	rs := runs()
	var minutes []time.Time
	for _, r := range rs {
		if r["state"] == "pending" || r["state"] == "running" {
			continue
		}
		if r["state"] != "succeeded" || r["exit_code"].(float64) != 0 || !strings.Contains(r["log_tail"].(string), "tick from the volume") {
			t.Fatalf("run: %v", r)
		}
		at, err := time.Parse(time.RFC3339Nano, r["scheduled_at"].(string))
		if err != nil {
			t.Fatal(err)
		}
		minutes = append(minutes, at)
	}
	// Newest first, one per minute, no gap.
	for i := 1; i < len(minutes); i++ {
		if d := minutes[i-1].Sub(minutes[i]); d != time.Minute {
			t.Fatalf("runs at %v: %s between two runs (want one a minute, none missed or doubled)", minutes, d)
		}
	}
	if span := minutes[0].Sub(minutes[len(minutes)-1]); span < 3*time.Minute {
		t.Fatalf("runs span %s, want at least 3 minutes", span)
	}
	// Each run executed once: as many lines on the volume as runs that
	// ended (a run in progress may add one more).
	code, ticks := get("/ticks.txt")
	lines := len(strings.Fields(ticks))
	if code != 200 || lines < len(minutes) || lines > len(minutes)+1 {
		t.Fatalf("the volume has %d tick lines (%d %q) for %d runs", lines, code, ticks, len(minutes))
	}
	t.Logf("%d runs, one per minute from %s to %s, %d lines on the volume", len(minutes), minutes[len(minutes)-1], minutes[0], lines)

	// Deleting the app keeps the volume's data for the grace period,
	// and the API says until when.
	api.call("DELETE", ap(""), nil, 202)
	vs := api.call("GET", fmt.Sprintf("/api/teams/%d/volumes", c.team), nil, 200)["volumes"].([]any)
	if len(vs) != 1 || vs[0].(map[string]any)["id"] != vol["id"] || vs[0].(map[string]any)["remove_after"] == nil {
		t.Fatalf("released volumes: %v", vs)
	}
	after, _ := time.Parse(time.RFC3339Nano, vs[0].(map[string]any)["remove_after"].(string))
	if d := time.Until(after); d < 6*24*time.Hour {
		t.Fatalf("the volume goes in %s, want the 7-day grace period", d)
	}
	// The operator sees it, its worker and its removal time.
	out, err := exec.Command(bins.cp, "volume", "list", "--worker", "w1", "--config", c.cpFiles[1], "--adapter", "caddyfile").CombinedOutput()
	want := regexp.MustCompile(fmt.Sprintf(`wh-vol-%d\s+\S+\s+notes\s+/data\s+64MB\s+\S+\s+w1\s+%s`, int64(vol["id"].(float64)), after.Local().Format("2006-01-02")))
	if err != nil || !want.Match(out) {
		t.Fatalf("volume list: %v\n%s", err, out)
	}
}
