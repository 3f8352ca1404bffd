package proxy_test

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"net"
	"net/http"
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
	cmd = pinned(cmd)
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	traefikPID = cmd.Process.Pid
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

// tlsClientTo sends every request to addr, checking the certificate of
// name against roots.
func tlsClientTo(addr string, roots *x509.CertPool, name string) *http.Client {
	return &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{
		TLSClientConfig: &tls.Config{RootCAs: roots, ServerName: name},
		DialContext: func(ctx context.Context, network, _ string) (net.Conn, error) {
			return (&net.Dialer{}).DialContext(ctx, network, addr)
		},
	}}
}

// readmeTraefikConfig is the proxy host's traefik.yml from README.md.
func readmeTraefikConfig(t *testing.T) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(peers.Root(t), "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	const start = "```yaml\n# traefik.yml: a WiseHosting proxy host\n"
	s := string(b)
	i := strings.Index(s, start)
	if i < 0 {
		t.Fatal("README.md has no traefik.yml for proxy hosts")
	}
	s = s[i+len("```yaml\n"):]
	return s[:strings.Index(s, "```")]
}

// The README's Traefik static configuration works as pasted: only the
// addresses, the token, the ACME server (Pebble instead of Let's Encrypt)
// and the storage path change. Traefik gets its routers from the control
// plane, a certificate for the app's name, serves it over HTTPS and
// redirects plain HTTP.
func TestReadmeTraefikConfigWorksAsPasted(t *testing.T) {
	f := setup(t)
	site := backend(t, "site", nil)
	f.addApp(t, "site", port(site))
	pb := peers.StartPebble(t, "")
	dir := t.TempDir()
	web, websecure := cptest.FreeAddr(t), cptest.FreeAddr(t)
	cfg := readmeTraefikConfig(t)
	for _, r := range [][2]string{
		{`address: ":80"`, `address: "` + web + `"`},
		{`address: ":443"`, `address: "` + websecure + `"`},
		{"http://10.50.0.1:8080", f.cpURL},
		{"PROXY_TOKEN", cptest.ProxyToken},
		{"/var/lib/traefik/acme.json", filepath.Join(dir, "acme.json")},
		{"email: ops@example.com\n", "email: ops@example.com\n      caServer: " + pb.Directory + "\n"},
	} {
		if !strings.Contains(cfg, r[0]) {
			t.Fatalf("README's traefik.yml lacks %q", r[0])
		}
		cfg = strings.Replace(cfg, r[0], r[1], 1)
	}
	path := filepath.Join(dir, "traefik.yml")
	os.WriteFile(path, []byte(cfg), 0o600)
	cmd := exec.Command(peers.TraefikBin(t), "--configFile="+path)
	cmd.Env = append(os.Environ(), "LEGO_CA_CERTIFICATES="+pb.CAFile)
	runTraefik(t, cmd, dir)

	client := tlsClientTo(websecure, pb.Issued, "site.apps.test")
	var last string
	waitFor(t, "HTTPS with a certificate from the CA", 60*time.Second, func() bool {
		resp, err := client.Get("https://site.apps.test/x")
		if err != nil {
			last = err.Error()
			time.Sleep(200 * time.Millisecond)
			return false
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		last = resp.Status + " " + string(b)
		return resp.StatusCode == 200 && string(b) == "site /x"
	})
	noRedirect := &http.Client{Timeout: 5 * time.Second, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	req, _ := http.NewRequest("GET", "http://"+web+"/y", nil)
	req.Host = "site.apps.test"
	resp, err := noRedirect.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if loc := resp.Header.Get("Location"); resp.StatusCode/100 != 3 || !strings.HasPrefix(loc, "https://site.apps.test") {
		t.Fatalf("plain HTTP: %s Location %q (last HTTPS answer: %s)", resp.Status, loc, last)
	}
}

// One meaning for a path prefix: real Traefik (from the control plane's
// document) and the proxy mode (from its table) route the same paths to
// the same place, with and without strip_prefix. /api matches /api, /api/
// and /api/x; never /apix or /ap.
func TestPathPrefixMeansTheSameInTraefikAndProxyMode(t *testing.T) {
	f := setup(t)
	ctx := context.Background()
	root, api, strip := backend(t, "root", nil), backend(t, "api", nil), backend(t, "strip", nil)
	shop := f.addApp(t, "shop", port(root))
	f.db.Pool.Exec(ctx, "INSERT INTO routes (app_id, path_prefix, port) VALUES ($1, '/', $2), ($1, '/api', $3)", shop, port(root), port(api))
	f.db.Pool.Exec(ctx, "INSERT INTO routes (app_id, path_prefix, port, strip_prefix) VALUES ($1, '/v1/s', $2, true)", shop, port(strip))
	network.NotifyChanged(ctx, f.db.Pool)

	traefik := startTraefik(t, fmt.Sprintf("%s/v1/traefik/config?worker_id=%d", f.cpURL, f.wrk), "web", 300*time.Millisecond)
	proxy, _ := startProxy(t, f.cpURL, t.TempDir())
	for name, base := range map[string]string{"traefik": traefik, "proxy mode": proxy} {
		waitFor(t, name+" routing shop", 30*time.Second, func() bool { c, b := hit(t, base, "shop.apps.test", "/v1/s/x"); return c == 200 && b == "strip /x" })
	}
	for _, c := range []struct{ path, want string }{
		{"/api", "api /api"},
		{"/api/", "api /api/"},
		{"/api/x", "api /api/x"},
		{"/apix", "root /apix"},
		{"/ap", "root /ap"},
		{"/", "root /"},
		{"/v1/s", "strip /"},
		{"/v1/s/", "strip /"},
		{"/v1/s/x/y", "strip /x/y"},
		{"/v1/sx", "root /v1/sx"},
	} {
		tc, tb := hit(t, traefik, "shop.apps.test", c.path)
		pc, pb := hit(t, proxy, "shop.apps.test", c.path)
		if tc != 200 || tb != c.want || pc != 200 || pb != c.want {
			t.Errorf("%s: traefik %d %q, proxy mode %d %q, want %q", c.path, tc, tb, pc, pb, c.want)
		}
	}
}
