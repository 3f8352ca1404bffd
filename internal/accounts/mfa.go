package accounts

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base32"
	"encoding/hex"
	"errors"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/pquerna/otp"
	"github.com/pquerna/otp/hotp"
	"github.com/pquerna/otp/totp"

	"github.com/wisehosting/wisehosting/internal/auth"
	"github.com/wisehosting/wisehosting/internal/errs"
	"github.com/wisehosting/wisehosting/internal/secrets"
)

// TOTP parameters: RFC 6238 defaults, which every authenticator app
// understands.
const (
	totpPeriod = 30
	totpSkew   = 1 // steps accepted on either side of now
	// RecoveryCodeCount is how many recovery codes a user gets at a time.
	RecoveryCodeCount = 10
	// FreshFor is how old a session may be to change security settings.
	FreshFor = 15 * time.Minute
	// Issuer names the service in authenticator apps.
	Issuer = "WiseHosting"
)

// Second-factor errors.
var (
	ErrBadCode          = errs.New(errs.Forbidden, "wrong or already used code")
	ErrTOTPEnabled      = errs.New(errs.Conflict, "two-factor authentication is already on; turn it off first")
	ErrTOTPNotEnabled   = errs.New(errs.Conflict, "two-factor authentication is not on")
	ErrNoEnrollment     = errs.New(errs.Conflict, "start the two-factor setup first")
	ErrNotFresh         = errs.New(errs.Forbidden, "sign in again first: this needs a session opened in the last 15 minutes")
	ErrSessionRequired  = errs.New(errs.Forbidden, "this needs a signed-in browser session, not an API token")
	ErrNoPendingSession = errs.New(errs.Conflict, "this session does not wait for a code")
)

// Fresh reports whether the principal's session was opened recently
// enough to change security settings.
func (s *Service) Fresh(p *Principal) bool {
	return p.SessionID != 0 && s.Now().Sub(p.SessionStart) < FreshFor
}

func totpAD(userID int64) []byte { return []byte("user:" + strconv.FormatInt(userID, 10)) }

// normalizeTOTP accepts "123456" and "123 456"; anything else is "".
func normalizeTOTP(code string) string {
	code = strings.ReplaceAll(strings.TrimSpace(code), " ", "")
	if len(code) != 6 {
		return ""
	}
	for _, c := range code {
		if c < '0' || c > '9' {
			return ""
		}
	}
	return code
}

// normalizeRecovery lowercases a recovery code and drops dashes and
// spaces; "" when it cannot be one.
func normalizeRecovery(code string) string {
	if len(code) > 64 {
		return ""
	}
	code = strings.ToLower(strings.NewReplacer("-", "", " ", "").Replace(code))
	if len(code) != 16 {
		return ""
	}
	for _, c := range code {
		if !(c >= 'a' && c <= 'z') && !(c >= '2' && c <= '7') {
			return ""
		}
	}
	return code
}

func hashRecovery(normalized string) string {
	h := sha256.Sum256([]byte("wisehosting-recovery:" + normalized))
	return hex.EncodeToString(h[:])
}

// newRecoveryCodes returns codes to show once and their hashes to store.
// Each code has 80 random bits, so a plain SHA-256 is enough to store it.
func newRecoveryCodes() (codes, hashes []string) {
	enc := base32.StdEncoding.WithPadding(base32.NoPadding)
	for range RecoveryCodeCount {
		b := make([]byte, 10)
		rand.Read(b)                                // never fails (crypto/rand)
		c := strings.ToLower(enc.EncodeToString(b)) // 16 characters
		codes = append(codes, c[0:4]+"-"+c[4:8]+"-"+c[8:12]+"-"+c[12:16])
		hashes = append(hashes, hashRecovery(c))
	}
	return codes, hashes
}

// matchStep returns the time step within ±totpSkew of now whose code is
// code and that is later than last, or 0. Every candidate is computed and
// compared in constant time.
func matchStep(secret, code string, now time.Time, last int64) (int64, error) {
	cur := now.Unix() / totpPeriod
	var found int64
	for d := int64(-totpSkew); d <= totpSkew; d++ {
		step := cur + d
		want, err := hotp.GenerateCodeCustom(secret, uint64(step), hotp.ValidateOpts{Digits: otp.DigitsSix, Algorithm: otp.AlgorithmSHA1})
		if err != nil {
			return 0, err
		}
		if subtle.ConstantTimeCompare([]byte(want), []byte(code)) == 1 && step > last && step > found {
			found = step
		}
	}
	return found, nil
}

// useTOTP checks code against the user's secret (enabled, or pending
// confirmation when enabled is false) and, if it matches, records its
// step. The conditional UPDATE makes each step usable once: of two
// concurrent requests with the same code only one sees its row updated.
func (s *Service) useTOTP(ctx context.Context, q pgx.Tx, userID int64, code string, enabled bool) (bool, error) {
	code = normalizeTOTP(code)
	if code == "" {
		return false, nil
	}
	var enc *string
	var last int64
	var on bool
	err := q.QueryRow(ctx, "SELECT totp_secret_enc, totp_last_step, totp_enabled FROM users WHERE id = $1", userID).Scan(&enc, &last, &on)
	if err != nil {
		return false, err
	}
	if enc == nil || on != enabled {
		return false, nil
	}
	if s.Keyring == nil {
		return false, errors.New("no keyring for TOTP secrets")
	}
	secret, err := s.Keyring.DecryptString(secrets.PurposeTOTP, *enc, totpAD(userID))
	if err != nil {
		return false, err
	}
	step, err := matchStep(secret, code, s.Now(), last)
	if err != nil || step == 0 {
		return false, err
	}
	tag, err := q.Exec(ctx, "UPDATE users SET totp_last_step = $2 WHERE id = $1 AND totp_last_step < $2", userID, step)
	if err != nil {
		return false, err
	}
	return tag.RowsAffected() == 1, nil
}

// useRecoveryCode spends one recovery code.
func (s *Service) useRecoveryCode(ctx context.Context, q pgx.Tx, userID int64, code string) (bool, error) {
	code = normalizeRecovery(code)
	if code == "" {
		return false, nil
	}
	want := hashRecovery(code)
	var stored []string
	if err := q.QueryRow(ctx, "SELECT recovery_codes_hash FROM users WHERE id = $1 AND totp_enabled", userID).Scan(&stored); err != nil {
		if errors.Is(err, pgx.ErrNoRows) {
			return false, nil
		}
		return false, err
	}
	match := 0
	for _, h := range stored {
		match |= subtle.ConstantTimeCompare([]byte(h), []byte(want))
	}
	if match == 0 {
		return false, nil
	}
	// The array_remove is conditional on the code still being there, so a
	// code spent by a concurrent request is not spent twice.
	tag, err := q.Exec(ctx, `UPDATE users SET recovery_codes_hash = array_remove(recovery_codes_hash, $2)
		WHERE id = $1 AND $2 = ANY(recovery_codes_hash)`, userID, want)
	if err != nil {
		return false, err
	}
	return tag.RowsAffected() == 1, nil
}

// checkCode accepts a TOTP code or a recovery code of a user with TOTP
// on, counting failures against the account's code budget.
func (s *Service) checkCode(ctx context.Context, tx pgx.Tx, userID int64, code, recovery string) (method string, err error) {
	key := "code:" + strconv.FormatInt(userID, 10)
	if s.codeFailures.Exhausted(key) {
		return "", ErrRateLimited
	}
	ok := false
	switch {
	case code != "":
		method = "totp"
		ok, err = s.useTOTP(ctx, tx, userID, code, true)
	case recovery != "":
		method = "recovery_code"
		ok, err = s.useRecoveryCode(ctx, tx, userID, recovery)
	}
	if err != nil {
		return "", err
	}
	if !ok {
		s.codeFailures.Allow(key)
		return "", ErrBadCode
	}
	return method, nil
}

// CompleteMFA finishes a pending session with a TOTP code or a recovery
// code. The session gets a new cookie value (returned) and its full
// lifetime; the old value stops working.
func (s *Service) CompleteMFA(ctx context.Context, p *Principal, code, recovery string) (token, method string, err error) {
	if !p.MFAPending || p.SessionID == 0 {
		return "", "", ErrNoPendingSession
	}
	token = auth.RandomToken(32)
	err = pgx.BeginFunc(ctx, s.Pool, func(tx pgx.Tx) error {
		var err error
		if method, err = s.checkCode(ctx, tx, p.UserID, code, recovery); err != nil {
			return err
		}
		tag, err := tx.Exec(ctx, `UPDATE sessions SET token_hash = $2, mfa_passed = true, expires_at = now() + $3::interval
			WHERE id = $1 AND NOT mfa_passed AND revoked_at IS NULL`, p.SessionID, Hash(token), s.SessionTTL.String())
		if err == nil && tag.RowsAffected() == 0 {
			err = ErrNoPendingSession
		}
		return err
	})
	if err != nil {
		return "", "", err
	}
	return token, method, nil
}

// verifyPassword checks the principal's current password, counting
// failures; hasPassword is false for accounts that sign in only through
// OAuth.
func (s *Service) verifyPassword(ctx context.Context, q pgx.Tx, userID int64, password string) (hasPassword bool, err error) {
	key := "pw:" + strconv.FormatInt(userID, 10)
	if s.passwordFailures.Exhausted(key) {
		return false, ErrRateLimited
	}
	var hash *string
	if err := q.QueryRow(ctx, "SELECT password_hash FROM users WHERE id = $1 FOR UPDATE", userID).Scan(&hash); err != nil {
		return false, err
	}
	if hash == nil {
		return false, nil
	}
	m, err := auth.Check(ctx, *hash, password)
	if err != nil {
		return true, err
	}
	if !m.OK {
		s.passwordFailures.Allow(key)
		return true, ErrBadCredentials
	}
	return true, nil
}

// reauth proves the principal is the account holder for a security
// change: a fresh session and the current password, or (when allowCode)
// a current TOTP code instead. Accounts without a password rely on the
// fresh session alone.
func (s *Service) reauth(ctx context.Context, tx pgx.Tx, p *Principal, password, code string, allowCode bool) error {
	if p.SessionID == 0 {
		return ErrSessionRequired
	}
	if !s.Fresh(p) {
		return ErrNotFresh
	}
	if allowCode && password == "" && code != "" {
		_, err := s.checkCode(ctx, tx, p.UserID, code, "")
		return err
	}
	has, err := s.verifyPassword(ctx, tx, p.UserID, password)
	if err == nil && !has && password != "" {
		return ErrBadCredentials
	}
	return err
}

// TOTPSetup is a secret waiting for its first code.
type TOTPSetup struct {
	Secret string `json:"secret"`
	// URL is the otpauth:// URL authenticator apps import.
	URL string `json:"otpauth_url"`
}

// BeginTOTP makes a new TOTP secret for the principal, stored encrypted
// and inactive until ConfirmTOTP sees a code from it.
func (s *Service) BeginTOTP(ctx context.Context, p *Principal, password string) (TOTPSetup, error) {
	if s.Keyring == nil {
		return TOTPSetup{}, errors.New("no keyring for TOTP secrets")
	}
	var setup TOTPSetup
	err := pgx.BeginFunc(ctx, s.Pool, func(tx pgx.Tx) error {
		if err := s.reauth(ctx, tx, p, password, "", false); err != nil {
			return err
		}
		var on bool
		if err := tx.QueryRow(ctx, "SELECT totp_enabled FROM users WHERE id = $1", p.UserID).Scan(&on); err != nil {
			return err
		}
		if on {
			return ErrTOTPEnabled
		}
		key, err := totp.Generate(totp.GenerateOpts{Issuer: Issuer, AccountName: p.Email, Period: totpPeriod,
			Digits: otp.DigitsSix, Algorithm: otp.AlgorithmSHA1})
		if err != nil {
			return err
		}
		enc, err := s.Keyring.EncryptString(secrets.PurposeTOTP, key.Secret(), totpAD(p.UserID))
		if err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, "UPDATE users SET totp_secret_enc = $2, totp_last_step = 0, updated_at = now() WHERE id = $1", p.UserID, enc); err != nil {
			return err
		}
		setup = TOTPSetup{Secret: key.Secret(), URL: key.URL()}
		return nil
	})
	return setup, err
}

// ConfirmTOTP turns TOTP on once code matches the pending secret (in a
// fresh session, like BeginTOTP), and returns the first recovery codes
// (shown once). The confirming code's step counts as used.
func (s *Service) ConfirmTOTP(ctx context.Context, p *Principal, code string) ([]string, error) {
	if p.SessionID == 0 {
		return nil, ErrSessionRequired
	}
	if !s.Fresh(p) {
		return nil, ErrNotFresh
	}
	codes, hashes := newRecoveryCodes()
	err := pgx.BeginFunc(ctx, s.Pool, func(tx pgx.Tx) error {
		var enc *string
		var on bool
		if err := tx.QueryRow(ctx, "SELECT totp_secret_enc, totp_enabled FROM users WHERE id = $1 FOR UPDATE", p.UserID).Scan(&enc, &on); err != nil {
			return err
		}
		switch {
		case on:
			return ErrTOTPEnabled
		case enc == nil:
			return ErrNoEnrollment
		}
		key := "code:" + strconv.FormatInt(p.UserID, 10)
		if s.codeFailures.Exhausted(key) {
			return ErrRateLimited
		}
		ok, err := s.useTOTP(ctx, tx, p.UserID, code, false)
		if err != nil {
			return err
		}
		if !ok {
			s.codeFailures.Allow(key)
			return ErrBadCode
		}
		_, err = tx.Exec(ctx, "UPDATE users SET totp_enabled = true, recovery_codes_hash = $2, updated_at = now() WHERE id = $1", p.UserID, hashes)
		return err
	})
	if err != nil {
		return nil, err
	}
	return codes, nil
}

// DisableTOTP turns TOTP off (fresh session and the password or a
// current code) and drops the secret and the recovery codes.
func (s *Service) DisableTOTP(ctx context.Context, p *Principal, password, code string) error {
	return pgx.BeginFunc(ctx, s.Pool, func(tx pgx.Tx) error {
		var on bool
		if err := tx.QueryRow(ctx, "SELECT totp_enabled FROM users WHERE id = $1", p.UserID).Scan(&on); err != nil {
			return err
		}
		if !on {
			return ErrTOTPNotEnabled
		}
		if err := s.reauth(ctx, tx, p, password, code, true); err != nil {
			return err
		}
		_, err := tx.Exec(ctx, `UPDATE users SET totp_enabled = false, totp_secret_enc = NULL, totp_last_step = 0,
			recovery_codes_hash = '{}', updated_at = now() WHERE id = $1`, p.UserID)
		return err
	})
}

// RegenerateRecoveryCodes replaces every recovery code (fresh session and
// the password or a current code).
func (s *Service) RegenerateRecoveryCodes(ctx context.Context, p *Principal, password, code string) ([]string, error) {
	codes, hashes := newRecoveryCodes()
	err := pgx.BeginFunc(ctx, s.Pool, func(tx pgx.Tx) error {
		var on bool
		if err := tx.QueryRow(ctx, "SELECT totp_enabled FROM users WHERE id = $1", p.UserID).Scan(&on); err != nil {
			return err
		}
		if !on {
			return ErrTOTPNotEnabled
		}
		if err := s.reauth(ctx, tx, p, password, code, true); err != nil {
			return err
		}
		_, err := tx.Exec(ctx, "UPDATE users SET recovery_codes_hash = $2, updated_at = now() WHERE id = $1", p.UserID, hashes)
		return err
	})
	if err != nil {
		return nil, err
	}
	return codes, nil
}
