package main_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/wisehosting/wisehosting/internal/pgtest"
)

const (
	loadSecret        = "0123456789abcdef0123456789abcdef"
	loadProxyToken    = "load-proxy-token-0123456789"
	loadInternalToken = "load-internal-token-0123456789"
)

// exampleCaddyfile is Caddyfile.example as an operator would run it on
// this machine: its sites on loopback ports, every background app on short
// intervals, max_conns set. Each rewrite must find its anchor, so a change
// of the example that the test no longer exercises fails here.
func exampleCaddyfile(t *testing.T, dir string, maxConns int, site, mesh, internal string, extra ...[2]string) string {
	t.Helper()
	b, err := os.ReadFile("../../Caddyfile.example")
	if err != nil {
		t.Fatal(err)
	}
	s := string(b)
	for _, r := range append([][2]string{
		{"admin unix//run/wisehosting/admin.sock", "admin unix/" + filepath.Join(dir, "admin.sock")},
		{"cp.example.com {", site + " {"},
		{"http://10.50.0.1:8080 {", "http://" + mesh + " {"},
		{"listen 127.0.0.1:2021", "listen " + internal},
		{"retention 7d\n", "retention 7d\n\t\tsweep_interval 1s\n"},
		{"retention 90d\n", "retention 90d\n\t\tsample_interval 1s\n\t\tprune_interval 1s\n"},
		{"interval 30s\n", "interval 1s\n"},
		{"heartbeat_timeout 1m\n", "heartbeat_timeout 1m\n\t\tpoll_interval 200ms\n\t\trecover_interval 500ms\n\t\tresend_interval 500ms\n"},
		{"warn 14d\n", "warn 14d\n\t\tinterval 1s\n"},
		{"\t\tadmin_email ops@example.com\n", "\t\tadmin_email ops@example.com\n\t\tmax_conns " + strconv.Itoa(maxConns) + "\n"},
	}, extra...) {
		if !strings.Contains(s, r[0]) {
			t.Fatalf("Caddyfile.example no longer contains %q", r[0])
		}
		s = strings.Replace(s, r[0], r[1], 1)
	}
	return s
}

// plainHTTPSite drops the TLS settings of the control plane's site, for a
// test that serves it over plain HTTP (Caddy refuses TLS settings there).
var plainHTTPSite = [2]string{"\ttls {\n\t\tprotocols tls1.3\n\t}\n", ""}

// startExample runs the binary on the example Caddyfile with GOMAXPROCS=2
// and the database URL as a systemd credential, like a production unit.
// site is the address (with scheme) of the control plane's own site.
func startExample(t *testing.T, dbURL string, maxConns int, site, mesh, internal string, extra ...[2]string) (*exec.Cmd, *lockedBuffer, chan error) {
	t.Helper()
	dir := t.TempDir()
	creds := filepath.Join(dir, "credentials")
	os.Mkdir(creds, 0o700)
	os.WriteFile(filepath.Join(creds, "database_url"), []byte(dbURL), 0o600)
	cfg := filepath.Join(dir, "Caddyfile")
	os.WriteFile(cfg, []byte(exampleCaddyfile(t, dir, maxConns, site, mesh, internal, extra...)), 0o600)
	cmd := exec.Command(binPath, "run", "--config", cfg, "--adapter", "caddyfile")
	cmd.Env = append(os.Environ(), "GOMAXPROCS=2", "HOME="+dir, "XDG_DATA_HOME="+dir, "XDG_CONFIG_HOME="+dir,
		"CREDENTIALS_DIRECTORY="+creds, "WISEHOSTING_SECRET="+loadSecret,
		"WISEHOSTING_PROXY_TOKEN="+loadProxyToken, "WISEHOSTING_INTERNAL_TOKEN="+loadInternalToken)
	out := new(lockedBuffer)
	cmd.Stdout, cmd.Stderr = out, out
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	t.Cleanup(func() {
		cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-done:
		case <-time.After(15 * time.Second):
			syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		}
		if t.Failed() {
			b := out.Bytes()
			if len(b) > 8000 {
				b = b[len(b)-8000:]
			}
			t.Logf("--- control plane log (tail) ---\n%s", b)
		}
	})
	return cmd, out, done
}

type lockedBuffer struct {
	mu sync.Mutex
	bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.Buffer.Write(p)
}

func (b *lockedBuffer) Bytes() []byte {
	b.mu.Lock()
	defer b.mu.Unlock()
	return bytes.Clone(b.Buffer.Bytes())
}

func (b *lockedBuffer) String() string { return string(b.Bytes()) }

// The production control plane (the example Caddyfile: two sites with the
// API, every background app) on 2 CPUs and the smallest pool it accepts
// serves steady API load without a request outliving its timeout and with
// /health at 200 throughout; one LISTEN connection serves the process.
func TestExampleCaddyfileUnderLoad(t *testing.T) {
	db := pgtest.NewEmpty(t, false)
	site, mesh, internal := fmt.Sprintf("127.0.0.1:%d", freePort(t)), fmt.Sprintf("127.0.0.1:%d", freePort(t)), fmt.Sprintf("127.0.0.1:%d", freePort(t))

	// A pool of one is refused at start, naming the size needed.
	_, out, done := startExample(t, db.URL, 1, "http://"+site, mesh, internal, plainHTTPSite)
	select {
	case err := <-done:
		if err == nil {
			t.Fatal("started with max_conns 1")
		}
	case <-time.After(60 * time.Second):
		t.Fatal("max_conns 1: the control plane neither started nor refused to")
	}
	m := regexp.MustCompile(`set max_conns to at least (\d+)`).FindStringSubmatch(out.String())
	if m == nil {
		t.Fatalf("refusal does not name the pool size needed:\n%s", out.String())
	}
	need, _ := strconv.Atoi(m[1])
	if need < 3 || need > 16 {
		t.Fatalf("needs %d connections: outside 3..16 (the default is 16)", need)
	}

	// The smallest accepted pool.
	_, out, done = startExample(t, db.URL, need, "http://"+site, mesh, internal, plainHTTPSite)
	base, meshBase := "http://"+site, "http://"+mesh
	waitHealthy(t, base, done)

	const timeout = 5 * time.Second
	client := &http.Client{Timeout: timeout}
	sess, team := firstAdmin(t, client, base, out)
	var app struct {
		ID int64 `json:"id"`
	}
	json.Unmarshal(sess.do(t, "POST", fmt.Sprintf("/api/teams/%d/apps", team), map[string]any{"name": "Load", "slug": "load", "port": 8080}, 201), &app)

	// Load: dashboard reads and writes (transactions with audit rows),
	// proxy documents from both sites, health; every request bounded by
	// the client timeout.
	dur := 60 * time.Second
	if testing.Short() {
		dur = 10 * time.Second
	}
	ctx, cancel := context.WithTimeout(t.Context(), dur)
	defer cancel()
	var (
		reqs, slowest atomic.Int64
		failMu        sync.Mutex
		failures      []string
	)
	fail := func(s string) {
		failMu.Lock()
		if len(failures) < 20 {
			failures = append(failures, s)
		}
		failMu.Unlock()
	}
	type call struct {
		method, url, auth string
		body              any
		session           bool
	}
	calls := []call{
		{"GET", base + "/health", "", nil, false},
		{"GET", base + "/v1/traefik/proxy-config", loadProxyToken, nil, false},
		{"GET", meshBase + "/v1/proxy/routes", loadProxyToken, nil, false},
		{"GET", meshBase + "/v1/traefik/config?worker_id=1", loadProxyToken, nil, false},
		{"GET", base + "/api/me", "", nil, true},
		{"GET", fmt.Sprintf("%s/api/teams/%d/apps", base, team), "", nil, true},
		{"GET", fmt.Sprintf("%s/api/apps/%d", base, app.ID), "", nil, true},
		{"PUT", fmt.Sprintf("%s/api/apps/%d/env/LOAD", base, app.ID), "", map[string]any{"value": "x"}, true},
		{"GET", fmt.Sprintf("%s/api/teams/%d/audit", base, team), "", nil, true},
	}
	var wg sync.WaitGroup
	for w := range 6 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := w; ctx.Err() == nil; i++ {
				c := calls[i%len(calls)]
				var body io.Reader
				if c.body != nil {
					b, _ := json.Marshal(c.body)
					body = bytes.NewReader(b)
				}
				req, _ := http.NewRequest(c.method, c.url, body)
				req.Header.Set("Content-Type", "application/json")
				if c.auth != "" {
					req.Header.Set("Authorization", "Bearer "+c.auth)
				}
				if c.session {
					sess.sign(req)
				}
				start := time.Now()
				resp, err := client.Do(req)
				el := time.Since(start)
				for old := slowest.Load(); int64(el) > old && !slowest.CompareAndSwap(old, int64(el)); old = slowest.Load() {
				}
				reqs.Add(1)
				if err != nil {
					fail(fmt.Sprintf("%s %s: %v after %s", c.method, c.url, err, el))
					continue
				}
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode >= 300 {
					fail(fmt.Sprintf("%s %s: %s", c.method, c.url, resp.Status))
				}
			}
		}()
	}
	// /health, watched on its own.
	var healthChecks int
	tick := time.NewTicker(250 * time.Millisecond)
	defer tick.Stop()
watch:
	for {
		select {
		case <-ctx.Done():
			break watch
		case err := <-done:
			t.Fatalf("control plane exited under load: %v", err)
		case <-tick.C:
		}
		resp, err := client.Get(base + "/health")
		healthChecks++
		if err != nil {
			fail("health: " + err.Error())
			continue
		}
		resp.Body.Close()
		if resp.StatusCode != 200 {
			fail("health: " + resp.Status)
		}
	}
	wg.Wait()
	t.Logf("max_conns %d: %d requests in %s, slowest %s, %d health checks", need, reqs.Load(), dur,
		time.Duration(slowest.Load()).Round(time.Millisecond), healthChecks)
	if len(failures) > 0 {
		t.Fatalf("%d+ failures, e.g.:\n%s", len(failures), strings.Join(failures, "\n"))
	}
	if reqs.Load() < int64(dur/time.Second) {
		t.Fatalf("only %d requests in %s", reqs.Load(), dur)
	}

	// One LISTEN connection, and no more pool connections than max_conns.
	var listen, pooled int
	if err := db.Pool.QueryRow(t.Context(), `SELECT count(*) FILTER (WHERE application_name = 'wisehosting-listen'),
			count(*) FILTER (WHERE application_name = 'wisehosting')
		FROM pg_stat_activity WHERE datname = current_database()`).Scan(&listen, &pooled); err != nil {
		t.Fatal(err)
	}
	if listen != 1 || pooled > need {
		t.Fatalf("%d listen connections (want 1), %d pool connections (max %d)", listen, pooled, need)
	}
}

// firstAdmin signs in the bootstrap account with the one-time password
// from the log, replaces the password with "a long new passphrase", and
// returns the session and the account's team.
func firstAdmin(t *testing.T, client *http.Client, base string, out *lockedBuffer) (*session, int64) {
	t.Helper()
	var pw []string
	for wait := time.Now().Add(15 * time.Second); pw == nil; time.Sleep(50 * time.Millisecond) {
		if pw = regexp.MustCompile(`One-time password:\s+(\S+)`).FindStringSubmatch(out.String()); pw == nil && time.Now().After(wait) {
			t.Fatal("no one-time password in the log")
		}
	}
	sess := login(t, client, base, "ops@example.com", pw[1])
	sess.do(t, "POST", "/api/password", map[string]any{"current_password": pw[1], "new_password": "a long new passphrase"}, 200)
	var me struct {
		Teams []struct {
			ID int64 `json:"id"`
		} `json:"teams"`
	}
	json.Unmarshal(sess.do(t, "GET", "/api/me", nil, 200), &me)
	if len(me.Teams) == 0 {
		t.Fatal("admin has no team")
	}
	return sess, me.Teams[0].ID
}

// session is a signed-in dashboard session.
type session struct {
	client *http.Client
	base   string
	cookie *http.Cookie
	csrf   string
}

func login(t *testing.T, client *http.Client, base, email, password string) *session {
	t.Helper()
	b, _ := json.Marshal(map[string]string{"email": email, "password": password})
	resp, err := client.Post(base+"/api/login", "application/json", bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var out struct {
		CSRF string `json:"csrf_token"`
	}
	json.NewDecoder(resp.Body).Decode(&out)
	s := &session{client: client, base: base, csrf: out.CSRF}
	for _, c := range resp.Cookies() {
		if c.Name == "wh_session" {
			s.cookie = c
		}
	}
	if resp.StatusCode != 200 || s.cookie == nil {
		t.Fatalf("login: %s", resp.Status)
	}
	return s
}

func (s *session) sign(req *http.Request) {
	req.Header.Set("X-CSRF-Token", s.csrf)
	req.AddCookie(&http.Cookie{Name: s.cookie.Name, Value: s.cookie.Value})
}

func (s *session) do(t *testing.T, method, path string, body any, want int) []byte {
	t.Helper()
	var r io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		r = bytes.NewReader(b)
	}
	req, _ := http.NewRequest(method, s.base+path, r)
	req.Header.Set("Content-Type", "application/json")
	s.sign(req)
	resp, err := s.client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	out, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != want {
		t.Fatalf("%s %s: %s %s", method, path, resp.Status, out)
	}
	return out
}
