package dashboard_test

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/gorilla/websocket"

	"github.com/wisehosting/wisehosting/caddymodules/cptest"
	"github.com/wisehosting/wisehosting/caddymodules/dashboard"
	"github.com/wisehosting/wisehosting/caddymodules/logs"
	"github.com/wisehosting/wisehosting/internal/logbus"
	"github.com/wisehosting/wisehosting/internal/pgtest"
)

// opsFixture is a control plane with the log bus and the webhooks app (its
// guard lets deliveries reach loopback receivers), two teams with an app
// each, and signed-in owners of both.
type opsFixture struct {
	*fixture
	teamA, teamB int64
	appA, appB   int64
	alice, bob   *client
}

func startOps(t *testing.T) *opsFixture {
	t.Helper()
	db := pgtest.New(t)
	cp := cptest.Start(t, db, cptest.Options{
		Handlers: []map[string]any{{"handler": "wisehosting_dashboard", "insecure_cookie": true, "live_recheck": int64(200 * time.Millisecond)}},
		Apps: map[string]any{
			"wisehosting_logs":     map[string]any{},
			"wisehosting_webhooks": map[string]any{"allow_networks": []string{"127.0.0.1/32"}},
		},
	})
	f := &opsFixture{fixture: &fixture{t: t, db: db, base: cp.URL}}
	f.teamA, f.teamB = f.team("acme", "free"), f.team("globex", "free")
	f.user("alice@acme.test", "alice-password-1", map[int64]string{f.teamA: "owner"})
	f.user("bob@globex.test", "bob-password-1", map[int64]string{f.teamB: "owner"})
	f.alice, f.bob = f.login("alice@acme.test", "alice-password-1"), f.login("bob@globex.test", "bob-password-1")
	f.appA = int64(f.alice.want(201, "POST", fmt.Sprintf("/api/teams/%d/apps", f.teamA), map[string]any{"name": "Shop", "slug": "shop"})["id"].(float64))
	f.appB = int64(f.bob.want(201, "POST", fmt.Sprintf("/api/teams/%d/apps", f.teamB), map[string]any{"name": "Bee", "slug": "bee"})["id"].(float64))
	return f
}

func (f *opsFixture) bus() *logbus.Bus {
	a, err := caddy.ActiveContext().App("wisehosting_logs")
	if err != nil {
		f.t.Fatal(err)
	}
	return a.(*logs.App).Bus()
}

func (f *opsFixture) readToken(c *client, team int64) *client {
	tok := c.want(201, "POST", "/api/tokens", map[string]any{"team_id": team, "name": "reader", "scopes": []string{"read"}})
	return &client{f: f.fixture, token: tok["token"].(string)}
}

func (f *opsFixture) auditActions(team int64) map[string]bool {
	seen := map[string]bool{}
	rows, _ := f.db.Pool.Query(context.Background(), "SELECT action FROM audit_events WHERE team_id = $1", team)
	for rows.Next() {
		var a string
		rows.Scan(&a)
		seen[a] = true
	}
	rows.Close()
	return seen
}

func lines(out map[string]any) []string {
	var s []string
	for _, l := range out["lines"].([]any) {
		s = append(s, l.(map[string]any)["line"].(string))
	}
	return s
}

func TestRuntimeLogHistorySearch(t *testing.T) {
	f := startOps(t)
	ctx := context.Background()
	base := time.Now().Add(-time.Hour).UTC()
	for i := 0; i < 30; i++ {
		stream, text := "stdout", fmt.Sprintf("GET /item/%d 200", i)
		if i%10 == 0 {
			stream, text = "stderr", fmt.Sprintf("ERROR 100%% broken_thing %d", i)
		}
		f.db.Pool.Exec(ctx, "INSERT INTO runtime_logs (app_id, ts, stream, line) VALUES ($1, $2, $3, $4)", f.appA, base.Add(time.Duration(i)*time.Minute), stream, text)
	}
	f.db.Pool.Exec(ctx, "INSERT INTO runtime_logs (app_id, ts, stream, line) VALUES ($1, now(), 'stdout', 'ERROR in bee')", f.appB)
	p := fmt.Sprintf("/api/apps/%d/logs", f.appA)

	all := f.alice.want(200, "GET", p, nil)
	if got := lines(all); len(got) != 30 || got[0] != "GET /item/29 200" || all["next_before"] != nil {
		t.Fatalf("latest first: %v %v", got, all["next_before"])
	}
	// Case-insensitive; % and _ are literal characters, not patterns.
	if got := lines(f.alice.want(200, "GET", p+"?q=error", nil)); len(got) != 3 {
		t.Fatalf("q=error: %v", got)
	}
	if got := lines(f.alice.want(200, "GET", p+"?q="+url.QueryEscape("100%"), nil)); len(got) != 3 {
		t.Fatalf("q=100%%: %v", got)
	}
	if got := lines(f.alice.want(200, "GET", p+"?q="+url.QueryEscape("%"), nil)); len(got) != 3 {
		t.Fatalf("q=%%: %v", got)
	}
	if got := lines(f.alice.want(200, "GET", p+"?q=broken_thing", nil)); len(got) != 3 {
		t.Fatalf("q=broken_thing: %v", got)
	}
	if got := lines(f.alice.want(200, "GET", p+"?q=broken_th_ng", nil)); len(got) != 0 {
		t.Fatalf("_ matched as a wildcard: %v", got)
	}
	if got := lines(f.alice.want(200, "GET", p+"?stream=stderr", nil)); len(got) != 3 {
		t.Fatalf("stream: %v", got)
	}
	// Time window.
	since, until := base.Add(10*time.Minute).Format(time.RFC3339), base.Add(15*time.Minute).Format(time.RFC3339)
	if got := lines(f.alice.want(200, "GET", p+"?since="+url.QueryEscape(since)+"&until="+url.QueryEscape(until), nil)); len(got) != 5 {
		t.Fatalf("since/until: %v", got)
	}
	if got := lines(f.alice.want(200, "GET", p+"?since=2h", nil)); len(got) != 30 {
		t.Fatalf("since=2h: %v", got)
	}
	// Pages by id.
	page := f.alice.want(200, "GET", p+"?limit=12", nil)
	seen := len(lines(page))
	for page["next_before"] != nil {
		page = f.alice.want(200, "GET", fmt.Sprintf("%s?limit=12&before=%d", p, int64(page["next_before"].(float64))), nil)
		seen += len(lines(page))
	}
	if seen != 30 {
		t.Fatalf("paging saw %d lines", seen)
	}
	// The limit is capped, bad parameters are explained.
	if got := lines(f.alice.want(200, "GET", p+"?limit=100000", nil)); len(got) != 30 {
		t.Fatalf("capped limit: %d", len(got))
	}
	for _, bad := range []string{"?stream=kernel", "?since=yesterday", "?limit=-1", "?before=x", "?q=" + strings.Repeat("a", 201)} {
		f.alice.want(422, "GET", p+bad, nil)
	}
	// Another team's app does not exist.
	f.bob.want(404, "GET", p+"?q=error", nil)
	if got := lines(f.bob.want(200, "GET", fmt.Sprintf("/api/apps/%d/logs?q=error", f.appB), nil)); len(got) != 1 {
		t.Fatalf("bob's own log: %v", got)
	}
}

func dialLive(f *opsFixture, path, origin string, c *client) (*websocket.Conn, *http.Response, error) {
	u := "ws" + strings.TrimPrefix(f.base, "http") + path
	h := http.Header{}
	if origin != "" {
		h.Set("Origin", origin)
	}
	if c.cookie != "" {
		h.Set("Cookie", dashboard.CookieName+"="+c.cookie)
	}
	if c.token != "" {
		h.Set("Authorization", "Bearer "+c.token)
	}
	d := websocket.Dialer{HandshakeTimeout: 5 * time.Second}
	return d.Dial(u, h)
}

type frame struct {
	Type    string        `json:"type"`
	Backlog bool          `json:"backlog"`
	Lines   []logbus.Line `json:"lines"`
}

// readUntil reads frames until want arrives in a line.
func readUntil(t *testing.T, conn *websocket.Conn, want string) frame {
	t.Helper()
	conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	for {
		var fr frame
		if err := conn.ReadJSON(&fr); err != nil {
			t.Fatalf("waiting for %q: %v", want, err)
		}
		for _, l := range fr.Lines {
			if l.Text == want {
				return fr
			}
		}
	}
}

// closeCode reads until the server closes and returns its close code.
func closeCode(t *testing.T, conn *websocket.Conn) int {
	t.Helper()
	conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	for {
		if _, _, err := conn.ReadMessage(); err != nil {
			var ce *websocket.CloseError
			if ok := asClose(err, &ce); ok {
				return ce.Code
			}
			t.Fatalf("stream ended without a close frame: %v", err)
		}
	}
}

func asClose(err error, ce **websocket.CloseError) bool {
	c, ok := err.(*websocket.CloseError)
	*ce = c
	return ok
}

func TestLiveLogsOverWebSocket(t *testing.T) {
	f := startOps(t)
	bus := f.bus()
	path := fmt.Sprintf("/api/apps/%d/logs/live", f.appA)
	origin := f.base

	bus.Publish(logbus.Line{AppID: f.appA, Stream: "stdout", Text: "before connecting"})
	conn, resp, err := dialLive(f, path, origin, f.alice)
	if err != nil {
		t.Fatalf("dial: %v %v", err, resp)
	}
	defer conn.Close()
	if fr := readUntil(t, conn, "before connecting"); !fr.Backlog {
		t.Fatal("the ring's lines are not marked as backlog")
	}
	bus.Publish(logbus.Line{AppID: f.appB, Stream: "stdout", Text: "bee's line"})
	bus.Publish(logbus.Line{AppID: f.appA, Stream: "stderr", Text: "live line"})
	fr := readUntil(t, conn, "live line")
	if fr.Backlog || fr.Lines[0].Stream != "stderr" {
		t.Fatalf("live frame %+v", fr)
	}
	for _, l := range fr.Lines {
		if l.AppID != f.appA {
			t.Fatalf("another app's line in the stream: %+v", l)
		}
	}

	// Filters apply to live lines too.
	filtered, _, err := dialLive(f, path+"?q=NEEDLE&stream=stdout", origin, f.alice)
	if err != nil {
		t.Fatal(err)
	}
	defer filtered.Close()
	bus.Publish(logbus.Line{AppID: f.appA, Stream: "stdout", Text: "hay"},
		logbus.Line{AppID: f.appA, Stream: "stderr", Text: "needle on stderr"},
		logbus.Line{AppID: f.appA, Stream: "stdout", Text: "a Needle here"})
	filtered.SetReadDeadline(time.Now().Add(10 * time.Second))
	var got []string
	for len(got) == 0 || got[len(got)-1] != "a Needle here" {
		var fr frame
		if err := filtered.ReadJSON(&fr); err != nil {
			t.Fatalf("filtered stream: %v (got %v)", err, got)
		}
		for _, l := range fr.Lines {
			got = append(got, l.Text)
		}
	}
	if len(got) != 1 {
		t.Fatalf("filtered stream carried %v", got)
	}

	// An API token works too (programs have no cookie and send no Origin).
	reader := f.readToken(f.alice, f.teamA)
	byToken, _, err := dialLive(f, path, "", reader)
	if err != nil {
		t.Fatalf("token dial: %v", err)
	}
	readUntil(t, byToken, "live line")
	byToken.Close()

	// Refused before the upgrade: another team (404 as if no app), another
	// site's page (403), no credentials (401), a token of another team.
	for _, c := range []struct {
		who    *client
		origin string
		code   int
	}{
		{f.bob, origin, 404},
		{f.alice, "http://evil.example", 403},
		{f.alice, "null", 403},
		{f.alice, strings.Replace(origin, "127.0.0.1", "localhost", 1), 403},
		{&client{f: f.fixture}, origin, 401},
		{f.readToken(f.bob, f.teamB), "", 404},
	} {
		conn, resp, err := dialLive(f, path, c.origin, c.who)
		if err == nil {
			conn.Close()
			t.Fatalf("origin %q: upgraded", c.origin)
		}
		if resp == nil || resp.StatusCode != c.code {
			t.Fatalf("origin %q: %v %v, want %d", c.origin, err, resp, c.code)
		}
	}

	// Signing out ends the stream (re-checked every live_recheck).
	second := f.login("alice@acme.test", "alice-password-1")
	other, _, err := dialLive(f, path, origin, second)
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	readUntil(t, other, "live line")
	f.alice.want(200, "POST", "/api/logout", nil)
	if code := closeCode(t, conn); code != 4401 {
		t.Fatalf("after sign-out: close code %d", code)
	}
	// Deleting the app ends the remaining streams.
	f.db.Pool.Exec(context.Background(), "DELETE FROM apps WHERE id = $1", f.appA)
	if code := closeCode(t, other); code != 4404 {
		t.Fatalf("after deleting the app: close code %d", code)
	}
}
