package dnsprov

import (
	"context"
	"encoding/json"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/wisehosting/wisehosting/internal/dnsprov/cloudnstest"
	"github.com/wisehosting/wisehosting/internal/httpx"
)

func openCloudNS(t testing.TB, cn *cloudnstest.Server, opts map[string]string, password string, h ...httpx.Option) Provider {
	t.Helper()
	p, err := Open("cloudns", Config{Token: password, Options: opts, APIURL: cn.URL, HTTPOptions: h})
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func TestCloudNSEnsureListDelete(t *testing.T) {
	t.Parallel()
	cn := cloudnstest.Start(t, "example.com", "4321", "987", "cn-pass")
	p := openCloudNS(t, cn, map[string]string{"auth_id": "4321"}, "cn-pass")
	ctx := context.Background()

	// An empty zone lists as [] (not {}).
	if recs, err := p.GetRecords(ctx, "example.com"); err != nil || len(recs) != 0 {
		t.Fatalf("empty zone: %v %v", recs, err)
	}
	if err := EnsureRecord(ctx, p, "example.com", "*.apps", "A", "203.0.113.20", 5*time.Minute); err != nil {
		t.Fatal(err)
	}
	writes := cn.Writes
	if err := EnsureRecord(ctx, p, "example.com", "*.apps", "A", "203.0.113.20", 5*time.Minute); err != nil {
		t.Fatal(err)
	}
	if cn.Writes != writes {
		t.Fatalf("ensuring an existing record wrote %d times", cn.Writes-writes)
	}
	id := cn.Records()[0].ID
	if err := EnsureRecord(ctx, p, "example.com", "*.apps", "A", "203.0.113.21", 5*time.Minute); err != nil {
		t.Fatal(err)
	}
	recs := cn.Records()
	if len(recs) != 1 || recs[0].ID != id || recs[0].Host != "*.apps" || recs[0].Record != "203.0.113.21" || recs[0].TTL != 300 {
		t.Fatalf("not changed in place: %+v", recs)
	}
	got, err := p.GetRecords(ctx, "example.com.")
	if err != nil || len(got) != 1 || got[0].RR().Name != "*.apps" || got[0].RR().Data != "203.0.113.21" || got[0].RR().TTL != 5*time.Minute {
		t.Fatalf("get %+v %v", got, err)
	}
	// TTLs outside the API's list are raised to the next one it accepts;
	// the apex is host "".
	if err := EnsureRecord(ctx, p, "example.com", "@", "MX", "10 mail.example.com.", 2*time.Minute); err != nil {
		t.Fatal(err)
	}
	for _, r := range cn.Records() {
		if r.Type == "MX" && (r.Host != "" || r.TTL != 300 || r.Priority != 10 || r.Record != "mail.example.com") {
			t.Fatalf("MX stored as %+v", r)
		}
	}
	// The records really resolve.
	res := &net.Resolver{PreferGo: true, Dial: func(ctx context.Context, n, _ string) (net.Conn, error) {
		return (&net.Dialer{}).DialContext(ctx, n, cn.DNSAddr)
	}}
	if ips, err := res.LookupHost(ctx, "myapp.apps.example.com"); err != nil || len(ips) != 1 || ips[0] != "203.0.113.21" {
		t.Fatalf("resolve %v %v", ips, err)
	}
	// ACME challenge set and clear; the minute TTL is the API's minimum.
	if err := SetACMEChallenge(ctx, p, "example.com", "*.apps.example.com", "digest123"); err != nil {
		t.Fatal(err)
	}
	if txt, err := res.LookupTXT(ctx, "_acme-challenge.apps.example.com"); err != nil || len(txt) != 1 || txt[0] != "digest123" {
		t.Fatalf("challenge %v %v", txt, err)
	}
	if err := ClearACMEChallenge(ctx, p, "example.com", "*.apps.example.com", "digest123"); err != nil {
		t.Fatal(err)
	}
	if err := DeleteRecord(ctx, p, "example.com", "*.apps", "A"); err != nil {
		t.Fatal(err)
	}
	if err := DeleteRecord(ctx, p, "example.com", "@", "MX"); err != nil {
		t.Fatal(err)
	}
	if n := len(cn.Records()); n != 0 {
		t.Fatalf("%d records left: %+v", n, cn.Records())
	}

	// A sub-user (sub-auth-id) works the same.
	sub := openCloudNS(t, cn, map[string]string{"sub_auth_id": "987"}, "cn-pass")
	if err := EnsureRecord(ctx, sub, "example.com", "www", "CNAME", "proxy.example.net.", time.Hour); err != nil {
		t.Fatal(err)
	}
	// Failures come as HTTP 200 with "status": "Failed".
	bad := openCloudNS(t, cn, map[string]string{"auth_id": "4321"}, "wrong")
	if _, err := bad.GetRecords(ctx, "example.com"); err == nil || !strings.Contains(err.Error(), "Invalid authentication") {
		t.Fatalf("bad password: %v", err)
	}
	if _, err := p.GetRecords(ctx, "unknown.org"); err == nil || !strings.Contains(err.Error(), "Invalid domain-name") {
		t.Fatalf("unknown zone: %v", err)
	}
	zones, err := p.(*CloudNS).ListZones(ctx)
	if err != nil || len(zones) != 1 || zones[0].Name != "example.com." {
		t.Fatalf("zones %v %v", zones, err)
	}
	cn.HideZones = true // answered {}
	if zones, err := p.(*CloudNS).ListZones(ctx); err != nil || len(zones) != 0 {
		t.Fatalf("no zones: %v %v", zones, err)
	}
	for _, opts := range []map[string]string{nil, {"auth_id": "1", "sub_auth_id": "2"}, {"auth-id": "1"}} {
		if _, err := Open("cloudns", Config{Token: "x", Options: opts}); err == nil {
			t.Fatalf("options %v accepted", opts)
		}
	}
}

// Rate limits and outages are retried by the shared client; the password
// never shows in an error, even one quoting the request URL.
func TestCloudNSRetriesAndRedacts(t *testing.T) {
	t.Parallel()
	cn := cloudnstest.Start(t, "example.com", "4321", "", "s3cret&pass")
	p := openCloudNS(t, cn, map[string]string{"auth_id": "4321"}, "s3cret&pass", fastRetry)
	ctx := context.Background()
	cn.FailNext(http.StatusTooManyRequests, http.StatusBadGateway)
	if err := EnsureRecord(ctx, p, "example.com", "api", "A", "203.0.113.9", time.Hour); err != nil {
		t.Fatalf("ensure after 429 and 502: %v", err)
	}
	if len(cn.Records()) != 1 || cn.Requests != 5 { // list ×3, list, add
		t.Fatalf("%d requests, records %+v", cn.Requests, cn.Records())
	}
	cn.FailNext(503, 503, 503, 503)
	before := cn.Requests
	if _, err := p.GetRecords(ctx, "example.com"); httpx.StatusOf(err) != 503 || cn.Requests-before != 4 {
		t.Fatalf("persistent outage: %v after %d attempts", err, cn.Requests-before)
	}
	down := openCloudNS(t, cn, map[string]string{"auth_id": "4321"}, "s3cret&pass", httpx.WithRetry(httpx.RetryConfig{MaxAttempts: 1}))
	down.(*CloudNS).APIURL = "http://127.0.0.1:1"
	_, err := down.GetRecords(ctx, "example.com")
	if err == nil || strings.Contains(err.Error(), "s3cret") || !strings.Contains(err.Error(), "REDACTED") {
		t.Fatalf("network error: %v", err)
	}
}

// Record listings are untrusted input: any answer must parse or fail
// without a panic, and a parsed record keeps its type.
func FuzzCloudNSRecords(f *testing.F) {
	for _, s := range []string{
		`[]`, `{}`,
		`{"1":{"id":"1","type":"A","host":"www","record":"203.0.113.1","ttl":"3600","status":1}}`,
		`{"2":{"id":"2","type":"MX","host":"","record":"mail.example.com","priority":"10","ttl":"300"}}`,
		`{"3":{"id":"3","type":"SRV","host":"_sip._tcp","record":"sip.example.com","priority":"1","weight":"5","port":"5060","ttl":"60"}}`,
		`{"4":{"type":"TXT","host":"_acme-challenge","record":"abc","ttl":60}}`,
		`{"status":"Failed","statusDescription":"x"}`,
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		recs, err := parseCloudNSRecords([]byte(s))
		if err != nil {
			return
		}
		for _, r := range recs {
			rec := r.libdns()
			if rec == nil || rec.RR().Type != r.Type {
				t.Fatalf("%+v became %+v", r, rec)
			}
			if _, err := json.Marshal(cloudnsParams("example.com", rec)); err != nil {
				t.Fatal(err)
			}
		}
	})
}
