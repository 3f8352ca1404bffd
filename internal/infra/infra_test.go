package infra

import (
	"context"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/wisehosting/wisehosting/internal/dnsprov/cftest"
	"github.com/wisehosting/wisehosting/internal/httpx"
)

func TestParseAndValidate(t *testing.T) {
	good := `
subdomain_base: apps.example.com
control_plane_url: https://cp.example.com
dns: {provider: cloudflare, zone: example.com, api_token_file: /etc/wisehosting/cf}
mesh: {cidr: 10.50.0.0/24}
hosts:
  - {name: cp1, role: control-plane, public_ip: 203.0.113.10, mesh_ip: 10.50.0.1}
  - {name: px1, role: proxy, public_ip: 203.0.113.20, mesh_ip: 10.50.0.2}
  - {name: w1, role: worker, mesh_ip: 10.50.0.11, zone: de.example.com}
`
	c, err := Parse([]byte(good))
	if err != nil {
		t.Fatal(err)
	}
	if c.Mesh.Port != 51821 || len(c.ByRole(RoleWorker)) != 1 {
		t.Fatalf("%+v", c)
	}
	for name, bad := range map[string]string{
		"unknown key":    good + "colour: blue\n",
		"bad role":       strings.Replace(good, "role: worker", "role: database", 1),
		"outside mesh":   strings.Replace(good, "10.50.0.11", "10.60.0.11", 1),
		"duplicate mesh": strings.Replace(good, "10.50.0.11", "10.50.0.2", 1),
		"duplicate name": strings.Replace(good, "name: w1", "name: cp1", 1),
		"bad ip":         strings.Replace(good, "203.0.113.20", "203.0.113", 1),
		"bad provider":   strings.Replace(good, "cloudflare", "route53", 1),
		"bad url":        strings.Replace(good, "https://cp.example.com", "cp.example.com", 1),
	} {
		if _, err := Parse([]byte(bad)); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

func tokenFile(t *testing.T, tok string) string {
	p := filepath.Join(t.TempDir(), "token")
	os.WriteFile(p, []byte(tok+"\n"), 0o600)
	return p
}

// A fake Hetzner Cloud API answering GET /servers with its real JSON shape,
// over two pages.
func TestDiscoverHetzner(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != "Bearer hcloud-token" || r.URL.Path != "/servers" {
			w.WriteHeader(401)
			w.Write([]byte(`{"error":{"code":"unauthorized","message":"unable to authenticate"}}`))
			return
		}
		if r.URL.Query().Get("label_selector") != "wisehosting" {
			w.WriteHeader(400)
			return
		}
		if r.URL.Query().Get("page") == "1" {
			w.Write([]byte(`{"servers":[{"id":42,"name":"px1","status":"running","public_net":{"ipv4":{"ip":"203.0.113.20","blocked":false},"ipv6":{"ip":"2001:db8::/64"}},"labels":{"role":"proxy"}}],"meta":{"pagination":{"page":1,"per_page":1,"previous_page":null,"next_page":2,"last_page":2,"total_entries":2}}}`))
			return
		}
		w.Write([]byte(`{"servers":[{"id":43,"name":"w9","status":"running","public_net":{"ipv4":{"ip":"198.51.100.9"}},"labels":{"role":"worker"}}],"meta":{"pagination":{"page":2,"per_page":1,"previous_page":1,"next_page":null,"last_page":2,"total_entries":2}}}`))
	}))
	defer srv.Close()
	h := &Hetzner{TokenFile: tokenFile(t, "hcloud-token"), LabelSelector: "wisehosting", APIURL: srv.URL}
	found, err := DiscoverHetzner(context.Background(), h)
	if err != nil {
		t.Fatal(err)
	}
	if len(found) != 2 || found[0].Name != "px1" || found[0].PublicIP != "203.0.113.20" || found[1].Role != "worker" {
		t.Fatalf("%+v", found)
	}
	c := &Config{Hosts: []Host{{Name: "px1", Role: RoleProxy}}}
	c.Merge(found)
	if len(c.Hosts) != 2 || c.Hosts[0].PublicIP != "203.0.113.20" || c.Hosts[1].Name != "w9" {
		t.Fatalf("merged %+v", c.Hosts)
	}
	h.TokenFile = tokenFile(t, "wrong")
	if _, err := DiscoverHetzner(context.Background(), h, httpx.WithRetry(httpx.RetryConfig{MaxAttempts: 1})); httpx.StatusOf(err) != 401 {
		t.Fatalf("bad token: %v", err)
	}
}

func TestSetupDNSIsIdempotent(t *testing.T) {
	cf := cftest.Start(t, "example.com", "cf-token")
	c, err := Parse([]byte(`
subdomain_base: apps.example.com
dns: {provider: cloudflare, zone: example.com, api_token_file: ` + tokenFile(t, "cf-token") + `, api_url: ` + cf.URL + `}
hosts:
  - {name: px1, role: proxy, public_ip: 203.0.113.20}
  - {name: px2, role: proxy, public_ip: 203.0.113.21}
`))
	if err != nil {
		t.Fatal(err)
	}
	s := &Setup{Config: c}
	ctx := context.Background()
	acts, err := s.Plan(ctx, "dns")
	if err != nil {
		t.Fatal(err)
	}
	if len(acts) != 2 || !strings.Contains(acts[0].Description, "create A *.apps.example.com → 203.0.113.20") {
		t.Fatalf("plan %+v", acts)
	}
	if cf.Writes != 0 {
		t.Fatal("planning (dry run) wrote records")
	}
	if err := Apply(ctx, acts); err != nil {
		t.Fatal(err)
	}
	if cf.Writes != 2 {
		t.Fatalf("%d records written", cf.Writes)
	}
	// Second run: nothing to do.
	acts, _ = s.Plan(ctx, "dns")
	Apply(ctx, acts)
	if cf.Writes != 2 || !strings.Contains(acts[0].Description, "exists") {
		t.Fatalf("not idempotent: %d writes, %+v", cf.Writes, acts)
	}
	if _, err := s.Plan(ctx, "teleport"); err == nil {
		t.Fatal("unknown step accepted")
	}
}

// A fake Robot web service (GET /server, basic auth) fills in the public IP
// of dedicated servers listed by name.
func TestDiscoverHetznerRobot(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		u, p, ok := r.BasicAuth()
		if !ok || u != "#ws+user" || p != "secret" || r.URL.Path != "/server" {
			w.WriteHeader(401)
			w.Write([]byte(`{"error":{"status":401,"code":"UNAUTHORIZED","message":"Unauthorized"}}`))
			return
		}
		w.Write([]byte(`[{"server":{"server_ip":"123.123.123.123","server_ipv6_net":"2a01:f48:111:4221::","server_number":321,"server_name":"w-dedicated","product":"EX 44","dc":"FSN1-DC1","status":"ready","cancelled":false}}]`))
	}))
	defer srv.Close()
	h := &Hetzner{RobotUserFile: tokenFile(t, "#ws+user"), RobotPasswordFile: tokenFile(t, "secret"), RobotAPIURL: srv.URL}
	found, err := DiscoverHetzner(context.Background(), h)
	if err != nil || len(found) != 1 || found[0].PublicIP != "123.123.123.123" {
		t.Fatalf("%+v %v", found, err)
	}
	c := &Config{Hosts: []Host{{Name: "w-dedicated", Role: RoleWorker}}}
	c.Merge(found)
	if len(c.Hosts) != 1 || c.Hosts[0].PublicIP != "123.123.123.123" {
		t.Fatalf("merged %+v", c.Hosts)
	}
}

func TestSetupProxyStep(t *testing.T) {
	c, err := Parse([]byte(`
control_plane_url: https://cp.example.com
proxy: {kind: caddy}
mesh: {cidr: 10.50.0.0/24}
hosts:
  - {name: cp1, role: control-plane, mesh_ip: 10.50.0.1}
  - {name: px1, role: proxy, public_ip: 203.0.113.20, mesh_ip: 10.50.0.2}
`))
	if err != nil {
		t.Fatal(err)
	}
	s := &Setup{Config: c, ProxyDir: t.TempDir()}
	acts, err := s.Plan(context.Background(), "proxy")
	if err != nil || len(acts) != 2 || !strings.Contains(acts[0].Description, "px1.Caddyfile") || !strings.Contains(acts[1].Description, "px1.wisehosting-proxy.service") {
		t.Fatalf("%+v %v", acts, err)
	}
	if err := Apply(context.Background(), acts); err != nil {
		t.Fatal(err)
	}
	b, _ := os.ReadFile(filepath.Join(s.ProxyDir, "px1.Caddyfile"))
	if !strings.Contains(string(b), "control_plane http://10.50.0.1:8080") || !strings.Contains(string(b), "permission wisehosting") ||
		!strings.Contains(string(b), "storage wisehosting_cp") || strings.Contains(string(b), "database") {
		t.Fatalf("%s", b)
	}
	acts, _ = s.Plan(context.Background(), "proxy")
	if !strings.Contains(acts[0].Description, "up to date") {
		t.Fatalf("not idempotent: %+v", acts)
	}
}

func TestSSHArgs(t *testing.T) {
	t.Setenv("HOME", "/home/ops")
	c, err := Parse([]byte(`
hosts:
  - {name: cp1, role: control-plane, public_ip: 203.0.113.10, ssh_user: deploy, ssh_port: 2222, ssh_key: ~/.ssh/wh_ed25519}
  - {name: w1, role: worker, mesh_ip: 10.50.0.11}
  - {name: px1, role: proxy, url: "https://px1.example.com"}
  - {name: bad, role: proxy, public_ip: 203.0.113.9, ssh_user: "-oProxyCommand=x"}
`))
	if err != nil {
		t.Fatal(err)
	}
	for host, want := range map[string]string{
		"cp1": "ssh -p 2222 -i /home/ops/.ssh/wh_ed25519 deploy@203.0.113.10 -- uptime",
		"w1":  "ssh -p 22 root@10.50.0.11 -- uptime",
	} {
		args, err := c.SSHArgs(host, "uptime")
		if got := strings.Join(args, " "); err != nil || got != want {
			t.Errorf("%s: %q %v, want %q", host, got, err, want)
		}
	}
	if args, _ := c.SSHArgs("w1"); len(args) != 4 {
		t.Errorf("no command: %v", args)
	}
	for _, host := range []string{"px1", "bad", "nope"} {
		if args, err := c.SSHArgs(host); err == nil {
			t.Errorf("%s: %v accepted", host, args)
		}
	}
}
