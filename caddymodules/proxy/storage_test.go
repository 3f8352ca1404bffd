package proxy

import (
	"context"
	"errors"
	"io/fs"
	"slices"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"

	"github.com/wisehosting/wisehosting/internal/pgtest"
)

func newStorage(t *testing.T, db *pgtest.DB) *Storage {
	t.Helper()
	s := &Storage{DatabaseURL: db.URL}
	ctx, cancel := caddy.NewContext(caddy.Context{Context: context.Background()})
	t.Cleanup(cancel)
	if err := s.Provision(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Cleanup() })
	return s
}

func TestPostgresCertStorage(t *testing.T) {
	db := pgtest.New(t)
	a, b := newStorage(t, db), newStorage(t, db) // two proxies
	ctx := context.Background()
	key := "certificates/acme-v02/www.customer.com/www.customer.com.crt"
	if _, err := a.Load(ctx, key); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("missing key: %v", err)
	}
	if err := a.Store(ctx, key, []byte("PEM")); err != nil {
		t.Fatal(err)
	}
	a.Store(ctx, "certificates/acme-v02/www.customer.com/www.customer.com.key", []byte("KEY"))
	a.Store(ctx, "certificates/acme-v02/other.com/other.com.crt", []byte("X"))
	// The other proxy sees it.
	if v, err := b.Load(ctx, key); err != nil || string(v) != "PEM" {
		t.Fatalf("%q %v", v, err)
	}
	if !b.Exists(ctx, key) || !b.Exists(ctx, "certificates/acme-v02") || b.Exists(ctx, "certificates/acme") {
		t.Fatal("Exists")
	}
	ki, err := b.Stat(ctx, key)
	if err != nil || ki.Size != 3 || !ki.IsTerminal || time.Since(ki.Modified) > time.Minute {
		t.Fatalf("stat %+v %v", ki, err)
	}
	if ki, err := b.Stat(ctx, "certificates/acme-v02"); err != nil || ki.IsTerminal {
		t.Fatalf("directory stat %+v %v", ki, err)
	}
	top, err := b.List(ctx, "certificates/acme-v02", false)
	if err != nil || !slices.Equal(top, []string{"certificates/acme-v02/other.com", "certificates/acme-v02/www.customer.com"}) {
		t.Fatalf("list %v %v", top, err)
	}
	all, _ := b.List(ctx, "certificates", true)
	if len(all) != 3 {
		t.Fatalf("recursive list %v", all)
	}
	// LIKE wildcards in keys are literal.
	if got, _ := b.List(ctx, "certificates/acme_v02", true); len(got) != 0 {
		t.Fatalf("_ matched as a wildcard: %v", got)
	}
	if err := b.Delete(ctx, "certificates/acme-v02/www.customer.com"); err != nil {
		t.Fatal(err)
	}
	if a.Exists(ctx, key) || !a.Exists(ctx, "certificates/acme-v02/other.com/other.com.crt") {
		t.Fatal("directory delete")
	}
}

func TestPostgresCertLocks(t *testing.T) {
	db := pgtest.New(t)
	a, b := newStorage(t, db), newStorage(t, db)
	ctx := context.Background()
	if err := a.Lock(ctx, "issue_cert_www.customer.com"); err != nil {
		t.Fatal(err)
	}
	// The other proxy waits.
	short, cancel := context.WithTimeout(ctx, 1500*time.Millisecond)
	defer cancel()
	if err := b.Lock(short, "issue_cert_www.customer.com"); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("second lock: %v", err)
	}
	got := make(chan error, 1)
	go func() { got <- b.Lock(ctx, "issue_cert_www.customer.com") }()
	time.Sleep(200 * time.Millisecond)
	a.Unlock(ctx, "issue_cert_www.customer.com")
	select {
	case err := <-got:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("lock not handed over after unlock")
	}
	b.Unlock(ctx, "issue_cert_www.customer.com")
	// A holder that died: its expired lock is taken over.
	db.Pool.Exec(ctx, "INSERT INTO certmagic_locks (key, expires_at) VALUES ('stale', now() - interval '1 second')")
	c2, cancel2 := context.WithTimeout(ctx, 3*time.Second)
	defer cancel2()
	if err := a.Lock(c2, "stale"); err != nil {
		t.Fatalf("stale lock: %v", err)
	}
}
