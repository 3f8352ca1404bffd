package webhooks

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/wisehosting/wisehosting/internal/events"
	"github.com/wisehosting/wisehosting/internal/httpx"
	"github.com/wisehosting/wisehosting/internal/pgtest"
	"github.com/wisehosting/wisehosting/internal/secrets"
)

type fixture struct {
	db           *pgtest.DB
	svc          *Service
	kr           *secrets.Keyring
	teamA, teamB int64
}

func setup(t *testing.T) *fixture {
	db := pgtest.New(t)
	kr, _ := secrets.NewKeyring("0123456789abcdef0123456789abcdef")
	f := &fixture{db: db, kr: kr, svc: &Service{Pool: db.Pool, Keyring: kr}}
	db.Pool.QueryRow(context.Background(), "INSERT INTO teams (name, slug) VALUES ('a', 'a') RETURNING id").Scan(&f.teamA)
	db.Pool.QueryRow(context.Background(), "INSERT INTO teams (name, slug) VALUES ('b', 'b') RETURNING id").Scan(&f.teamB)
	return f
}

// loopbackOnly lets the guarded client reach test receivers on 127.0.0.1
// (production allows nothing internal).
var loopbackOnly = httpx.GuardOptions{Allow: []netip.Prefix{netip.MustParsePrefix("127.0.0.1/32")}}

func (f *fixture) dispatcher(guard httpx.GuardOptions) *Dispatcher {
	return &Dispatcher{Pool: f.db.Pool, Keyring: f.kr, Client: httpx.NewWebhookClient(guard),
		Backoff: func(int) time.Duration { return 10 * time.Millisecond }, MaxAttempts: 4}
}

type receiver struct {
	mu       sync.Mutex
	failures int // answer 500 this many times first
	got      []*http.Request
	bodies   [][]byte
	srv      *httptest.Server
	status   int
	delay    time.Duration
}

func newReceiver(t *testing.T, failures int) *receiver {
	r := &receiver{failures: failures, status: 204}
	r.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		body, _ := io.ReadAll(req.Body)
		time.Sleep(r.delay)
		r.mu.Lock()
		defer r.mu.Unlock()
		r.got = append(r.got, req)
		r.bodies = append(r.bodies, body)
		if r.failures > 0 {
			r.failures--
			w.WriteHeader(500)
			return
		}
		if r.status == http.StatusFound {
			http.Redirect(w, req, "http://127.0.0.1:1/elsewhere", http.StatusFound)
			return
		}
		w.WriteHeader(r.status)
	}))
	t.Cleanup(r.srv.Close)
	return r
}

func state(t *testing.T, f *fixture) (string, int, int) {
	var st string
	var attempts int
	var status *int
	f.db.Pool.QueryRow(context.Background(), "SELECT state, attempts, last_status FROM webhook_deliveries ORDER BY id DESC LIMIT 1").Scan(&st, &attempts, &status)
	s := 0
	if status != nil {
		s = *status
	}
	return st, attempts, s
}

func waitState(t *testing.T, f *fixture, want string) {
	deadline := time.Now().Add(10 * time.Second)
	for {
		if st, _, _ := state(t, f); st == want {
			return
		}
		if time.Now().After(deadline) {
			st, a, s := state(t, f)
			t.Fatalf("delivery %s after %d attempts (last status %d), want %s", st, a, s, want)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestRetriesUntilDeliveredAndSigned(t *testing.T) {
	t.Parallel()
	f := setup(t)
	rcv := newReceiver(t, 2)
	ctx := context.Background()
	w, secret, err := f.svc.Create(ctx, f.teamA, 0, rcv.srv.URL+"/hooks", []string{"deployment.finished"})
	if err != nil || !strings.HasPrefix(secret, SecretPrefix) {
		t.Fatalf("%v %q", err, secret)
	}
	n, err := Enqueue(ctx, f.db.Pool, f.teamA, 0, Event{Type: "deployment.finished", Data: map[string]any{"deployment_id": 7}})
	if err != nil || n != 1 {
		t.Fatalf("enqueue %d %v", n, err)
	}
	// Other events and other teams get nothing.
	if n, _ := Enqueue(ctx, f.db.Pool, f.teamA, 0, Event{Type: "alert.fired"}); n != 0 {
		t.Fatal("unsubscribed event queued")
	}
	if n, _ := Enqueue(ctx, f.db.Pool, f.teamB, 0, Event{Type: "deployment.finished"}); n != 0 {
		t.Fatal("another team's event queued")
	}
	d := f.dispatcher(loopbackOnly)
	rctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() { d.Run(rctx); close(done) }()
	waitState(t, f, "succeeded")
	cancel()
	<-done
	if _, attempts, status := state(t, f); attempts != 3 || status != 204 {
		t.Fatalf("attempts %d status %d", attempts, status)
	}
	rcv.mu.Lock()
	last, body := rcv.got[len(rcv.got)-1], rcv.bodies[len(rcv.bodies)-1]
	rcv.mu.Unlock()
	ts, _ := strconv.ParseInt(last.Header.Get("webhook-timestamp"), 10, 64)
	if !Verify(secret, last.Header.Get("webhook-id"), ts, body, last.Header.Get("webhook-signature")) {
		t.Fatalf("signature %q does not verify", last.Header.Get("webhook-signature"))
	}
	if Verify(NewSecret(), last.Header.Get("webhook-id"), ts, body, last.Header.Get("webhook-signature")) {
		t.Fatal("signature verifies with another secret")
	}
	if !strings.Contains(string(body), `"deployment_id": 7`) || w.ID == 0 {
		t.Fatalf("body %s", body)
	}
}

// A control plane stops mid-retry; the next one finishes the delivery.
func TestRestartMidRetryLosesNothing(t *testing.T) {
	t.Parallel()
	f := setup(t)
	rcv := newReceiver(t, 1)
	ctx := context.Background()
	f.svc.Create(ctx, f.teamA, 0, rcv.srv.URL, nil)
	Enqueue(ctx, f.db.Pool, f.teamA, 0, Event{Type: "app.status_changed"})
	first := f.dispatcher(loopbackOnly)
	first.Backoff = func(int) time.Duration { return 300 * time.Millisecond }
	rctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() { first.Run(rctx); close(done) }()
	// Failed once, waiting to retry (the delivery is "pending" from the
	// start, so the attempt is what is waited for).
	deadline := time.Now().Add(10 * time.Second)
	for {
		if st, a, _ := state(t, f); st == "pending" && a == 1 {
			break
		}
		if time.Now().After(deadline) {
			st, a, s := state(t, f)
			t.Fatalf("delivery %s after %d attempts (last status %d), want pending after 1", st, a, s)
		}
		time.Sleep(10 * time.Millisecond)
	}
	cancel()
	<-done
	second := f.dispatcher(loopbackOnly)
	rctx2, cancel2 := context.WithCancel(ctx)
	defer cancel2()
	go second.Run(rctx2)
	waitState(t, f, "succeeded")
}

func TestRedirectIsAFailureAndSSRFRefused(t *testing.T) {
	t.Parallel()
	f := setup(t)
	rcv := newReceiver(t, 0)
	rcv.status = http.StatusFound
	ctx := context.Background()
	f.svc.Create(ctx, f.teamA, 0, rcv.srv.URL, nil)
	Enqueue(ctx, f.db.Pool, f.teamA, 0, Event{Type: "x"})
	var id int64
	f.db.Pool.QueryRow(ctx, "SELECT id FROM webhook_deliveries").Scan(&id)
	d := f.dispatcher(loopbackOnly)
	if err := d.DeliverNow(ctx, id); err == nil || !strings.Contains(err.Error(), "302") {
		t.Fatalf("redirect: %v", err)
	}
	if len(rcv.got) != 1 {
		t.Fatalf("redirect followed: %d requests", len(rcv.got))
	}
	// Internal and metadata addresses are refused before any connection.
	for _, u := range []string{"http://169.254.169.254/latest/meta-data/", "http://127.0.0.1:9/", "http://[::1]/", "http://10.0.0.1/"} {
		g := setup(t)
		g.svc.Create(ctx, g.teamA, 0, u, nil)
		Enqueue(ctx, g.db.Pool, g.teamA, 0, Event{Type: "x"})
		var did int64
		g.db.Pool.QueryRow(ctx, "SELECT id FROM webhook_deliveries").Scan(&did)
		err := g.dispatcher(httpx.GuardOptions{}).DeliverNow(ctx, did)
		if !errors.Is(err, httpx.ErrBlockedAddress) {
			t.Errorf("%s: %v", u, err)
		}
	}
}

func TestSecretRotationSignsWithBoth(t *testing.T) {
	t.Parallel()
	f := setup(t)
	rcv := newReceiver(t, 0)
	ctx := context.Background()
	w, oldSecret, _ := f.svc.Create(ctx, f.teamA, 0, rcv.srv.URL, nil)
	newSecret, err := f.svc.RotateSecret(ctx, f.teamA, w.ID)
	if err != nil {
		t.Fatal(err)
	}
	Enqueue(ctx, f.db.Pool, f.teamA, 0, Event{Type: "x"})
	var id int64
	f.db.Pool.QueryRow(ctx, "SELECT id FROM webhook_deliveries").Scan(&id)
	if err := f.dispatcher(loopbackOnly).DeliverNow(ctx, id); err != nil {
		t.Fatal(err)
	}
	req, body := rcv.got[0], rcv.bodies[0]
	ts, _ := strconv.ParseInt(req.Header.Get("webhook-timestamp"), 10, 64)
	sig := req.Header.Get("webhook-signature")
	if len(strings.Fields(sig)) != 2 || !Verify(oldSecret, req.Header.Get("webhook-id"), ts, body, sig) || !Verify(newSecret, req.Header.Get("webhook-id"), ts, body, sig) {
		t.Fatalf("rotation signatures %q", sig)
	}
}

func TestWebhooksAreTeamScoped(t *testing.T) {
	t.Parallel()
	f := setup(t)
	ctx := context.Background()
	w, _, _ := f.svc.Create(ctx, f.teamA, 0, "https://hooks.example.com/a", nil)
	if err := f.svc.Delete(ctx, f.teamB, w.ID); !errors.Is(err, ErrNotFound) {
		t.Errorf("delete: %v", err)
	}
	if _, err := f.svc.RotateSecret(ctx, f.teamB, w.ID); !errors.Is(err, ErrNotFound) {
		t.Errorf("rotate: %v", err)
	}
	if l, _ := f.svc.List(ctx, f.teamB); len(l) != 0 {
		t.Errorf("list leaked %v", l)
	}
	var app int64
	f.db.Pool.QueryRow(ctx, "INSERT INTO apps (team_id, slug, name) VALUES ($1, 'a', 'a') RETURNING id", f.teamA).Scan(&app)
	if _, _, err := f.svc.Create(ctx, f.teamB, app, "https://evil.example.com", nil); !errors.Is(err, ErrNotFound) {
		t.Errorf("create on another team's app: %v", err)
	}
	l, _ := f.svc.List(ctx, f.teamA)
	if len(l) != 1 || l[0].URL != "https://hooks.example.com/a" {
		t.Fatalf("owner list %+v", l)
	}
	var stored string
	f.db.Pool.QueryRow(ctx, "SELECT url_enc FROM webhooks").Scan(&stored)
	if strings.Contains(stored, "hooks.example.com") {
		t.Fatal("URL stored in clear")
	}
	for _, bad := range []string{"ftp://x", "https://user:pw@x.com", "not a url", ""} {
		if _, _, err := f.svc.Create(ctx, f.teamA, 0, bad, nil); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}

// Stopping waits for a delivery under way.
func TestStopDrainsInFlight(t *testing.T) {
	t.Parallel()
	f := setup(t)
	rcv := newReceiver(t, 0)
	rcv.delay = 400 * time.Millisecond
	ctx := context.Background()
	f.svc.Create(ctx, f.teamA, 0, rcv.srv.URL, nil)
	Enqueue(ctx, f.db.Pool, f.teamA, 0, Event{Type: "x"})
	d := f.dispatcher(loopbackOnly)
	rctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() { d.Run(rctx); close(done) }()
	waitState(t, f, "delivering")
	cancel()
	<-done
	if st, _, _ := state(t, f); st != "succeeded" {
		t.Fatalf("in-flight delivery cut off: %s", st)
	}
}

// An app's deliveries to one endpoint arrive in event order even when the
// first one needs retries, and the relay's fan-out writes one delivery per
// endpoint and event however often it runs.
func TestAppDeliveriesInOrderOncePerEvent(t *testing.T) {
	t.Parallel()
	f := setup(t)
	rcv := newReceiver(t, 2)
	ctx := context.Background()
	var appA int64
	f.db.Pool.QueryRow(ctx, "INSERT INTO apps (team_id, slug, name) VALUES ($1, 'a', 'a') RETURNING id", f.teamA).Scan(&appA)
	if _, _, err := f.svc.Create(ctx, f.teamA, 0, rcv.srv.URL, nil); err != nil {
		t.Fatal(err)
	}
	for i := range 4 {
		e := events.Event{ID: int64(100 + i), Kind: events.DomainAdded, TeamID: f.teamA, AppID: appA, Time: time.Now(),
			Data: map[string]any{"hostname": fmt.Sprintf("h%d.example.com", i)}}
		for range 2 { // a relay round that ran twice
			if err := pgx.BeginFunc(ctx, f.db.Pool, func(tx pgx.Tx) error { return Fanout(ctx, tx, e) }); err != nil {
				t.Fatal(err)
			}
		}
	}
	var n int
	f.db.Pool.QueryRow(ctx, "SELECT count(*) FROM webhook_deliveries").Scan(&n)
	if n != 4 {
		t.Fatalf("%d deliveries for 4 events", n)
	}
	d := f.dispatcher(loopbackOnly)
	rctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() { d.Run(rctx); close(done) }()
	deadline := time.Now().Add(20 * time.Second)
	for {
		var left int
		f.db.Pool.QueryRow(ctx, "SELECT count(*) FROM webhook_deliveries WHERE state <> 'succeeded'").Scan(&left)
		if left == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d deliveries not delivered", left)
		}
		time.Sleep(20 * time.Millisecond)
	}
	cancel()
	<-done
	rcv.mu.Lock()
	defer rcv.mu.Unlock()
	var hosts []string
	for _, b := range rcv.bodies {
		var ev Event
		if err := json.Unmarshal(b, &ev); err != nil {
			t.Fatal(err)
		}
		hosts = append(hosts, ev.Data["hostname"].(string))
	}
	// Two failed attempts of the first, then each once, in order.
	want := "h0.example.com h0.example.com h0.example.com h1.example.com h2.example.com h3.example.com"
	if strings.Join(hosts, " ") != want {
		t.Fatalf("arrivals %v", hosts)
	}
}
