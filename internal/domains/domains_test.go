package domains

import (
	"context"
	"errors"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/miekg/dns"

	"github.com/wisehosting/wisehosting/internal/errs"
	"github.com/wisehosting/wisehosting/internal/events"
	"github.com/wisehosting/wisehosting/internal/pgtest"
	"github.com/wisehosting/wisehosting/internal/plans"
)

func TestNormalize(t *testing.T) {
	for in, want := range map[string]string{
		"www.Example.com":   "www.example.com",
		"example.com.":      "example.com",
		"bücher.example":    "xn--bcher-kva.example",
		"  shop.acme.io  ":  "shop.acme.io",
		"a-b.c-d.example":   "a-b.c-d.example",
		"xn--bcher-kva.com": "xn--bcher-kva.com",
	} {
		got, err := Normalize(in, "apps.example.net")
		if err != nil || got != want {
			t.Errorf("%q: %q %v, want %q", in, got, err, want)
		}
	}
	for _, bad := range []string{
		"", "localhost", "10.0.0.1", "[::1]", "::1", "https://example.com", "example.com/path", "example.com:443",
		"user@example.com", "-bad.example.com", "bad-.example.com", "a..example.com", "*.example.com",
		"apps.example.net", "myapp.apps.example.net", "example.123", "ex ample.com", "exa_mple.com",
		strings.Repeat("a", 64) + ".com", strings.Repeat("abcdefghi.", 26) + "com",
	} {
		if got, err := Normalize(bad, "apps.example.net"); err == nil {
			t.Errorf("%q accepted as %q", bad, got)
		} else if !errs.Is(err, errs.Invalid) {
			t.Errorf("%q: error %T is not an errs.Invalid", bad, err)
		}
	}
}

func FuzzNormalize(f *testing.F) {
	for _, s := range []string{"www.example.com", "bücher.example", "10.0.0.1", "a..b", "xn--zz.com"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		out, err := Normalize(s, "apps.example.net")
		if err != nil {
			return
		}
		if out != strings.ToLower(out) || strings.HasSuffix(out, ".apps.example.net") || strings.ContainsAny(out, " /:@*") || len(out) > 253 {
			t.Fatalf("%q normalized to invalid %q", s, out)
		}
		if again, err := Normalize(out, "apps.example.net"); err != nil || again != out {
			t.Fatalf("not idempotent: %q → %q → %q %v", s, out, again, err)
		}
	})
}

// zone is a tiny authoritative DNS server on loopback.
type zone struct {
	mu   sync.Mutex
	txt  map[string][]string
	a    map[string]string
	addr string
}

func newZone(t testing.TB) *zone {
	z := &zone{txt: map[string][]string{}, a: map[string]string{}}
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &dns.Server{PacketConn: pc, Handler: dns.HandlerFunc(func(w dns.ResponseWriter, r *dns.Msg) {
		m := new(dns.Msg)
		m.SetReply(r)
		q := r.Question[0]
		name := strings.TrimSuffix(strings.ToLower(q.Name), ".")
		z.mu.Lock()
		defer z.mu.Unlock()
		switch {
		case q.Qtype == dns.TypeTXT && z.txt[name] != nil:
			for _, v := range z.txt[name] { // one record per value
				m.Answer = append(m.Answer, &dns.TXT{Hdr: dns.RR_Header{Name: q.Name, Rrtype: dns.TypeTXT, Class: dns.ClassINET, Ttl: 60}, Txt: []string{v}})
			}
		case q.Qtype == dns.TypeA && z.a[name] != "":
			m.Answer = append(m.Answer, &dns.A{Hdr: dns.RR_Header{Name: q.Name, Rrtype: dns.TypeA, Class: dns.ClassINET, Ttl: 60}, A: net.ParseIP(z.a[name])})
		case z.txt[name] == nil && z.a[name] == "":
			m.Rcode = dns.RcodeNameError
		}
		w.WriteMsg(m)
	})}
	go srv.ActivateAndServe()
	t.Cleanup(func() { srv.Shutdown() })
	z.addr = pc.LocalAddr().String()
	return z
}

// silent is a "DNS server" that never answers.
func silent(t *testing.T) string {
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { pc.Close() })
	go func() {
		buf := make([]byte, 512)
		for {
			if _, _, err := pc.ReadFrom(buf); err != nil {
				return
			}
		}
	}()
	return pc.LocalAddr().String()
}

type fixture struct {
	db           *pgtest.DB
	svc          *Service
	teamA, teamB int64
	appA, appB   int64
}

// emitted lists the kinds of the events in the outbox, oldest first.
func (f *fixture) emitted(t *testing.T) []string {
	t.Helper()
	rows, _ := f.db.Pool.Query(context.Background(), "SELECT kind FROM event_outbox ORDER BY id")
	kinds, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		t.Fatal(err)
	}
	return kinds
}

func setup(t *testing.T, resolvers ...string) *fixture {
	db := pgtest.New(t)
	f := &fixture{db: db}
	f.svc = &Service{Pool: db.Pool, SubdomainBase: "apps.example.net", Verifier: &Verifier{Resolvers: resolvers, Timeout: time.Second}}
	ctx := context.Background()
	db.Pool.QueryRow(ctx, "INSERT INTO teams (name, slug) VALUES ('a', 'a') RETURNING id").Scan(&f.teamA)
	db.Pool.QueryRow(ctx, "INSERT INTO teams (name, slug) VALUES ('b', 'b') RETURNING id").Scan(&f.teamB)
	db.Pool.QueryRow(ctx, "INSERT INTO apps (team_id, slug, name) VALUES ($1, 'a1', 'a1') RETURNING id", f.teamA).Scan(&f.appA)
	db.Pool.QueryRow(ctx, "INSERT INTO apps (team_id, slug, name) VALUES ($1, 'b1', 'b1') RETURNING id", f.teamB).Scan(&f.appB)
	return f
}

func TestAddVerifyRemove(t *testing.T) {
	t.Parallel()
	z := newZone(t)
	f := setup(t, z.addr)
	ctx := context.Background()
	d, err := f.svc.Add(ctx, f.teamA, f.appA, "WWW.Customer.com")
	if err != nil {
		t.Fatal(err)
	}
	if d.Hostname != "www.customer.com" || len(d.Token) != 64 || d.VerifiedAt != nil {
		t.Fatalf("%+v", d)
	}
	if !strings.Contains(d.Instructions(), "_wisehosting.www.customer.com") {
		t.Fatal(d.Instructions())
	}
	// Taken by anyone else, in any team.
	if _, err := f.svc.Add(ctx, f.teamB, f.appB, "www.customer.com"); err == nil || !strings.Contains(err.Error(), "already used") {
		t.Fatalf("duplicate: %v", err)
	}
	// No record yet.
	_, err = f.svc.Verify(ctx, f.teamA, d.ID)
	if !errors.Is(err, ErrNoRecord) {
		t.Fatalf("no record: %v", err)
	}
	var lastErr string
	f.db.Pool.QueryRow(ctx, "SELECT last_error FROM domains WHERE id = $1", d.ID).Scan(&lastErr)
	if !strings.Contains(lastErr, "no TXT record") {
		t.Fatalf("last_error %q", lastErr)
	}
	// Wrong value.
	z.mu.Lock()
	z.txt["_wisehosting.www.customer.com"] = []string{"someone-elses-token"}
	z.mu.Unlock()
	if _, err := f.svc.Verify(ctx, f.teamA, d.ID); !errors.Is(err, ErrWrongValue) {
		t.Fatalf("wrong value: %v", err)
	}
	// Right value.
	z.mu.Lock()
	z.txt["_wisehosting.www.customer.com"] = []string{"v=other", `"` + d.Token + `" `}
	z.mu.Unlock()
	d, err = f.svc.Verify(ctx, f.teamA, d.ID)
	if err != nil || d.VerifiedAt == nil {
		t.Fatalf("verify: %+v %v", d, err)
	}
	list, _ := f.svc.List(ctx, f.teamA, f.appA)
	if len(list) != 1 || list[0].VerifiedAt == nil {
		t.Fatalf("list %+v", list)
	}
	if err := f.svc.Remove(ctx, f.teamA, d.ID); err != nil {
		t.Fatal(err)
	}
	if want := []string{events.DomainAdded, events.DomainVerified, events.DomainRemoved}; strings.Join(f.emitted(t), ",") != strings.Join(want, ",") {
		t.Fatalf("events %v", f.emitted(t))
	}
}

func TestVerifyTimeoutAndCloudflare(t *testing.T) {
	t.Parallel()
	f := setup(t, silent(t))
	ctx := context.Background()
	d, _ := f.svc.Add(ctx, f.teamA, f.appA, "slow.example.org")
	start := time.Now()
	if _, err := f.svc.Verify(ctx, f.teamA, d.ID); !errors.Is(err, ErrTimeout) {
		t.Fatalf("timeout: %v", err)
	}
	if time.Since(start) > 3*time.Second {
		t.Fatal("lookup not bounded by the timeout")
	}

	z := newZone(t)
	f2 := setup(t, z.addr)
	z.mu.Lock()
	z.a["orange.example.org"] = "104.21.32.1" // Cloudflare anycast
	z.mu.Unlock()
	d2, _ := f2.svc.Add(ctx, f2.teamA, f2.appA, "orange.example.org")
	_, err := f2.svc.Verify(ctx, f2.teamA, d2.ID)
	if !errors.Is(err, ErrNoRecord) || !strings.Contains(err.Error(), "orange cloud") {
		t.Fatalf("cloudflare hint missing: %v", err)
	}
}

// Team B can neither see, verify, remove nor attach to team A's things.
func TestDomainsAreTeamScoped(t *testing.T) {
	t.Parallel()
	z := newZone(t)
	f := setup(t, z.addr)
	ctx := context.Background()
	d, err := f.svc.Add(ctx, f.teamA, f.appA, "private.example.com")
	if err != nil {
		t.Fatal(err)
	}
	z.mu.Lock()
	z.txt["_wisehosting.private.example.com"] = []string{d.Token}
	z.mu.Unlock()
	if _, err := f.svc.Get(ctx, f.teamB, d.ID); !errors.Is(err, ErrNotFound) {
		t.Errorf("get: %v", err)
	}
	if _, err := f.svc.Verify(ctx, f.teamB, d.ID); !errors.Is(err, ErrNotFound) {
		t.Errorf("verify: %v", err)
	}
	if err := f.svc.Remove(ctx, f.teamB, d.ID); !errors.Is(err, ErrNotFound) {
		t.Errorf("remove: %v", err)
	}
	if list, _ := f.svc.List(ctx, f.teamB, f.appA); len(list) != 0 {
		t.Errorf("list leaked %v", list)
	}
	if _, err := f.svc.Add(ctx, f.teamB, f.appA, "evil.example.com"); !errors.Is(err, ErrNotFound) {
		t.Errorf("add to another team's app: %v", err)
	}
	// Still intact for its owner.
	if got, err := f.svc.Get(ctx, f.teamA, d.ID); err != nil || got.VerifiedAt != nil {
		t.Fatalf("owner view %+v %v", got, err)
	}
}

// An unreachable resolver, or one with a stale negative answer, does not
// hide the record from the others.
func TestVerifyAsksResolversInParallel(t *testing.T) {
	t.Parallel()
	good, stale := newZone(t), newZone(t)
	f := setup(t, silent(t), stale.addr, good.addr)
	f.svc.Verifier.Timeout = 3 * time.Second
	ctx := context.Background()
	d, err := f.svc.Add(ctx, f.teamA, f.appA, "multi.example.org")
	if err != nil {
		t.Fatal(err)
	}
	good.mu.Lock()
	good.txt["_wisehosting.multi.example.org"] = []string{d.Token}
	good.mu.Unlock()
	start := time.Now()
	if d, err = f.svc.Verify(ctx, f.teamA, d.ID); err != nil || d.VerifiedAt == nil {
		t.Fatalf("verify: %+v %v", d, err)
	}
	if el := time.Since(start); el > time.Second {
		t.Fatalf("verification waited %s for the silent resolver", el)
	}

	// Only negative answers plus a silent resolver: "no record" after the
	// grace period, not a timeout.
	f2 := setup(t, silent(t), stale.addr)
	f2.svc.Verifier.Timeout = 5 * time.Second
	d2, _ := f2.svc.Add(ctx, f2.teamA, f2.appA, "missing.example.org")
	start = time.Now()
	if _, err := f2.svc.Verify(ctx, f2.teamA, d2.ID); !errors.Is(err, ErrNoRecord) {
		t.Fatalf("no record: %v", err)
	}
	if el := time.Since(start); el > 3500*time.Millisecond {
		t.Fatalf("negative answer took %s", el)
	}
}

// Concurrent verifications of one domain report it verified once.
func TestConcurrentVerifyPublishesOnce(t *testing.T) {
	t.Parallel()
	z := newZone(t)
	f := setup(t, z.addr)
	ctx := context.Background()
	d, err := f.svc.Add(ctx, f.teamA, f.appA, "race.example.com")
	if err != nil {
		t.Fatal(err)
	}
	z.mu.Lock()
	z.txt["_wisehosting.race.example.com"] = []string{d.Token}
	z.mu.Unlock()
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			if got, err := f.svc.Verify(ctx, f.teamA, d.ID); err != nil || got.VerifiedAt == nil {
				t.Errorf("verify: %+v %v", got, err)
			}
		})
	}
	wg.Wait()
	verified := 0
	for _, k := range f.emitted(t) {
		if k == events.DomainVerified {
			verified++
		}
	}
	if verified != 1 {
		t.Fatalf("%d DomainVerified events", verified)
	}
}

func TestParseResolvers(t *testing.T) {
	got, err := ParseResolvers(" 1.1.1.1, [2606:4700::1111]:53\n127.0.0.1:5353 2001:db8::1 ")
	if want := "1.1.1.1:53,[2606:4700::1111]:53,127.0.0.1:5353,[2001:db8::1]:53"; err != nil || strings.Join(got, ",") != want {
		t.Fatalf("%v %v", got, err)
	}
	for _, bad := range []string{"dns.google", "1.1.1.1:0", "1.1.1.1:99999", "fe80::1%eth0", "1.1.1"} {
		if got, err := ParseResolvers(bad); err == nil {
			t.Errorf("%q accepted as %v", bad, got)
		}
	}
	if got, err := ParseResolvers(""); err != nil || len(got) != 0 {
		t.Fatalf("empty: %v %v", got, err)
	}
}

// Allow (the plan check) runs in the adding transaction; a refusal adds
// nothing and reaches the caller unchanged.
func TestAddAskedPlan(t *testing.T) {
	t.Parallel()
	f := setup(t)
	refusal := errors.New(`plan "free": custom domains (custom_domains) are not included`)
	var asked []int64
	f.svc.Allow = func(ctx context.Context, tx plans.Querier, teamID int64) error {
		asked = append(asked, teamID)
		if teamID == f.teamA {
			return refusal
		}
		return nil
	}
	if _, err := f.svc.Add(context.Background(), f.teamA, f.appA, "shop.example.com"); !errors.Is(err, refusal) {
		t.Fatalf("err = %v", err)
	}
	if _, err := f.svc.Add(context.Background(), f.teamB, f.appB, "shop.example.com"); err != nil {
		t.Fatal(err)
	}
	var n int
	f.db.Pool.QueryRow(context.Background(), "SELECT count(*) FROM domains").Scan(&n)
	if n != 1 || len(asked) != 2 {
		t.Fatalf("%d domains, asked %v", n, asked)
	}
}

// With the plan registry deciding: a team whose plan does not include
// custom domains is refused with the limit named; one whose plan does adds.
func TestAddRefusedByPlan(t *testing.T) {
	t.Parallel()
	f := setup(t)
	ctx := context.Background()
	reg, err := plans.NewRegistry(map[string]plans.Plan{"free": {}, "pro": {CustomDomains: true}}, "free")
	if err != nil {
		t.Fatal(err)
	}
	f.db.Pool.Exec(ctx, "UPDATE teams SET plan = 'pro' WHERE id = $1", f.teamB)
	f.svc.Allow = reg.CheckDomain
	_, err = f.svc.Add(ctx, f.teamA, f.appA, "shop.example.com")
	if !errs.Is(err, errs.Forbidden) || !strings.Contains(err.Error(), `plan "free" does not include custom domains`) {
		t.Fatalf("err = %v", err)
	}
	if _, err := f.svc.Add(ctx, f.teamB, f.appB, "shop.example.com"); err != nil {
		t.Fatal(err)
	}
}

// An unverified claim holds its hostname for ClaimTTL only: after that
// another team can claim and verify it. A verified domain never lapses
// and stays unique.
func TestUnverifiedClaimLapses(t *testing.T) {
	t.Parallel()
	z := newZone(t)
	f := setup(t, z.addr)
	ctx := context.Background()
	squat, err := f.svc.Add(ctx, f.teamA, f.appA, "shop.customer.com")
	if err != nil || squat.ExpiresAt == nil || squat.ExpiresAt.Sub(squat.CreatedAt) != ClaimTTL {
		t.Fatalf("%+v %v", squat, err)
	}
	if _, err := f.svc.Add(ctx, f.teamB, f.appB, "shop.customer.com"); err == nil {
		t.Fatal("a live claim was taken over")
	}
	f.db.Pool.Exec(ctx, "UPDATE domains SET created_at = now() - interval '7 days 1 minute' WHERE id = $1", squat.ID)
	if _, err := f.svc.Verify(ctx, f.teamA, squat.ID); !errs.Is(err, errs.Invalid) || !strings.Contains(err.Error(), "lapsed") {
		t.Fatalf("verifying a lapsed claim: %v", err)
	}
	owner, err := f.svc.Add(ctx, f.teamB, f.appB, "shop.customer.com")
	if err != nil {
		t.Fatalf("claiming a lapsed hostname: %v", err)
	}
	z.mu.Lock()
	z.txt["_wisehosting.shop.customer.com"] = []string{owner.Token}
	z.mu.Unlock()
	if d, err := f.svc.Verify(ctx, f.teamB, owner.ID); err != nil || d.VerifiedAt == nil || d.ExpiresAt != nil {
		t.Fatalf("verify: %+v %v", d, err)
	}
	f.db.Pool.Exec(ctx, "UPDATE domains SET created_at = now() - interval '30 days' WHERE id = $1", owner.ID)
	if _, err := f.svc.Add(ctx, f.teamA, f.appA, "shop.customer.com"); err == nil || !strings.Contains(err.Error(), "already used") {
		t.Fatalf("verified domain taken: %v", err)
	}
	if d, err := f.svc.Get(ctx, f.teamB, owner.ID); err != nil || d.VerifiedAt == nil {
		t.Fatalf("verified domain lapsed: %+v %v", d, err)
	}
}
