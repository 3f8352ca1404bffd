// Package peers starts the real third-party programs the interop and
// end-to-end tests talk to: Pebble (the ACME test CA) and Traefik. Both are
// installed or built once into caches outside the repository by
// scripts/ci-pebble.sh and scripts/ci-traefik.sh; WH_PEBBLE_BIN and
// WH_TRAEFIK_BIN point at existing binaries instead.
package peers

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// PebbleVersion is the Pebble release the tests use.
const PebbleVersion = "v2.10.1"

// Root returns the repository root (the directory holding go.mod).
func Root(t testing.TB) string {
	t.Helper()
	dir, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			t.Fatal("go.mod not found above the test's directory")
		}
		dir = parent
	}
}

func script(t testing.TB, env, name string) string {
	t.Helper()
	if b := os.Getenv(env); b != "" {
		return b
	}
	out, err := exec.Command("bash", filepath.Join(Root(t), "scripts", name)).Output()
	if err != nil {
		t.Fatalf("scripts/%s: %v", name, err)
	}
	return strings.TrimSpace(string(out))
}

// TraefikBin finds (or builds, once) the real Traefik.
func TraefikBin(t testing.TB) string { return script(t, "WH_TRAEFIK_BIN", "ci-traefik.sh") }

// Pebble is a running ACME test CA.
type Pebble struct {
	// Directory is the ACME directory URL.
	Directory string
	// CAFile is the root of Pebble's own HTTPS certificate (for ACME
	// clients: trusted_roots / ca_root).
	CAFile string
	// Issued holds the root of the certificates Pebble issues.
	Issued *x509.CertPool
	// HTTPPort and TLSPort are the loopback ports Pebble's validation
	// authority dials for HTTP-01 and TLS-ALPN-01 challenges: ephemeral,
	// so no test needs :80 or :443 (or any fixed port) free.
	HTTPPort, TLSPort int
}

// FreePort returns a free loopback port: for servers a test configures
// (e.g. Caddy's http_port, which is 80 unless set).
func FreePort(t testing.TB) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// FreeAddr returns a loopback address with a free port.
func FreeAddr(t testing.TB) string {
	t.Helper()
	return net.JoinHostPort("127.0.0.1", strconv.Itoa(FreePort(t)))
}

// StartPebble runs Pebble on loopback until the test ends. With dnsServer
// empty every challenge is valid; otherwise Pebble resolves DNS-01
// records there.
func StartPebble(t testing.TB, dnsServer string) *Pebble {
	t.Helper()
	bin := script(t, "WH_PEBBLE_BIN", "ci-pebble.sh")
	modcache, _ := exec.Command("go", "env", "GOMODCACHE").Output()
	certs := filepath.Join(strings.TrimSpace(string(modcache)), "github.com/letsencrypt/pebble/v2@"+PebbleVersion, "test/certs")
	addr, mgmt := FreeAddr(t), FreeAddr(t)
	httpPort, tlsPort := FreePort(t), FreePort(t)
	cfg := map[string]any{"pebble": map[string]any{
		"listenAddress": addr, "managementListenAddress": mgmt,
		"certificate": filepath.Join(certs, "localhost/cert.pem"), "privateKey": filepath.Join(certs, "localhost/key.pem"),
		"httpPort": httpPort, "tlsPort": tlsPort, "ocspResponderURL": "", "externalAccountBindingRequired": false,
	}}
	b, _ := json.Marshal(cfg)
	dir := t.TempDir()
	cfgPath := filepath.Join(dir, "pebble.json")
	os.WriteFile(cfgPath, b, 0o600)
	env := []string{"PEBBLE_VA_NOSLEEP=1", "PEBBLE_WFE_NONCEREJECT=0"}
	if dnsServer == "" {
		dnsServer = "127.0.0.1:1"
		env = append(env, "PEBBLE_VA_ALWAYS_VALID=1")
	}
	cmd := exec.Command(bin, "-config", cfgPath, "-dnsserver", dnsServer)
	cmd.Env = append(os.Environ(), env...)
	logf, _ := os.Create(filepath.Join(dir, "pebble.log"))
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait(); logf.Close() })
	p := &Pebble{Directory: "https://" + addr + "/dir", CAFile: filepath.Join(certs, "pebble.minica.pem"), HTTPPort: httpPort, TLSPort: tlsPort}
	minica := x509.NewCertPool()
	pem, _ := os.ReadFile(p.CAFile)
	minica.AppendCertsFromPEM(pem)
	client := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: minica}}}
	deadline := time.Now().Add(15 * time.Second)
	for {
		resp, err := client.Get("https://" + mgmt + "/roots/0")
		if err == nil {
			root, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode == 200 {
				p.Issued = x509.NewCertPool()
				p.Issued.AppendCertsFromPEM(root)
				return p
			}
		}
		if time.Now().After(deadline) {
			b, _ := os.ReadFile(filepath.Join(dir, "pebble.log"))
			t.Fatalf("pebble did not start: %v\n%s", err, b)
		}
		time.Sleep(100 * time.Millisecond)
	}
}
