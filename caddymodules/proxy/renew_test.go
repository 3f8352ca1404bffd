package proxy_test

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"

	"github.com/wisehosting/wisehosting/caddymodules/certs"
	"github.com/wisehosting/wisehosting/caddymodules/cptest"
	"github.com/wisehosting/wisehosting/internal/network"
	"github.com/wisehosting/wisehosting/internal/peers"
	"github.com/wisehosting/wisehosting/internal/pgtest"
)

func storedSerial(t *testing.T, db *pgtest.DB, host string) string {
	var v []byte
	err := db.Pool.QueryRow(context.Background(), "SELECT value FROM certmagic_data WHERE key LIKE 'certificates/%/"+host+"/"+host+".crt'").Scan(&v)
	if err != nil {
		return ""
	}
	b, _ := pem.Decode(v)
	c, err := x509.ParseCertificate(b.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	return c.SerialNumber.String()
}

// A proxy obtains a certificate into the shared Postgres storage; the
// control plane's watcher sees it, and when it is inside the warning window
// renews it itself through the same storage.
func TestControlPlaneRenewsFromSharedStorage(t *testing.T) {
	db := pgtest.New(t)
	ctx := context.Background()
	var team, worker, app int64
	db.Pool.QueryRow(ctx, "INSERT INTO teams (name, slug) VALUES ('t', 't') RETURNING id").Scan(&team)
	db.Pool.QueryRow(ctx, "INSERT INTO workers (name, api_key_hash, wg_ip, status) VALUES ('w', 'k', '127.0.0.1', 'online') RETURNING id").Scan(&worker)
	site := backend(t, "site", nil)
	db.Pool.QueryRow(ctx, "INSERT INTO apps (team_id, slug, name, status, worker_id, port, host_port) VALUES ($1, 'site', 'site', 'running', $2, 80, $3) RETURNING id", team, worker, port(site)).Scan(&app)
	db.Pool.Exec(ctx, "INSERT INTO domains (app_id, hostname, token, verified_at) VALUES ($1, 'www.customer.test', 't', now())", app)
	network.NotifyChanged(ctx, db.Pool)

	acmeDir, roots, caFile := pebble(t, "")
	cp := cptest.Start(t, db, cptest.Options{Apps: map[string]any{"wisehosting_certs": map[string]any{
		"interval": "1h", "warn": "100000h", // every certificate counts as expiring
		"renew": map[string]any{"ca": acmeDir, "email": "ops@customer.test", "trusted_roots_pem_files": []string{caFile},
			"challenge_ports": []int{peers.FreePort(t), peers.FreePort(t)}},
	}}})

	dir := t.TempDir()
	addr := cptest.FreeAddr(t)
	p := addr[strings.LastIndex(addr, ":")+1:]
	cfg := fmt.Sprintf(`{
	admin off
	http_port %[8]d
	email ops@customer.test
	storage wisehosting {
		database_url %[7]s
	}
	on_demand_tls {
		permission wisehosting
	}
	wisehosting_proxy {
		control_plane %[2]s
		token %[3]s
		cache_file %[1]s/routes.json
	}
}
https://:%[4]s {
	bind 127.0.0.1
	tls {
		on_demand
		issuer acme {
			dir %[5]s
			trusted_roots %[6]s
			disable_http_challenge
			alt_tlsalpn_port %[4]s
		}
	}
	wisehosting_route
	reverse_proxy {
		dynamic wisehosting
	}
}
`, dir, cp.URL, cptest.ProxyToken, p, acmeDir, caFile, db.URL, peers.FreePort(t))
	runProxy(t, dir, cfg, addr)

	waitFor(t, "certificate issued to the proxy", 30*time.Second, func() bool {
		conn, err := tls.DialWithDialer(&net.Dialer{Timeout: 5 * time.Second}, "tcp", addr, &tls.Config{RootCAs: roots, ServerName: "www.customer.test"})
		if err != nil {
			return false
		}
		conn.Close()
		return storedSerial(t, db, "www.customer.test") != ""
	})
	first := storedSerial(t, db, "www.customer.test")

	a, err := caddy.ActiveContext().App("wisehosting_certs")
	if err != nil {
		t.Fatal(err)
	}
	if err := a.(*certs.App).RunOnce(ctx); err != nil {
		t.Fatal(err)
	}
	second := storedSerial(t, db, "www.customer.test")
	if second == "" || second == first {
		t.Fatalf("certificate not renewed by the control plane (serial %s → %s)", first, second)
	}
	var status string
	db.Pool.QueryRow(ctx, "SELECT status FROM certificates WHERE hostname = 'www.customer.test'").Scan(&status)
	if status == "" {
		t.Fatal("certificate not recorded")
	}
}
