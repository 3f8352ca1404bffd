package secrets

import (
	"encoding/base64"
	"errors"
	"strings"
	"testing"
)

const (
	secretA = "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
	secretB = "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb"
)

func mustKeyring(t *testing.T, cur string, prev ...string) *Keyring {
	t.Helper()
	k, err := NewKeyring(cur, prev...)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func TestRoundTrip(t *testing.T) {
	k := mustKeyring(t, secretA)
	for _, pt := range []string{"", "x", "DATABASE_URL=postgres://u:p@h/db", strings.Repeat("z", 10000)} {
		ct, err := k.EncryptString(PurposeEnvVars, pt, []byte("app:1"))
		if err != nil {
			t.Fatal(err)
		}
		if len(pt) > 8 && strings.Contains(ct, pt) {
			t.Fatalf("ciphertext contains plaintext")
		}
		got, err := k.DecryptString(PurposeEnvVars, ct, []byte("app:1"))
		if err != nil || got != pt {
			t.Fatalf("round trip: got %q, %v", got, err)
		}
	}
}

func TestNonceIsFresh(t *testing.T) {
	k := mustKeyring(t, secretA)
	a, _ := k.EncryptString(PurposeEnvVars, "same", nil)
	b, _ := k.EncryptString(PurposeEnvVars, "same", nil)
	if a == b {
		t.Fatal("two encryptions of the same value are identical")
	}
}

func TestRotation(t *testing.T) {
	old := mustKeyring(t, secretA)
	ct, _ := old.EncryptString(PurposeGitTokens, "tok", nil)

	rotated := mustKeyring(t, secretB, secretA)
	if !rotated.NeedsRotation(ct) {
		t.Fatal("old ciphertext should need rotation")
	}
	got, err := rotated.DecryptString(PurposeGitTokens, ct, nil)
	if err != nil || got != "tok" {
		t.Fatalf("old key must still decrypt: %q %v", got, err)
	}
	fresh, err := rotated.Rotate(PurposeGitTokens, ct, nil)
	if err != nil {
		t.Fatal(err)
	}
	if rotated.NeedsRotation(fresh) {
		t.Fatal("rotated ciphertext still names the old key")
	}
	// Once the old secret is dropped, only the re-encrypted value opens.
	onlyNew := mustKeyring(t, secretB)
	if _, err := onlyNew.Decrypt(PurposeGitTokens, ct, nil); !errors.Is(err, ErrUnknownKey) {
		t.Fatalf("want ErrUnknownKey for a dropped key, got %v", err)
	}
	if got, err := onlyNew.DecryptString(PurposeGitTokens, fresh, nil); err != nil || got != "tok" {
		t.Fatalf("rotated value: %q %v", got, err)
	}
}

func TestWrongKeyIsAnError(t *testing.T) {
	ct, _ := mustKeyring(t, secretA).EncryptString(PurposeEnvVars, "v", nil)
	if _, err := mustKeyring(t, secretB).Decrypt(PurposeEnvVars, ct, nil); err == nil {
		t.Fatal("decrypting with a wrong key succeeded")
	}
}

// A value sealed for one purpose or one row must not open as another:
// this is what stops a user from copying an encrypted env var into a
// webhook secret column, or from one app's row into another's.
func TestCrossPurposeAndRowReplayRejected(t *testing.T) {
	k := mustKeyring(t, secretA)
	ct, _ := k.EncryptString(PurposeEnvVars, "v", []byte("app:1"))
	if _, err := k.Decrypt(PurposeWebhooks, ct, []byte("app:1")); !errors.Is(err, ErrInvalid) {
		t.Fatalf("cross-purpose: %v", err)
	}
	if _, err := k.Decrypt(PurposeEnvVars, ct, []byte("app:2")); !errors.Is(err, ErrInvalid) {
		t.Fatalf("cross-row: %v", err)
	}
}

func TestTamperRejected(t *testing.T) {
	k := mustKeyring(t, secretA)
	ct, _ := k.EncryptString(PurposeEnvVars, "hello world", nil)
	raw, _ := base64.RawURLEncoding.DecodeString(strings.TrimPrefix(ct, prefix))
	for i := 4; i < len(raw); i++ {
		mod := append([]byte(nil), raw...)
		mod[i] ^= 0x01
		bad := prefix + base64.RawURLEncoding.EncodeToString(mod)
		if _, err := k.Decrypt(PurposeEnvVars, bad, nil); !errors.Is(err, ErrInvalid) {
			t.Fatalf("flipping byte %d: want ErrInvalid, got %v", i, err)
		}
	}
	for _, bad := range []string{"", "whs1.", "whs1.!!!", "plain", prefix + "AAAA", ct[:len(ct)-3]} {
		if _, err := k.Decrypt(PurposeEnvVars, bad, nil); err == nil {
			t.Fatalf("%q decrypted", bad)
		}
	}
}

func TestShortSecretRefused(t *testing.T) {
	if _, err := NewKeyring("short"); err == nil {
		t.Fatal("short master secret accepted")
	}
}

func FuzzDecrypt(f *testing.F) {
	k, _ := NewKeyring(secretA)
	ct, _ := k.EncryptString(PurposeEnvVars, "seed", nil)
	f.Add(ct)
	f.Add("whs1.AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA")
	f.Fuzz(func(t *testing.T, s string) {
		pt, err := k.Decrypt(PurposeEnvVars, s, nil)
		if err == nil && s != ct && string(pt) != "seed" {
			t.Fatalf("forged ciphertext %q opened to %q", s, pt)
		}
	})
}

func BenchmarkEncrypt(b *testing.B) {
	k, _ := NewKeyring(secretA)
	pt := []byte("a typical environment variable value")
	for b.Loop() {
		if _, err := k.Encrypt(PurposeEnvVars, pt, nil); err != nil {
			b.Fatal(err)
		}
	}
}

func TestDeriveKeySeparatesPurposes(t *testing.T) {
	k := mustKeyring(t, secretA)
	a, b := k.DeriveKey("jwt", 32), k.DeriveKey("csrf", 32)
	if len(a) != 32 || string(a) == string(b) {
		t.Fatal("derived keys not separated by purpose")
	}
	if string(a) != string(mustKeyring(t, secretA).DeriveKey("jwt", 32)) {
		t.Fatal("derivation not deterministic")
	}
	if string(a) == string(mustKeyring(t, secretB).DeriveKey("jwt", 32)) {
		t.Fatal("derivation ignores the master secret")
	}
}
