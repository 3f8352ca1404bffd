package certs

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"testing"
	"time"

	"github.com/wisehosting/wisehosting/internal/pgtest"
)

var (
	caKey, _ = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	caCert   = &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "Pebble Intermediate CA"},
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(365 * 24 * time.Hour)}
)

func certPEM(t testing.TB, name string, notAfter time.Time) []byte {
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(time.Now().UnixNano()), Subject: pkix.Name{CommonName: name},
		DNSNames: []string{name}, NotBefore: notAfter.Add(-90 * 24 * time.Hour), NotAfter: notAfter}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, caCert, &key.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
}

func TestSyncProvisionedAndExpiring(t *testing.T) {
	t.Parallel()
	db := pgtest.New(t)
	ctx := context.Background()
	now := time.Now()
	store := func(key string, v []byte) {
		db.Pool.Exec(ctx, `INSERT INTO certmagic_data (key, value) VALUES ($1, $2) ON CONFLICT (key) DO UPDATE SET value = $2`, key, v)
	}
	store("certificates/acme-v02/www.customer.com/www.customer.com.crt", certPEM(t, "www.customer.com", now.Add(60*24*time.Hour)))
	store("certificates/acme-v02/wildcard_.apps.example.com/wildcard_.apps.example.com.crt", certPEM(t, "*.apps.example.com", now.Add(5*24*time.Hour)))
	store("certificates/acme-v02/www.customer.com/www.customer.com.key", []byte("not a cert"))

	ch, err := Sync(ctx, db.Pool, now, 14*24*time.Hour, "")
	if err != nil {
		t.Fatal(err)
	}
	if len(ch.Provisioned) != 2 || len(ch.Expiring) != 1 || ch.Expiring[0].Hostname != "*.apps.example.com" {
		t.Fatalf("first sync %+v", ch)
	}
	var status, issuer string
	db.Pool.QueryRow(ctx, "SELECT status, issuer FROM certificates WHERE hostname = 'www.customer.com'").Scan(&status, &issuer)
	if status != "valid" || issuer != "Pebble Intermediate CA" {
		t.Fatalf("row %s %s", status, issuer)
	}
	// Nothing new: nothing reported (no event storms).
	ch, _ = Sync(ctx, db.Pool, now, 14*24*time.Hour, "")
	if len(ch.Provisioned) != 0 || len(ch.Expiring) != 0 {
		t.Fatalf("second sync %+v", ch)
	}
	// The proxy renews the wildcard: provisioned again, no longer expiring.
	store("certificates/acme-v02/wildcard_.apps.example.com/wildcard_.apps.example.com.crt", certPEM(t, "*.apps.example.com", now.Add(90*24*time.Hour)))
	ch, _ = Sync(ctx, db.Pool, now, 14*24*time.Hour, "")
	if len(ch.Provisioned) != 1 || ch.Provisioned[0].Hostname != "*.apps.example.com" || len(ch.Expiring) != 0 {
		t.Fatalf("after renewal %+v", ch)
	}
	db.Pool.QueryRow(ctx, "SELECT status FROM certificates WHERE hostname = '*.apps.example.com'").Scan(&status)
	if status != "valid" {
		t.Fatalf("renewed status %s", status)
	}
}

// A certificate's events name the team and app of its hostname (a custom
// domain or an app's subdomain), so that team's webhooks receive them; the
// platform's own names belong to no team.
func TestCertificateEventsCarryTheirTeam(t *testing.T) {
	t.Parallel()
	db := pgtest.New(t)
	ctx := context.Background()
	var team, app int64
	db.Pool.QueryRow(ctx, "INSERT INTO teams (name, slug) VALUES ('t', 't') RETURNING id").Scan(&team)
	db.Pool.QueryRow(ctx, "INSERT INTO apps (team_id, slug, name) VALUES ($1, 'shop', 'shop') RETURNING id", team).Scan(&app)
	db.Pool.Exec(ctx, "INSERT INTO domains (app_id, hostname, token) VALUES ($1, 'www.customer.com', 'x')", app)
	now := time.Now()
	for _, name := range []string{"www.customer.com", "shop.apps.example.com", "cp.example.com"} {
		db.Pool.Exec(ctx, "INSERT INTO certmagic_data (key, value) VALUES ($1, $2)", "certificates/acme-v02/"+name+"/"+name+".crt",
			certPEM(t, name, now.Add(60*24*time.Hour)))
	}
	if _, err := Sync(ctx, db.Pool, now, 14*24*time.Hour, "apps.example.com"); err != nil {
		t.Fatal(err)
	}
	owners := map[string][2]int64{}
	rows, _ := db.Pool.Query(ctx, "SELECT payload->'data'->>'hostname', COALESCE(team_id, 0), COALESCE(app_id, 0) FROM event_outbox WHERE kind = 'cert.provisioned'")
	for rows.Next() {
		var h string
		var o [2]int64
		rows.Scan(&h, &o[0], &o[1])
		owners[h] = o
	}
	rows.Close()
	want := map[string][2]int64{"www.customer.com": {team, app}, "shop.apps.example.com": {team, app}, "cp.example.com": {0, 0}}
	if len(owners) != 3 {
		t.Fatalf("events %v", owners)
	}
	for h, o := range want {
		if owners[h] != o {
			t.Errorf("%s: team and app %v, want %v", h, owners[h], o)
		}
	}
}
