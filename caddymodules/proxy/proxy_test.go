package proxy_test

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"

	"github.com/wisehosting/wisehosting/caddymodules/cptest"
	"github.com/wisehosting/wisehosting/internal/network"
	"github.com/wisehosting/wisehosting/internal/pgtest"
)

var binPath string

// The proxy runs as the real binary in its own process, so the control
// plane (in this process) can be killed under it.
func TestMain(m *testing.M) {
	dir, _ := os.MkdirTemp("", "wh-proxy-bin")
	binPath = filepath.Join(dir, "wisehosting")
	build := exec.Command("go", "build", "-o", binPath, "../../cmd/wisehosting")
	build.Stderr = os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "building:", err)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// backend answers with its name and the path it saw.
func backend(t testing.TB, name string, hits *atomic.Int64) *httptest.Server {
	s := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if hits != nil {
			hits.Add(1)
		}
		fmt.Fprintf(w, "%s %s", name, r.URL.Path)
	}))
	t.Cleanup(s.Close)
	return s
}

func port(s *httptest.Server) int { return s.Listener.Addr().(*net.TCPAddr).Port }

// startProxy runs the proxy mode on a free loopback port.
func startProxy(t testing.TB, cpURL, dir string) (string, func()) {
	t.Helper()
	addr := cptest.FreeAddr(t)
	admin := "off"
	if proxyAdmin != "" {
		admin = proxyAdmin
	}
	cfg := fmt.Sprintf(`{
	admin %[6]s
	storage file_system %[1]s/data
	# as shipped: reverse_proxy's per-request debug logger is excluded
	log default {
		exclude http.handlers.reverse_proxy
	}
	wisehosting_proxy {
		control_plane %[2]s
		token %[3]s
		cache_file %[1]s/routes.json
		poll_interval 200ms
	}
}
http://:%[5]s {
	bind 127.0.0.1
	wisehosting_route {
		forward
	}
	reverse_proxy {
		dynamic wisehosting
		lb_policy first
		transport http {
			keepalive_idle_conns_per_host 256
		}
	}
}
`, dir, cpURL, cptest.ProxyToken, addr, addr[strings.LastIndex(addr, ":")+1:], admin)
	return runProxy(t, dir, cfg, addr)
}

// pinCPU, when set (benchmarks), runs the proxies under `taskset -c
// pinCPU`, so both sides get the same single core; proxyAdmin, when set,
// is the proxy mode's admin address (for pprof).
var pinCPU, proxyAdmin string

// proxyPID and traefikPID are the last started proxies' processes (for
// their CPU time in benchmarks).
var proxyPID, traefikPID int

// pinned wraps cmd in taskset when pinCPU is set.
func pinned(cmd *exec.Cmd) *exec.Cmd {
	if pinCPU == "" {
		return cmd
	}
	ts, err := exec.LookPath("taskset")
	if err != nil {
		return cmd
	}
	cmd.Args = append([]string{"taskset", "-c", pinCPU}, cmd.Args...)
	cmd.Path = ts
	return cmd
}

// runProxy starts the binary with Caddyfile cfg and waits for addr.
func runProxy(t testing.TB, dir, cfg, addr string) (string, func()) {
	t.Helper()
	path := filepath.Join(dir, "proxy.Caddyfile")
	os.WriteFile(path, []byte(cfg), 0o600)
	cmd := pinned(exec.Command(binPath, "run", "--config", path, "--adapter", "caddyfile"))
	cmd.Env = append(os.Environ(), "HOME="+dir, "XDG_DATA_HOME="+dir, "XDG_CONFIG_HOME="+dir)
	logf, _ := os.Create(filepath.Join(dir, "proxy.log"))
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	proxyPID = cmd.Process.Pid
	stop := func() { cmd.Process.Kill(); cmd.Wait(); logf.Close() }
	t.Cleanup(stop)
	deadline := time.Now().Add(20 * time.Second)
	for {
		c, err := net.Dial("tcp", addr)
		if err == nil {
			c.Close()
			break
		}
		if time.Now().After(deadline) {
			b, _ := os.ReadFile(filepath.Join(dir, "proxy.log"))
			t.Fatalf("proxy did not start:\n%s", b)
		}
		time.Sleep(50 * time.Millisecond)
	}
	return "http://" + addr, stop
}

func hit(t testing.TB, proxy, host, path string) (int, string) {
	req, _ := http.NewRequest("GET", proxy+path, nil)
	req.Host = host
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, err.Error()
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func waitFor(t testing.TB, what string, d time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

type fixture struct {
	db    *pgtest.DB
	team  int64
	wrk   int64
	cpURL string
}

func (f *fixture) addApp(t testing.TB, slug string, hostPort int) int64 {
	var id int64
	err := f.db.Pool.QueryRow(context.Background(), `INSERT INTO apps (team_id, slug, name, status, worker_id, port, host_port)
		VALUES ($1, $2, $2, 'running', $3, 8080, $4) RETURNING id`, f.team, slug, f.wrk, hostPort).Scan(&id)
	if err != nil {
		t.Fatal(err)
	}
	network.NotifyChanged(context.Background(), f.db.Pool)
	return id
}

func setup(t testing.TB) *fixture {
	db := pgtest.New(t)
	f := &fixture{db: db}
	ctx := context.Background()
	db.Pool.QueryRow(ctx, "INSERT INTO teams (name, slug) VALUES ('t', 't') RETURNING id").Scan(&f.team)
	db.Pool.QueryRow(ctx, "INSERT INTO workers (name, api_key_hash, wg_ip, status) VALUES ('w', 'k', '127.0.0.1', 'online') RETURNING id").Scan(&f.wrk)
	f.cpURL = cptest.Start(t, db, cptest.Options{}).URL
	return f
}

func TestProxyModeRoutesAndSurvivesControlPlaneLoss(t *testing.T) {
	f := setup(t)
	ctx := context.Background()
	site := backend(t, "site", nil)
	var h1, h2 atomic.Int64
	v1, v2, api := backend(t, "v1", &h1), backend(t, "v2", &h2), backend(t, "api", nil)
	f.addApp(t, "site", port(site))
	shop := f.addApp(t, "shop", port(v1))
	f.db.Pool.Exec(ctx, "INSERT INTO routes (app_id, path_prefix, port, weight) VALUES ($1, '/', $2, 80), ($1, '/', $3, 20)", shop, port(v1), port(v2))
	f.db.Pool.Exec(ctx, "INSERT INTO routes (app_id, path_prefix, port, strip_prefix) VALUES ($1, '/api', $2, true)", shop, port(api))
	f.db.Pool.Exec(ctx, "INSERT INTO domains (app_id, hostname, token, verified_at) SELECT id, 'www.site.example', 't', now() FROM apps WHERE slug = 'site'")
	network.NotifyChanged(ctx, f.db.Pool)

	dir := t.TempDir()
	proxy, stopProxy := startProxy(t, f.cpURL, dir)
	waitFor(t, "site routed", 10*time.Second, func() bool { c, _ := hit(t, proxy, "site.apps.test", "/"); return c == 200 })

	for host, want := range map[string]string{"site.apps.test": "site /x", "WWW.Site.Example": "site /x", "shop.apps.test:443": ""} {
		code, body := hit(t, proxy, host, "/x")
		if code != 200 || (want != "" && body != want) {
			t.Errorf("%s: %d %q", host, code, body)
		}
	}
	if code, _ := hit(t, proxy, "nobody.apps.test", "/"); code != 404 {
		t.Errorf("unknown host: %d", code)
	}
	if code, body := hit(t, proxy, "shop.apps.test", "/api/users"); code != 200 || body != "api /users" {
		t.Errorf("strip prefix: %d %q", code, body)
	}
	// 80/20 split.
	for i := 0; i < 1000; i++ {
		hit(t, proxy, "shop.apps.test", "/")
	}
	share := float64(h1.Load()) / float64(h1.Load()+h2.Load())
	if share < 0.74 || share > 0.86 {
		t.Errorf("split %.2f (v1 %d, v2 %d), want about 0.80", share, h1.Load(), h2.Load())
	}

	// A new app propagates by long-poll, far below the poll interval.
	late := backend(t, "late", nil)
	start := time.Now()
	f.addApp(t, "late", port(late))
	waitFor(t, "new app routed", 5*time.Second, func() bool { c, _ := hit(t, proxy, "late.apps.test", "/"); return c == 200 })
	if d := time.Since(start); d > time.Second {
		t.Errorf("propagation took %s", d)
	}

	// The control plane dies: the proxy keeps routing.
	caddy.Stop()
	time.Sleep(300 * time.Millisecond)
	if code, body := hit(t, proxy, "site.apps.test", "/y"); code != 200 || body != "site /y" {
		t.Fatalf("after control plane loss: %d %q", code, body)
	}
	// And a proxy restarted while the control plane is down serves its
	// cached table.
	stopProxy()
	proxy, _ = startProxy(t, f.cpURL, dir)
	waitFor(t, "cached table served", 10*time.Second, func() bool { c, _ := hit(t, proxy, "late.apps.test", "/"); return c == 200 })
}
