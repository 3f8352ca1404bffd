package accounts

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pquerna/otp/totp"

	"github.com/wisehosting/wisehosting/internal/auth"
	"github.com/wisehosting/wisehosting/internal/pgtest"
	"github.com/wisehosting/wisehosting/internal/secrets"
)

const testSecret = "0123456789abcdef0123456789abcdef"

// newService is a Service on its own database with a settable clock.
func newService(t *testing.T) (*Service, *time.Time) {
	t.Helper()
	db := pgtest.New(t)
	s := New(db.Pool)
	kr, err := secrets.NewKeyring(testSecret)
	if err != nil {
		t.Fatal(err)
	}
	s.Keyring = kr
	now := time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)
	s.Now = func() time.Time { return now }
	return s, &now
}

func addUser(t *testing.T, s *Service, email, password string) int64 {
	t.Helper()
	hash, _ := auth.HashPassword(context.Background(), password)
	var id int64
	if err := s.Pool.QueryRow(context.Background(), "INSERT INTO users (email, password_hash) VALUES ($1, $2) RETURNING id", email, hash).Scan(&id); err != nil {
		t.Fatal(err)
	}
	return id
}

// enrolled signs a user in, turns TOTP on and returns the secret and the
// recovery codes.
func enrolled(t *testing.T, s *Service, now *time.Time, email, password string) (string, []string) {
	t.Helper()
	ctx := context.Background()
	addUser(t, s, email, password)
	sess, err := s.Login(ctx, email, password, "127.0.0.1", "test")
	if err != nil {
		t.Fatal(err)
	}
	// Sessions are fresh relative to the database clock; keep the fake
	// clock next to it for the freshness check.
	*now = time.Now()
	p, err := s.FromSession(ctx, sess.Token)
	if err != nil {
		t.Fatal(err)
	}
	setup, err := s.BeginTOTP(ctx, p, password)
	if err != nil {
		t.Fatal(err)
	}
	code, _ := totp.GenerateCode(setup.Secret, *now)
	recovery, err := s.ConfirmTOTP(ctx, p, code)
	if err != nil {
		t.Fatal(err)
	}
	return setup.Secret, recovery
}

func pending(t *testing.T, s *Service, email, password string) *Principal {
	t.Helper()
	ctx := context.Background()
	sess, err := s.Login(ctx, email, password, "127.0.0.1", "test")
	if err != nil {
		t.Fatal(err)
	}
	if !sess.MFARequired {
		t.Fatal("a user with TOTP got a complete session from the password alone")
	}
	p, err := s.FromSession(ctx, sess.Token)
	if err != nil || !p.MFAPending {
		t.Fatalf("pending session: %+v %v", p, err)
	}
	return p
}

// Two requests with the same valid code at the same moment: exactly one
// completes its session (the conditional UPDATE of totp_last_step).
func TestTOTPConcurrentReplayOnlyOnePasses(t *testing.T) {
	s, now := newService(t)
	secret, _ := enrolled(t, s, now, "ann@x.test", "ann-password-123")
	*now = now.Add(30 * time.Second) // a step after the confirming code
	code, _ := totp.GenerateCode(secret, *now)
	for round := 0; round < 3; round++ {
		a, b := pending(t, s, "ann@x.test", "ann-password-123"), pending(t, s, "ann@x.test", "ann-password-123")
		var wg sync.WaitGroup
		errs := make([]error, 2)
		for i, p := range []*Principal{a, b} {
			wg.Add(1)
			go func() {
				defer wg.Done()
				_, _, errs[i] = s.CompleteMFA(context.Background(), p, code, "")
			}()
		}
		wg.Wait()
		ok := 0
		for _, err := range errs {
			if err == nil {
				ok++
			} else if !errors.Is(err, ErrBadCode) {
				t.Fatal(err)
			}
		}
		want := 0
		if round == 0 {
			want = 1
		}
		if ok != want {
			t.Fatalf("round %d: %d of two concurrent uses of one code passed, want %d", round, ok, want)
		}
		// The wrong-code budget must not end the test: reset it.
		s.codeFailures = New(nil).codeFailures
	}
}

// A code is accepted within one step of the clock, never from an older
// step than the last used one.
func TestTOTPWindowAndSkew(t *testing.T) {
	s, now := newService(t)
	secret, _ := enrolled(t, s, now, "bo@x.test", "bo-password-1234")
	ctx := context.Background()
	base := *now
	try := func(at time.Time) error {
		p := pending(t, s, "bo@x.test", "bo-password-1234")
		code, _ := totp.GenerateCode(secret, at)
		_, _, err := s.CompleteMFA(ctx, p, code, "")
		s.codeFailures = New(nil).codeFailures
		return err
	}
	*now = base.Add(90 * time.Second)
	if err := try(base.Add(30 * time.Second)); !errors.Is(err, ErrBadCode) {
		t.Fatalf("code two steps old: %v", err)
	}
	if err := try(base.Add(120 * time.Second)); err != nil {
		t.Fatalf("code one step ahead: %v", err)
	}
	if err := try(base.Add(90 * time.Second)); !errors.Is(err, ErrBadCode) {
		t.Fatalf("code older than the last used step: %v", err)
	}
	*now = base.Add(150 * time.Second)
	if err := try(base.Add(150 * time.Second)); err != nil {
		t.Fatalf("code of the current step: %v", err)
	}
}

func TestRecoveryCodeSingleUseAndNormalized(t *testing.T) {
	s, now := newService(t)
	_, codes := enrolled(t, s, now, "cy@x.test", "cy-password-1234")
	if len(codes) != RecoveryCodeCount {
		t.Fatalf("%d recovery codes", len(codes))
	}
	ctx := context.Background()
	var stored []string
	s.Pool.QueryRow(ctx, "SELECT recovery_codes_hash FROM users WHERE email = 'cy@x.test'").Scan(&stored)
	for _, h := range stored {
		for _, c := range codes {
			if h == c || h == normalizeRecovery(c) {
				t.Fatal("recovery code stored in clear")
			}
		}
	}
	p := pending(t, s, "cy@x.test", "cy-password-1234")
	// Typed with capitals and spaces instead of dashes.
	typed := " " + strings.ToUpper(codes[3][:4]) + " " + codes[3][5:] + " "
	if _, method, err := s.CompleteMFA(ctx, p, "", typed); err != nil || method != "recovery_code" {
		t.Fatalf("recovery code: %q %v", method, err)
	}
	p = pending(t, s, "cy@x.test", "cy-password-1234")
	if _, _, err := s.CompleteMFA(ctx, p, "", codes[3]); !errors.Is(err, ErrBadCode) {
		t.Fatalf("recovery code used twice: %v", err)
	}
	if si, _ := s.Security(ctx, p.UserID); si.RecoveryCodesLeft != RecoveryCodeCount-1 {
		t.Fatalf("codes left: %d", si.RecoveryCodesLeft)
	}
}

func TestCodeNormalization(t *testing.T) {
	for in, want := range map[string]string{"123456": "123456", " 123 456 ": "123456", "12345": "", "12345a": "", "１２３４５６": ""} {
		if got := normalizeTOTP(in); got != want {
			t.Errorf("normalizeTOTP(%q) = %q, want %q", in, got, want)
		}
	}
	for in, want := range map[string]string{"abcd-efgh-2345-7abc": "abcdefgh23457abc", "ABCD EFGH 2345 7ABC": "abcdefgh23457abc",
		"abcd-efgh-2345-7ab1": "", "abcd": "", "": ""} {
		if got := normalizeRecovery(in); got != want {
			t.Errorf("normalizeRecovery(%q) = %q, want %q", in, got, want)
		}
	}
}
