package main_test

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/wisehosting/wisehosting/internal/pgtest"
	"github.com/wisehosting/wisehosting/internal/store"
)

// binPath is the binary under test, built once by TestMain.
var binPath string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "wisehosting-bin")
	if err != nil {
		panic(err)
	}
	binPath = filepath.Join(dir, "wisehosting")
	build := exec.Command("go", "build", "-o", binPath, ".")
	build.Env = append(os.Environ(), "CGO_ENABLED=0") // static, as released (and as the container image needs)
	build.Stderr = os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "building the binary:", err)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// TestBinaryHealthAndSIGTERM builds the real binary, starts it on a fresh
// database, checks /health and the first-admin bootstrap, then sends
// SIGTERM and expects a clean exit with status 0.
func TestBinaryHealthAndSIGTERM(t *testing.T) {
	db := pgtest.NewEmpty(t, false) // the binary must migrate it itself
	dir := t.TempDir()
	bin := binPath

	port := freePort(t)
	caddyfile := fmt.Sprintf(`{
	admin off
	storage file_system %s
	wisehosting {
		database_url %s
		secret {env.WH_TEST_SECRET}
	}
}
http://127.0.0.1:%d {
	wisehosting_api
}
`, filepath.Join(dir, "data"), db.URL, port)
	cfgPath := filepath.Join(dir, "Caddyfile")
	os.WriteFile(cfgPath, []byte(caddyfile), 0o600)

	cmd := exec.Command(bin, "run", "--config", cfgPath, "--adapter", "caddyfile")
	cmd.Env = append(os.Environ(), "WH_TEST_SECRET=0123456789abcdef0123456789abcdef", "HOME="+dir, "XDG_DATA_HOME="+dir, "XDG_CONFIG_HOME="+dir)
	stderr, _ := cmd.StderrPipe()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill() })
	logs := make(chan string, 1)
	go func() {
		b, _ := io.ReadAll(bufio.NewReader(stderr))
		logs <- string(b)
	}()

	url := fmt.Sprintf("http://127.0.0.1:%d/health", port)
	var body map[string]any
	deadline := time.Now().Add(30 * time.Second)
	for {
		resp, err := http.Get(url)
		if err == nil {
			if resp.StatusCode != http.StatusOK {
				t.Fatalf("/health status %d", resp.StatusCode)
			}
			json.NewDecoder(resp.Body).Decode(&body)
			resp.Body.Close()
			break
		}
		if time.Now().After(deadline) {
			cmd.Process.Kill()
			t.Fatalf("binary never answered /health: %v\n%s", err, <-logs)
		}
		time.Sleep(100 * time.Millisecond)
	}
	if body["status"] != "ok" || body["database"] != "ok" {
		t.Fatalf("/health body %v", body)
	}

	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		out := <-logs
		if err != nil {
			t.Fatalf("exit after SIGTERM: %v\n%s", err, out)
		}
		if !strings.Contains(out, "One-time password:") {
			t.Errorf("first admin password not printed:\n%s", out)
		}
		if !strings.Contains(out, `"database migrated"`) {
			t.Errorf("migration not logged:\n%s", out)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("binary did not exit within 20s of SIGTERM")
	}

	// The binary migrated the database and created the admin account.
	var n int
	if err := db.Pool.QueryRow(t.Context(), "SELECT count(*) FROM users WHERE is_admin AND must_change_password").Scan(&n); err != nil || n != 1 {
		t.Fatalf("admin rows: %d %v", n, err)
	}
}

// A dirty schema must stop the binary at start with a message naming the
// version and the way out.
func TestBinaryRefusesDirtySchema(t *testing.T) {
	db := pgtest.New(t)
	if _, err := db.Pool.Exec(t.Context(), "UPDATE schema_migrations SET dirty = true"); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	bin := binPath
	cfg := fmt.Sprintf(`{"admin":{"disabled":true},"apps":{"wisehosting":{"database_url":%q,"secret":"0123456789abcdef0123456789abcdef"}}}`, db.URL)
	cfgPath := filepath.Join(dir, "config.json")
	os.WriteFile(cfgPath, []byte(cfg), 0o600)
	cmd := exec.Command(bin, "run", "--config", cfgPath)
	cmd.Env = append(os.Environ(), "HOME="+dir, "XDG_DATA_HOME="+dir, "XDG_CONFIG_HOME="+dir)
	done := make(chan struct{})
	var out []byte
	var err error
	go func() { out, err = cmd.CombinedOutput(); close(done) }()
	select {
	case <-done:
	case <-time.After(30 * time.Second):
		cmd.Process.Kill()
		t.Fatal("binary kept running on a dirty schema")
	}
	if err == nil {
		t.Fatalf("binary exited 0 on a dirty schema:\n%s", out)
	}
	for _, want := range []string{"dirty", fmt.Sprintf("version %d", store.LatestVersion()), "migrate force"} {
		if !strings.Contains(string(out), want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
}
