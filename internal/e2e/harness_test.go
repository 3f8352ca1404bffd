package e2e

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

var bins struct{ cp, agent string }

// makefileTags reads the agent's build tags from their one definition,
// GOTAGS in the Makefile.
func makefileTags() string {
	b, err := os.ReadFile("../../Makefile")
	if err != nil {
		panic(err)
	}
	m := regexp.MustCompile(`(?m)^GOTAGS\s*[:?]?=\s*(.+)$`).FindSubmatch(b)
	if m == nil {
		panic("no GOTAGS in the Makefile")
	}
	return strings.TrimSpace(string(m[1]))
}

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "wh-e2e-bin")
	if err != nil {
		panic(err)
	}
	bins.cp, bins.agent = filepath.Join(dir, "wisehosting"), filepath.Join(dir, "wisehosting-agent")
	tags := makefileTags()
	for out, pkg := range map[string]string{bins.cp: "../../cmd/wisehosting", bins.agent: "../../cmd/wisehosting-agent"} {
		cmd := exec.Command("go", "build", "-tags", tags, "-o", out, pkg)
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		cmd.Stderr = os.Stderr
		if err := cmd.Run(); err != nil {
			fmt.Fprintln(os.Stderr, "building", pkg+":", err)
			os.Exit(1)
		}
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// freeAddr returns a loopback address with a free port.
func freeAddr(t testing.TB) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

func portOf(addr string) string { return addr[strings.LastIndex(addr, ":")+1:] }

// proc is a child process of the test with its log in a file.
type proc struct {
	name string
	cmd  *exec.Cmd
	log  string
	done chan struct{}
}

func startProc(t testing.TB, name, dir string, env []string, argv ...string) *proc {
	t.Helper()
	p := &proc{name: name, log: filepath.Join(dir, name+".log"), done: make(chan struct{})}
	f, err := os.OpenFile(p.log, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	p.cmd = exec.Command(argv[0], argv[1:]...)
	p.cmd.Env = append(os.Environ(), env...)
	p.cmd.Stdout, p.cmd.Stderr = f, f
	p.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := p.cmd.Start(); err != nil {
		t.Fatalf("starting %s: %v", name, err)
	}
	go func() { p.cmd.Wait(); f.Close(); close(p.done) }()
	t.Cleanup(func() {
		p.stop()
		if t.Failed() {
			b, _ := os.ReadFile(p.log)
			if len(b) > 6000 {
				b = b[len(b)-6000:]
			}
			t.Logf("--- %s log (tail) ---\n%s", name, b)
		}
	})
	return p
}

// stop ends the process (SIGTERM, SIGKILL after 10 s).
func (p *proc) stop() {
	select {
	case <-p.done:
		return
	default:
	}
	p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(10 * time.Second):
		syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL)
		<-p.done
	}
}

func waitFor(t testing.TB, what string, d time.Duration, ok func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !ok() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", d, what)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func waitListen(t testing.TB, p *proc, addr string) {
	t.Helper()
	waitFor(t, p.name+" to listen on "+addr, 60*time.Second, func() bool {
		select {
		case <-p.done:
			b, _ := os.ReadFile(p.log)
			t.Fatalf("%s exited:\n%s", p.name, b)
		default:
		}
		c, err := net.Dial("tcp", addr)
		if err == nil {
			c.Close()
		}
		return err == nil
	})
}

// postgres is a private cluster the test may stop and start (the shared
// server of the other tests is never touched).
type postgres struct {
	dir, bin, port string
	asPG           []string
}

func pgBin(t testing.TB) string {
	t.Helper()
	matches, _ := filepath.Glob("/usr/lib/postgresql/*/bin/initdb")
	if len(matches) == 0 {
		t.Fatal("PostgreSQL server binaries not found under /usr/lib/postgresql (scripts/ci-deps.sh installs them)")
	}
	return filepath.Dir(matches[len(matches)-1])
}

func startPostgres(t testing.TB) (*postgres, string) {
	t.Helper()
	dir, err := os.MkdirTemp("", "wh-e2e-pg")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	pg := &postgres{dir: dir, bin: pgBin(t), port: portOf(freeAddr(t))}
	if os.Geteuid() == 0 {
		// initdb refuses root: run the cluster as the postgres user.
		u, err := user.Lookup("postgres")
		if err != nil {
			t.Fatalf("user postgres: %v", err)
		}
		uid, _ := strconv.Atoi(u.Uid)
		os.Chown(dir, uid, -1)
		os.Chmod(dir, 0o700)
		pg.asPG = []string{"runuser", "-u", "postgres", "--"}
	}
	pg.run(t, "initdb", "-D", dir+"/data", "-U", "postgres", "--auth=trust", "-E", "UTF8", "--locale=C.UTF-8")
	pg.start(t)
	t.Cleanup(func() { pg.stop(t) })
	url := "postgres://postgres@127.0.0.1:" + pg.port + "/postgres?sslmode=disable"
	conn, err := pgx.Connect(context.Background(), url)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	if _, err := conn.Exec(context.Background(), "CREATE DATABASE wisehosting"); err != nil {
		t.Fatal(err)
	}
	return pg, "postgres://postgres@127.0.0.1:" + pg.port + "/wisehosting?sslmode=disable"
}

func (pg *postgres) run(t testing.TB, tool string, args ...string) {
	t.Helper()
	argv := append(append([]string{}, pg.asPG...), append([]string{filepath.Join(pg.bin, tool)}, args...)...)
	out, err := exec.Command(argv[0], argv[1:]...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s: %v\n%s", tool, err, out)
	}
}

func (pg *postgres) start(t testing.TB) {
	pg.run(t, "pg_ctl", "-D", pg.dir+"/data", "-l", pg.dir+"/log", "-w", "-o",
		"-p "+pg.port+" -k "+pg.dir+" -c listen_addresses=127.0.0.1 -c fsync=off", "start")
}

func (pg *postgres) stop(t testing.TB) {
	argv := append(append([]string{}, pg.asPG...), filepath.Join(pg.bin, "pg_ctl"), "-D", pg.dir+"/data", "-m", "fast", "-w", "stop")
	exec.Command(argv[0], argv[1:]...).Run()
}

// getHost asks base for path with a Host header; client may carry TLS
// settings and a dialer pinned to the proxy.
func getHost(c *http.Client, base, host, path string) (int, string, error) {
	req, err := http.NewRequest("GET", base+path, nil)
	if err != nil {
		return 0, "", err
	}
	req.Host = host
	resp, err := c.Do(req)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), nil
}

// tlsClient connects to addr for every name and trusts roots.
func tlsClient(addr string, roots *x509.CertPool) *http.Client {
	return &http.Client{Timeout: 20 * time.Second, Transport: &http.Transport{
		TLSClientConfig: &tls.Config{RootCAs: roots},
		DialContext: func(ctx context.Context, network, _ string) (net.Conn, error) {
			return (&net.Dialer{}).DialContext(ctx, network, addr)
		},
	}}
}

func postJSON(t testing.TB, url, token string, body any) (int, []byte) {
	t.Helper()
	b, _ := json.Marshal(body)
	req, _ := http.NewRequest("POST", url, bytes.NewReader(b))
	req.Header.Set("Content-Type", "application/json")
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	out, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, out
}

// apiClient is a signed-in dashboard session.
type apiClient struct {
	t      testing.TB
	base   string
	cookie *http.Cookie
	csrf   string
}

func newAPIClient(t testing.TB, base string) *apiClient { return &apiClient{t: t, base: base} }

func (c *apiClient) login(email, password string) {
	c.t.Helper()
	b, _ := json.Marshal(map[string]string{"email": email, "password": password})
	resp, err := http.Post(c.base+"/api/login", "application/json", bytes.NewReader(b))
	if err != nil {
		c.t.Fatal(err)
	}
	defer resp.Body.Close()
	var out struct {
		CSRF string `json:"csrf_token"`
	}
	json.NewDecoder(resp.Body).Decode(&out)
	for _, ck := range resp.Cookies() {
		if ck.Name == "wh_session" {
			c.cookie = ck
		}
	}
	if resp.StatusCode != 200 || c.cookie == nil || out.CSRF == "" {
		c.t.Fatalf("login: %s", resp.Status)
	}
	c.csrf = out.CSRF
}

func (c *apiClient) call(method, path string, body any, want int) map[string]any {
	c.t.Helper()
	code, _, out := c.rawCall(method, path, body)
	if code != want {
		c.t.Fatalf("%s %s: %d %s %v", method, path, code, http.StatusText(code), out)
	}
	return out
}
