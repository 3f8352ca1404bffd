package proxy_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/wisehosting/wisehosting/caddymodules/cptest"
	"github.com/wisehosting/wisehosting/internal/infra"
	"github.com/wisehosting/wisehosting/internal/network"
	"github.com/wisehosting/wisehosting/internal/peers"
)

// traefikHost is a Traefik proxy host as `infra setup --step proxy`
// writes it, with what systemd gives its unit.
type traefikHost struct {
	out, creds, runtime, state string
	httpAddr, httpsAddr        string
	peb                        *peers.Pebble
}

func generateTraefikHost(t *testing.T, cpURL string, peb *peers.Pebble) *traefikHost {
	t.Helper()
	ctx := context.Background()
	h := &traefikHost{out: t.TempDir(), creds: t.TempDir(), runtime: t.TempDir(), state: t.TempDir(),
		httpAddr: cptest.FreeAddr(t), httpsAddr: cptest.FreeAddr(t), peb: peb}
	cfg, err := infra.Parse([]byte(fmt.Sprintf(`
control_plane_url: %s
proxy: {acme_email: ops@customer.test, acme_ca: %q, http_address: %q, https_address: %q}
hosts:
  - {name: px1, role: proxy, public_ip: 203.0.113.20}
`, cpURL, peb.Directory, h.httpAddr, h.httpsAddr)))
	if err != nil {
		t.Fatal(err)
	}
	s := &infra.Setup{Config: cfg, ProxyDir: h.out}
	acts, err := s.Plan(ctx, "proxy")
	if err != nil || len(acts) != 3 {
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
	yml, _ := os.ReadFile(filepath.Join(h.out, "px1.traefik.yml"))
	script, _ := os.ReadFile(filepath.Join(h.out, "px1.traefik-start.sh"))
	unit, _ := os.ReadFile(filepath.Join(h.out, "px1.traefik.service"))
	for _, f := range []string{string(yml), string(script), string(unit)} {
		if strings.Contains(f, cptest.ProxyToken) || strings.Contains(f, "database") {
			t.Fatalf("a proxy host file holds the token or names a database:\n%s", f)
		}
	}
	if !strings.Contains(string(unit), "LoadCredential=proxy_token:") || !strings.Contains(string(yml), "watch: true") ||
		!strings.Contains(string(script), "traefik-routes --control-plane '"+cpURL+"'") {
		t.Fatalf("traefik.yml:\n%s\nstart script:\n%s\nunit:\n%s", yml, script, unit)
	}
	os.WriteFile(filepath.Join(h.creds, "proxy_token"), []byte(cptest.ProxyToken), 0o600)
	return h
}

// start runs the start script as the unit does; stop ends Traefik and the
// route keeper with it (the unit's control group).
func (h *traefikHost) start(t *testing.T) (stop func()) {
	t.Helper()
	cmd := exec.Command("sh", filepath.Join(h.out, "px1.traefik-start.sh"))
	cmd.Env = append(os.Environ(), "CREDENTIALS_DIRECTORY="+h.creds, "RUNTIME_DIRECTORY="+h.runtime, "STATE_DIRECTORY="+h.state,
		"TRAEFIK_CONFIG="+filepath.Join(h.out, "px1.traefik.yml"), "TRAEFIK="+peers.TraefikBin(t), "WISEHOSTING="+binPath,
		"LEGO_CA_CERTIFICATES="+h.peb.CAFile) // Pebble's own HTTPS certificate
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	dir := t.TempDir()
	runTraefik(t, cmd, dir)
	stopped := false
	stop = func() {
		if !stopped {
			stopped = true
			syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		}
	}
	t.Cleanup(stop)
	return stop
}

// get fetches https://host/hello through Traefik: the body and the
// serial of the certificate served.
func (h *traefikHost) get(host string) (string, string, error) {
	resp, err := tlsClientTo(h.httpsAddr, h.peb.Issued, host).Get("https://" + host + "/hello")
	if err != nil {
		return "", "", err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 {
		return "", "", fmt.Errorf("status %d", resp.StatusCode)
	}
	return string(b), resp.TLS.PeerCertificates[0].SerialNumber.String(), nil
}

// The Traefik proxy host that `infra setup --step proxy` writes, run as
// its unit runs it (the start script with systemd's credential, runtime
// and state directories): the route keeper polls the control plane with
// the proxy token, real Traefik routes a custom domain from the kept file
// with a certificate from an ACME server (Pebble); plain HTTP redirects to
// HTTPS. A second setup run changes nothing.
func TestTraefikProxyHostFromSetup(t *testing.T) {
	f := setup(t)
	ctx := context.Background()
	site := backend(t, "site", nil)
	app := f.addApp(t, "site", port(site))
	f.db.Pool.Exec(ctx, "INSERT INTO domains (app_id, hostname, token, verified_at) VALUES ($1, 'www.customer.test', 't', now())", app)
	network.NotifyChanged(ctx, f.db.Pool)
	peb := peers.StartPebble(t, "")

	h := generateTraefikHost(t, f.cpURL, peb)
	h.start(t)
	var body string
	waitFor(t, "a certificate from Pebble and the route", 60*time.Second, func() bool {
		var err error
		body, _, err = h.get("www.customer.test")
		return err == nil
	})
	if body != "site /hello" {
		t.Fatalf("routed to %q", body)
	}
	if st, err := os.Stat(filepath.Join(h.state, "acme.json")); err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("acme.json %v %v", st, err)
	}
	if st, err := os.Stat(filepath.Join(h.state, "dynamic/wisehosting.yml")); err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("kept routes %v %v", st, err)
	}
	if st, err := os.Stat(filepath.Join(h.runtime, "traefik.yml")); err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("runtime traefik.yml %v %v", st, err)
	}

	noFollow := &http.Client{Timeout: 5 * time.Second, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	req, _ := http.NewRequest("GET", "http://"+h.httpAddr+"/x", nil)
	req.Host = "www.customer.test"
	resp, err := noFollow.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if loc := resp.Header.Get("Location"); resp.StatusCode/100 != 3 || !strings.HasPrefix(loc, "https://www.customer.test") {
		t.Fatalf("plain HTTP: %d %q", resp.StatusCode, loc)
	}
}
