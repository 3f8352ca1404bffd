// Tests of the shell scripts: shellcheck-clean, and the mesh setup is
// idempotent and applies itself to a live interface in a network namespace.
package scripts_test

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

func TestShellcheck(t *testing.T) {
	files, _ := filepath.Glob("*.sh")
	for i, f := range files {
		files[i] = "scripts/" + f
	}
	files = append(files, "xcaddy/build.sh", ".ci/run")
	// From the repository root, as the scripts source each other.
	cmd := exec.Command("shellcheck", append([]string{"-x"}, files...)...)
	cmd.Dir = ".."
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("shellcheck (apt-get install shellcheck): %v\n%s", err, out)
	}
}

func run(t *testing.T, args ...string) (string, error) {
	t.Helper()
	out, err := exec.Command("bash", append([]string{"./wireguard-setup.sh"}, args...)...).CombinedOutput()
	return string(out), err
}

func TestWireguardSetupIdempotent(t *testing.T) {
	root := t.TempDir()
	peers := filepath.Join(root, "peers")
	os.WriteFile(peers, []byte(`# name pubkey endpoint mesh-ip
cp1 xTIBA5rboUvnH4htodjb6e697QjLERt1NAB4mZqp8Dg= 203.0.113.10:51820 10.50.0.1
w1  HIgo9xNzJMWLKASShiTqIybxZ0U3wGLiUeJ1PKf8ykw= 203.0.113.11:51820 10.50.0.11
`), 0o600)
	out, err := run(t, "worker", "--mesh-ip", "10.50.0.11", "--peers", peers, "--root", root)
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	conf, err := os.ReadFile(filepath.Join(root, "etc/wireguard/wg0.conf"))
	if err != nil {
		t.Fatal(err)
	}
	c := string(conf)
	for _, want := range []string{"Address = 10.50.0.11/24", "ListenPort = 51821", "Endpoint = 203.0.113.10:51820", "AllowedIPs = 10.50.0.1/32"} {
		if !strings.Contains(c, want) {
			t.Errorf("config lacks %q:\n%s", want, c)
		}
	}
	if strings.Contains(c, "10.50.0.11/32") {
		t.Error("the host is its own peer")
	}
	key1, _ := os.ReadFile(filepath.Join(root, "etc/wireguard/wg0.key"))
	if st, _ := os.Stat(filepath.Join(root, "etc/wireguard/wg0.key")); st == nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("private key mode %v", st)
	}
	// Credentials: the default credstore directory (0700), and the former
	// path names the same place.
	if st, err := os.Stat(filepath.Join(root, "etc/credstore/wisehosting")); err != nil || !st.IsDir() || st.Mode().Perm() != 0o700 {
		t.Fatalf("credstore: %v %v", st, err)
	}
	if l, err := os.Readlink(filepath.Join(root, "etc/wisehosting/credentials")); err != nil || l != "/etc/credstore/wisehosting" {
		t.Fatalf("former credentials path: %q %v", l, err)
	}
	if _, err := os.Stat(filepath.Join(root, "etc/systemd/system/wisehosting-agent.service")); err != nil {
		t.Fatal("worker unit not installed")
	}

	out, err = run(t, "worker", "--mesh-ip", "10.50.0.11", "--peers", peers, "--root", root)
	if err != nil || !strings.Contains(out, "unchanged") || strings.Contains(out, "installed") {
		t.Fatalf("second run changed something: %v\n%s", err, out)
	}
	key2, _ := os.ReadFile(filepath.Join(root, "etc/wireguard/wg0.key"))
	if string(key1) != string(key2) || len(key1) == 0 {
		t.Fatal("private key regenerated")
	}

	for _, bad := range [][]string{
		{"database", "--mesh-ip", "10.50.0.2"},
		{"proxy", "--mesh-ip", "10.50.0.300"},
		{"proxy", "--mesh-ip", "10.50.0.2; rm -rf /"},
		{"proxy", "--mesh-ip", "10.50.0.2", "--port", "99999"},
		{"proxy", "--mesh-ip", "10.50.0.2", "--interface", "wg0;reboot"},
		{"proxy", "--mesh-ip", "10.50.0.2", "--interface", "a-name-longer-than-15"},
	} {
		if out, err := run(t, append(bad, "--root", t.TempDir())...); err == nil {
			t.Errorf("%v accepted:\n%s", bad, out)
		}
	}
}

// TestWireguardSetupKeepsFormerCredentials: a host whose secrets are in the
// former /etc/wisehosting/credentials keeps them; the default credstore
// path the units load from links there.
func TestWireguardSetupKeepsFormerCredentials(t *testing.T) {
	root := t.TempDir()
	old := filepath.Join(root, "etc/wisehosting/credentials")
	if err := os.MkdirAll(old, 0o700); err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(old, "worker_api_key"), []byte("k"), 0o600)
	peers := filepath.Join(root, "peers")
	os.WriteFile(peers, []byte("cp1 xTIBA5rboUvnH4htodjb6e697QjLERt1NAB4mZqp8Dg= 203.0.113.10:51820 10.50.0.1\n"), 0o600)
	if out, err := run(t, "worker", "--mesh-ip", "10.50.0.11", "--peers", peers, "--root", root); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	if l, err := os.Readlink(filepath.Join(root, "etc/credstore/wisehosting")); err != nil || l != "/etc/wisehosting/credentials" {
		t.Fatalf("credstore link: %q %v", l, err)
	}
	if st, err := os.Lstat(old); err != nil || !st.IsDir() {
		t.Fatalf("former directory: %v %v", st, err)
	}
}

// TestUnits: every unit restarts after 5 s, waits for and wants the mesh
// interface, and loads its secrets from the default credstore.
func TestUnits(t *testing.T) {
	files, _ := filepath.Glob("systemd/*.service")
	if len(files) != 3 {
		t.Fatalf("units %v", files)
	}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		u := string(b)
		for _, want := range []string{"RestartSec=5s", "LoadCredential="} {
			if !strings.Contains(u, want) {
				t.Errorf("%s lacks %s", f, want)
			}
		}
		for _, l := range strings.Split(u, "\n") {
			if (strings.HasPrefix(l, "After=") || strings.HasPrefix(l, "Wants=")) && !strings.Contains(l, "wg-quick@wg0.service") {
				t.Errorf("%s: %s does not name the WireGuard unit", f, l)
			}
			if strings.HasPrefix(l, "LoadCredential=") && !strings.Contains(l, ":/etc/credstore/wisehosting/") {
				t.Errorf("%s: %s is not in the default credstore", f, l)
			}
		}
	}
}
