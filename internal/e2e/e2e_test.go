// Package e2e runs the whole system on one machine, loopback only: a
// private Postgres, the control plane and the worker agent as their real
// binaries, real Podman, the Caddy proxy mode and real Traefik, both with
// certificates from Pebble. `make e2e` runs it alone; `make test` runs it
// with everything else.
package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/wisehosting/wisehosting/agent/runtime/podmantest"
	"github.com/wisehosting/wisehosting/internal/dnsprov/cftest"
	"github.com/wisehosting/wisehosting/internal/gitproviders"
	"github.com/wisehosting/wisehosting/internal/peers"
)

const (
	secret     = "e2e-master-secret-0123456789abcdef"
	proxyToken = "e2e-proxy-token-0123456789abcdef"
	customHost = "www.customer.test"
)

// system is everything the test runs, with what it needs to restart it.
type system struct {
	t        *testing.T
	work     string
	dbURL    string
	pg       *postgres
	pool     *pgxpool.Pool
	svc      *podmantest.Service
	pebble   *peers.Pebble
	cpAddr   string
	cpFile   string
	cp       *proc
	key      string
	zoneAddr string
	agent    *proc
	// agentArgs are extra flags of the agent.
	agentArgs []string
	tfAddr    string
	traefik   *proc
	pxAddr    string
	pxDir     string
	proxy     *proc
}

func (s *system) startCP() {
	s.t.Helper()
	s.cp = startProc(s.t, "cp", s.work, nil, bins.cp, "run", "--config", s.cpFile, "--adapter", "caddyfile")
	waitListen(s.t, s.cp, s.cpAddr)
}

func (s *system) startAgent() {
	s.t.Helper()
	argv := append([]string{bins.agent, "-cp", "http://" + s.cpAddr, "-mesh-ip", "127.0.0.1", "-zone", "z.test", "-zone-listen", s.zoneAddr,
		"-podman", s.svc.URL, "-allow-local-git", "-work-dir", s.work}, s.agentArgs...)
	s.agent = startProc(s.t, "agent", s.work, []string{"WISEHOSTING_WORKER_KEY=" + s.key}, argv...)
	waitListen(s.t, s.agent, s.zoneAddr)
}

func (s *system) startTraefik() {
	s.t.Helper()
	s.traefik = startProc(s.t, "traefik", s.work, []string{"LEGO_CA_CERTIFICATES=" + s.pebble.CAFile}, peers.TraefikBin(s.t),
		"--entryPoints.websecure.address="+s.tfAddr,
		"--providers.http.endpoint=http://"+s.cpAddr+"/v1/traefik/proxy-config",
		"--providers.http.pollInterval=1s",
		"--providers.http.headers.Authorization=Bearer "+proxyToken,
		"--certificatesResolvers.letsencrypt.acme.caServer="+s.pebble.Directory,
		"--certificatesResolvers.letsencrypt.acme.email=ops@example.test",
		"--certificatesResolvers.letsencrypt.acme.storage="+filepath.Join(s.work, "traefik-acme.json"),
		"--certificatesResolvers.letsencrypt.acme.tlsChallenge=true",
		"--global.checkNewVersion=false", "--global.sendAnonymousUsage=false", "--log.level=INFO")
	waitListen(s.t, s.traefik, s.tfAddr)
}

func (s *system) startProxy() {
	s.t.Helper()
	cfg := fmt.Sprintf(`{
	admin off
	http_port %[7]d
	storage file_system %[1]s/data
	email ops@customer.test
	on_demand_tls {
		permission wisehosting
	}
	wisehosting_proxy {
		control_plane http://%[2]s
		token %[3]s
		cache_file %[1]s/routes.json
		poll_interval 1s
	}
}
https://:%[4]s {
	bind 127.0.0.1
	tls {
		on_demand
		issuer acme {
			dir %[5]s
			trusted_roots %[6]s
			disable_http_challenge
			alt_tlsalpn_port %[4]s
		}
	}
	wisehosting_route
	reverse_proxy {
		dynamic wisehosting
	}
}
`, s.pxDir, s.cpAddr, proxyToken, portOf(s.pxAddr), s.pebble.Directory, s.pebble.CAFile, peers.FreePort(s.t))
	path := filepath.Join(s.pxDir, "proxy.Caddyfile")
	if err := os.WriteFile(path, []byte(cfg), 0o600); err != nil {
		s.t.Fatal(err)
	}
	s.proxy = startProc(s.t, "proxy", s.work, []string{"HOME=" + s.pxDir, "XDG_DATA_HOME=" + s.pxDir, "XDG_CONFIG_HOME=" + s.pxDir},
		bins.cp, "run", "--config", path, "--adapter", "caddyfile")
	waitListen(s.t, s.proxy, s.pxAddr)
}

// path is one way to reach the app.
type path struct {
	name   string
	client *http.Client
	base   string
	host   string
}

func (p path) get() (int, string, error) { return getHost(p.client, p.base, p.host, "/") }

func (s *system) waitBody(p path, want string, d time.Duration) {
	s.t.Helper()
	var last string
	waitFor(s.t, fmt.Sprintf("%s to serve %q", p.name, want), d, func() bool {
		code, body, err := p.get()
		last = fmt.Sprintf("%d %q %v", code, body, err)
		return err == nil && code == 200 && strings.Contains(body, want)
	})
	_ = last
}

func git(t *testing.T, dir string, args ...string) string {
	t.Helper()
	cmd := exec.Command("git", append([]string{"-C", dir, "-c", "user.email=e2e@example.test", "-c", "user.name=e2e"}, args...)...)
	cmd.Env = append(os.Environ(), "GIT_CONFIG_GLOBAL=/dev/null", "GIT_CONFIG_NOSYSTEM=1")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("git %v: %v: %s", args, err, out)
	}
	return strings.TrimSpace(string(out))
}

func commit(t *testing.T, repo, body string) string {
	t.Helper()
	os.WriteFile(filepath.Join(repo, "index.html"), []byte(body), 0o644)
	git(t, repo, "add", "-A")
	git(t, repo, "commit", "-q", "-m", body)
	return git(t, repo, "rev-parse", "HEAD")
}

// push delivers a signed GitHub push webhook for sha and waits for the
// deployment it starts to succeed.
func (s *system) push(appID int64, hookSecret, sha, delivery string) {
	s.t.Helper()
	raw, err := os.ReadFile(filepath.Join(peers.Root(s.t), "internal/gitproviders/testdata/github_push.json"))
	if err != nil {
		s.t.Fatal(err)
	}
	var doc map[string]any
	json.Unmarshal(raw, &doc)
	doc["ref"], doc["after"] = "refs/heads/main", sha
	doc["head_commit"].(map[string]any)["id"] = sha
	body, _ := json.Marshal(doc)
	req, _ := http.NewRequest("POST", fmt.Sprintf("http://%s/v1/hooks/github/%d", s.cpAddr, appID), strings.NewReader(string(body)))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("X-GitHub-Event", "push")
	req.Header.Set("X-GitHub-Delivery", delivery)
	k, v := gitproviders.Sign(gitproviders.GitHub, []byte(hookSecret), body)
	req.Header.Set(k, v)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		s.t.Fatal(err)
	}
	var out struct {
		Action       string `json:"action"`
		DeploymentID int64  `json:"deployment_id"`
	}
	json.NewDecoder(resp.Body).Decode(&out)
	resp.Body.Close()
	if resp.StatusCode != http.StatusAccepted || out.DeploymentID == 0 {
		s.t.Fatalf("push webhook: %d %+v", resp.StatusCode, out)
	}
	waitFor(s.t, fmt.Sprintf("deployment %d", out.DeploymentID), 120*time.Second, func() bool {
		var st, msg string
		s.pool.QueryRow(context.Background(), "SELECT status, error FROM deployments WHERE id = $1", out.DeploymentID).Scan(&st, &msg)
		if st == "failed" || st == "cancelled" {
			s.t.Fatalf("deployment %d %s: %s", out.DeploymentID, st, msg)
		}
		return st == "succeeded"
	})
}

// loop requests every path until stop and counts failures.
type loop struct {
	ok, failed atomic.Int64
	last       atomic.Value
	stop       chan struct{}
	wg         sync.WaitGroup
}

func startLoop(paths []path, want *regexp.Regexp) *loop {
	l := &loop{stop: make(chan struct{})}
	for _, p := range paths {
		l.wg.Add(1)
		go func() {
			defer l.wg.Done()
			for {
				select {
				case <-l.stop:
					return
				default:
				}
				code, body, err := p.get()
				if err != nil || code != 200 || !want.MatchString(body) {
					l.failed.Add(1)
					l.last.Store(fmt.Sprintf("%s: %d %q %v", p.name, code, body, err))
				} else {
					l.ok.Add(1)
				}
				time.Sleep(20 * time.Millisecond)
			}
		}()
	}
	return l
}

func (l *loop) end() (ok, failed int64, last any) {
	close(l.stop)
	l.wg.Wait()
	return l.ok.Load(), l.failed.Load(), l.last.Load()
}

func TestEndToEnd(t *testing.T) {
	ctx := context.Background()
	s := &system{t: t, work: t.TempDir()}
	var err error
	s.pg, s.dbURL = startPostgres(t)
	s.svc = podmantest.Start(t)
	s.pebble = peers.StartPebble(t, "")
	cf := cftest.Start(t, "customer.test", "cf-token")
	s.cpAddr, s.zoneAddr, s.tfAddr, s.pxAddr = freeAddr(t), freeAddr(t), freeAddr(t), freeAddr(t)
	s.pxDir = filepath.Join(s.work, "proxy")
	os.MkdirAll(s.pxDir, 0o700)
	t.Cleanup(func() {
		out, _ := s.svc.Podman(context.Background(), "ps", "-aq", "--filter", "label=io.wisehosting.slug=shop")
		for _, id := range strings.Fields(out) {
			s.svc.Podman(context.Background(), "rm", "-f", "-t", "1", id)
		}
	})

	// The control plane, from a Caddyfile like an operator's.
	s.cpFile = filepath.Join(s.work, "cp.Caddyfile")
	os.WriteFile(s.cpFile, []byte(fmt.Sprintf(`{
	admin off
	wisehosting_scheduler {
		poll_interval 200ms
	}
	wisehosting_logs
	wisehosting_usage
	wisehosting {
		database_url %s
		secret %s
		proxy_token %s
		subdomain_base apps.test
		admin_email owner@acme.test
		allow_local_git on
		domain_resolvers %s
		public_url http://%s
	}
}
http://%s {
	route {
		wisehosting_hub
		wisehosting_api
		wisehosting_dashboard {
			insecure_cookie
		}
	}
}
`, s.dbURL, secret, proxyToken, cf.DNSAddr, s.cpAddr, s.cpAddr)), 0o600)
	s.startCP()
	if s.pool, err = pgxpool.New(ctx, s.dbURL); err != nil {
		t.Fatal(err)
	}
	defer s.pool.Close()

	// A worker, added with the operator command, and its agent.
	s.key = addWorker(t, s.cpFile, "w1", "z.test", "127.0.0.1")
	s.startAgent()
	waitFor(t, "the worker to come online", 30*time.Second, func() bool {
		var st string
		s.pool.QueryRow(ctx, "SELECT status FROM workers WHERE name = 'w1'").Scan(&st)
		return st == "online"
	})

	// The first account (its one-time password is in the control plane's
	// log) signs in through the API and creates the app there.
	raw, _ := os.ReadFile(s.cp.log)
	m := regexp.MustCompile(`"password":"([^"]+)"`).FindSubmatch(raw)
	if m == nil {
		t.Fatalf("no one-time password in the control plane's log:\n%s", raw)
	}
	api := newAPIClient(t, "http://"+s.cpAddr)
	api.login("owner@acme.test", string(m[1]))
	// The one-time password must be replaced before anything else.
	api.call("POST", fmt.Sprintf("/api/teams/%d/apps", 1), map[string]any{"name": "x", "slug": "xx"}, 403)
	api.call("POST", "/api/password", map[string]any{"current_password": string(m[1]), "new_password": "a long new passphrase"}, 200)
	me := api.call("GET", "/api/me", nil, 200)
	team := int64(me["teams"].([]any)[0].(map[string]any)["id"].(float64))
	repo := t.TempDir()
	git(t, repo, "init", "-q", "-b", "main")
	sha1 := commit(t, repo, "<h1>shop version one</h1>\n")
	created := api.call("POST", fmt.Sprintf("/api/teams/%d/apps", team), map[string]any{"name": "Shop", "slug": "shop",
		"git_repo": repo, "git_branch": "main", "git_provider": "github", "cpu_millis": 250, "memory_mb": 64}, 201)
	appID := int64(created["id"].(float64))
	// No provider connection: the answer gives the secret once, with the
	// steps to add the hook by hand.
	hook := api.call("POST", fmt.Sprintf("/api/apps/%d/hook", appID), nil, 200)
	hookSecret, _ := hook["secret"].(string)
	if hookSecret == "" {
		t.Fatalf("the hook answer has no secret: %v", hook)
	}

	// Push → deploy → running.
	s.push(appID, hookSecret, sha1, "e2e-1")

	// A verified custom domain: TXT record in the customer's DNS, checked
	// by the control plane's verifier against that DNS server.
	// (domain_resolvers points the control plane at that DNS server.)
	dom := api.call("POST", fmt.Sprintf("/api/apps/%d/domains", appID), map[string]any{"hostname": customHost}, 201)
	addTXT(t, cf, dom["record"].(string), dom["token"].(string))
	if v := api.call("POST", fmt.Sprintf("/api/apps/%d/domains/%d/verify", appID, int64(dom["id"].(float64))), nil, 200); v["verified_at"] == nil {
		t.Fatalf("verify: %v", v)
	}

	s.startTraefik()
	s.startProxy()
	plain := &http.Client{Timeout: 10 * time.Second}
	paths := []path{
		{"zone router", plain, "http://" + s.zoneAddr, "shop.z.test"},
		{"traefik", tlsClient(s.tfAddr, s.pebble.Issued), "https://shop.apps.test", "shop.apps.test"},
		{"caddy proxy", tlsClient(s.pxAddr, s.pebble.Issued), "https://" + customHost, customHost},
	}
	for _, p := range paths {
		s.waitBody(p, "shop version one", 60*time.Second)
	}

	// Redeploy with zero failed requests on every path.
	l := startLoop(paths, regexp.MustCompile(`shop version (one|two)`))
	sha2 := commit(t, repo, "<h1>shop version two</h1>\n")
	s.push(appID, hookSecret, sha2, "e2e-2")
	for _, p := range paths {
		s.waitBody(p, "shop version two", 60*time.Second)
	}
	time.Sleep(20 * time.Second) // past the drain delay: the old container is gone
	ok, failed, last := l.end()
	t.Logf("redeploy: %d requests over three paths, %d failed", ok, failed)
	if failed != 0 || ok < 100 {
		t.Fatalf("redeploy: %d ok, %d failed; last failure: %v", ok, failed, last)
	}

	// The database stops: every path keeps serving.
	s.pg.stop(t)
	l = startLoop(paths, regexp.MustCompile(`shop version two`))
	time.Sleep(8 * time.Second)
	ok, failed, last = l.end()
	t.Logf("database down: %d requests, %d failed", ok, failed)
	if failed != 0 || ok < 30 {
		t.Fatalf("database down: %d ok, %d failed; last failure: %v", ok, failed, last)
	}
	s.pg.start(t)

	// Everything restarts: the state comes back from Postgres and the
	// containers, nothing is rebuilt.
	var deploymentsBefore int
	s.pool.QueryRow(ctx, "SELECT count(*) FROM deployments").Scan(&deploymentsBefore)
	for _, p := range []*proc{s.proxy, s.traefik, s.agent, s.cp} {
		p.stop()
	}
	s.startCP()
	s.startAgent()
	s.startTraefik()
	s.startProxy()
	for _, p := range paths {
		s.waitBody(p, "shop version two", 60*time.Second)
	}
	var deploymentsAfter int
	var status string
	s.pool.QueryRow(ctx, "SELECT count(*) FROM deployments").Scan(&deploymentsAfter)
	s.pool.QueryRow(ctx, "SELECT status FROM apps WHERE id = $1", appID).Scan(&status)
	if deploymentsAfter != deploymentsBefore || status != "running" {
		t.Fatalf("after restart: %d deployments (was %d), app %s", deploymentsAfter, deploymentsBefore, status)
	}

	// The app is deleted through the API: its worker removes its
	// containers, then its row goes.
	filter := []string{"ps", "-a", "--filter", fmt.Sprintf("label=io.wisehosting.app=%d", appID), "--format", "{{.Names}}"}
	if before, err := s.svc.Podman(ctx, filter...); err != nil || strings.TrimSpace(before) == "" {
		t.Fatalf("no container of the app found before deleting it: %q %v", before, err)
	}
	if out := api.call("DELETE", fmt.Sprintf("/api/apps/%d", appID), nil, 202); out["status"] != "deleting" {
		t.Fatalf("delete: %v", out)
	}
	deadline := time.Now().Add(60 * time.Second)
	for {
		var n int
		s.pool.QueryRow(ctx, "SELECT count(*) FROM apps WHERE id = $1", appID).Scan(&n)
		if n == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the deleted app's row is still there after 60 s")
		}
		time.Sleep(200 * time.Millisecond)
	}
	left, err := s.svc.Podman(ctx, filter...)
	if err != nil || strings.TrimSpace(left) != "" {
		t.Fatalf("containers of the deleted app: %q %v", left, err)
	}
}

// addTXT creates a TXT record through the DNS provider's API (the
// Cloudflare stand-in), as the domain's owner would.
func addTXT(t *testing.T, cf *cftest.Server, name, value string) {
	t.Helper()
	b, _ := json.Marshal(map[string]any{"type": "TXT", "name": name, "content": value, "ttl": 60})
	req, _ := http.NewRequest("POST", cf.URL+"/zones/"+cf.ZoneID+"/dns_records", strings.NewReader(string(b)))
	req.Header.Set("Authorization", "Bearer "+cf.Token)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("adding TXT: %s", resp.Status)
	}
}
