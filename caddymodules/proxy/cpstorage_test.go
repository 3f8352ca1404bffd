package proxy_test

import (
	"context"
	"errors"
	"io/fs"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"

	"github.com/wisehosting/wisehosting/caddymodules/cptest"
	"github.com/wisehosting/wisehosting/caddymodules/proxy"
	"github.com/wisehosting/wisehosting/internal/certstore"
	"github.com/wisehosting/wisehosting/internal/pgtest"
)

// cpStorage provisions a proxy's storage through the control plane at cpURL.
func cpStorage(t *testing.T, cpURL, token, cacheDir string) *certstore.Remote {
	t.Helper()
	s := &proxy.CPStorage{ControlPlane: cpURL, Token: token, CacheDir: cacheDir, LockTTL: caddy.Duration(3 * time.Second)}
	ctx, cancel := caddy.NewContext(caddy.Context{Context: context.Background()})
	t.Cleanup(cancel)
	if err := s.Provision(ctx); err != nil {
		t.Fatal(err)
	}
	return s.Remote()
}

// Two proxies share certificates and locks through the control plane's
// storage API, which serves certificate keys only, to the proxy token only;
// with the control plane gone, a proxy (also a restarted one) still reads
// what it had from its local copy.
func TestStorageThroughControlPlane(t *testing.T) {
	db := pgtest.New(t)
	cp := cptest.Start(t, db, cptest.Options{})
	ctx := context.Background()
	cacheA := t.TempDir()
	a, b := cpStorage(t, cp.URL, cptest.ProxyToken, cacheA), cpStorage(t, cp.URL, cptest.ProxyToken, t.TempDir())

	key := "certificates/acme-v02/www.customer.com/www.customer.com.crt"
	if _, err := a.Load(ctx, key); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("missing key: %v", err)
	}
	if err := a.Store(ctx, key, []byte("PEM")); err != nil {
		t.Fatal(err)
	}
	a.Store(ctx, "certificates/acme-v02/www.customer.com/www.customer.com.key", []byte("KEY"))
	a.Store(ctx, "certificates/acme-v02/other.com/other.com.crt", []byte("X"))
	var inDB []byte
	db.Pool.QueryRow(ctx, "SELECT value FROM certmagic_data WHERE key = $1", key).Scan(&inDB)
	if string(inDB) != "PEM" {
		t.Fatalf("not in the control plane's database: %q", inDB)
	}
	if v, err := b.Load(ctx, key); err != nil || string(v) != "PEM" {
		t.Fatalf("the other proxy: %q %v", v, err)
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
	if all, err := b.List(ctx, "certificates", true); err != nil || len(all) != 3 {
		t.Fatalf("recursive list %v %v", all, err)
	}
	if err := b.Delete(ctx, "certificates/acme-v02/other.com"); err != nil || a.Exists(ctx, "certificates/acme-v02/other.com/other.com.crt") {
		t.Fatalf("directory delete: %v", err)
	}
	if err := a.Store(ctx, "pki/authorities/local/root.key", []byte("x")); err == nil {
		t.Fatal("a key outside the certificate namespaces was stored")
	}

	// The API itself: proxy token only, certificate keys only.
	db.Pool.Exec(ctx, "INSERT INTO certmagic_data (key, value) VALUES ('pki/authorities/local/root.key', 'SECRET')")
	call := func(method, path, token string) int {
		req, _ := http.NewRequest(method, cp.URL+path, strings.NewReader("v"))
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	q := func(k string) string { return certstore.PathValue + "?key=" + url.QueryEscape(k) }
	for _, c := range []struct {
		method, path, token string
		want                int
	}{
		{"GET", q(key), "", 401},
		{"GET", q(key), "wrong-token-0123456789", 401},
		{"GET", q(key), cptest.ProxyToken[:len(cptest.ProxyToken)-1], 401},
		{"GET", q(key), cptest.ProxyToken, 200},
		{"GET", q("pki/authorities/local/root.key"), cptest.ProxyToken, 400},
		{"GET", q("certificates/../pki/authorities/local/root.key"), cptest.ProxyToken, 400},
		{"GET", q("/etc/passwd"), cptest.ProxyToken, 400},
		{"PUT", q("certificates/../../x"), cptest.ProxyToken, 400},
		{"DELETE", q("pki"), cptest.ProxyToken, 400},
		{"GET", certstore.PathList + "?prefix=", cptest.ProxyToken, 400},
		{"GET", certstore.PathList + "?prefix=pki", cptest.ProxyToken, 400},
		{"GET", certstore.PathList + "?prefix=certificates", cptest.ProxyToken, 200},
		{"GET", certstore.PathStat + "?key=pki", cptest.ProxyToken, 400},
		{"PUT", q(key), "", 401},
	} {
		if got := call(c.method, c.path, c.token); got != c.want {
			t.Errorf("%s %s (token %q): %d, want %d", c.method, c.path, c.token, got, c.want)
		}
	}

	// Locks: one holder at a time; Unlock hands over; a holder that dies
	// (stops extending without unlocking) loses the lock after its TTL,
	// while a live holder keeps it past the TTL.
	if err := a.Lock(ctx, "issue_cert_www.customer.com"); err != nil {
		t.Fatal(err)
	}
	if ok, err := b.TryLock(ctx, "issue_cert_www.customer.com"); ok || err != nil {
		t.Fatalf("second holder: %v %v", ok, err)
	}
	got := make(chan error, 1)
	go func() { got <- b.Lock(ctx, "issue_cert_www.customer.com") }()
	time.Sleep(4 * time.Second) // past the 3 s TTL: a keeps extending it
	select {
	case err := <-got:
		t.Fatalf("lock taken from a live holder: %v", err)
	default:
	}
	if err := a.Unlock(ctx, "issue_cert_www.customer.com"); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-got:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("lock not handed over after unlock")
	}
	// b holds it: a's Unlock of b's lock is ignored.
	a.Unlock(ctx, "issue_cert_www.customer.com")
	if ok, _ := a.TryLock(ctx, "issue_cert_www.customer.com"); ok {
		t.Fatal("another holder's unlock released the lock")
	}
	b.Abandon() // b dies holding it
	c2, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	start := time.Now()
	if err := a.Lock(c2, "issue_cert_www.customer.com"); err != nil {
		t.Fatalf("lapsed lock: %v", err)
	}
	t.Logf("lock of a dead holder taken over after %s", time.Since(start).Round(100*time.Millisecond))
	a.Unlock(ctx, "issue_cert_www.customer.com")

	// The control plane goes away: a answers from its copy, writes and
	// locks fail; a proxy restarted on the same disk answers too; one
	// with an empty copy knows nothing.
	caddy.Stop()
	if v, err := a.Load(ctx, key); err != nil || string(v) != "PEM" {
		t.Fatalf("from the local copy: %q %v", v, err)
	}
	if l, err := a.List(ctx, "certificates/acme-v02", false); err != nil || !slices.Contains(l, "certificates/acme-v02/www.customer.com") {
		t.Fatalf("list from the local copy: %v %v", l, err)
	}
	if err := a.Store(ctx, key, []byte("NEW")); err == nil {
		t.Fatal("a write succeeded without the control plane")
	}
	if err := a.Lock(ctx, "issue_cert_x"); err == nil {
		t.Fatal("a lock was taken without the control plane")
	}
	restarted := cpStorage(t, cp.URL, cptest.ProxyToken, cacheA)
	if v, err := restarted.Load(ctx, key); err != nil || string(v) != "PEM" || !restarted.Exists(ctx, key) {
		t.Fatalf("restarted proxy: %q %v", v, err)
	}
	if st, err := os.Stat(filepath.Join(cacheA, filepath.FromSlash(key))); err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("local copy %v %v", st, err)
	}
	fresh := cpStorage(t, cp.URL, cptest.ProxyToken, t.TempDir())
	if _, err := fresh.Load(ctx, key); err == nil {
		t.Fatal("an empty copy answered")
	}
}
