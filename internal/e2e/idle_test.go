package e2e

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/wisehosting/wisehosting/internal/pgtest"
)

// procUsage reads a process's resident memory (bytes) and CPU time
// (user+system clock ticks) from /proc.
func procUsage(pid int) (rss int64, ticks int64, err error) {
	status, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, 0, err
	}
	for _, line := range strings.Split(string(status), "\n") {
		if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			kb, _ := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			rss = kb << 10
		}
	}
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, 0, err
	}
	// Fields after the command name (which may hold spaces): utime and
	// stime are the 12th and 13th of them.
	f := strings.Fields(string(stat[strings.LastIndexByte(string(stat), ')')+1:]))
	if len(f) < 13 {
		return 0, 0, fmt.Errorf("short /proc/%d/stat", pid)
	}
	u, _ := strconv.ParseInt(f[11], 10, 64)
	s, _ := strconv.ParseInt(f[12], 10, 64)
	return rss, u + s, nil
}

const clockTicks = 100 // USER_HZ on Linux

// idle starts the binary with cfg, lets it settle, applies load (if any)
// while it measures for window, and returns RSS (MiB) and CPU (% of one
// core) over the window.
func idle(b *testing.B, name, cfg, addr string, window time.Duration, load func(stop <-chan struct{})) (rssMiB, cpuPct float64) {
	dir := b.TempDir()
	path := filepath.Join(dir, name+".Caddyfile")
	os.WriteFile(path, []byte(cfg), 0o600)
	p := startProc(b, name, dir, []string{"HOME=" + dir, "XDG_DATA_HOME=" + dir, "XDG_CONFIG_HOME=" + dir}, bins.cp, "run", "--config", path, "--adapter", "caddyfile")
	waitListen(b, p, addr)
	defer p.stop()
	stop := make(chan struct{})
	if load != nil {
		go load(stop)
	}
	time.Sleep(5 * time.Second) // start-up work (migrations, first loads) is done
	_, t0, err := procUsage(p.cmd.Process.Pid)
	if err != nil {
		b.Fatal(err)
	}
	start := time.Now()
	time.Sleep(window)
	rss, t1, err := procUsage(p.cmd.Process.Pid)
	if err != nil {
		b.Fatal(err)
	}
	close(stop)
	cpu := float64(t1-t0) / clockTicks / time.Since(start).Seconds() * 100
	return float64(rss) / (1 << 20), cpu
}

// BenchmarkIdleControlPlane measures the control plane's resident memory
// and CPU while idle with 100 running apps (and a proxy polling its
// routing table every 5 s, as Traefik does), against the same binary
// serving a plain Caddy site in the same run: the cost of the platform
// on top of Caddy itself.
func BenchmarkIdleControlPlane(b *testing.B) {
	db := pgtest.New(b)
	ctx := context.Background()
	var team, worker int64
	db.Pool.QueryRow(ctx, "INSERT INTO teams (name, slug) VALUES ('t', 't') RETURNING id").Scan(&team)
	db.Pool.QueryRow(ctx, "INSERT INTO workers (name, api_key_hash, wg_ip, zone, status) VALUES ('w1', 'k', '127.0.0.1', 'z.test', 'online') RETURNING id").Scan(&worker)
	for i := 0; i < 100; i++ {
		var app int64
		db.Pool.QueryRow(ctx, `INSERT INTO apps (team_id, slug, name, status, worker_id, port, host_port) VALUES ($1, $2, $2, 'running', $3, 8080, $4) RETURNING id`,
			team, fmt.Sprintf("app%03d", i), worker, 30000+i).Scan(&app)
		db.Pool.Exec(ctx, "INSERT INTO deployments (app_id, status, image, worker_id, finished_at) VALUES ($1, 'succeeded', 'img', $2, now())", app, worker)
	}
	window := 20 * time.Second
	var rss, cpu, peerRSS, peerCPU float64
	for i := 0; i < b.N; i++ {
		addr := freeAddr(b)
		cfg := fmt.Sprintf(`{
	admin off
	wisehosting_scheduler
	wisehosting_logs
	wisehosting_usage
	wisehosting_alerts
	wisehosting_webhooks
	wisehosting {
		database_url %s
		secret %s
		proxy_token %s
		subdomain_base apps.test
		admin_email off
	}
}
http://%s {
	route {
		wisehosting_hub
		wisehosting_api
	}
}
`, db.URL, secret, proxyToken, addr)
		poll := func(stop <-chan struct{}) {
			t := time.NewTicker(5 * time.Second)
			defer t.Stop()
			for {
				req, _ := http.NewRequest("GET", "http://"+addr+"/v1/traefik/proxy-config", nil)
				req.Header.Set("Authorization", "Bearer "+proxyToken)
				if resp, err := http.DefaultClient.Do(req); err == nil {
					if resp.StatusCode != 200 {
						b.Errorf("proxy-config: %s", resp.Status)
					}
					resp.Body.Close()
				}
				select {
				case <-stop:
					return
				case <-t.C:
				}
			}
		}
		rss, cpu = idle(b, "cp", cfg, addr, window, poll)
		paddr := freeAddr(b)
		peerRSS, peerCPU = idle(b, "caddy", fmt.Sprintf("{\n\tadmin off\n}\nhttp://%s {\n\trespond \"ok\"\n}\n", paddr), paddr, window, nil)
	}
	b.ReportMetric(rss, "cp-rss-MiB")
	b.ReportMetric(cpu, "cp-cpu%")
	b.ReportMetric(peerRSS, "caddy-rss-MiB")
	b.ReportMetric(peerCPU, "caddy-cpu%")
	b.ReportMetric(rss/peerRSS, "rss-ratio")
}
