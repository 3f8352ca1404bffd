package internalapi_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/caddyserver/caddy/v2/caddyconfig/httpcaddyfile"

	"github.com/wisehosting/wisehosting/agent/transport"
	"github.com/wisehosting/wisehosting/caddymodules/cptest"
	"github.com/wisehosting/wisehosting/caddymodules/internalapi"
	"github.com/wisehosting/wisehosting/internal/jobs"
	"github.com/wisehosting/wisehosting/internal/pgtest"
	"github.com/wisehosting/wisehosting/internal/wsproto"
)

const token = "internal-token-0123456789abcdef"

func call(t *testing.T, method, url, tok string) (int, map[string]any) {
	t.Helper()
	return callJSON(t, method, url, tok, "")
}

// callJSON sends body (none when "") as JSON.
func callJSON(t *testing.T, method, url, tok, body string) (int, map[string]any) {
	t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, _ := http.NewRequest(method, url, rd)
	if tok != "" {
		req.Header.Set("Authorization", "Bearer "+tok)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	var out map[string]any
	json.Unmarshal(b, &out)
	return resp.StatusCode, out
}

func TestInternalAPI(t *testing.T) {
	db := pgtest.New(t)
	addr := cptest.FreeAddr(t)
	cptest.Start(t, db, cptest.Options{
		Core: map[string]any{"internal_token": token},
		Apps: map[string]any{"wisehosting_internal": map[string]any{"listen": addr}},
	})
	base := "http://" + addr
	ctx := context.Background()
	var team, app, worker int64
	db.Pool.QueryRow(ctx, "INSERT INTO teams (name, slug) VALUES ('t', 't') RETURNING id").Scan(&team)
	db.Pool.QueryRow(ctx, "INSERT INTO apps (team_id, slug, name) VALUES ($1, 'site', 'site') RETURNING id", team).Scan(&app)
	db.Pool.QueryRow(ctx, `INSERT INTO workers (name, api_key_hash, wg_ip, status, cpu_millis, memory_mb, last_seen)
		VALUES ('w1', 'k', '127.0.0.1', 'online', 4000, 8192, now()) RETURNING id`).Scan(&worker)

	// No token, a wrong one, a prefix of the right one: refused.
	for _, tok := range []string{"", "wrong", token[:10]} {
		if code, _ := call(t, "GET", base+"/v1/workers", tok); code != http.StatusUnauthorized {
			t.Fatalf("token %q: %d", tok, code)
		}
	}
	if code, out := call(t, "GET", base+"/v1/workers", token); code != 200 || len(out["workers"].([]any)) != 1 {
		t.Fatalf("workers: %d %v", code, out)
	}
	if code, out := call(t, "GET", base+"/v1/apps", token); code != 200 || !strings.Contains(fmt.Sprint(out), "slug:site") ||
		!strings.Contains(fmt.Sprint(out), "plan:free") || !strings.Contains(fmt.Sprint(out), "memory_mb:256") {
		t.Fatalf("apps: %d %v", code, out)
	}
	if code, _ := call(t, "GET", base+"/v1/jobs?state=bogus", token); code != http.StatusUnprocessableEntity {
		t.Fatalf("bad state: %d", code)
	}
	// Unknown routes and wrong methods answer JSON errors too.
	if code, out := call(t, "GET", base+"/v1/nothing", token); code != http.StatusNotFound || out["error"] != "not found" {
		t.Fatalf("unknown route: %d %v", code, out)
	}
	if code, out := call(t, "GET", base+"/v1/workers/w1/drain", token); code != http.StatusMethodNotAllowed || out["error"] != "method not allowed" {
		t.Fatalf("wrong method: %d %v", code, out)
	}
	// Without the token, even an unknown route says only 401.
	if code, _ := call(t, "GET", base+"/v1/nothing", ""); code != http.StatusUnauthorized {
		t.Fatalf("unknown route without token: %d", code)
	}

	// Drain: no new job lands on the worker; resume: it does.
	if code, out := call(t, "POST", base+"/v1/workers/w1/drain", token); code != 200 || out["status"] != "draining" {
		t.Fatalf("drain: %d %v", code, out)
	}
	if code, _ := call(t, "POST", base+"/v1/workers/nope/drain", token); code != http.StatusNotFound {
		t.Fatalf("drain unknown: %d", code)
	}
	id, err := jobs.Enqueue(ctx, db.Pool, jobs.New{Kind: "restart", AppID: app})
	if err != nil {
		t.Fatal(err)
	}
	if p, err := jobs.AssignBatch(ctx, db.Pool, 10, time.Minute, time.Minute); err != nil || len(p) != 0 {
		t.Fatalf("placed on a draining worker: %v %v", p, err)
	}
	if code, out := call(t, "POST", base+"/v1/workers/w1/resume", token); code != 200 || out["status"] != "online" {
		t.Fatalf("resume: %d %v", code, out)
	}
	if p, err := jobs.AssignBatch(ctx, db.Pool, 10, time.Minute, time.Minute); err != nil || len(p) != 1 {
		t.Fatalf("after resume: %v %v", p, err)
	}

	// Requeue: only failed or cancelled jobs.
	if code, _ := call(t, "POST", fmt.Sprintf("%s/v1/jobs/%d/requeue", base, id), token); code != http.StatusConflict {
		t.Fatalf("requeue of an assigned job: %d", code)
	}
	db.Pool.Exec(ctx, "UPDATE jobs SET state = 'failed', error = 'boom' WHERE id = $1", id)
	code, out := call(t, "POST", fmt.Sprintf("%s/v1/jobs/%d/requeue", base, id), token)
	if code != 200 {
		t.Fatalf("requeue: %d %v", code, out)
	}
	var state string
	db.Pool.QueryRow(ctx, "SELECT state FROM jobs WHERE id = $1", int64(out["job_id"].(float64))).Scan(&state)
	if state != "pending" {
		t.Fatalf("requeued job is %s", state)
	}
	if code, _ := call(t, "POST", base+"/v1/jobs/999999/requeue", token); code != http.StatusNotFound {
		t.Fatalf("requeue unknown: %d", code)
	}
	if code, out := call(t, "GET", base+"/v1/jobs?state=failed", token); code != 200 || len(out["jobs"].([]any)) != 1 {
		t.Fatalf("failed jobs: %d %v", code, out)
	}
}

// Without an internal token nothing listens.
func TestOffWithoutToken(t *testing.T) {
	db := pgtest.New(t)
	addr := cptest.FreeAddr(t)
	cptest.Start(t, db, cptest.Options{Apps: map[string]any{"wisehosting_internal": map[string]any{"listen": addr}}})
	if c, err := net.DialTimeout("tcp", addr, time.Second); err == nil {
		c.Close()
		t.Fatal("internal API listening without a token")
	}
}

func TestRefusesNonLoopback(t *testing.T) {
	for _, addr := range []string{"0.0.0.0:2021", "[::]:2021", ":2021", "10.50.0.1:2021", "example.com:2021", "127.0.0.1"} {
		if err := internalapi.CheckLoopback(addr); err == nil {
			t.Errorf("%s accepted", addr)
		}
	}
	for _, addr := range []string{"127.0.0.1:2021", "[::1]:2021", "localhost:0", "127.0.0.5:1"} {
		if err := internalapi.CheckLoopback(addr); err != nil {
			t.Errorf("%s refused: %v", addr, err)
		}
	}
	// In the Caddyfile and in JSON.
	adapter := caddyfile.Adapter{ServerType: httpcaddyfile.ServerType{}}
	if _, _, err := adapter.Adapt([]byte("{\n\twisehosting_internal {\n\t\tlisten 0.0.0.0:2021\n\t}\n}\n"), nil); err == nil {
		t.Error("Caddyfile accepted 0.0.0.0")
	}
	db := pgtest.New(t)
	cfg := cptest.Config(db, cptest.FreeAddr(t), cptest.Options{
		Core: map[string]any{"internal_token": token},
		Apps: map[string]any{"wisehosting_internal": map[string]any{"listen": "0.0.0.0:2021"}},
	})
	if err := caddy.Load(cfg, true); err == nil || !strings.Contains(err.Error(), "loopback") {
		caddy.Stop()
		t.Fatalf("JSON config on 0.0.0.0: %v", err)
	}
}

// A config reload (new token) binds the same loopback address while the
// old config still holds it, and from then on only the new token works.
func TestReloadKeepsListening(t *testing.T) {
	db := pgtest.New(t)
	addr := cptest.FreeAddr(t)
	opts := func(tok string) cptest.Options {
		return cptest.Options{Core: map[string]any{"internal_token": tok},
			Apps: map[string]any{"wisehosting_internal": map[string]any{"listen": addr}}}
	}
	cp := cptest.Start(t, db, opts(token))
	base := "http://" + addr
	if code, _ := call(t, "GET", base+"/v1/workers", token); code != 200 {
		t.Fatalf("before reload: %d", code)
	}
	newToken := "second-internal-token-abcdefghij"
	if err := caddy.Load(cptest.Config(db, cp.Addr, opts(newToken)), true); err != nil {
		t.Fatalf("reload: %v", err)
	}
	if code, _ := call(t, "GET", base+"/v1/workers", newToken); code != 200 {
		t.Fatalf("new token after reload: %d", code)
	}
	if code, _ := call(t, "GET", base+"/v1/workers", token); code != http.StatusUnauthorized {
		t.Fatalf("old token after reload: %d", code)
	}
	// The scheme is case-insensitive; other schemes are refused.
	req, _ := http.NewRequest("GET", base+"/v1/jobs", nil)
	req.Header.Set("Authorization", "bearer "+newToken)
	if resp, err := http.DefaultClient.Do(req); err != nil || resp.StatusCode != 200 {
		t.Fatalf("lowercase scheme: %v %v", resp, err)
	} else {
		resp.Body.Close()
	}
	req.Header.Set("Authorization", "Basic "+newToken)
	if resp, err := http.DefaultClient.Do(req); err != nil || resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("basic scheme: %v %v", resp, err)
	} else {
		resp.Body.Close()
	}
	// Oversized headers are refused before any handler runs.
	req.Header.Set("Authorization", "Bearer "+newToken)
	req.Header.Set("X-Big", strings.Repeat("a", 64<<10))
	if resp, err := http.DefaultClient.Do(req); err == nil {
		resp.Body.Close()
		if resp.StatusCode != http.StatusRequestHeaderFieldsTooLarge {
			t.Fatalf("64 KiB header: %d", resp.StatusCode)
		}
	}
}

// Requeueing a failed deploy gives its deployment a new queued job; the
// listing filters by state.
func TestRequeueDeploy(t *testing.T) {
	db := pgtest.New(t)
	addr := cptest.FreeAddr(t)
	cptest.Start(t, db, cptest.Options{
		Core: map[string]any{"internal_token": token},
		Apps: map[string]any{"wisehosting_internal": map[string]any{"listen": addr}},
	})
	base := "http://" + addr
	ctx := context.Background()
	var team, app, dep int64
	db.Pool.QueryRow(ctx, "INSERT INTO teams (name, slug) VALUES ('t', 't') RETURNING id").Scan(&team)
	db.Pool.QueryRow(ctx, "INSERT INTO apps (team_id, slug, name) VALUES ($1, 'site', 'site') RETURNING id", team).Scan(&app)
	db.Pool.QueryRow(ctx, "INSERT INTO deployments (app_id, status, error) VALUES ($1, 'failed', 'boom') RETURNING id", app).Scan(&dep)
	id, _ := jobs.Enqueue(ctx, db.Pool, jobs.New{Kind: "deploy", AppID: app, DeploymentID: dep, CPUMillis: 100, MemoryMB: 64})
	db.Pool.Exec(ctx, "UPDATE jobs SET state = 'failed', error = 'boom' WHERE id = $1", id)
	jobs.Enqueue(ctx, db.Pool, jobs.New{Kind: "restart", AppID: app})

	code, out := call(t, "POST", fmt.Sprintf("%s/v1/jobs/%d/requeue", base, id), token)
	if code != 200 {
		t.Fatalf("requeue: %d %v", code, out)
	}
	newID := int64(out["job_id"].(float64))
	j, _ := jobs.Get(ctx, db.Pool, newID)
	if j.State != "pending" || j.DeploymentID != dep || j.Kind != "deploy" || j.CPUMillis != 100 || j.Attempt != 0 {
		t.Fatalf("new job %+v", j)
	}
	var status string
	db.Pool.QueryRow(ctx, "SELECT status FROM deployments WHERE id = $1", dep).Scan(&status)
	if status != "queued" {
		t.Fatalf("deployment %s", status)
	}
	if code, out := call(t, "GET", base+"/v1/jobs?state=pending", token); code != 200 || len(out["jobs"].([]any)) != 2 {
		t.Fatalf("pending jobs: %d %v", code, out)
	}
	if code, out := call(t, "GET", base+"/v1/jobs?limit=1", token); code != 200 || len(out["jobs"].([]any)) != 1 {
		t.Fatalf("limit: %d %v", code, out)
	}
	for _, q := range []string{"limit=0", "limit=5000", "limit=x"} {
		if code, _ := call(t, "GET", base+"/v1/jobs?"+q, token); code != http.StatusUnprocessableEntity {
			t.Fatalf("%s: %d", q, code)
		}
	}
	if code, _ := call(t, "POST", base+"/v1/jobs/abc/requeue", token); code != http.StatusUnprocessableEntity {
		t.Fatalf("bad id: %d", code)
	}
}

// Workers are added and placed by the operator only: zone and mesh IP are
// validated here, at the edge, and a worker's hello cannot change them.
func TestWorkerPlacementByOperatorOnly(t *testing.T) {
	db := pgtest.New(t)
	addr := cptest.FreeAddr(t)
	cp := cptest.Start(t, db, cptest.Options{
		Core: map[string]any{"internal_token": token},
		Apps: map[string]any{"wisehosting_internal": map[string]any{"listen": addr}},
	})
	base := "http://" + addr
	for body, want := range map[string]int{
		"{\"name\":\"w1\",\"zone\":\"z`) || HostRegexp(`.+\"}":  http.StatusUnprocessableEntity,
		`{"name":"w1","zone":"z.test) || Host(x"}`:              http.StatusUnprocessableEntity,
		`{"name":"w1","zone":"z.test","wg_ip":"127.0.0.1; rm"}`: http.StatusUnprocessableEntity,
		`{"name":"W 1"}`:             http.StatusUnprocessableEntity,
		`{"name":"w1","owner":"me"}`: http.StatusBadRequest,
		`not json`:                   http.StatusBadRequest,
	} {
		if code, out := callJSON(t, "POST", base+"/v1/workers", token, body); code != want || out["error"] == "" {
			t.Errorf("add %s: %d %v, want %d", body, code, out, want)
		}
	}
	code, out := callJSON(t, "POST", base+"/v1/workers", token, `{"name":"w1","zone":"z.test","wg_ip":"127.0.0.1"}`)
	key, _ := out["api_key"].(string)
	if code != http.StatusCreated || !strings.HasPrefix(key, "whk_") || fmt.Sprint(out["worker"]) == "" {
		t.Fatalf("add: %d %v", code, out)
	}
	if code, _ := callJSON(t, "POST", base+"/v1/workers", token, `{"name":"w1"}`); code != http.StatusConflict {
		t.Fatalf("second w1: %d", code)
	}

	// The worker connects and claims another zone and mesh IP.
	agent, err := transport.New(transport.Config{URL: cp.URL, APIKey: key, MinBackoff: 50 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	agent.SetHello(func() wsproto.Hello {
		return wsproto.Hello{Version: "test", Zone: "bank.example", WGIP: "127.0.0.66", CPUMillis: 1000, MemoryMB: 512}
	})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- agent.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	worker := func() map[string]any {
		_, out := call(t, "GET", base+"/v1/workers", token)
		ws, _ := out["workers"].([]any)
		if len(ws) != 1 {
			t.Fatalf("workers: %v", out)
		}
		return ws[0].(map[string]any)
	}
	deadline := time.Now().Add(10 * time.Second)
	for worker()["status"] != "online" || worker()["cpu_millis"] != float64(1000) {
		if time.Now().After(deadline) {
			t.Fatalf("the worker's hello was not recorded: %v", worker())
		}
		time.Sleep(50 * time.Millisecond)
	}
	if w := worker(); w["zone"] != "z.test" || w["wg_ip"] != "127.0.0.1" {
		t.Fatalf("the hello changed the placement: %v", w)
	}

	// The operator moves it.
	for body, want := range map[string]int{
		`{"zone":"a` + "`" + `b"}`: http.StatusUnprocessableEntity,
		`{"wg_ip":"x"}`:            http.StatusUnprocessableEntity,
		`{}`:                       http.StatusUnprocessableEntity,
	} {
		if code, _ := callJSON(t, "PATCH", base+"/v1/workers/w1", token, body); code != want {
			t.Errorf("patch %s: %d, want %d", body, code, want)
		}
	}
	if code, _ := callJSON(t, "PATCH", base+"/v1/workers/nope", token, `{"zone":"eu.test"}`); code != http.StatusNotFound {
		t.Errorf("patch of an unknown worker: %d", code)
	}
	if code, out := callJSON(t, "PATCH", base+"/v1/workers/w1", token, `{"zone":"eu.test"}`); code != 200 || out["zone"] != "eu.test" || out["wg_ip"] != "127.0.0.1" {
		t.Fatalf("patch zone: %d %v", code, out)
	}
	if code, out := callJSON(t, "PATCH", base+"/v1/workers/w1", token, `{"wg_ip":"::1"}`); code != 200 || out["zone"] != "eu.test" || out["wg_ip"] != "::1" {
		t.Fatalf("patch mesh IP: %d %v", code, out)
	}
}

// TestErrorVocabulary: the services' errors reach the operator through the
// one mapper: invalid input 422 naming the field, an unknown worker or job
// 404, a state conflict 409, a body that is not the JSON asked for 400,
// each with its sentence; an unexpected failure is 500 with a generic
// sentence, its cause only in the log.
func TestErrorVocabulary(t *testing.T) {
	db := pgtest.New(t)
	addr := cptest.FreeAddr(t)
	logFile := filepath.Join(t.TempDir(), "cp.log")
	cptest.Start(t, db, cptest.Options{
		Core:    map[string]any{"internal_token": token},
		Apps:    map[string]any{"wisehosting_internal": map[string]any{"listen": addr}},
		LogFile: logFile,
	})
	base := "http://" + addr
	ctx := context.Background()
	var team, app int64
	db.Pool.QueryRow(ctx, "INSERT INTO teams (name, slug) VALUES ('t', 't') RETURNING id").Scan(&team)
	db.Pool.QueryRow(ctx, "INSERT INTO apps (team_id, slug, name) VALUES ($1, 'site', 'site') RETURNING id", team).Scan(&app)
	if code, out := callJSON(t, "POST", base+"/v1/workers", token, `{"name":"w1"}`); code != http.StatusCreated {
		t.Fatalf("add: %d %v", code, out)
	}
	job, err := jobs.Enqueue(ctx, db.Pool, jobs.New{Kind: "restart", AppID: app})
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		method, path, body string
		code               int
		error, field       string
	}{
		{"POST", "/v1/workers", `{"name":"W 1"}`, 422, `invalid worker settings: name "W 1": use lowercase letters, digits, dots and dashes`, "name"},
		{"POST", "/v1/workers", `{"name":"w2","wg_ip":"x"}`, 422, `invalid worker settings: mesh IP "x" is not an IP address`, "wg_ip"},
		{"POST", "/v1/workers", `{"name":"w1"}`, 409, "a worker named w1 already exists", "name"},
		{"POST", "/v1/workers", `{"name":`, 400, "invalid JSON body: the body is not valid JSON: it ends too early", ""},
		{"POST", "/v1/workers", `{"name":"w3","zone":7}`, 400, "invalid JSON body: zone must be a string, not a number", "zone"},
		{"PATCH", "/v1/workers/w1", `{}`, 422, `give "zone" and/or "wg_ip"`, ""},
		{"PATCH", "/v1/workers/nope", `{"zone":"eu.test"}`, 404, `no worker named "nope" (or it is revoked)`, ""},
		{"POST", "/v1/workers/nope/drain", "", 404, `no worker named "nope" (or it is revoked)`, ""},
		{"POST", "/v1/workers/nope/resume", "", 404, `no worker named "nope" (or it is revoked)`, ""},
		{"GET", "/v1/jobs?state=bogus", "", 422, "state must be one of pending, assigned, running, succeeded, failed, cancelled", "state"},
		{"GET", "/v1/jobs?limit=0", "", 422, "limit must be between 1 and 1000", "limit"},
		{"POST", "/v1/jobs/x/requeue", "", 422, "job id must be a positive integer", "id"},
		{"POST", "/v1/jobs/999999/requeue", "", 404, "job 999999 not found", ""},
		{"POST", fmt.Sprintf("/v1/jobs/%d/requeue", job), "", 409, fmt.Sprintf("job %d is pending: only failed or cancelled jobs can be enqueued again", job), ""},
	} {
		code, out := callJSON(t, c.method, base+c.path, token, c.body)
		field, _ := out["field"].(string)
		if code != c.code || out["error"] != c.error || field != c.field {
			t.Errorf("%s %s %s: %d %v, want %d %q (field %q)", c.method, c.path, c.body, code, out, c.code, c.error, c.field)
		}
	}

	// An unexpected failure: the table the listing reads is gone.
	if _, err := db.Pool.Exec(ctx, "ALTER TABLE jobs RENAME TO jobs_away"); err != nil {
		t.Fatal(err)
	}
	code, out := call(t, "GET", base+"/v1/jobs", token)
	if code != http.StatusInternalServerError || out["error"] != "listing jobs failed" || len(out) != 1 {
		t.Fatalf("unexpected failure: %d %v", code, out)
	}
	db.Pool.Exec(ctx, "ALTER TABLE jobs_away RENAME TO jobs")
	var logged []byte
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		logged, _ = os.ReadFile(logFile)
		if strings.Contains(string(logged), "listing jobs") || time.Now().After(deadline) {
			break
		}
	}
	if !strings.Contains(string(logged), `"msg":"listing jobs"`) || !strings.Contains(string(logged), `relation \"jobs\" does not exist`) {
		t.Fatalf("the cause is not logged:\n%s", logged)
	}
}
