package e2e

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/cookiejar"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/wisehosting/wisehosting/internal/peers"
)

// TestNewcomer is a newcomer's first hour: from a clean copy of the
// repository in a fresh network namespace (nothing listens on 5432 there),
// the README's one command, then only what it prints and the public API:
// sign in with the printed password, change it, deploy the static sample
// and get its page at the app's https://<slug>.localhost:<port> link.
// Ctrl-C then stops everything `make run` started.
// NEWCOMER_COLD=1 starts with an empty Go build cache.
func TestNewcomer(t *testing.T) {
	d := newcomer(t, os.Getenv("NEWCOMER_COLD") == "1")
	t.Logf("newcomer: first 200 from the sample %s after `make run`", d.Round(100*time.Millisecond))
}

// BenchmarkNewcomer measures the time from `make run` in a clean copy to
// the first 200 from the deployed sample (BENCHMARKS.md).
func BenchmarkNewcomer(b *testing.B) {
	var total time.Duration
	for i := 0; i < b.N; i++ {
		total += newcomer(b, os.Getenv("NEWCOMER_COLD") == "1")
	}
	b.ReportMetric(total.Seconds()/float64(b.N), "first-200-s")
}

// newcomer runs the journey and returns the time from the command to the
// first 200.
func newcomer(t testing.TB, cold bool) time.Duration {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Fatal("the newcomer test creates a network namespace and runs Podman as root (like CI)")
	}
	root := peers.Root(t)
	// A checkout in a directory others may enter, like one under /home.
	work, err := os.MkdirTemp("", "wh-newcomer")
	if err != nil {
		t.Fatal(err)
	}
	os.Chmod(work, 0o755)
	t.Cleanup(func() { os.RemoveAll(work) })
	repo := filepath.Join(work, "wisehosting")
	copyCheckout(t, root, repo)

	ns := fmt.Sprintf("wh-newcomer-%d", os.Getpid())
	for _, args := range [][]string{{"netns", "add", ns}, {"-n", ns, "link", "set", "lo", "up"}} {
		if out, err := exec.Command("ip", args...).CombinedOutput(); err != nil {
			t.Fatalf("ip %v: %v: %s", args, err, out)
		}
	}
	t.Cleanup(func() { exec.Command("ip", "netns", "del", ns).Run() })

	env := []string{}
	for _, kv := range os.Environ() {
		if k, _, _ := strings.Cut(kv, "="); k == "DATABASE_URL" || strings.HasPrefix(k, "WISEHOSTING_") || k == "GOFLAGS" {
			continue
		}
		env = append(env, kv)
	}
	if cold {
		env = append(env, "GOCACHE="+filepath.Join(work, "gocache"))
	}
	start := time.Now()
	// nsenter changes only the network namespace (ip netns exec would
	// also remount /sys, hiding the cgroup mounts Podman needs).
	cmd := exec.Command("nsenter", "--net=/run/netns/"+ns, "make", "run")
	cmd.Dir, cmd.Env = repo, env
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	pr, pw := io.Pipe()
	cmd.Stdout, cmd.Stderr = pw, pw
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { err := cmd.Wait(); pw.Close(); exited <- err }()
	var mu sync.Mutex
	var output bytes.Buffer
	banner := make(chan map[string]string, 1)
	go scanBanner(pr, &mu, &output, banner)
	stopped := false
	t.Cleanup(func() {
		if !stopped {
			syscall.Kill(-cmd.Process.Pid, syscall.SIGINT)
			select {
			case <-exited:
			case <-time.After(60 * time.Second):
				syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
			}
		}
		if t.Failed() {
			mu.Lock()
			t.Logf("--- make run output ---\n%s", output.String())
			mu.Unlock()
			for _, f := range []string{"control-plane.log", "agent.log"} {
				b, _ := os.ReadFile(filepath.Join(repo, ".data/logs", f))
				if len(b) > 6000 {
					b = b[len(b)-6000:]
				}
				t.Logf("--- %s (tail) ---\n%s", f, b)
			}
		}
	})

	var printed map[string]string
	var pem []byte
	select {
	case printed = <-banner:
	case err := <-exited:
		t.Fatalf("make run exited before printing its banner: %v", err)
	case <-time.After(10 * time.Minute):
		t.Fatal("make run printed no banner within 10 minutes")
	}
	t.Logf("banner after %s: %v", time.Since(start).Round(time.Millisecond), printed)
	for _, k := range []string{"dashboard", "password", "ca", "sample"} {
		if printed[k] == "" {
			t.Fatalf("the banner has no %s", k)
		}
	}

	// The client trusts the printed dev CA and resolves *.localhost to
	// loopback, as browsers do; it connects inside the namespace.
	pem, err = os.ReadFile(printed["ca"])
	if err != nil {
		t.Fatal(err)
	}
	roots := x509.NewCertPool()
	if !roots.AppendCertsFromPEM(pem) {
		t.Fatalf("%s holds no certificate", printed["ca"])
	}
	jar, _ := cookiejar.New(nil)
	c := &http.Client{Jar: jar, Timeout: 20 * time.Second, Transport: &http.Transport{
		TLSClientConfig: &tls.Config{RootCAs: roots},
		DialContext:     netnsDialer(ns),
	}}
	api := &jsonClient{t: t, c: c, base: printed["dashboard"]}

	var login struct {
		CSRF string `json:"csrf_token"`
	}
	api.do("POST", "/api/login", map[string]string{"email": "admin@localhost", "password": printed["password"]}, 200, &login)
	api.csrf = login.CSRF
	api.do("POST", "/api/password", map[string]string{"current_password": printed["password"], "new_password": "my own long passphrase"}, 200, nil)
	var me struct {
		Teams []struct {
			ID int64 `json:"id"`
		} `json:"teams"`
	}
	api.do("GET", "/api/me", nil, 200, &me)
	if len(me.Teams) == 0 {
		t.Fatal("the admin has no team")
	}
	var app struct {
		ID  int64  `json:"id"`
		URL string `json:"url"`
	}
	api.do("POST", fmt.Sprintf("/api/teams/%d/apps", me.Teams[0].ID), map[string]any{
		"name": "Hello", "slug": "hello", "git_repo": printed["sample"], "git_branch": "main"}, 201, &app)
	var dep struct {
		ID int64 `json:"deployment_id"`
	}
	api.do("POST", fmt.Sprintf("/api/apps/%d/deployments", app.ID), map[string]any{}, 202, &dep)
	api.do("GET", fmt.Sprintf("/api/apps/%d", app.ID), nil, 200, &app)
	port := strings.TrimPrefix(printed["dashboard"][strings.LastIndex(printed["dashboard"], ":"):], ":")
	if want := "https://hello.localhost:" + port; app.URL != want {
		t.Fatalf("the app's link is %q, want %q", app.URL, want)
	}

	var body string
	waitFor(t, "the sample's page at "+app.URL, 5*time.Minute, func() bool {
		var deps struct {
			Deployments []struct {
				ID     int64  `json:"id"`
				Status string `json:"status"`
			} `json:"deployments"`
		}
		api.do("GET", fmt.Sprintf("/api/apps/%d/deployments", app.ID), nil, 200, &deps)
		for _, d := range deps.Deployments {
			if d.ID == dep.ID && (d.Status == "failed" || d.Status == "cancelled") {
				var logs any
				api.do("GET", fmt.Sprintf("/api/apps/%d/deployments/%d/logs", app.ID, dep.ID), nil, 200, &logs)
				t.Fatalf("the deployment %s: %v", d.Status, logs)
			}
		}
		resp, err := c.Get(app.URL + "/")
		if err != nil {
			return false
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		body = string(b)
		return resp.StatusCode == 200
	})
	first200 := time.Since(start)
	if !strings.Contains(body, "Hello from WiseHosting") {
		t.Fatalf("the sample's page: %q", body)
	}

	// Ctrl-C: everything make run started stops.
	syscall.Kill(-cmd.Process.Pid, syscall.SIGINT)
	select {
	case <-exited:
		stopped = true
	case <-time.After(90 * time.Second):
		t.Fatal("make run did not stop within 90 s of Ctrl-C")
	}
	var left []string
	deadline := time.Now().Add(20 * time.Second)
	for left = leftovers(ns, repo); len(left) > 0; left = leftovers(ns, repo) {
		if time.Now().After(deadline) {
			t.Fatalf("processes of make run left 20 s after it stopped:\n%s", strings.Join(left, "\n"))
		}
		time.Sleep(200 * time.Millisecond)
	}
	mu.Lock()
	out := output.String()
	mu.Unlock()
	if !strings.Contains(out, "stopped.") {
		t.Fatalf("make run did not say it stopped:\n%s", out)
	}
	return first200
}

// scanBanner copies make run's output and sends the banner's values once
// the sample line is printed (or "No local worker").
func scanBanner(r io.Reader, mu *sync.Mutex, out *bytes.Buffer, ch chan<- map[string]string) {
	got := map[string]string{}
	sent := false
	patterns := map[string]*regexp.Regexp{
		"dashboard": regexp.MustCompile(`^\s*Dashboard:\s+(https://\S+)`),
		"password":  regexp.MustCompile(`^\s*Password:\s+(\S+)`),
		"ca":        regexp.MustCompile(`^\s*Dev CA:\s+(\S+)`),
		"sample":    regexp.MustCompile(`^\s+(/\S+/examples/static)\s+branch main`),
	}
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		line := sc.Text()
		mu.Lock()
		out.WriteString(line + "\n")
		mu.Unlock()
		for k, re := range patterns {
			if m := re.FindStringSubmatch(line); m != nil {
				got[k] = m[1]
			}
		}
		if !sent && (got["sample"] != "" || strings.Contains(line, "No local worker")) {
			ch <- got
			sent = true
		}
	}
	io.Copy(io.Discard, r)
}

// netnsDialer dials from inside the network namespace ns; localhost and
// *.localhost are loopback, as in browsers.
func netnsDialer(ns string) func(ctx context.Context, network, addr string) (net.Conn, error) {
	return func(ctx context.Context, network, addr string) (net.Conn, error) {
		host, port, err := net.SplitHostPort(addr)
		if err != nil {
			return nil, err
		}
		if host == "localhost" || strings.HasSuffix(host, ".localhost") {
			host = "127.0.0.1"
		}
		type result struct {
			c   net.Conn
			err error
		}
		ch := make(chan result, 1)
		go func() {
			// The thread enters the namespace and is never unlocked, so
			// it ends with this goroutine; the socket stays in ns.
			runtime.LockOSThread()
			f, err := os.Open("/run/netns/" + ns)
			if err != nil {
				ch <- result{nil, err}
				return
			}
			defer f.Close()
			if err := unix.Setns(int(f.Fd()), unix.CLONE_NEWNET); err != nil {
				ch <- result{nil, err}
				return
			}
			c, err := (&net.Dialer{Timeout: 10 * time.Second}).DialContext(ctx, network, net.JoinHostPort(host, port))
			ch <- result{c, err}
		}()
		r := <-ch
		return r.c, r.err
	}
}

// leftovers lists processes still in ns or still using the copy.
func leftovers(ns, repo string) []string {
	var left []string
	out, _ := exec.Command("ip", "netns", "pids", ns).Output()
	self := strconv.Itoa(os.Getpid())
	for _, pid := range strings.Fields(string(out)) {
		if pid == self {
			// This test: a thread of it that entered the namespace to
			// dial into it can be the main one, which Go never ends.
			continue
		}
		cmdline, _ := os.ReadFile("/proc/" + pid + "/cmdline")
		left = append(left, pid+" "+strings.ReplaceAll(string(cmdline), "\x00", " "))
	}
	procs, _ := filepath.Glob("/proc/[0-9]*")
	for _, p := range procs {
		cwd, _ := os.Readlink(p + "/cwd")
		cmdline, _ := os.ReadFile(p + "/cmdline")
		if strings.HasPrefix(cwd, repo) || bytes.Contains(cmdline, []byte(repo)) {
			left = append(left, filepath.Base(p)+" "+strings.ReplaceAll(string(cmdline), "\x00", " "))
		}
	}
	return left
}

// copyCheckout copies the files of the checkout (tracked and untracked,
// not ignored), as a clean clone with the working tree's changes.
func copyCheckout(t testing.TB, root, dst string) {
	t.Helper()
	out, err := exec.Command("git", "-C", root, "ls-files", "-z", "--cached", "--others", "--exclude-standard").Output()
	if err != nil {
		t.Fatalf("git ls-files: %v", err)
	}
	for _, rel := range strings.Split(strings.TrimRight(string(out), "\x00"), "\x00") {
		src := filepath.Join(root, rel)
		st, err := os.Lstat(src)
		if err != nil || st.IsDir() {
			continue // deleted in the working tree, or a submodule
		}
		to := filepath.Join(dst, rel)
		if err := os.MkdirAll(filepath.Dir(to), 0o755); err != nil {
			t.Fatal(err)
		}
		if st.Mode()&os.ModeSymlink != 0 {
			target, _ := os.Readlink(src)
			os.Symlink(target, to)
			continue
		}
		b, err := os.ReadFile(src)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(to, b, st.Mode().Perm()); err != nil {
			t.Fatal(err)
		}
	}
}

// jsonClient calls the dashboard API with the session cookie and CSRF token.
type jsonClient struct {
	t    testing.TB
	c    *http.Client
	base string
	csrf string
}

func (j *jsonClient) do(method, path string, body any, want int, out any) {
	j.t.Helper()
	var r io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		r = bytes.NewReader(b)
	}
	req, _ := http.NewRequest(method, j.base+path, r)
	req.Header.Set("Content-Type", "application/json")
	if j.csrf != "" {
		req.Header.Set("X-CSRF-Token", j.csrf)
	}
	resp, err := j.c.Do(req)
	if err != nil {
		j.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != want {
		j.t.Fatalf("%s %s: %s %s", method, path, resp.Status, b)
	}
	if out != nil {
		if err := json.Unmarshal(b, out); err != nil {
			j.t.Fatalf("%s %s: %v: %s", method, path, err, b)
		}
	}
}
