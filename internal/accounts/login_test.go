package accounts

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"os"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/crypto/argon2"

	"github.com/wisehosting/wisehosting/internal/auth"
)

// Two control plane replicas on one database enforce one limit: failures
// seen by either count for both. Only failures count: many right
// sign-ins from one address are never limited.
func TestLoginLimitSharedByReplicas(t *testing.T) {
	t.Parallel()
	a, _ := newService(t)
	b := New(a.Pool)
	ctx := context.Background()
	addUser(t, a, "eve@x.test", "right-password-1")
	for i := 0; i < 10; i++ {
		replica := []*Service{a, b}[i%2]
		if _, err := replica.Login(ctx, "eve@x.test", "guess", fmt.Sprintf("192.0.2.%d", i), "t"); !errors.Is(err, ErrBadCredentials) {
			t.Fatalf("attempt %d: %v", i, err)
		}
	}
	for _, replica := range []*Service{a, b} {
		if _, err := replica.Login(ctx, "eve@x.test", "guess", "192.0.2.99", "t"); !errors.Is(err, ErrRateLimited) {
			t.Fatalf("11th failure across replicas not limited: %v", err)
		}
	}
	// The right password waits only for the short backoff after the last
	// failure, then succeeds and clears the account's count.
	if _, err := b.Login(ctx, "eve@x.test", "right-password-1", "192.0.2.99", "t"); !errors.Is(err, ErrRateLimited) {
		t.Fatalf("right password during the backoff: %v", err)
	}
	a.LoginAccount.Backoff, b.LoginAccount.Backoff = time.Second, time.Second
	deadline := time.Now().Add(10 * time.Second)
	for {
		_, err := b.Login(ctx, "eve@x.test", "right-password-1", "192.0.2.99", "t")
		if err == nil {
			break
		}
		if !errors.Is(err, ErrRateLimited) || time.Now().After(deadline) {
			t.Fatalf("right password after the backoff: %v", err)
		}
		time.Sleep(100 * time.Millisecond)
	}
	addUser(t, a, "ok@x.test", "right-password-2")
	for i := 0; i < 30; i++ {
		if _, err := a.Login(ctx, "ok@x.test", "right-password-2", "198.51.100.1", "t"); err != nil {
			t.Fatalf("successful sign-in %d: %v", i, err)
		}
	}
	// 20 failures from one address block it for every account.
	for i := 0; i < 20; i++ {
		a.Login(ctx, fmt.Sprintf("nobody%d@x.test", i), "guess", "203.0.113.7", "t")
	}
	if _, err := b.Login(ctx, "ok@x.test", "right-password-2", "203.0.113.7", "t"); !errors.Is(err, ErrRateLimited) {
		t.Fatalf("21st attempt from a guessing address: %v", err)
	}
}

// A hash with the old parameters (64 MiB) is replaced on the next sign-in.
func TestSignInRehashesOldHash(t *testing.T) {
	t.Parallel()
	s, _ := newService(t)
	ctx := context.Background()
	salt := []byte("0123456789abcdef")
	key := argon2.IDKey([]byte("old-password-1"), salt, 2, 64*1024, 2, 32)
	old := fmt.Sprintf("$argon2id$v=19$m=65536,t=2,p=2$%s$%s", base64.RawStdEncoding.EncodeToString(salt), base64.RawStdEncoding.EncodeToString(key))
	if _, err := s.Pool.Exec(ctx, "INSERT INTO users (email, password_hash) VALUES ('old@x.test', $1)", old); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Login(ctx, "old@x.test", "old-password-1", "127.0.0.1", "t"); err != nil {
		t.Fatal(err)
	}
	var now string
	s.Pool.QueryRow(ctx, "SELECT password_hash FROM users WHERE email = 'old@x.test'").Scan(&now)
	if !strings.HasPrefix(now, "$argon2id$v=19$m=19456,t=2,p=1$") {
		t.Fatalf("hash not replaced: %s", now)
	}
	if _, err := s.Login(ctx, "old@x.test", "old-password-1", "127.0.0.1", "t"); err != nil {
		t.Fatalf("sign-in with the new hash: %v", err)
	}
}

// rss reads a field (kB) of /proc/self/status.
func rss(t *testing.T, field string) int {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, field+":"); ok {
			n, _ := strconv.Atoi(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")))
			return n
		}
	}
	t.Fatalf("no %s", field)
	return 0
}

// RSSBoundMiB is the most 50 concurrent sign-ins may add to the
// process's peak RSS: HashSlots hashes of 19 MiB with the garbage
// collector's headroom. Without the bound, each concurrent sign-in held
// its own 64 MiB hash.
const RSSBoundMiB = 128

// 50 sign-ins at once, from 50 addresses, right and wrong passwords, keep
// the peak RSS growth of the process under RSSBoundMiB.
func TestConcurrentSignInsBoundedMemory(t *testing.T) {
	s, _ := newService(t)
	ctx := context.Background()
	addUser(t, s, "many@x.test", "right-password-1")
	runtime.GC()
	// Writing 5 resets the peak (VmHWM) to the current RSS.
	if err := os.WriteFile("/proc/self/clear_refs", []byte("5"), 0); err != nil {
		t.Fatal(err)
	}
	base := rss(t, "VmRSS")
	var wg sync.WaitGroup
	errs := make(chan error, 50)
	for i := 0; i < 50; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			pw := "right-password-1"
			if i%2 == 1 {
				pw = "wrong"
			}
			_, err := s.Login(ctx, "many@x.test", pw, fmt.Sprintf("10.9.%d.%d", i/250, i%250), "t")
			if err != nil && !errors.Is(err, ErrBadCredentials) && !errors.Is(err, ErrRateLimited) && !errors.Is(err, auth.ErrBusy) {
				errs <- err
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	peak := rss(t, "VmHWM")
	growth := (peak - base) / 1024
	t.Logf("peak RSS growth of 50 concurrent sign-ins: %d MiB (base %d MiB)", growth, base/1024)
	if growth > RSSBoundMiB {
		t.Fatalf("50 concurrent sign-ins grew RSS by %d MiB, bound %d MiB", growth, RSSBoundMiB)
	}
}
