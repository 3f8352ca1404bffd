package proxy_test

import (
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/wisehosting/wisehosting/caddymodules/cptest"
	"github.com/wisehosting/wisehosting/internal/infra"
	"github.com/wisehosting/wisehosting/internal/network"
	"github.com/wisehosting/wisehosting/internal/peers"
)

// caddyHost is a proxy host of kind caddy as `infra setup --step proxy`
// writes it, with what systemd gives its unit: the proxy_token credential
// (and no other), runtime and state directories.
type caddyHost struct {
	out, creds, runtime, state string
	httpsAddr                  string
}

func generateCaddyHost(t *testing.T, cpURL string, peb *peers.Pebble) *caddyHost {
	t.Helper()
	ctx := context.Background()
	h := &caddyHost{out: t.TempDir(), creds: t.TempDir(), runtime: t.TempDir(), state: t.TempDir(), httpsAddr: cptest.FreeAddr(t)}
	httpAddr := cptest.FreeAddr(t)
	cfg, err := infra.Parse([]byte(fmt.Sprintf(`
control_plane_url: %s
proxy: {kind: caddy, acme_email: ops@customer.test, acme_ca: %q, acme_ca_root: %q, http_address: %q, https_address: %q}
hosts:
  - {name: px1, role: proxy, public_ip: 203.0.113.20}
`, cpURL, peb.Directory, peb.CAFile, httpAddr, h.httpsAddr)))
	if err != nil {
		t.Fatal(err)
	}
	s := &infra.Setup{Config: cfg, ProxyDir: h.out}
	acts, err := s.Plan(ctx, "proxy")
	if err != nil || len(acts) != 2 {
		t.Fatalf("plan %+v %v", acts, err)
	}
	if err := infra.Apply(ctx, acts); err != nil {
		t.Fatal(err)
	}
	acts, _ = s.Plan(ctx, "proxy")
	for _, a := range acts {
		if !strings.Contains(a.Description, "up to date") {
			t.Fatalf("second run would change: %s", a.Description)
		}
	}
	caddyfile, _ := os.ReadFile(filepath.Join(h.out, "px1.Caddyfile"))
	unit, _ := os.ReadFile(filepath.Join(h.out, "px1.wisehosting-proxy.service"))
	for _, f := range []string{string(caddyfile), string(unit)} {
		if strings.Contains(f, "database") || strings.Contains(f, cptest.ProxyToken) {
			t.Fatalf("a proxy host file names a database or holds the token:\n%s", f)
		}
	}
	if !strings.Contains(string(unit), "LoadCredential=proxy_token:") || !strings.Contains(string(caddyfile), "storage wisehosting_cp") {
		t.Fatalf("Caddyfile:\n%s\nunit:\n%s", caddyfile, unit)
	}
	os.WriteFile(filepath.Join(h.creds, "proxy_token"), []byte(cptest.ProxyToken+"\n"), 0o600)
	return h
}

// start runs the unit's ExecStart (its binary and Caddyfile path swapped
// for the test's) and waits for the HTTPS port.
func (h *caddyHost) start(t *testing.T) func() {
	t.Helper()
	unit, _ := os.ReadFile(filepath.Join(h.out, "px1.wisehosting-proxy.service"))
	var argv []string
	for _, l := range strings.Split(string(unit), "\n") {
		if v, ok := strings.CutPrefix(l, "ExecStart="); ok {
			argv = strings.Fields(strings.ReplaceAll(v, "/etc/wisehosting/proxy.Caddyfile", filepath.Join(h.out, "px1.Caddyfile")))
		}
	}
	if len(argv) < 2 || argv[0] != "/usr/local/bin/wisehosting" {
		t.Fatalf("unit ExecStart %v", argv)
	}
	cmd := exec.Command(binPath, argv[1:]...)
	cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + h.state, "CREDENTIALS_DIRECTORY=" + h.creds,
		"RUNTIME_DIRECTORY=" + h.runtime, "STATE_DIRECTORY=" + h.state, "XDG_DATA_HOME=" + h.state, "XDG_CONFIG_HOME=" + h.state}
	logf, _ := os.OpenFile(filepath.Join(h.out, "proxy.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	stopped := false
	stop := func() {
		if !stopped {
			stopped = true
			cmd.Process.Kill()
			cmd.Wait()
			logf.Close()
		}
	}
	t.Cleanup(func() {
		stop()
		if t.Failed() {
			b, _ := os.ReadFile(filepath.Join(h.out, "proxy.log"))
			t.Logf("proxy log:\n%s", b)
		}
	})
	waitFor(t, "the proxy's HTTPS port", 20*time.Second, func() bool {
		c, err := net.Dial("tcp", h.httpsAddr)
		if err == nil {
			c.Close()
		}
		return err == nil
	})
	if _, err := os.Stat(filepath.Join(h.runtime, "admin.sock")); err != nil {
		t.Errorf("admin socket not in the runtime directory: %v", err)
	}
	return stop
}

// get fetches https://host/hello through the proxy and returns the body
// and the serial of the certificate served.
func (h *caddyHost) get(peb *peers.Pebble, host string) (string, string, error) {
	c := tlsClientTo(h.httpsAddr, peb.Issued, host)
	resp, err := c.Get("https://" + host + "/hello")
	if err != nil {
		return "", "", err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return string(b), resp.TLS.PeerCertificates[0].SerialNumber.String(), nil
}

// The proxy-mode host that `infra setup --step proxy` writes for kind
// caddy starts as its unit runs it, with the proxy token as its only
// credential: it routes a custom domain, gets its certificate from an ACME
// server (Pebble) into the control plane's shared storage through the
// control plane, and keeps a local copy.
func TestCaddyProxyHostFromSetup(t *testing.T) {
	f := setup(t)
	ctx := context.Background()
	site := backend(t, "site", nil)
	app := f.addApp(t, "site", port(site))
	f.db.Pool.Exec(ctx, "INSERT INTO domains (app_id, hostname, token, verified_at) VALUES ($1, 'www.customer.test', 't', now())", app)
	network.NotifyChanged(ctx, f.db.Pool)
	peb := peers.StartPebble(t, "")

	h := generateCaddyHost(t, f.cpURL, peb)
	h.start(t)
	var body, serial string
	waitFor(t, "a certificate from Pebble and the route", 60*time.Second, func() bool {
		var err error
		body, serial, err = h.get(peb, "www.customer.test")
		return err == nil
	})
	if body != "site /hello" {
		t.Fatalf("routed to %q", body)
	}
	if got := storedSerial(t, f.db, "www.customer.test"); got != serial {
		t.Fatalf("served serial %s, shared storage has %q", serial, got)
	}
	copies, _ := filepath.Glob(filepath.Join(h.state, "caddy/wisehosting-certs/certificates/*/www.customer.test/www.customer.test.crt"))
	if len(copies) != 1 {
		t.Fatalf("no local copy of the certificate (%v)", copies)
	}
	// A name outside the table gets no certificate.
	if _, _, err := h.get(peb, "stranger.test"); err == nil {
		t.Fatal("a stranger's name got a certificate")
	}
}
