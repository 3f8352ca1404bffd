package certs_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"sync"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"

	"github.com/wisehosting/wisehosting/caddymodules/certs"
	"github.com/wisehosting/wisehosting/caddymodules/core"
	"github.com/wisehosting/wisehosting/caddymodules/cptest"
	"github.com/wisehosting/wisehosting/internal/events"
	"github.com/wisehosting/wisehosting/internal/pgtest"
)

func selfSigned(t *testing.T, name string, notAfter time.Time) []byte {
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(time.Now().UnixNano()), Subject: pkix.Name{CommonName: name},
		Issuer: pkix.Name{CommonName: "Test CA"}, DNSNames: []string{name}, NotBefore: notAfter.Add(-90 * 24 * time.Hour), NotAfter: notAfter}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
}

// The running app reports a newly stored certificate once
// (cert.provisioned) and one inside the warning window once
// (cert.expiring), on the control plane's event bus.
func TestAppPublishesCertificateEvents(t *testing.T) {
	db := pgtest.New(t)
	ctx := context.Background()
	cptest.Start(t, db, cptest.Options{Apps: map[string]any{"wisehosting_certs": map[string]any{"interval": "1h", "warn": "336h"}}})
	whApp, err := caddy.ActiveContext().App("wisehosting")
	if err != nil {
		t.Fatal(err)
	}
	ca, err := caddy.ActiveContext().App("wisehosting_certs")
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	got := map[string][]string{}
	whApp.(*core.App).Events().Subscribe(func(e events.Event) {
		if e.Kind == events.CertProvisioned || e.Kind == events.CertExpiring {
			mu.Lock()
			got[e.Kind] = append(got[e.Kind], e.Data["hostname"].(string))
			mu.Unlock()
		}
	})
	now := time.Now()
	for name, exp := range map[string]time.Time{"fresh.customer.com": now.Add(60 * 24 * time.Hour), "old.customer.com": now.Add(3 * 24 * time.Hour)} {
		if _, err := db.Pool.Exec(ctx, "INSERT INTO certmagic_data (key, value) VALUES ($1, $2)",
			"certificates/acme-v02/"+name+"/"+name+".crt", selfSigned(t, name, exp)); err != nil {
			t.Fatal(err)
		}
	}
	count := func(kind string) int {
		mu.Lock()
		defer mu.Unlock()
		return len(got[kind])
	}
	// The app's own first run may hold the lock; run until both are seen.
	deadline := time.Now().Add(10 * time.Second)
	for (count(events.CertProvisioned) < 2 || count(events.CertExpiring) < 1) && time.Now().Before(deadline) {
		if err := ca.(*certs.App).RunOnce(ctx); err != nil {
			t.Fatal(err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	// Later runs change nothing and report nothing.
	for range 3 {
		if err := ca.(*certs.App).RunOnce(ctx); err != nil {
			t.Fatal(err)
		}
	}
	mu.Lock()
	defer mu.Unlock()
	if len(got[events.CertProvisioned]) != 2 || len(got[events.CertExpiring]) != 1 || got[events.CertExpiring][0] != "old.customer.com" {
		t.Fatalf("events %v", got)
	}
	var status string
	db.Pool.QueryRow(ctx, "SELECT status FROM certificates WHERE hostname = 'old.customer.com'").Scan(&status)
	if status != "expiring" {
		t.Fatalf("status %q", status)
	}
}
