package proxy_test

import (
	"context"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/wisehosting/wisehosting/caddymodules/cptest"
	"github.com/wisehosting/wisehosting/internal/network"
	"github.com/wisehosting/wisehosting/internal/peers"
	"github.com/wisehosting/wisehosting/internal/pgtest"
)

// outageFixture is a control plane on a private Postgres cluster (which
// the test stops) with one app on two hosts: its subdomain and a verified
// custom domain.
type outageFixture struct {
	cluster *pgtest.Cluster
	cpURL   string
	hosts   []string
}

func newOutageFixture(t *testing.T) *outageFixture {
	t.Helper()
	cluster, db := pgtest.StartCluster(t)
	cp := cptest.Start(t, db, cptest.Options{}) // migrates the empty database
	ctx := context.Background()
	pool, err := pgxpool.New(ctx, db.URL)
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	var team, wrk, app int64
	pool.QueryRow(ctx, "INSERT INTO teams (name, slug) VALUES ('t', 't') RETURNING id").Scan(&team)
	pool.QueryRow(ctx, "INSERT INTO workers (name, api_key_hash, wg_ip, status) VALUES ('w', 'k', '127.0.0.1', 'online') RETURNING id").Scan(&wrk)
	site := backend(t, "site", nil)
	if err := pool.QueryRow(ctx, `INSERT INTO apps (team_id, slug, name, status, worker_id, port, host_port)
		VALUES ($1, 'site', 'site', 'running', $2, 8080, $3) RETURNING id`, team, wrk, port(site)).Scan(&app); err != nil {
		t.Fatal(err)
	}
	pool.Exec(ctx, "INSERT INTO domains (app_id, hostname, token, verified_at) VALUES ($1, 'www.customer.test', 't', now())", app)
	network.NotifyChanged(ctx, pool)
	return &outageFixture{cluster: cluster, cpURL: cp.URL, hosts: []string{"site.apps.test", "www.customer.test"}}
}

// down stops the control plane and its database.
func (f *outageFixture) down() {
	caddy.Stop()
	f.cluster.Stop()
}

// The proxy document's promise, for the proxy mode: with the control
// plane and Postgres down, a proxy restarted serves every host it knew,
// each with the certificate it had.
func TestCaddyProxyRestartedDuringOutage(t *testing.T) {
	f := newOutageFixture(t)
	peb := peers.StartPebble(t, "")
	h := generateCaddyHost(t, f.cpURL, peb)
	stop := h.start(t)
	serials := map[string]string{}
	for _, host := range f.hosts {
		waitFor(t, "a certificate and the route for "+host, 60*time.Second, func() bool {
			body, serial, err := h.get(peb, host)
			serials[host] = serial
			return err == nil && body == "site /hello"
		})
	}

	f.down()
	stop()
	h.start(t)
	for _, host := range f.hosts {
		body, serial, err := h.get(peb, host)
		if err != nil || body != "site /hello" || serial != serials[host] {
			t.Fatalf("%s after the restart: %q serial %s (had %s) %v", host, body, serial, serials[host], err)
		}
	}
}

// The same promise for real Traefik: its routes kept on disk by
// `wisehosting traefik-routes` and its certificates in acme.json.
func TestTraefikRestartedDuringOutage(t *testing.T) {
	f := newOutageFixture(t)
	peb := peers.StartPebble(t, "")
	h := generateTraefikHost(t, f.cpURL, peb)
	stop := h.start(t)
	serials := map[string]string{}
	for _, host := range f.hosts {
		waitFor(t, "a certificate and the route for "+host, 60*time.Second, func() bool {
			body, serial, err := h.get(host)
			serials[host] = serial
			return err == nil && body == "site /hello"
		})
	}

	f.down()
	stop()
	h.start(t)
	for _, host := range f.hosts {
		var body, serial string
		var err error
		// Traefik reads the kept routes at start; allow it that moment.
		waitFor(t, host+" served after the restart", 20*time.Second, func() bool {
			body, serial, err = h.get(host)
			return err == nil
		})
		if body != "site /hello" || serial != serials[host] {
			t.Fatalf("%s after the restart: %q serial %s (had %s)", host, body, serial, serials[host])
		}
	}
}
