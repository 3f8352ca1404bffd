package auth

import (
	"context"
	"encoding/base64"
	"fmt"
	"testing"

	"golang.org/x/crypto/argon2"
)

func TestPasswordHash(t *testing.T) {
	ctx := context.Background()
	h, err := HashPassword(ctx, "correct horse")
	if err != nil {
		t.Fatal(err)
	}
	if m, err := Check(ctx, h, "correct horse"); err != nil || !m.OK || m.Rehash {
		t.Fatalf("right password: %+v %v", m, err)
	}
	if m, _ := Check(ctx, h, "correct horsE"); m.OK {
		t.Fatal("wrong password accepted")
	}
	h2, _ := HashPassword(ctx, "correct horse")
	if h == h2 {
		t.Fatal("salt not random")
	}
	for _, bad := range []string{"", "$argon2id$", "$bcrypt$x$y$z$w", h[:len(h)-4], "$argon2id$v=19$m=4194304,t=1,p=1$c2FsdA$a2V5"} {
		if m, _ := Check(ctx, bad, "correct horse"); m.OK {
			t.Fatalf("malformed hash %q verified", bad)
		}
	}
}

// A hash made with the old parameters (m=64 MiB, t=2, p=2) still verifies
// and asks to be replaced; the new one uses OWASP's m=19 MiB, t=2, p=1.
func TestOldHashVerifiesAndAsksForRehash(t *testing.T) {
	salt := []byte("0123456789abcdef")
	key := argon2.IDKey([]byte("pw-of-2025"), salt, 2, 64*1024, 2, 32)
	old := fmt.Sprintf("$argon2id$v=19$m=65536,t=2,p=2$%s$%s", base64.RawStdEncoding.EncodeToString(salt), base64.RawStdEncoding.EncodeToString(key))
	m, err := Check(context.Background(), old, "pw-of-2025")
	if err != nil || !m.OK || !m.Rehash {
		t.Fatalf("%+v %v", m, err)
	}
	h, _ := HashPassword(context.Background(), "x")
	if want := "$argon2id$v=19$m=19456,t=2,p=1$"; h[:len(want)] != want {
		t.Fatalf("new hash %s", h)
	}
}

// When every slot stays taken, a caller waits and then gets ErrBusy (or
// its context's end) instead of one more argon2 buffer.
func TestHashSlotsBounded(t *testing.T) {
	for i := 0; i < HashSlots; i++ {
		slots <- struct{}{}
	}
	defer func() {
		for i := 0; i < HashSlots; i++ {
			<-slots
		}
	}()
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := Check(ctx, "$argon2id$v=19$m=19456,t=2,p=1$c2FsdA$a2V5", "x"); err != context.Canceled {
		t.Fatalf("full slots: %v", err)
	}
}
