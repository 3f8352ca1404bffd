package proxy_test

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/wisehosting/wisehosting/caddymodules/cptest"
	"github.com/wisehosting/wisehosting/internal/dnsprov/cftest"
	"github.com/wisehosting/wisehosting/internal/dnsprov/cloudnstest"
	"github.com/wisehosting/wisehosting/internal/network"
	"github.com/wisehosting/wisehosting/internal/peers"
)

// pebble starts the ACME test CA on loopback and returns its directory URL,
// the root of the certificates it issues and its own CA file.
func pebble(t *testing.T, dnsServer string) (dir string, issuedRoots *x509.CertPool, caFile string) {
	p := peers.StartPebble(t, dnsServer)
	return p.Directory, p.Issued, p.CAFile
}

// Pebble issues the proxy mode a certificate on demand for a verified
// custom domain; an unverified domain gets none (permission refused).
func TestOnDemandCertificateFromPebble(t *testing.T) {
	f := setup(t)
	ctx := context.Background()
	site := backend(t, "site", nil)
	app := f.addApp(t, "site", port(site))
	f.db.Pool.Exec(ctx, "INSERT INTO domains (app_id, hostname, token, verified_at) VALUES ($1, 'www.customer.test', 't1', now())", app)
	f.db.Pool.Exec(ctx, "INSERT INTO domains (app_id, hostname, token) VALUES ($1, 'pending.customer.test', 't2')", app)
	network.NotifyChanged(ctx, f.db.Pool)

	acmeDir, roots, caFile := pebble(t, "")
	dir := t.TempDir()
	addr := cptest.FreeAddr(t)
	p := addr[strings.LastIndex(addr, ":")+1:]
	cfg := fmt.Sprintf(`{
	admin off
	http_port %[7]d
	storage file_system %[1]s/data
	email ops@customer.test
	on_demand_tls {
		permission wisehosting
	}
	wisehosting_proxy {
		control_plane %[2]s
		token %[3]s
		cache_file %[1]s/routes.json
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
`, dir, f.cpURL, cptest.ProxyToken, p, acmeDir, caFile, peers.FreePort(t))
	runProxy(t, dir, cfg, addr)

	get := func(host string) (string, error) {
		tr := &http.Transport{
			TLSClientConfig: &tls.Config{RootCAs: roots, ServerName: host},
			DialContext: func(ctx context.Context, network, _ string) (net.Conn, error) {
				return (&net.Dialer{}).DialContext(ctx, network, addr)
			},
		}
		c := &http.Client{Transport: tr, Timeout: 30 * time.Second}
		resp, err := c.Get("https://" + host + "/hello")
		if err != nil {
			return "", err
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return string(b), nil
	}
	// The proxy needs the table first.
	waitFor(t, "routing table", 10*time.Second, func() bool {
		_, err := os.Stat(filepath.Join(dir, "routes.json"))
		return err == nil
	})
	body, err := get("www.customer.test")
	if err != nil {
		b, _ := os.ReadFile(filepath.Join(dir, "proxy.log"))
		t.Fatalf("verified domain: %v\n%s", err, b)
	}
	if body != "site /hello" {
		t.Fatalf("body %q", body)
	}
	if _, err := get("pending.customer.test"); err == nil {
		t.Fatal("an unverified domain got a certificate")
	}
	if _, err := get("random.example.org"); err == nil {
		t.Fatal("a stranger's name got a certificate")
	}
}

// DNS-01 end to end: the wildcard certificate of the app zone, with the
// challenge record written through the Cloudflare API (a stand-in speaking
// its JSON) and validated by Pebble over real DNS.
func TestWildcardCertificateByDNS01(t *testing.T) {
	cf := cftest.Start(t, "apps.test", "cf-token")
	wildcardByDNS01(t, cf.DNSAddr, "cloudflare {\n\t\t\tapi_token cf-token\n\t\t\tapi_url "+cf.URL+"\n\t\t}", func() (challenges, writes int) {
		for _, r := range cf.Records() {
			if strings.HasPrefix(r.Name, "_acme-challenge") {
				challenges++
			}
		}
		return challenges, cf.Writes
	})
}

// The same through CloudNS (its API's stand-in), a sub-user's credentials.
func TestWildcardCertificateByDNS01CloudNS(t *testing.T) {
	cn := cloudnstest.Start(t, "apps.test", "4321", "987", "cn-pass")
	wildcardByDNS01(t, cn.DNSAddr, "cloudns {\n\t\t\tapi_token cn-pass\n\t\t\tsub_auth_id 987\n\t\t\tapi_url "+cn.URL+"\n\t\t}", func() (challenges, writes int) {
		for _, r := range cn.Records() {
			if strings.HasPrefix(r.Host, "_acme-challenge") {
				challenges++
			}
		}
		return challenges, cn.Writes
	})
}

// wildcardByDNS01 runs the proxy with `dns wisehosting <provider>` against
// Pebble resolving through dnsAddr, and checks the wildcard certificate
// and that the challenge went through the provider's API and was removed.
func wildcardByDNS01(t *testing.T, dnsAddr, provider string, state func() (challenges, writes int)) {
	acmeDir, roots, caFile := pebble(t, dnsAddr)
	dir := t.TempDir()
	addr := cptest.FreeAddr(t)
	p := addr[strings.LastIndex(addr, ":")+1:]
	cfg := fmt.Sprintf(`{
	admin off
	http_port %[7]d
	storage file_system %[1]s/data
	email ops@apps.test
}
https://*.apps.test:%[2]s {
	bind 127.0.0.1
	tls {
		ca %[3]s
		ca_root %[4]s
		dns wisehosting %[5]s
		resolvers %[6]s
		propagation_delay 0
	}
	respond "wildcard {host}"
}
`, dir, p, acmeDir, caFile, provider, dnsAddr, peers.FreePort(t))
	runProxy(t, dir, cfg, addr)
	t.Cleanup(func() {
		if t.Failed() {
			b, _ := os.ReadFile(filepath.Join(dir, "proxy.log"))
			t.Logf("proxy log:\n%s", b)
		}
	})

	var cs tls.ConnectionState
	waitFor(t, "wildcard certificate", 40*time.Second, func() bool {
		conn, err := tls.DialWithDialer(&net.Dialer{Timeout: 2 * time.Second}, "tcp", addr, &tls.Config{RootCAs: roots, ServerName: "myapp.apps.test"})
		if err != nil {
			return false
		}
		defer conn.Close()
		cs = conn.ConnectionState()
		return true
	})
	leaf := cs.PeerCertificates[0]
	if len(leaf.DNSNames) != 1 || leaf.DNSNames[0] != "*.apps.test" {
		t.Fatalf("certificate names %v", leaf.DNSNames)
	}
	// The challenge record was cleaned up afterwards.
	waitFor(t, "challenge record removed", 10*time.Second, func() bool {
		n, _ := state()
		return n == 0
	})
	if _, writes := state(); writes < 2 {
		t.Fatalf("the challenge never went through the API (%d writes)", writes)
	}
}
