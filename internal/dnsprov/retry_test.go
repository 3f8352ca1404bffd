package dnsprov

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/libdns/libdns"

	"github.com/wisehosting/wisehosting/internal/dnsprov/cftest"
	"github.com/wisehosting/wisehosting/internal/httpx"
)

var fastRetry = httpx.WithRetry(httpx.RetryConfig{MaxAttempts: 4, BaseDelay: 5 * time.Millisecond, MaxDelay: 20 * time.Millisecond})

// Rate limits and outages of the provider are retried by the shared
// client; a persistent failure surfaces with its status.
func TestCloudflareRetriesThroughSharedClient(t *testing.T) {
	t.Parallel()
	cf := cftest.Start(t, "example.com", "cf-token")
	p, err := New("cloudflare", "cf-token", cf.URL, fastRetry)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	cf.FailNext(http.StatusTooManyRequests, http.StatusBadGateway)
	if err := EnsureRecord(ctx, p, "example.com", "www", "CNAME", "proxy.example.net.", time.Hour); err != nil {
		t.Fatalf("ensure after 429 and 502: %v", err)
	}
	if recs := cf.Records(); len(recs) != 1 || recs[0].Content != "proxy.example.net." && recs[0].Content != "proxy.example.net" {
		t.Fatalf("records %+v", recs)
	}
	if cf.Requests < 5 { // zone lookup ×3, list, create
		t.Fatalf("only %d requests: the failures were not retried", cf.Requests)
	}

	cf.FailNext(503, 503, 503, 503)
	before := cf.Requests
	_, err = p.GetRecords(ctx, "example.com")
	if httpx.StatusOf(err) != 503 {
		t.Fatalf("persistent outage: %v", err)
	}
	if n := cf.Requests - before; n != 4 {
		t.Fatalf("%d attempts, want 4", n)
	}
	// A refused write (4xx) is not retried.
	cf.FailNext(400)
	before = cf.Requests
	if err := EnsureRecord(ctx, p, "example.com", "api", "A", "203.0.113.9", time.Hour); httpx.StatusOf(err) != 400 {
		t.Fatalf("bad request: %v", err)
	}
	if n := cf.Requests - before; n != 1 {
		t.Fatalf("a 400 was tried %d times", n)
	}
}

// Records from the provider's API are untrusted input: listing any of them
// through the library must not panic, and a record it returns keeps its
// type and, for a name inside the zone, its name.
func FuzzCloudflareRecord(f *testing.F) {
	for _, s := range []string{
		`{"id":"r1","type":"A","name":"www.example.com","content":"203.0.113.1","ttl":1}`,
		`{"id":"r2","type":"TXT","name":"_acme-challenge.example.com","content":"\"abc\"","ttl":120}`,
		`{"id":"r3","type":"CNAME","name":"example.com","content":"x.example.net","ttl":300}`,
		`{"id":"r4","type":"MX","name":"example.com","content":"mail.example.com","ttl":300}`,
		`{"id":"r5","type":"AAAA","name":"v6.example.com","content":"not-an-ip","ttl":-5}`,
	} {
		f.Add(s)
	}
	cf := cftest.Start(f, "example.com", "cf-token")
	p, err := New("cloudflare", "cf-token", cf.URL, httpx.WithRetry(httpx.RetryConfig{MaxAttempts: 1}))
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, s string) {
		var rec cftest.Record
		if err := json.Unmarshal([]byte(s), &rec); err != nil {
			return
		}
		cf.Clear()
		cf.Add(rec)
		got, err := p.GetRecords(context.Background(), "example.com")
		if err != nil || len(got) == 0 {
			return
		}
		if len(got) != 1 {
			t.Fatalf("one record listed as %d", len(got))
		}
		rr := got[0].RR()
		if rr.Type != rec.Type {
			t.Fatalf("type %q became %q", rec.Type, rr.Type)
		}
		// Cloudflare answers names lower-case, fully qualified, without
		// the trailing dot; only those must keep their name.
		name := rec.Name
		if name != strings.ToLower(name) || name != "example.com" && !strings.HasSuffix(name, ".example.com") ||
			strings.HasPrefix(name, ".") || strings.Contains(name, "..") {
			return
		}
		if abs := strings.TrimSuffix(libdns.AbsoluteName(rr.Name, "example.com."), "."); !strings.EqualFold(abs, name) {
			t.Fatalf("name %q listed as %q", rec.Name, rr.Name)
		}
	})
}

func BenchmarkEnsureRecordUnchanged(b *testing.B) {
	cf := cftest.Start(b, "example.com", "cf-token")
	p, _ := New("cloudflare", "cf-token", cf.URL)
	ctx := context.Background()
	if err := EnsureRecord(ctx, p, "example.com", "*.apps", "A", "203.0.113.20", 5*time.Minute); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if err := EnsureRecord(ctx, p, "example.com", "*.apps", "A", "203.0.113.20", 5*time.Minute); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkACMEChallengeSetClear(b *testing.B) {
	cf := cftest.Start(b, "example.com", "cf-token")
	p, _ := New("cloudflare", "cf-token", cf.URL)
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		if err := SetACMEChallenge(ctx, p, "example.com", "*.apps.example.com", "digest"); err != nil {
			b.Fatal(err)
		}
		if err := ClearACMEChallenge(ctx, p, "example.com", "*.apps.example.com", "digest"); err != nil {
			b.Fatal(err)
		}
	}
}

// Providers are pluggable: another registered name is built with the same
// configuration path the Cloudflare one uses.
func TestRegistry(t *testing.T) {
	var got Config
	Register("test-registry", func(c Config) (Provider, error) {
		got = c
		return &Cloudflare{APIToken: c.Token, APIURL: c.APIURL}, nil
	})
	p, err := New("test-registry", "tok", "http://127.0.0.1:9/api", fastRetry)
	if err != nil || p == nil || got.Token != "tok" || got.APIURL != "http://127.0.0.1:9/api" || len(got.HTTPOptions) != 1 {
		t.Fatalf("%v %v %+v", p, err, got)
	}
	if names := strings.Join(Names(), ","); !strings.Contains(names, "cloudflare") || !strings.Contains(names, "test-registry") {
		t.Fatalf("names %s", names)
	}
	if _, err := New("route66", "x", ""); err == nil || !strings.Contains(err.Error(), "cloudflare") {
		t.Fatalf("unknown provider: %v", err)
	}
	if _, err := New("cloudflare", "", ""); err == nil {
		t.Fatal("cloudflare without a token accepted")
	}
	defer func() {
		if recover() == nil {
			t.Fatal("duplicate registration accepted")
		}
	}()
	Register("cloudflare", nil)
}
