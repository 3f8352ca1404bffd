package api_test

import (
	"context"
	"io"
	"net/http"
	"testing"

	"github.com/caddyserver/caddy/v2"

	"github.com/wisehosting/wisehosting/caddymodules/core"
	"github.com/wisehosting/wisehosting/caddymodules/cptest"
	"github.com/wisehosting/wisehosting/internal/events"
	"github.com/wisehosting/wisehosting/internal/pgtest"
)

// BenchmarkTraefikProviderEndpoint: /v1/traefik/proxy-config with 10,000
// running apps (each with a verified domain), over loopback HTTP.
func BenchmarkTraefikProviderEndpoint(b *testing.B) {
	db := pgtest.New(b)
	ctx := context.Background()
	var team, worker int64
	db.Pool.QueryRow(ctx, "INSERT INTO teams (name, slug) VALUES ('t', 't') RETURNING id").Scan(&team)
	db.Pool.QueryRow(ctx, "INSERT INTO workers (name, api_key_hash, wg_ip, status) VALUES ('w', 'k', '127.0.0.5', 'online') RETURNING id").Scan(&worker)
	if _, err := db.Pool.Exec(ctx, `INSERT INTO apps (team_id, slug, name, status, worker_id, port, host_port)
		SELECT $1, 'app' || i, 'app' || i, 'running', $2, 8080, 20000 + i FROM generate_series(1, 10000) i`, team, worker); err != nil {
		b.Fatal(err)
	}
	db.Pool.Exec(ctx, `INSERT INTO domains (app_id, hostname, token, verified_at) SELECT id, slug || '.example.org', 't', now() FROM apps`)
	cp := cptest.Start(b, db, cptest.Options{})
	url := cp.URL + "/v1/traefik/proxy-config"
	client := &http.Client{}
	fetch := func(inm string) (int, string, int) {
		req, _ := http.NewRequest("GET", url, nil)
		req.Header.Set("Authorization", "Bearer "+cptest.ProxyToken)
		if inm != "" {
			req.Header.Set("If-None-Match", inm)
		}
		resp, err := client.Do(req)
		if err != nil {
			b.Fatal(err)
		}
		n, _ := io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return resp.StatusCode, resp.Header.Get("ETag"), int(n)
	}
	code, etag, size := fetch("")
	if code != 200 {
		b.Fatalf("status %d", code)
	}
	b.Run("200-cached", func(b *testing.B) {
		b.SetBytes(int64(size))
		for b.Loop() {
			if c, _, _ := fetch(""); c != 200 {
				b.Fatal(c)
			}
		}
	})
	b.Run("304", func(b *testing.B) {
		for b.Loop() {
			if c, _, _ := fetch(etag); c != 304 {
				b.Fatal(c)
			}
		}
	})
	a, _ := caddy.ActiveContext().App(core.AppName)
	bus := a.(*core.App).Events()
	b.Run("200-rebuild", func(b *testing.B) {
		for b.Loop() {
			bus.Publish(events.Event{Kind: events.RouteChanged})
			if c, _, _ := fetch(""); c != 200 {
				b.Fatal(c)
			}
		}
	})
}
