package api_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"

	"github.com/wisehosting/wisehosting/caddymodules/core"
	"github.com/wisehosting/wisehosting/caddymodules/cptest"
	"github.com/wisehosting/wisehosting/internal/events"
	"github.com/wisehosting/wisehosting/internal/network"
	"github.com/wisehosting/wisehosting/internal/pgtest"
	"github.com/wisehosting/wisehosting/internal/workers"
)

func seedRouting(t testing.TB, db *pgtest.DB) (w1, w2 int64) {
	t.Helper()
	ctx := context.Background()
	var team int64
	db.Pool.QueryRow(ctx, "INSERT INTO teams (name, slug) VALUES ('t', 't') RETURNING id").Scan(&team)
	db.Pool.QueryRow(ctx, "INSERT INTO workers (name, api_key_hash, wg_ip, zone, status) VALUES ('w1', 'k1', '127.0.0.5', 'de.apps.test', 'online') RETURNING id").Scan(&w1)
	db.Pool.QueryRow(ctx, "INSERT INTO workers (name, api_key_hash, wg_ip, status) VALUES ('w2', 'k2', '127.0.0.6', 'online') RETURNING id").Scan(&w2)
	var site, shop int64
	db.Pool.QueryRow(ctx, "INSERT INTO apps (team_id, slug, name, status, worker_id, port, host_port) VALUES ($1, 'site', 'site', 'running', $2, 8080, 30001) RETURNING id", team, w1).Scan(&site)
	db.Pool.QueryRow(ctx, "INSERT INTO apps (team_id, slug, name, status, worker_id, port, host_port) VALUES ($1, 'shop', 'shop', 'running', $2, 3000, 30002) RETURNING id", team, w2).Scan(&shop)
	// Not routable: stopped, no port, worker without mesh address.
	db.Pool.Exec(ctx, "INSERT INTO apps (team_id, slug, name, status, worker_id, port) VALUES ($1, 'stopped', 'x', 'stopped', $2, 80)", team, w1)
	db.Pool.Exec(ctx, "INSERT INTO apps (team_id, slug, name, status, worker_id, port) VALUES ($1, 'noport', 'x', 'running', $2, 0)", team, w1)
	db.Pool.Exec(ctx, "INSERT INTO domains (app_id, hostname, token, verified_at) VALUES ($1, 'www.site.example', 't1', now())", site)
	db.Pool.Exec(ctx, "INSERT INTO domains (app_id, hostname, token) VALUES ($1, 'unverified.example', 't2')", site)
	// shop: 90/10 split between two deployments on /, and /api stripped.
	db.Pool.Exec(ctx, "INSERT INTO routes (app_id, path_prefix, port, weight) VALUES ($1, '/', 30002, 90), ($1, '/', 30003, 10)", shop)
	db.Pool.Exec(ctx, "INSERT INTO routes (app_id, path_prefix, port, strip_prefix) VALUES ($1, '/api', 30004, true)", shop)
	return w1, w2
}

func get(t testing.TB, url, token, inm string) (int, http.Header, []byte) {
	req, _ := http.NewRequest("GET", url, nil)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	if inm != "" {
		req.Header.Set("If-None-Match", inm)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header, b
}

func TestTraefikProviderEndpoints(t *testing.T) {
	db := pgtest.New(t)
	w1, w2 := seedRouting(t, db)
	cp := cptest.Start(t, db, cptest.Options{})
	url := cp.URL + "/v1/traefik/proxy-config"

	if code, _, _ := get(t, url, "", ""); code != http.StatusUnauthorized {
		t.Fatalf("no token: %d", code)
	}
	if code, _, _ := get(t, url, "wrong-token-wrong-token", ""); code != http.StatusUnauthorized {
		t.Fatalf("bad token: %d", code)
	}
	code, hdr, body := get(t, url, cptest.ProxyToken, "")
	if code != 200 || hdr.Get("ETag") == "" {
		t.Fatalf("%d %v", code, hdr)
	}
	var doc struct {
		HTTP struct {
			Routers map[string]struct {
				Rule, Service string
				EntryPoints   []string
				Middlewares   []string
				TLS           *struct{ CertResolver string }
			}
			Services map[string]struct {
				LoadBalancer *struct{ Servers []struct{ URL string } }
				Weighted     *struct {
					Services []struct {
						Name   string
						Weight int
					}
				}
			}
			Middlewares map[string]struct{ StripPrefix struct{ Prefixes []string } }
		}
	}
	if err := json.Unmarshal(body, &doc); err != nil {
		t.Fatal(err)
	}
	site := doc.HTTP.Routers["app-site"]
	// Only names that resolve to the proxies: not <slug>.<zone>, which
	// would fail the certificate of every name of the router.
	if site.Rule != "Host(`site.apps.test`) || Host(`www.site.example`)" ||
		site.TLS == nil || site.TLS.CertResolver != "letsencrypt" || site.EntryPoints[0] != "websecure" {
		t.Fatalf("site router %+v", site)
	}
	if strings.Contains(string(body), "unverified.example") || strings.Contains(string(body), "stopped") || strings.Contains(string(body), "noport") {
		t.Fatalf("unroutable entries in %s", body)
	}
	if u := doc.HTTP.Services["app-site"].LoadBalancer.Servers[0].URL; u != "http://127.0.0.5:30001" {
		t.Fatalf("site upstream %s", u)
	}
	split := doc.HTTP.Services["app-shop-p0"].Weighted
	if split == nil || len(split.Services) != 2 || split.Services[0].Weight != 90 || split.Services[1].Weight != 10 {
		t.Fatalf("weighted service %+v", doc.HTTP.Services["app-shop-p0"])
	}
	api := doc.HTTP.Routers["app-shop-p1"]
	if !strings.Contains(api.Rule, "&& (Path(`/api`) || PathPrefix(`/api/`))") || len(api.Middlewares) != 1 ||
		doc.HTTP.Middlewares[api.Middlewares[0]].StripPrefix.Prefixes[0] != "/api" {
		t.Fatalf("api router %+v", api)
	}

	// Deterministic, and 304 only when asked with If-None-Match.
	_, hdr2, body2 := get(t, url, cptest.ProxyToken, "")
	if string(body2) != string(body) || hdr2.Get("ETag") != hdr.Get("ETag") {
		t.Fatal("output not deterministic")
	}
	if code, _, b := get(t, url, cptest.ProxyToken, hdr.Get("ETag")); code != http.StatusNotModified || len(b) != 0 {
		t.Fatalf("If-None-Match: %d", code)
	}
	if code, _, _ := get(t, url, cptest.ProxyToken, `"other", *`); code != http.StatusNotModified {
		t.Fatalf("If-None-Match: * with a document: %d, want 304", code)
	}
	if code, _, _ := get(t, url, cptest.ProxyToken, `"other"`); code != 200 {
		t.Fatalf("If-None-Match of another document: %d, want 200", code)
	}

	// Worker-local config: only that worker's apps, entry point web, no TLS.
	code, _, wb := get(t, fmt.Sprintf("%s/v1/traefik/config?worker_id=%d", cp.URL, w1), cptest.ProxyToken, "")
	if code != 200 || !strings.Contains(string(wb), "site.de.apps.test") || strings.Contains(string(wb), "shop") || strings.Contains(string(wb), "certResolver") {
		t.Fatalf("worker config %d %s", code, wb)
	}
	if code, _, _ := get(t, cp.URL+"/v1/traefik/config?worker_id=x", cptest.ProxyToken, ""); code != 400 {
		t.Fatalf("bad worker id: %d", code)
	}

	// The agent's own JWT opens its own config only, and not once revoked.
	wh, _ := caddy.ActiveContext().App(core.AppName)
	key := wh.(*core.App).Keyring().DeriveKey(workers.TokenKeyPurpose, 32)
	tok1, _, _ := workers.IssueToken(key, w1, time.Minute, time.Now())
	if code, _, b := get(t, fmt.Sprintf("%s/v1/traefik/config?worker_id=%d", cp.URL, w1), tok1, ""); code != 200 || string(b) != string(wb) {
		t.Fatalf("own JWT: %d %s", code, b)
	}
	if code, _, _ := get(t, fmt.Sprintf("%s/v1/traefik/config?worker_id=%d", cp.URL, w2), tok1, ""); code != http.StatusUnauthorized {
		t.Fatalf("another worker's config with w1's JWT: %d", code)
	}
	if code, _, _ := get(t, fmt.Sprintf("%s/v1/proxy/routes", cp.URL), tok1, ""); code != http.StatusUnauthorized {
		t.Fatalf("proxy table with a worker JWT: %d", code)
	}
	db.Pool.Exec(t.Context(), "UPDATE workers SET status = 'revoked', revoked_at = now() WHERE id = $1", w1)
	if code, _, _ := get(t, fmt.Sprintf("%s/v1/traefik/config?worker_id=%d", cp.URL, w1), tok1, ""); code != http.StatusUnauthorized {
		t.Fatalf("revoked worker's JWT: %d", code)
	}
	db.Pool.Exec(t.Context(), "UPDATE workers SET status = 'online', revoked_at = NULL WHERE id = $1", w1)

	// A change is picked up after its event.
	db.Pool.Exec(t.Context(), "UPDATE apps SET status = 'stopped' WHERE slug = 'site'")
	a, _ := caddy.ActiveContext().App(core.AppName)
	a.(*core.App).Events().Publish(events.Event{Kind: events.AppStatusChanged})
	_, hdr3, body3 := get(t, url, cptest.ProxyToken, "")
	if hdr3.Get("ETag") == hdr.Get("ETag") || strings.Contains(string(body3), "app-site") {
		t.Fatal("stopped app still routed after the change event")
	}
}

// A change committed on another replica arrives by NOTIFY; the proxy
// mode's long-poll answers at once.
func TestProxyTableLongPollWakesOnNotify(t *testing.T) {
	db := pgtest.New(t)
	seedRouting(t, db)
	cp := cptest.Start(t, db, cptest.Options{})
	url := cp.URL + "/v1/proxy/routes"
	_, hdr, body := get(t, url, cptest.ProxyToken, "")
	var table network.Table
	if err := json.Unmarshal(body, &table); err != nil {
		t.Fatal(err)
	}
	if e := table.Hosts["www.site.example"]; e == nil || e.Paths[0].Upstreams[0].Dial != "127.0.0.5:30001" {
		t.Fatalf("table %s", body)
	}
	if e := table.Hosts["shop.apps.test"]; e == nil || e.Paths[0].Prefix != "/api" || !e.Paths[0].StripPrefix {
		t.Fatalf("longest prefix first: %+v", e)
	}
	time.Sleep(200 * time.Millisecond) // the listener is connected
	done := make(chan time.Duration, 1)
	go func() {
		start := time.Now()
		code, _, _ := get(t, url+"?wait=1", cptest.ProxyToken, hdr.Get("ETag"))
		if code != 200 {
			done <- -1
			return
		}
		done <- time.Since(start)
	}()
	time.Sleep(300 * time.Millisecond)
	// "Another replica": a plain transaction with NOTIFY, no event here.
	tx, _ := db.Pool.Begin(t.Context())
	tx.Exec(t.Context(), "UPDATE apps SET host_port = 31001 WHERE slug = 'site'")
	network.NotifyChanged(t.Context(), tx)
	tx.Commit(t.Context())
	select {
	case d := <-done:
		if d < 0 || d > 5*time.Second {
			t.Fatalf("long-poll answered after %s", d)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("long-poll did not wake on NOTIFY")
	}
	_, _, body = get(t, url, cptest.ProxyToken, "")
	if !strings.Contains(string(body), "127.0.0.5:31001") {
		t.Fatalf("change not in table: %s", body)
	}
}

// The entry point and resolver names are the handler's options: an
// operator whose Traefik calls them otherwise sets them once.
func TestTraefikNamesAreHandlerOptions(t *testing.T) {
	db := pgtest.New(t)
	w1, _ := seedRouting(t, db)
	cp := cptest.Start(t, db, cptest.Options{API: map[string]any{
		"proxy_entry_points": []string{"https"}, "cert_resolver": "pebble", "worker_entry_points": []string{"zone"}}})
	_, _, body := get(t, cp.URL+"/v1/traefik/proxy-config", cptest.ProxyToken, "")
	if !strings.Contains(string(body), `"entryPoints":["https"]`) || !strings.Contains(string(body), `"certResolver":"pebble"`) ||
		strings.Contains(string(body), "websecure") || strings.Contains(string(body), "letsencrypt") {
		t.Fatalf("proxy config ignores the handler's names: %s", body)
	}
	_, _, wb := get(t, fmt.Sprintf("%s/v1/traefik/config?worker_id=%d", cp.URL, w1), cptest.ProxyToken, "")
	if !strings.Contains(string(wb), `"entryPoints":["zone"]`) || strings.Contains(string(wb), `"web"`) {
		t.Fatalf("worker config ignores the handler's names: %s", wb)
	}
}

func TestCertResolverOff(t *testing.T) {
	db := pgtest.New(t)
	seedRouting(t, db)
	cp := cptest.Start(t, db, cptest.Options{API: map[string]any{"cert_resolver": "off"}})
	_, _, body := get(t, cp.URL+"/v1/traefik/proxy-config", cptest.ProxyToken, "")
	if strings.Contains(string(body), "certResolver") || !strings.Contains(string(body), "websecure") {
		t.Fatalf("cert_resolver off: %s", body)
	}
}
