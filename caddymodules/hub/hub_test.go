package hub_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/gorilla/websocket"

	"github.com/wisehosting/wisehosting/agent/transport"
	"github.com/wisehosting/wisehosting/caddymodules/core"
	"github.com/wisehosting/wisehosting/caddymodules/cptest"
	"github.com/wisehosting/wisehosting/caddymodules/hub"
	"github.com/wisehosting/wisehosting/internal/pgtest"
	"github.com/wisehosting/wisehosting/internal/workers"
	"github.com/wisehosting/wisehosting/internal/wsproto"
)

func cpActiveCore() (*core.App, error) {
	a, err := caddy.ActiveContext().App(core.AppName)
	if err != nil {
		return nil, err
	}
	return a.(*core.App), nil
}

func coreApp(t *testing.T) *core.App {
	t.Helper()
	a, err := cpActiveCore()
	if err != nil {
		t.Fatal(err)
	}
	return a
}

func waitFor(t *testing.T, what string, d time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func startAgent(t *testing.T, cp *cptest.CP, key string, tweak func(*transport.Config)) (*transport.Client, chan error) {
	t.Helper()
	cfg := transport.Config{URL: cp.URL, APIKey: key, Name: "w1", MinBackoff: 50 * time.Millisecond, MaxBackoff: 200 * time.Millisecond}
	if tweak != nil {
		tweak(&cfg)
	}
	c, err := transport.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	t.Cleanup(func() { cancel(); <-done })
	go func() { done <- c.Run(ctx) }()
	return c, done
}

func TestAgentExchangesSignedMessages(t *testing.T) {
	db := pgtest.New(t)
	cp := cptest.Start(t, db, cptest.Options{})
	w, key, err := workers.Add(t.Context(), db.Pool, cptest.Keyring(t), "w1", "", "")
	if err != nil {
		t.Fatal(err)
	}
	wh := coreApp(t)
	stats := make(chan wsproto.Stats, 1)
	cancel := wh.Workers().Handle(wsproto.TypeStats, func(ctx context.Context, id int64, p json.RawMessage) error {
		var s wsproto.Stats
		if id != w.ID {
			return fmt.Errorf("stats from worker %d, want %d", id, w.ID)
		}
		json.Unmarshal(p, &s)
		stats <- s
		return nil
	})
	defer cancel()

	agent, _ := startAgent(t, cp, key, nil)
	assigned := make(chan wsproto.JobAssign, 1)
	agent.Handle(wsproto.TypeJobAssign, func(ctx context.Context, p json.RawMessage) error {
		var ja wsproto.JobAssign
		json.Unmarshal(p, &ja)
		assigned <- ja
		return nil
	})
	agent.SetHello(func() wsproto.Hello {
		return wsproto.Hello{Version: "test", WGIP: "127.0.0.9", Zone: "evil.test", CPUMillis: 4000, MemoryMB: 8192, DiskQuota: "none", MaxJobs: 3}
	})
	waitFor(t, "connection", 5*time.Second, func() bool { return hub.Default().Connected(w.ID) })
	if agent.WorkerID() != w.ID {
		t.Fatalf("worker id %d, want %d", agent.WorkerID(), w.ID)
	}

	// CP → worker through the worker bus.
	if err := wh.Workers().Send(w.ID, wsproto.TypeJobAssign, wsproto.JobAssign{JobID: 42, Kind: "deploy"}); err != nil {
		t.Fatal(err)
	}
	select {
	case ja := <-assigned:
		if ja.JobID != 42 {
			t.Fatalf("job %d", ja.JobID)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("job never reached the agent")
	}
	// Worker → CP.
	if err := agent.Send(t.Context(), wsproto.TypeStats, wsproto.Stats{TS: 1, Apps: []wsproto.AppStats{{AppID: 3, MemBytes: 1 << 20}}}); err != nil {
		t.Fatal(err)
	}
	select {
	case s := <-stats:
		if len(s.Apps) != 1 || s.Apps[0].MemBytes != 1<<20 {
			t.Fatalf("stats %+v", s)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("stats never reached the control plane")
	}
	// Hello updated the worker's capacity, not its placement: zone and
	// mesh IP are the operator's.
	waitFor(t, "hello recorded", 5*time.Second, func() bool {
		got, _ := workers.Get(t.Context(), db.Pool, w.ID)
		return got.Status == "online" && got.CPUMillis == 4000 && got.MaxJobs == 3
	})
	if got, _ := workers.Get(t.Context(), db.Pool, w.ID); got.WGIP != "" || got.Zone != "" {
		t.Fatalf("hello changed the placement: mesh IP %q, zone %q", got.WGIP, got.Zone)
	}
	if err := wh.Workers().Send(w.ID+100, wsproto.TypeJobAssign, wsproto.JobAssign{}); err == nil {
		t.Fatal("send to an unconnected worker succeeded")
	}
}

func TestReconnectAndTokenRotation(t *testing.T) {
	db := pgtest.New(t)
	// Tokens live 2m3s and are refreshed 2m before expiry: after ~3s.
	cp := cptest.Start(t, db, cptest.Options{Core: map[string]any{"worker_token_ttl": "2m3s"}})
	w, key, _ := workers.Add(t.Context(), db.Pool, cptest.Keyring(t), "w1", "", "")
	agent, _ := startAgent(t, cp, key, nil)
	waitFor(t, "connection", 5*time.Second, func() bool { return hub.Default().Connected(w.ID) })
	first, _ := agent.Token()

	waitFor(t, "token refresh", 10*time.Second, func() bool { tok, _ := agent.Token(); return tok != first })
	rotated, exp := agent.Token()
	if time.Until(exp) < 2*time.Minute {
		t.Fatalf("refreshed token expires in %s", time.Until(exp))
	}

	// The server drops the connection; the agent comes back by itself with
	// the rotated token.
	if !hub.Default().Disconnect(w.ID, "test drop") {
		t.Fatal("no connection to drop")
	}
	waitFor(t, "reconnect", 10*time.Second, func() bool { return agent.Connects() >= 2 && hub.Default().Connected(w.ID) })
	if tok, _ := agent.Token(); tok != rotated {
		// A newer refresh is fine; going back to the first token is not.
		if tok == first {
			t.Fatal("reconnected with the pre-rotation token")
		}
	}
	// The old token still verifies until it expires, but the refresh
	// endpoint refuses garbage.
	if code := postRefresh(t, http.DefaultClient, cp, first+"x", wsproto.SignRefresh(wsproto.KeyFromAPIKey(key), first+"x", time.Now())); code != http.StatusUnauthorized {
		t.Fatalf("tampered token refreshed: %d", code)
	}
}

// register exchanges a raw key for a worker JWT.
func register(t *testing.T, cp *cptest.CP, key string) string {
	t.Helper()
	resp, err := http.Post(cp.URL+"/v1/workers/register", "application/json", strings.NewReader(`{"api_key":"`+key+`"}`))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var tr struct{ Token string }
	json.NewDecoder(resp.Body).Decode(&tr)
	if resp.StatusCode != http.StatusOK || tr.Token == "" {
		t.Fatalf("register: %d", resp.StatusCode)
	}
	return tr.Token
}

// dial opens the hub's WebSocket with a JWT and a client nonce, as an
// agent does, and reads the challenge: the session key is returned for
// the holder of workerKey (nil: the caller does not have the key).
func dial(t *testing.T, cp *cptest.CP, token, clientNonce string) (*websocket.Conn, string) {
	t.Helper()
	h := http.Header{}
	h.Set("Authorization", "Bearer "+token)
	h.Set(wsproto.NonceHeader, clientNonce)
	ws, _, err := websocket.DefaultDialer.Dial(strings.Replace(cp.URL, "http", "ws", 1)+hub.Path, h)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ws.Close() })
	ws.SetReadDeadline(time.Now().Add(5 * time.Second))
	_, msg, err := ws.ReadMessage()
	if err != nil {
		t.Fatalf("no challenge: %v", err)
	}
	env, err := wsproto.Decode(msg)
	if err != nil || env.T != wsproto.TypeChallenge {
		t.Fatalf("first frame is not a challenge: %s", msg)
	}
	var ch wsproto.Challenge
	json.Unmarshal(env.P, &ch)
	return ws, ch.Nonce
}

// rawConn dials the hub as a hand-written client that holds the worker's
// key and completes the handshake (hello with seq 1), so frames can be
// forged. It returns the connection and its session key.
func rawConn(t *testing.T, cp *cptest.CP, key string) (*websocket.Conn, wsproto.Key) {
	t.Helper()
	clientNonce := wsproto.NewNonce()
	ws, serverNonce := dial(t, cp, register(t, cp, key), clientNonce)
	sk := wsproto.SessionKey(wsproto.KeyFromAPIKey(key), clientNonce, serverNonce)
	hello, _ := wsproto.Seal(sk, wsproto.TypeHello, 1, time.Now(), wsproto.Hello{Version: "raw"})
	b, _ := json.Marshal(hello)
	if err := ws.WriteMessage(websocket.TextMessage, b); err != nil {
		t.Fatal(err)
	}
	return ws, sk
}

func frame(t *testing.T, k wsproto.Key, seq uint64, ts time.Time) []byte {
	e, err := wsproto.Seal(k, wsproto.TypePing, seq, ts, map[string]int{"n": int(seq)})
	if err != nil {
		t.Fatal(err)
	}
	b, _ := json.Marshal(e)
	return b
}

// expectClosed reads until the hub closes the connection, failing if it
// answers a pong to the frame instead.
func expectClosed(t *testing.T, ws *websocket.Conn) {
	t.Helper()
	ws.SetReadDeadline(time.Now().Add(5 * time.Second))
	for {
		_, msg, err := ws.ReadMessage()
		if err != nil {
			var ce *websocket.CloseError
			if errors.As(err, &ce) && ce.Code == websocket.ClosePolicyViolation {
				return
			}
			if strings.Contains(err.Error(), "timeout") {
				t.Fatal("hub kept the connection open")
			}
			return
		}
		if strings.Contains(string(msg), `"t":"pong"`) {
			t.Fatalf("hub answered a frame it should have rejected: %s", msg)
		}
	}
}

func TestHubRejectsBadFrames(t *testing.T) {
	db := pgtest.New(t)
	cp := cptest.Start(t, db, cptest.Options{})
	_, key, _ := workers.Add(t.Context(), db.Pool, cptest.Keyring(t), "w1", "", "")
	now := time.Now()

	t.Run("valid ping answered", func(t *testing.T) {
		ws, k := rawConn(t, cp, key)
		ping(t, ws, k, 2)
	})
	cases := map[string]func(k wsproto.Key) [][]byte{
		"replayed seq": func(k wsproto.Key) [][]byte { f := frame(t, k, 5, now); return [][]byte{f, f} },
		"old seq":      func(k wsproto.Key) [][]byte { return [][]byte{frame(t, k, 1000, now), frame(t, k, 2, now)} },
		"clock skew":   func(k wsproto.Key) [][]byte { return [][]byte{frame(t, k, 3, now.Add(-10*time.Minute))} },
		"wrong hmac": func(k wsproto.Key) [][]byte {
			return [][]byte{frame(t, wsproto.KeyFromAPIKey("whk_someone_else_entirely"), 3, now)}
		},
		"signed with the worker key, not the session key": func(k wsproto.Key) [][]byte {
			return [][]byte{frame(t, wsproto.KeyFromAPIKey(key), 3, now)}
		},
		"hello sequence number again": func(k wsproto.Key) [][]byte { return [][]byte{frame(t, k, 1, now)} },
		"malformed json":              func(k wsproto.Key) [][]byte { return [][]byte{[]byte(`{"t":"ping",`)} },
		"oversized":                   func(k wsproto.Key) [][]byte { return [][]byte{[]byte(`"` + strings.Repeat("x", 2<<20) + `"`)} },
	}
	for name, frames := range cases {
		t.Run(name, func(t *testing.T) {
			ws, k := rawConn(t, cp, key)
			fs := frames(k)
			for i, f := range fs {
				if err := ws.WriteMessage(websocket.TextMessage, f); err != nil {
					if i == len(fs)-1 {
						return // the hub closed the connection while we wrote
					}
					t.Fatal(err)
				}
				if i < len(fs)-1 { // the first of two is valid: it is answered
					readPong(t, ws)
				}
			}
			expectClosed(t, ws)
		})
	}
	// After all that the hub still serves.
	ws, k := rawConn(t, cp, key)
	ping(t, ws, k, 2)
	// Connecting without a token, or with an Origin (browser), is refused.
	if _, resp, err := websocket.DefaultDialer.Dial(strings.Replace(cp.URL, "http", "ws", 1)+hub.Path, nil); err == nil || resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("tokenless connection: %v", err)
	}
}

func TestRevokedWorker(t *testing.T) {
	db := pgtest.New(t)
	cp := cptest.Start(t, db, cptest.Options{Hub: map[string]any{"ping_interval": "300ms"}})
	w, key, _ := workers.Add(t.Context(), db.Pool, cptest.Keyring(t), "w1", "", "")
	agent, done := startAgent(t, cp, key, nil)
	waitFor(t, "connection", 5*time.Second, func() bool { return hub.Default().Connected(w.ID) })
	_ = agent
	if _, err := workers.Revoke(t.Context(), db.Pool, "w1"); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "revoked worker disconnected", 5*time.Second, func() bool { return !hub.Default().Connected(w.ID) })
	select {
	case err := <-done:
		if !errors.Is(err, transport.ErrRevoked) {
			t.Fatalf("agent stopped with %v, want ErrRevoked", err)
		}
		done <- err // for the cleanup
	case <-time.After(10 * time.Second):
		t.Fatal("agent kept retrying a revoked key")
	}
	resp, _ := http.Post(cp.URL+"/v1/workers/register", "application/json", strings.NewReader(`{"api_key":"`+key+`"}`))
	resp.Body.Close()
	if resp.StatusCode != http.StatusForbidden {
		t.Fatalf("revoked key registered: %d", resp.StatusCode)
	}
}

func TestRegisterFailuresAreLimited(t *testing.T) {
	db := pgtest.New(t)
	cp := cptest.Start(t, db, cptest.Options{})
	// Come from an address of our own in 127/8: the limit is per client IP.
	src := &net.TCPAddr{IP: net.IPv4(127, 0, byte(rand.IntN(250)+1), byte(rand.IntN(250)+2))}
	client := &http.Client{Transport: &http.Transport{DialContext: (&net.Dialer{LocalAddr: src}).DialContext}}
	codes := map[int]int{}
	for i := 0; i < 15; i++ {
		resp, err := client.Post(cp.URL+"/v1/workers/register", "application/json", strings.NewReader(`{"api_key":"whk_not_a_real_key_at_all"}`))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		codes[resp.StatusCode]++
	}
	if codes[http.StatusUnauthorized] != 10 || codes[http.StatusTooManyRequests] != 5 {
		t.Fatalf("status counts %v, want 10×401 then 5×429", codes)
	}
	// Another address is not affected.
	resp, err := http.Post(cp.URL+"/v1/workers/register", "application/json", strings.NewReader(`{"api_key":"whk_not_a_real_key_at_all"}`))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("limit leaked to another address: %d", resp.StatusCode)
	}
}

func TestCheckURL(t *testing.T) {
	for u, ok := range map[string]bool{
		"https://cp.example.com": true,
		"http://127.0.0.1:8080":  true,
		"http://10.50.0.1":       true,
		"http://192.168.1.2:80":  true,
		"http://[::1]:8080":      true,
		"http://cp.example.com":  false,
		"http://localhost:8080":  false, // a name, not an IP literal
		"http://8.8.8.8":         false,
		"http://100.64.0.1":      false,
		"ftp://127.0.0.1":        false,
		"cp.example.com":         false,
	} {
		_, err := transport.CheckURL(u)
		if (err == nil) != ok {
			t.Errorf("%s: err=%v, want ok=%v", u, err, ok)
		}
	}
}
