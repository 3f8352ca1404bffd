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
	"testing"
	"time"

	"github.com/wisehosting/wisehosting/caddymodules/cptest"
	"github.com/wisehosting/wisehosting/internal/infra"
	"github.com/wisehosting/wisehosting/internal/network"
	"github.com/wisehosting/wisehosting/internal/peers"
)

// The Traefik proxy host that `infra setup --step proxy` writes, run as
// its unit runs it (the start script with systemd's credential, runtime
// and state directories): real Traefik polls the control plane with the
// proxy token, gets a certificate for a custom domain from an ACME server
// (Pebble) and routes it to the app; plain HTTP redirects to HTTPS. A
// second setup run changes nothing.
func TestTraefikProxyHostFromSetup(t *testing.T) {
	f := setup(t)
	ctx := context.Background()
	site := backend(t, "site", nil)
	app := f.addApp(t, "site", port(site))
	f.db.Pool.Exec(ctx, "INSERT INTO domains (app_id, hostname, token, verified_at) VALUES ($1, 'www.customer.test', 't', now())", app)
	network.NotifyChanged(ctx, f.db.Pool)
	peb := peers.StartPebble(t, "")

	httpAddr, httpsAddr := cptest.FreeAddr(t), cptest.FreeAddr(t)
	cfg, err := infra.Parse([]byte(fmt.Sprintf(`
control_plane_url: %s
proxy: {acme_email: ops@customer.test, acme_ca: %q, http_address: %q, https_address: %q}
hosts:
  - {name: px1, role: proxy, public_ip: 203.0.113.20}
`, f.cpURL, peb.Directory, httpAddr, httpsAddr)))
	if err != nil {
		t.Fatal(err)
	}
	out := t.TempDir()
	s := &infra.Setup{Config: cfg, ProxyDir: out}
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
	yml, _ := os.ReadFile(filepath.Join(out, "px1.traefik.yml"))
	unit, _ := os.ReadFile(filepath.Join(out, "px1.traefik.service"))
	if strings.Contains(string(yml), cptest.ProxyToken) || !strings.Contains(string(unit), "LoadCredential=proxy_token:") ||
		!strings.Contains(string(yml), "pollInterval: 5s") || !strings.Contains(string(yml), f.cpURL+"/v1/traefik/proxy-config") {
		t.Fatalf("traefik.yml:\n%s\nunit:\n%s", yml, unit)
	}

	// What systemd provides to the unit.
	creds, runtime, state := t.TempDir(), t.TempDir(), t.TempDir()
	os.WriteFile(filepath.Join(creds, "proxy_token"), []byte(cptest.ProxyToken), 0o600)
	cmd := exec.Command("sh", filepath.Join(out, "px1.traefik-start.sh"))
	cmd.Env = append(os.Environ(), "CREDENTIALS_DIRECTORY="+creds, "RUNTIME_DIRECTORY="+runtime, "STATE_DIRECTORY="+state,
		"TRAEFIK_CONFIG="+filepath.Join(out, "px1.traefik.yml"), "TRAEFIK="+peers.TraefikBin(t),
		"LEGO_CA_CERTIFICATES="+peb.CAFile) // Pebble's own HTTPS certificate
	runTraefik(t, cmd, out)

	client := tlsClientTo(httpsAddr, peb.Issued, "www.customer.test")
	var body string
	waitFor(t, "a certificate from Pebble and the route", 60*time.Second, func() bool {
		resp, err := client.Get("https://www.customer.test/hello")
		if err != nil {
			return false
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		body = string(b)
		return resp.StatusCode == 200
	})
	if body != "site /hello" {
		t.Fatalf("routed to %q", body)
	}
	if st, err := os.Stat(filepath.Join(state, "acme.json")); err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("acme.json %v %v", st, err)
	}
	if st, err := os.Stat(filepath.Join(runtime, "traefik.yml")); err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("runtime traefik.yml %v %v", st, err)
	}

	noFollow := &http.Client{Timeout: 5 * time.Second, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	req, _ := http.NewRequest("GET", "http://"+httpAddr+"/x", nil)
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
