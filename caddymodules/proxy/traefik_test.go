package proxy_test

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"

	"github.com/wisehosting/wisehosting/caddymodules/cptest"
	"github.com/wisehosting/wisehosting/internal/peers"
)

// startTraefik runs Traefik with its HTTP provider polling endpoint and one
// plain-HTTP entry point named entryPoint on a loopback port.
func startTraefik(t testing.TB, endpoint, entryPoint string, poll time.Duration) string {
	t.Helper()
	addr := cptest.FreeAddr(t)
	dir := t.TempDir()
	cmd := exec.Command(peers.TraefikBin(t),
		"--entryPoints."+entryPoint+".address="+addr,
		"--providers.http.endpoint="+endpoint,
		"--providers.http.pollInterval="+poll.String(),
		"--providers.http.headers.Authorization=Bearer "+cptest.ProxyToken,
		"--global.checkNewVersion=false", "--global.sendAnonymousUsage=false",
		"--log.level=INFO")
	runTraefik(t, cmd, dir)
	return "http://" + addr
}

// runTraefik starts cmd with its output in dir/traefik.log, stops it when
// the test ends and shows the log of a failed test.
func runTraefik(t testing.TB, cmd *exec.Cmd, dir string) {
	t.Helper()
	logf, _ := os.Create(filepath.Join(dir, "traefik.log"))
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
		logf.Close()
		if t.Failed() {
			b, _ := os.ReadFile(filepath.Join(dir, "traefik.log"))
			t.Logf("traefik log:\n%s", b)
		}
	})
}

// Real Traefik polls the worker routing endpoint and routes by Host,
// including a weighted split, and keeps routing when the control plane
// dies.
func TestTraefikInterop(t *testing.T) {
	f := setup(t)
	ctx := context.Background()
	site := backend(t, "site", nil)
	var h1, h2 atomic.Int64
	v1, v2 := backend(t, "v1", &h1), backend(t, "v2", &h2)
	f.addApp(t, "site", port(site))
	shop := f.addApp(t, "shop", port(v1))
	f.db.Pool.Exec(ctx, "INSERT INTO routes (app_id, path_prefix, port, weight) VALUES ($1, '/', $2, 80), ($1, '/', $3, 20)", shop, port(v1), port(v2))

	traefik := startTraefik(t, fmt.Sprintf("%s/v1/traefik/config?worker_id=%d", f.cpURL, f.wrk), "web", 500*time.Millisecond)
	waitFor(t, "traefik routing site", 20*time.Second, func() bool {
		c, b := hit(t, traefik, "site.apps.test", "/a")
		return c == 200 && b == "site /a"
	})
	if c, _ := hit(t, traefik, "unknown.apps.test", "/"); c != 404 {
		t.Errorf("unknown host through traefik: %d", c)
	}
	for i := 0; i < 1000; i++ {
		hit(t, traefik, "shop.apps.test", "/")
	}
	share := float64(h1.Load()) / float64(h1.Load()+h2.Load())
	if share < 0.74 || share > 0.86 {
		t.Errorf("traefik split %.2f (v1 %d, v2 %d), want about 0.80", share, h1.Load(), h2.Load())
	}
	// Control plane gone: Traefik keeps its last configuration.
	caddy.Stop()
	time.Sleep(1500 * time.Millisecond) // several failed polls
	if c, b := hit(t, traefik, "site.apps.test", "/b"); c != 200 || b != "site /b" {
		t.Fatalf("after control plane loss: %d %q", c, b)
	}
}

// A worker zone written around the checks at the edge (e.g. a row from
// before them) that tries to break out of its rule, as a worker's hello
// once could: real Traefik, reading what the control plane renders, still
// routes each app on its own hosts only and answers 404 for the others.
func TestTraefikZoneCannotCaptureOtherHosts(t *testing.T) {
	f := setup(t)
	ctx := context.Background()
	if _, err := f.db.Pool.Exec(ctx, "UPDATE workers SET zone = $2 WHERE id = $1", f.wrk, "z`) || HostRegexp(`.+"); err != nil {
		t.Fatal(err)
	}
	site, shop := backend(t, "site", nil), backend(t, "shop", nil)
	f.addApp(t, "site", port(site))
	f.addApp(t, "shop", port(shop))
	traefik := startTraefik(t, fmt.Sprintf("%s/v1/traefik/config?worker_id=%d", f.cpURL, f.wrk), "web", 500*time.Millisecond)
	waitFor(t, "traefik routing site", 20*time.Second, func() bool {
		c, b := hit(t, traefik, "site.apps.test", "/")
		return c == 200 && b == "site /"
	})
	if c, b := hit(t, traefik, "shop.apps.test", "/x"); c != 200 || b != "shop /x" {
		t.Fatalf("shop: %d %q", c, b)
	}
	for _, host := range []string{"unknown.apps.test", "bank.example", "z"} {
		if c, b := hit(t, traefik, host, "/"); c != 404 {
			t.Errorf("%s captured: %d %q", host, c, b)
		}
	}
}
