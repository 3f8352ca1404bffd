package dnsprov

import (
	"context"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/wisehosting/wisehosting/internal/dnsprov/cftest"
	"github.com/wisehosting/wisehosting/internal/httpx"
)

func TestCloudflareEnsureListDelete(t *testing.T) {
	cf := cftest.Start(t, "example.com", "cf-token")
	p, err := New("cloudflare", "cf-token", cf.URL)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if err := EnsureRecord(ctx, p, "example.com", "*.apps", "A", "203.0.113.20", 5*time.Minute); err != nil {
		t.Fatal(err)
	}
	// Idempotent.
	writes := cf.Writes
	if err := EnsureRecord(ctx, p, "example.com", "*.apps", "A", "203.0.113.20", 5*time.Minute); err != nil {
		t.Fatal(err)
	}
	if cf.Writes != writes {
		t.Fatalf("ensuring an existing record wrote %d times", cf.Writes-writes)
	}
	// Update in place.
	if err := EnsureRecord(ctx, p, "example.com", "*.apps", "A", "203.0.113.21", 5*time.Minute); err != nil {
		t.Fatal(err)
	}
	recs := cf.Records()
	if len(recs) != 1 || recs[0].Name != "*.apps.example.com" || recs[0].Content != "203.0.113.21" || recs[0].TTL != 300 {
		t.Fatalf("records %+v", recs)
	}
	got, err := p.GetRecords(ctx, "example.com")
	if err != nil || len(got) != 1 || got[0].RR().Name != "*.apps" || got[0].RR().Data != "203.0.113.21" {
		t.Fatalf("get %+v %v", got, err)
	}
	// The record really resolves.
	r := &net.Resolver{PreferGo: true, Dial: func(ctx context.Context, n, _ string) (net.Conn, error) {
		return (&net.Dialer{}).DialContext(ctx, n, cf.DNSAddr)
	}}
	if ips, err := r.LookupHost(ctx, "myapp.apps.example.com"); err != nil || len(ips) != 1 || ips[0] != "203.0.113.21" {
		t.Fatalf("resolve %v %v", ips, err)
	}
	// ACME challenge set and clear.
	if err := SetACMEChallenge(ctx, p, "example.com", "*.apps.example.com", "digest123"); err != nil {
		t.Fatal(err)
	}
	if txt, err := r.LookupTXT(ctx, "_acme-challenge.apps.example.com"); err != nil || len(txt) != 1 || txt[0] != "digest123" {
		t.Fatalf("challenge %v %v", txt, err)
	}
	if err := ClearACMEChallenge(ctx, p, "example.com", "*.apps.example.com", "digest123"); err != nil {
		t.Fatal(err)
	}
	if err := DeleteRecord(ctx, p, "example.com", "*.apps", "A"); err != nil {
		t.Fatal(err)
	}
	if n := len(cf.Records()); n != 0 {
		t.Fatalf("%d records left", n)
	}
	// Errors surface with the provider's message.
	bad, _ := New("cloudflare", "wrong", cf.URL, httpx.WithRetry(httpx.RetryConfig{MaxAttempts: 1}))
	if _, err := bad.GetRecords(ctx, "example.com"); httpx.StatusOf(err) != 403 {
		t.Fatalf("bad token: %v", err)
	}
	if _, err := p.GetRecords(ctx, "unknown.org"); err == nil || !strings.Contains(err.Error(), "not found") {
		t.Fatalf("unknown zone: %v", err)
	}
	if _, err := New("route66", "x", ""); err == nil {
		t.Fatal("unknown provider accepted")
	}
}

// Provider options are checked by the provider: a misspelt one is an error
// that names it, not a silently ignored setting.
func TestProviderOptionsChecked(t *testing.T) {
	_, err := Open("cloudflare", Config{Token: "t", Options: map[string]string{"zone_tokn": "x"}})
	if err == nil || !strings.Contains(err.Error(), `"zone_tokn"`) {
		t.Fatalf("unknown option: %v", err)
	}
	if _, err := Open("cloudflare", Config{Token: "t", APIURL: "ftp://127.0.0.1"}); err != nil {
		t.Fatal(err) // the client is built lazily; the bad root is refused on first use
	}
}
