package infra_test

import (
	"context"
	"crypto/x509"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/wisehosting/wisehosting/agent/transport"
	"github.com/wisehosting/wisehosting/caddymodules/cptest"
	whinfra "github.com/wisehosting/wisehosting/caddymodules/infra"
	"github.com/wisehosting/wisehosting/internal/infra"
	"github.com/wisehosting/wisehosting/internal/pgtest"
	"github.com/wisehosting/wisehosting/internal/workers"
)

// dnsServer answers A queries under zone with ips, on loopback.
func dnsServer(t *testing.T, zone string, ips ...string) string {
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &dns.Server{PacketConn: pc, Handler: dns.HandlerFunc(func(w dns.ResponseWriter, r *dns.Msg) {
		m := new(dns.Msg)
		m.SetReply(r)
		q := r.Question[0]
		if q.Qtype == dns.TypeA && strings.HasSuffix(q.Name, "."+zone+".") {
			for _, ip := range ips {
				m.Answer = append(m.Answer, &dns.A{Hdr: dns.RR_Header{Name: q.Name, Rrtype: dns.TypeA, Class: dns.ClassINET, Ttl: 60}, A: net.ParseIP(ip)})
			}
		} else if q.Qtype != dns.TypeA {
			// no AAAA records
		} else {
			m.Rcode = dns.RcodeNameError
		}
		w.WriteMsg(m)
	})}
	go srv.ActivateAndServe()
	t.Cleanup(func() { srv.Shutdown() })
	return pc.LocalAddr().String()
}

// infra status against a running control plane with a connected agent, a
// TLS proxy and a DNS server, all on loopback.
func TestInfraStatusAgainstRunningSystem(t *testing.T) {
	db := pgtest.New(t)
	cp := cptest.Start(t, db, cptest.Options{})
	ctx := context.Background()
	_, key, err := workers.Add(ctx, db.Pool, cptest.Keyring(t), "worker-1", "", "")
	if err != nil {
		t.Fatal(err)
	}
	workers.Add(ctx, db.Pool, cptest.Keyring(t), "worker-2", "", "") // registered, never connected
	agent, _ := transport.New(transport.Config{URL: cp.URL, APIKey: key})
	actx, cancel := context.WithCancel(ctx)
	defer cancel()
	go agent.Run(actx)

	proxy := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(404) }))
	defer proxy.Close()
	roots := x509.NewCertPool()
	roots.AddCert(proxy.Certificate())
	resolver := dnsServer(t, "apps.test", "127.0.0.1")

	cfg, err := infra.Parse([]byte(fmt.Sprintf(`
subdomain_base: apps.test
control_plane_url: %s
dns:
  resolver: %s
mesh:
  cidr: 10.50.0.0/24
hosts:
  - {name: cp1, role: control-plane, mesh_ip: 10.50.0.1}
  - {name: proxy1, role: proxy, public_ip: 127.0.0.1, url: %s}
  - {name: worker-1, role: worker, mesh_ip: 10.50.0.11}
  - {name: worker-2, role: worker, mesh_ip: 10.50.0.12}
  - {name: worker-3, role: worker, mesh_ip: 10.50.0.13}
`, cp.URL, resolver, proxy.URL)))
	if err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for agent.Connects() == 0 && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	ch := &infra.Checker{Config: cfg, Workers: whinfra.WorkerSource(db.Pool), Roots: roots}
	results := ch.Run(ctx)
	got := map[string]infra.Result{}
	for _, r := range results {
		got[r.Host+"/"+r.Check] = r
	}
	expect := map[string]bool{
		"cp1/health":                  true,
		"proxy1/serving":              true,
		"proxy1/certificate":          true, // httptest certs are valid for years
		"worker-1/connected":          true,
		"worker-2/connected":          false, // never connected
		"worker-3/connected":          false, // not registered
		"*.apps.test/wildcard record": true,
	}
	for k, ok := range expect {
		r, found := got[k]
		if !found {
			t.Errorf("no result for %s (have %v)", k, results)
			continue
		}
		if r.OK != ok {
			t.Errorf("%s: ok=%v (%s), want %v", k, r.OK, r.Detail, ok)
		}
	}
	if !strings.Contains(got["worker-3/connected"].Detail, "worker add worker-3") {
		t.Errorf("unregistered worker hint: %q", got["worker-3/connected"].Detail)
	}
	var sb strings.Builder
	if infra.Print(&sb, results) {
		t.Error("Print reported success despite failing checks")
	}
	if !strings.Contains(sb.String(), "HOST") || !strings.Contains(sb.String(), "FAIL") {
		t.Errorf("table:\n%s", sb.String())
	}

	// The control plane goes away: its check fails, the others still run.
	cfg.ControlPlaneURL = "http://" + cptest.FreeAddr(t)
	cfg.Hosts[0].URL = ""
	results = ch.Run(ctx)
	for _, r := range results {
		if r.Host == "cp1" && r.OK {
			t.Fatal("dead control plane reported healthy")
		}
	}
}
