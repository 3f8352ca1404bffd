package dashboard_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/wisehosting/wisehosting/caddymodules/cptest"
	"github.com/wisehosting/wisehosting/internal/webhooks"
	"github.com/wisehosting/wisehosting/internal/workers"
)

func TestUsageSeriesAndTeamSummary(t *testing.T) {
	f := startOps(t)
	ctx := context.Background()
	now := time.Now().UTC().Truncate(5 * time.Minute)
	// Two 5-minute buckets inside one 15-minute point of the 24h range, one
	// old bucket outside 24h; Bee's usage stays Bee's.
	ins := func(app int64, at time.Time, samples int, cpuSum, cpuMax, memSum float64, memMax, rx, tx, disk int64) {
		if _, err := f.db.Pool.Exec(ctx, `INSERT INTO usage_samples (app_id, bucket, samples, cpu_pct_sum, cpu_pct_max, mem_bytes_sum, mem_bytes_max,
			net_rx_bytes, net_tx_bytes, disk_bytes) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)`, app, at, samples, cpuSum, cpuMax, memSum, memMax, rx, tx, disk); err != nil {
			t.Fatal(err)
		}
	}
	p15 := now.Add(-time.Hour).Truncate(15 * time.Minute)
	ins(f.appA, p15, 5, 50, 30, 5*100e6, 120e6, 1000, 10, 5e6)                     // cpu avg 10
	ins(f.appA, p15.Add(5*time.Minute), 5, 150, 60, 5*200e6, 250e6, 3000, 20, 6e6) // cpu avg 30
	ins(f.appA, now.Add(-3*24*time.Hour), 1, 99, 99, 1, 1, 1, 1, 1)
	ins(f.appB, p15, 1, 77, 77, 1, 1, 1, 1, 1)
	// The app's volumes: the point shows the largest of its buckets.
	f.db.Pool.Exec(ctx, "UPDATE usage_samples SET volume_bytes = CASE WHEN bucket = $2 THEN 7e6 ELSE 8e6 END WHERE app_id = $1 AND bucket >= $2", f.appA, p15)

	out := f.alice.want(200, "GET", fmt.Sprintf("/api/apps/%d/usage?range=24h", f.appA), nil)
	pts := out["points"].([]any)
	if len(pts) != 1 || out["step_s"].(float64) != 900 {
		t.Fatalf("24h points %v", out)
	}
	pt := pts[0].(map[string]any)
	if pt["cpu_pct_avg"].(float64) != 20 || pt["cpu_pct_max"].(float64) != 60 || pt["mem_bytes_avg"].(float64) != 150e6 ||
		pt["mem_bytes_max"].(float64) != 250e6 || pt["net_rx_bytes"].(float64) != 4000 || pt["net_tx_bytes"].(float64) != 30 || pt["disk_bytes"].(float64) != 6e6 ||
		pt["volume_bytes"] != 8e6 {
		t.Fatalf("folded point %v", pt)
	}
	if out["limits"].(map[string]any)["memory_mb"].(float64) != 256 {
		t.Fatalf("limits %v", out["limits"])
	}
	if pts := f.alice.want(200, "GET", fmt.Sprintf("/api/apps/%d/usage?range=7d", f.appA), nil)["points"].([]any); len(pts) != 2 {
		t.Fatalf("7d points %v", pts)
	}
	if pts := f.alice.want(200, "GET", fmt.Sprintf("/api/apps/%d/usage?range=1h", f.appA), nil)["points"].([]any); len(pts) > 2 {
		t.Fatalf("1h points %v", pts)
	}
	f.alice.want(422, "GET", fmt.Sprintf("/api/apps/%d/usage?range=1y", f.appA), nil)

	team := f.alice.want(200, "GET", fmt.Sprintf("/api/teams/%d/usage?range=30d", f.teamA), nil)
	apps := team["apps"].([]any)
	if len(apps) != 1 || apps[0].(map[string]any)["cpu_pct_max"].(float64) != 99 || team["totals"].(map[string]any)["net_rx_bytes"].(float64) != 4001 {
		t.Fatalf("team usage %v", team)
	}
	f.bob.want(404, "GET", fmt.Sprintf("/api/apps/%d/usage", f.appA), nil)
	f.bob.want(404, "GET", fmt.Sprintf("/api/teams/%d/usage", f.teamA), nil)
	f.readToken(f.alice, f.teamA).want(200, "GET", fmt.Sprintf("/api/apps/%d/usage?range=1h", f.appA), nil)
	if strings.Contains(fmt.Sprint(team), "77") {
		t.Fatalf("another team's usage in the summary: %v", team)
	}
}

// receiver records webhook deliveries on loopback.
type receiver struct {
	mu     sync.Mutex
	bodies []string
	sigs   []http.Header
	srv    *httptest.Server
}

func newReceiver(t *testing.T) *receiver {
	r := &receiver{}
	r.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		b, _ := io.ReadAll(req.Body)
		r.mu.Lock()
		r.bodies = append(r.bodies, string(b))
		r.sigs = append(r.sigs, req.Header.Clone())
		r.mu.Unlock()
		w.WriteHeader(204)
	}))
	t.Cleanup(r.srv.Close)
	return r
}

func TestWebhooksThroughTheDashboard(t *testing.T) {
	f := startOps(t)
	ctx := context.Background()
	rcv := newReceiver(t)
	base := fmt.Sprintf("/api/teams/%d/webhooks", f.teamA)

	// Saved URLs are checked: scheme, credentials, internal addresses.
	for _, bad := range []string{"ftp://x.example", "https://u:p@x.example/", "http://169.254.169.254/latest", "http://10.1.2.3/", "http://localhost/x"} {
		f.alice.want(422, "POST", base, map[string]any{"url": bad})
	}
	f.alice.want(422, "POST", base, map[string]any{"url": rcv.srv.URL, "events": []string{"nope"}})
	f.alice.want(404, "POST", base, map[string]any{"url": rcv.srv.URL, "app_id": f.appB})

	created := f.alice.want(201, "POST", base, map[string]any{"url": rcv.srv.URL + "/hook?token=s3cret", "events": []string{"deployment.failed"}, "app_id": f.appA})
	secret, _ := created["secret"].(string)
	id := int64(created["id"].(float64))
	if !strings.HasPrefix(secret, webhooks.SecretPrefix) || created["kind"] != "http" {
		t.Fatalf("created %v", created)
	}
	// The secret is shown once; the URL is stored encrypted.
	list := f.alice.want(200, "GET", base, nil)
	if strings.Contains(fmt.Sprint(list), secret) || len(list["webhooks"].([]any)) != 1 {
		t.Fatalf("list %v", list)
	}
	// The URL's credentials are write-only: every answer shows it redacted,
	// for webhooks and chat channels alike.
	ch := f.alice.want(201, "POST", base, map[string]any{"kind": "shoutrrr", "url": "discord://Tok3nTok3nTok3nTok3n@123456789012345678"})
	for _, shown := range []any{created, list, ch, f.alice.want(200, "GET", base, nil)} {
		if s := fmt.Sprint(shown); strings.Contains(s, "s3cret") || strings.Contains(s, "Tok3n") {
			t.Fatalf("credentials shown: %v", s)
		}
	}
	if created["url"] != rcv.srv.URL+"/hook?token=***" || ch["url"] != "discord://***@123456789012345678" {
		t.Fatalf("redacted forms: %v %v", created["url"], ch["url"])
	}
	f.alice.want(200, "DELETE", fmt.Sprintf("%s/%d", base, int64(ch["id"].(float64))), nil)
	var stored string
	f.db.Pool.QueryRow(ctx, "SELECT url_enc FROM webhooks WHERE id = $1", id).Scan(&stored)
	if strings.Contains(stored, "127.0.0.1") || strings.Contains(stored, "s3cret") {
		t.Fatal("webhook URL stored in clear")
	}

	// A test delivery is sent at once, signed with the secret.
	res := f.alice.want(200, "POST", fmt.Sprintf("%s/%d/test", base, id), nil)
	if res["ok"] != true || res["status"].(float64) != 204 {
		t.Fatalf("test delivery %v", res)
	}
	rcv.mu.Lock()
	if len(rcv.bodies) != 1 || !strings.Contains(rcv.bodies[0], webhooks.TestEvent) {
		t.Fatalf("received %v", rcv.bodies)
	}
	h := rcv.sigs[0]
	ts, _ := strconv.ParseInt(h.Get("webhook-timestamp"), 10, 64)
	if !webhooks.Verify(secret, h.Get("webhook-id"), ts, []byte(rcv.bodies[0]), h.Get("webhook-signature")) {
		t.Fatal("test delivery not signed with the secret")
	}
	rcv.mu.Unlock()
	ds := f.alice.want(200, "GET", fmt.Sprintf("%s/%d/deliveries", base, id), nil)["deliveries"].([]any)
	if len(ds) != 1 || ds[0].(map[string]any)["state"] != "succeeded" {
		t.Fatalf("deliveries %v", ds)
	}

	// Update, rotate, delete.
	upd := f.alice.want(200, "PATCH", fmt.Sprintf("%s/%d", base, id), map[string]any{"enabled": false, "events": []string{"*"}})
	if upd["enabled"] != false || fmt.Sprint(upd["events"]) != "[*]" {
		t.Fatalf("update %v", upd)
	}
	f.alice.want(422, "PATCH", fmt.Sprintf("%s/%d", base, id), map[string]any{"events": []string{}})
	rot := f.alice.want(200, "POST", fmt.Sprintf("%s/%d/rotate-secret", base, id), nil)
	if rot["secret"] == secret || !strings.HasPrefix(rot["secret"].(string), webhooks.SecretPrefix) {
		t.Fatalf("rotate %v", rot)
	}

	// Another team's owner sees and changes nothing; a member of the team
	// cannot manage webhooks; a read-only token cannot write.
	for _, c := range []struct {
		method, path string
		body         any
	}{
		{"GET", base, nil},
		{"POST", base, map[string]any{"url": "https://evil.example/"}},
		{"PATCH", fmt.Sprintf("%s/%d", base, id), map[string]any{"enabled": true}},
		{"DELETE", fmt.Sprintf("%s/%d", base, id), nil},
		{"POST", fmt.Sprintf("%s/%d/rotate-secret", base, id), nil},
		{"GET", fmt.Sprintf("%s/%d/deliveries", base, id), nil},
		{"POST", fmt.Sprintf("%s/%d/test", base, id), nil},
		// Bob's own team path with Alice's webhook id.
		{"PATCH", fmt.Sprintf("/api/teams/%d/webhooks/%d", f.teamB, id), map[string]any{"enabled": true}},
		{"DELETE", fmt.Sprintf("/api/teams/%d/webhooks/%d", f.teamB, id), nil},
		{"POST", fmt.Sprintf("/api/teams/%d/webhooks/%d/test", f.teamB, id), nil},
		{"GET", fmt.Sprintf("/api/teams/%d/webhooks/%d/deliveries", f.teamB, id), nil},
		{"POST", fmt.Sprintf("/api/teams/%d/webhooks/%d/rotate-secret", f.teamB, id), nil},
	} {
		f.bob.want(404, c.method, c.path, c.body)
	}
	f.user("carl@acme.test", "carl-password-1", map[int64]string{f.teamA: "member"})
	f.login("carl@acme.test", "carl-password-1").want(403, "GET", base, nil)
	reader := f.readToken(f.alice, f.teamA)
	reader.want(200, "GET", base, nil)
	reader.want(403, "POST", base, map[string]any{"url": rcv.srv.URL})
	reader.want(403, "PATCH", fmt.Sprintf("%s/%d", base, id), map[string]any{"enabled": true})
	reader.want(403, "POST", fmt.Sprintf("%s/%d/test", base, id), nil)
	reader.want(403, "POST", fmt.Sprintf("%s/%d/rotate-secret", base, id), nil)
	reader.want(403, "DELETE", fmt.Sprintf("%s/%d", base, id), nil)

	f.alice.want(200, "DELETE", fmt.Sprintf("%s/%d", base, id), nil)
	f.alice.want(404, "DELETE", fmt.Sprintf("%s/%d", base, id), nil)
	seen := f.auditActions(f.teamA)
	for _, a := range []string{"webhook.create", "webhook.test", "webhook.update", "webhook.rotate_secret", "webhook.delete"} {
		if !seen[a] {
			t.Errorf("no %s audit event", a)
		}
	}
	var leaked int
	f.db.Pool.QueryRow(ctx, "SELECT count(*) FROM audit_events WHERE details::text LIKE '%s3cret%' OR target LIKE '%s3cret%'").Scan(&leaked)
	if leaked != 0 {
		t.Fatal("the webhook URL's token is in the audit log")
	}
}

func TestAlertRulesAndAlerts(t *testing.T) {
	f := startOps(t)
	ctx := context.Background()
	rules := fmt.Sprintf("/api/apps/%d/alert-rules", f.appA)
	for _, bad := range []map[string]any{
		{"kind": "latency", "threshold": 1},
		{"kind": "cpu", "threshold": 0},
		{"kind": "cpu", "threshold": 10000},
		{"kind": "memory", "threshold": -5},
		{"kind": "offline", "threshold": 3},
		{"kind": "cpu", "threshold": 80, "sustain_s": -1},
		{"kind": "cpu", "threshold": 80, "sustain_s": 9999999},
	} {
		f.alice.want(422, "POST", rules, bad)
	}
	cpu := f.alice.want(201, "POST", rules, map[string]any{"kind": "cpu", "threshold": 80, "sustain_s": 300})
	off := f.alice.want(201, "POST", rules, map[string]any{"kind": "offline"})
	if cpu["unit"] == "" || off["sustain_s"].(float64) != 120 || off["enabled"] != true {
		t.Fatalf("created %v %v", cpu, off)
	}
	cpuID, offID := int64(cpu["id"].(float64)), int64(off["id"].(float64))
	upd := f.alice.want(200, "PATCH", fmt.Sprintf("%s/%d", rules, cpuID), map[string]any{"threshold": 90, "enabled": false})
	if upd["threshold"].(float64) != 90 || upd["enabled"] != false || upd["sustain_s"].(float64) != 300 {
		t.Fatalf("update %v", upd)
	}
	f.alice.want(422, "PATCH", fmt.Sprintf("%s/%d", rules, offID), map[string]any{"threshold": 5})
	if got := f.alice.want(200, "GET", rules, nil)["rules"].([]any); len(got) != 2 {
		t.Fatalf("rules %v", got)
	}

	// Alerts as the evaluator writes them.
	f.db.Pool.Exec(ctx, "INSERT INTO alerts (rule_id, app_id, kind, value, message) VALUES ($1, $2, 'offline', 1, 'the app''s worker is offline')", offID, f.appA)
	f.db.Pool.Exec(ctx, "INSERT INTO alerts (rule_id, app_id, kind, value, message, fired_at, resolved_at) VALUES ($1, $2, 'cpu', 95, 'cpu high', now() - interval '1 hour', now() - interval '30 minutes')", cpuID, f.appA)
	var bobRule int64
	f.db.Pool.QueryRow(ctx, "INSERT INTO alert_rules (app_id, kind) VALUES ($1, 'crashloop') RETURNING id", f.appB).Scan(&bobRule)
	f.db.Pool.Exec(ctx, "INSERT INTO alerts (rule_id, app_id, kind, value, message) VALUES ($1, $2, 'crashloop', 1, 'bee crashes')", bobRule, f.appB)

	open := f.alice.want(200, "GET", fmt.Sprintf("/api/apps/%d/alerts?state=open", f.appA), nil)["alerts"].([]any)
	if len(open) != 1 || open[0].(map[string]any)["kind"] != "offline" {
		t.Fatalf("open alerts %v", open)
	}
	all := f.alice.want(200, "GET", fmt.Sprintf("/api/teams/%d/alerts", f.teamA), nil)["alerts"].([]any)
	if len(all) != 2 || all[0].(map[string]any)["resolved_at"] != nil || all[0].(map[string]any)["app_slug"] != "shop" {
		t.Fatalf("team alerts (open first) %v", all)
	}
	if got := f.alice.want(200, "GET", fmt.Sprintf("/api/teams/%d/alerts?state=resolved", f.teamA), nil)["alerts"].([]any); len(got) != 1 {
		t.Fatalf("resolved %v", got)
	}
	f.alice.want(422, "GET", fmt.Sprintf("/api/teams/%d/alerts?state=maybe", f.teamA), nil)
	rules2 := f.alice.want(200, "GET", rules, nil)["rules"].([]any)
	for _, r := range rules2 {
		m := r.(map[string]any)
		if int64(m["id"].(float64)) == offID && m["firing"] != true {
			t.Fatalf("the offline rule is not shown firing: %v", m)
		}
	}

	// Another team: 404 everywhere, also through its own app's path.
	for _, c := range []struct {
		method, path string
		body         any
	}{
		{"GET", rules, nil},
		{"POST", rules, map[string]any{"kind": "cpu", "threshold": 50}},
		{"PATCH", fmt.Sprintf("%s/%d", rules, cpuID), map[string]any{"enabled": true}},
		{"DELETE", fmt.Sprintf("%s/%d", rules, cpuID), nil},
		{"GET", fmt.Sprintf("/api/apps/%d/alerts", f.appA), nil},
		{"GET", fmt.Sprintf("/api/teams/%d/alerts", f.teamA), nil},
		{"PATCH", fmt.Sprintf("/api/apps/%d/alert-rules/%d", f.appB, cpuID), map[string]any{"enabled": true}},
		{"DELETE", fmt.Sprintf("/api/apps/%d/alert-rules/%d", f.appB, cpuID), nil},
	} {
		f.bob.want(404, c.method, c.path, c.body)
	}
	// Members read; admins change; read-only tokens do not write.
	f.user("carl@acme.test", "carl-password-1", map[int64]string{f.teamA: "member"})
	carl := f.login("carl@acme.test", "carl-password-1")
	carl.want(200, "GET", rules, nil)
	carl.want(403, "POST", rules, map[string]any{"kind": "disk", "threshold": 500})
	reader := f.readToken(f.alice, f.teamA)
	reader.want(200, "GET", fmt.Sprintf("/api/teams/%d/alerts", f.teamA), nil)
	reader.want(403, "POST", rules, map[string]any{"kind": "disk", "threshold": 500})
	reader.want(403, "PATCH", fmt.Sprintf("%s/%d", rules, cpuID), map[string]any{"enabled": true})
	reader.want(403, "DELETE", fmt.Sprintf("%s/%d", rules, cpuID), nil)

	f.alice.want(200, "DELETE", fmt.Sprintf("%s/%d", rules, cpuID), nil)
	f.alice.want(404, "DELETE", fmt.Sprintf("%s/%d", rules, cpuID), nil)
	seen := f.auditActions(f.teamA)
	for _, a := range []string{"alert_rule.create", "alert_rule.update", "alert_rule.delete"} {
		if !seen[a] {
			t.Errorf("no %s audit event", a)
		}
	}
}

func TestWorkersForInstanceAdminsOnly(t *testing.T) {
	f := startOps(t)
	ctx := context.Background()
	w1, _, _ := workers.Add(ctx, f.db.Pool, cptest.Keyring(t), "w1", "de", "127.0.0.2")
	workers.Add(ctx, f.db.Pool, cptest.Keyring(t), "w2", "de", "127.0.0.3")
	f.db.Pool.Exec(ctx, "UPDATE workers SET status = 'draining', last_seen = now(), cpu_millis = 4000, memory_mb = 8192 WHERE id = $1", w1.ID)
	f.db.Pool.Exec(ctx, "UPDATE apps SET worker_id = $1, status = 'running' WHERE id IN ($2, $3)", w1.ID, f.appA, f.appB)
	f.db.Pool.Exec(ctx, "INSERT INTO usage_samples (app_id, bucket, samples, cpu_pct_sum, mem_bytes_max) VALUES ($1, $2, 2, 50, 1000)", f.appA, time.Now().UTC().Truncate(5*time.Minute))
	if err := workers.RecordImagesBytes(ctx, f.db.Pool, w1.ID, 734003200); err != nil { // as the worker's stats report it
		t.Fatal(err)
	}

	f.alice.want(403, "GET", "/api/workers", nil)
	f.readToken(f.alice, f.teamA).want(403, "GET", "/api/workers", nil)
	(&client{f: f.fixture}).want(401, "GET", "/api/workers", nil)
	f.user("root@ops.test", "root-password-1", nil)
	f.db.Pool.Exec(ctx, "UPDATE users SET is_admin = true WHERE email = 'root@ops.test'")
	ws := f.login("root@ops.test", "root-password-1").want(200, "GET", "/api/workers", nil)["workers"].([]any)
	if len(ws) != 2 {
		t.Fatalf("workers %v", ws)
	}
	w := ws[0].(map[string]any)
	if w["name"] != "w1" || w["draining"] != true || w["apps"].(float64) != 2 || w["last_seen"] == nil ||
		w["reserved"].(map[string]any)["cpu_millis"].(float64) != 1000 || w["capacity"].(map[string]any)["memory_mb"].(float64) != 8192 ||
		w["cpu_pct"].(float64) != 25 || w["mem_bytes"].(float64) != 1000 || w["images_bytes"].(float64) != 734003200 {
		t.Fatalf("w1 %v", w)
	}
	if strings.Contains(fmt.Sprint(ws), "api_key") {
		t.Fatal("key material in the workers list")
	}

	// Drain and resume: instance admins from a session only.
	root := f.login("root@ops.test", "root-password-1")
	resume := fmt.Sprintf("/api/workers/%d/resume", w1.ID)
	f.alice.want(403, "POST", resume, nil)
	f.readToken(f.alice, f.teamA).want(403, "POST", resume, nil)
	if out := root.want(200, "POST", resume, nil); out["status"] != "online" {
		t.Fatalf("resume: %v", out)
	}
	if out := root.want(200, "POST", fmt.Sprintf("/api/workers/%d/drain", w1.ID), nil); out["status"] != "draining" {
		t.Fatalf("drain: %v", out)
	}
	root.want(404, "POST", "/api/workers/999999/drain", nil)
	var audited int
	f.db.Pool.QueryRow(ctx, "SELECT count(*) FROM audit_events WHERE action IN ('worker.drain', 'worker.resume') AND target = 'w1'").Scan(&audited)
	if audited != 2 {
		t.Fatalf("%d audit events", audited)
	}
}

func TestTeamsAndMembers(t *testing.T) {
	f := startOps(t)
	ctx := context.Background()
	f.db.Pool.Exec(ctx, "UPDATE teams SET plan = 'pro'") // the new team must not copy any team's plan
	team := f.alice.want(201, "POST", "/api/teams", map[string]any{"name": "Side Project", "slug": "side"})
	side := int64(team["id"].(float64))
	if team["plan"] != "free" || team["role"] != "owner" {
		t.Fatalf("new team %v", team)
	}
	f.alice.want(409, "POST", "/api/teams", map[string]any{"name": "Again", "slug": "side"})
	f.alice.want(422, "POST", "/api/teams", map[string]any{"name": "", "slug": "Bad Slug"})
	f.readToken(f.alice, f.teamA).want(403, "POST", "/api/teams", map[string]any{"name": "T", "slug": "tok"})
	writer := f.alice.want(201, "POST", "/api/tokens", map[string]any{"team_id": f.teamA, "name": "w", "scopes": []string{"read", "write"}})
	(&client{f: f.fixture, token: writer["token"].(string)}).want(403, "POST", "/api/teams", map[string]any{"name": "T", "slug": "tok"})

	members := fmt.Sprintf("/api/teams/%d/members", f.teamA)
	f.user("ada@acme.test", "ada-password-1", nil)
	f.user("max@acme.test", "max-password-1", nil)
	f.alice.want(422, "POST", members, map[string]any{"email": "nobody@acme.test"})
	f.alice.want(422, "POST", members, map[string]any{"email": "ada@acme.test", "role": "god"})
	ada := f.alice.want(201, "POST", members, map[string]any{"email": "ADA@acme.test", "role": "admin"})
	f.alice.want(409, "POST", members, map[string]any{"email": "ada@acme.test"})
	adaID := int64(ada["user_id"].(float64))
	adaC := f.login("ada@acme.test", "ada-password-1")

	// Admins manage members and admins, never owners.
	adaC.want(403, "POST", members, map[string]any{"email": "max@acme.test", "role": "owner"})
	maxM := adaC.want(201, "POST", members, map[string]any{"email": "max@acme.test"})
	maxID := int64(maxM["user_id"].(float64))
	if maxM["role"] != "member" {
		t.Fatalf("default role %v", maxM)
	}
	var aliceID int64
	f.db.Pool.QueryRow(ctx, "SELECT id FROM users WHERE email = 'alice@acme.test'").Scan(&aliceID)
	adaC.want(403, "PATCH", fmt.Sprintf("%s/%d", members, aliceID), map[string]any{"role": "member"})
	adaC.want(403, "DELETE", fmt.Sprintf("%s/%d", members, aliceID), nil)
	adaC.want(403, "PATCH", fmt.Sprintf("%s/%d", members, maxID), map[string]any{"role": "owner"})
	adaC.want(200, "PATCH", fmt.Sprintf("%s/%d", members, maxID), map[string]any{"role": "admin"})
	maxC := f.login("max@acme.test", "max-password-1")
	maxC.want(200, "PATCH", fmt.Sprintf("%s/%d", members, maxID), map[string]any{"role": "member"}) // demoting oneself is fine
	maxC.want(403, "DELETE", fmt.Sprintf("%s/%d", members, adaID), nil)
	maxC.want(403, "POST", members, map[string]any{"email": "bob@globex.test"})
	list := maxC.want(200, "GET", members, nil)["members"].([]any)
	if len(list) != 3 || list[0].(map[string]any)["role"] != "owner" {
		t.Fatalf("members %v", list)
	}

	// The last owner can be neither demoted nor removed, not even by
	// themselves; with a second owner both work.
	f.alice.want(422, "PATCH", fmt.Sprintf("%s/%d", members, aliceID), map[string]any{"role": "admin"})
	f.alice.want(422, "DELETE", fmt.Sprintf("%s/%d", members, aliceID), nil)
	f.alice.want(200, "PATCH", fmt.Sprintf("%s/%d", members, adaID), map[string]any{"role": "owner"})
	f.alice.want(200, "PATCH", fmt.Sprintf("%s/%d", members, aliceID), map[string]any{"role": "admin"})
	adaC.want(422, "DELETE", fmt.Sprintf("%s/%d", members, adaID), nil)

	// Anyone may leave; a removed member's tokens stop working.
	maxTok := maxC.want(201, "POST", "/api/tokens", map[string]any{"team_id": f.teamA, "name": "m"})
	maxC.want(200, "DELETE", fmt.Sprintf("%s/%d", members, maxID), nil)
	maxC.want(404, "GET", members, nil)
	(&client{f: f.fixture, token: maxTok["token"].(string)}).want(401, "GET", "/api/me", nil)

	// Another team: 404; read-only tokens do not write.
	for _, c := range []struct {
		method, path string
		body         any
	}{
		{"GET", members, nil},
		{"POST", members, map[string]any{"email": "bob@globex.test", "role": "owner"}},
		{"PATCH", fmt.Sprintf("%s/%d", members, adaID), map[string]any{"role": "member"}},
		{"DELETE", fmt.Sprintf("%s/%d", members, adaID), nil},
		{"GET", fmt.Sprintf("/api/teams/%d/members", side), nil},
		{"GET", fmt.Sprintf("/api/teams/%d/usage", f.teamA), nil},
	} {
		f.bob.want(404, c.method, c.path, c.body)
	}
	var bobID int64
	f.db.Pool.QueryRow(ctx, "SELECT id FROM users WHERE email = 'bob@globex.test'").Scan(&bobID)
	f.alice.want(404, "DELETE", fmt.Sprintf("%s/%d", members, bobID), nil) // not a member here
	f.alice.want(404, "PATCH", fmt.Sprintf("/api/teams/%d/members/%d", f.teamB, bobID), map[string]any{"role": "member"})
	reader := f.readToken(adaC, f.teamA)
	reader.want(200, "GET", members, nil)
	reader.want(403, "POST", members, map[string]any{"email": "max@acme.test"})
	reader.want(403, "PATCH", fmt.Sprintf("%s/%d", members, aliceID), map[string]any{"role": "member"})
	reader.want(403, "DELETE", fmt.Sprintf("%s/%d", members, aliceID), nil)

	seen := f.auditActions(f.teamA)
	for _, a := range []string{"member.add", "member.role", "member.remove"} {
		if !seen[a] {
			t.Errorf("no %s audit event", a)
		}
	}
	if !f.auditActions(side)["team.create"] {
		t.Error("no team.create audit event")
	}
}
