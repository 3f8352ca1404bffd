package e2e

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"testing"
	"time"

	"github.com/wisehosting/wisehosting/internal/peers"
)

// signInOwner is what the first user does: reads the one-time password
// from the control plane's log (waiting for it to be written), signs in,
// replaces it, and returns the client and the owner's team.
func signInOwner(t testing.TB, cpLog, cpAddr string) (*apiClient, int64) {
	t.Helper()
	var m [][]byte
	waitFor(t, "the one-time password in the control plane's log", 30*time.Second, func() bool {
		raw, _ := os.ReadFile(cpLog)
		m = regexp.MustCompile(`"password":"([^"]+)"`).FindSubmatch(raw)
		return m != nil
	})
	api := newAPIClient(t, "http://"+cpAddr)
	api.login("owner@acme.test", string(m[1]))
	api.call("POST", "/api/password", map[string]any{"current_password": string(m[1]), "new_password": "a long new passphrase"}, 200)
	team := int64(api.call("GET", "/api/me", nil, 200)["teams"].([]any)[0].(map[string]any)["id"].(float64))
	return api, team
}

// startPlainProxy starts the proxy mode on plain HTTP at pxAddr, routing
// from the control plane at cpAddr: what users reach the apps through.
func startPlainProxy(t testing.TB, work, cpAddr, pxAddr string) *proc {
	t.Helper()
	pxDir := filepath.Join(work, "proxy")
	if err := os.MkdirAll(pxDir, 0o700); err != nil {
		t.Fatal(err)
	}
	pxFile := filepath.Join(pxDir, "proxy.Caddyfile")
	cfg := fmt.Sprintf(`{
	admin off
	auto_https off
	http_port %d
	storage file_system %s/data
	wisehosting_proxy {
		control_plane http://%s
		token %s
		cache_file %s/routes.json
		poll_interval 1s
	}
}
http://:%s {
	bind 127.0.0.1
	wisehosting_route {
		forward
	}
	reverse_proxy {
		dynamic wisehosting
	}
}
`, peers.FreePort(t), pxDir, cpAddr, proxyToken, pxDir, portOf(pxAddr))
	if err := os.WriteFile(pxFile, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	px := startProc(t, "proxy", work, []string{"HOME=" + pxDir, "XDG_DATA_HOME=" + pxDir, "XDG_CONFIG_HOME=" + pxDir},
		bins.cp, "run", "--config", pxFile, "--adapter", "caddyfile")
	waitListen(t, px, pxAddr)
	return px
}

// addWorker is what the operator does for each worker: `wisehosting
// worker add` against the control plane's config; it returns the worker's
// key, printed once.
func addWorker(t testing.TB, cpFile, name, zone, ip string) string {
	t.Helper()
	out, err := exec.Command(bins.cp, "worker", "add", name, "--zone", zone, "--wg-ip", ip, "--config", cpFile, "--adapter", "caddyfile").CombinedOutput()
	if err != nil {
		t.Fatalf("worker add: %v\n%s", err, out)
	}
	key := regexp.MustCompile(`whk_[A-Za-z0-9_-]+`).FindString(string(out))
	if key == "" {
		t.Fatalf("worker add printed no key:\n%s", out)
	}
	return key
}
