// Package accounts signs people and programs in: password login with
// per-IP and per-account rate limits, OAuth identities (identities.go),
// TOTP second factor and recovery codes (mfa.go), password changes,
// sessions (only a hash of the cookie value is stored; each has its CSRF
// token), API tokens (hashed, scoped to one team, expiring) and team roles.
//
// A session is complete only when its second factor is done (mfa_passed)
// and its user has no pending forced password change; the caller (the
// dashboard) decides which endpoints an incomplete session may reach.
package accounts

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/wisehosting/wisehosting/internal/auth"
	"github.com/wisehosting/wisehosting/internal/errs"
	"github.com/wisehosting/wisehosting/internal/ratelimit"
	"github.com/wisehosting/wisehosting/internal/secrets"
)

// Errors for the user (no detail about which part was wrong).
var (
	ErrBadCredentials = errors.New("wrong e-mail or password")
	ErrRateLimited    = errors.New("too many sign-in attempts; wait a few minutes")
	ErrUnauthorized   = errs.New(errs.Unauthorized, "not signed in")
	ErrForbidden      = errs.New(errs.Forbidden, "not allowed")
)

// Roles in a team, weakest first.
const (
	RoleMember = "member"
	RoleAdmin  = "admin"
	RoleOwner  = "owner"
)

var roleRank = map[string]int{RoleMember: 1, RoleAdmin: 2, RoleOwner: 3}

// AtLeast reports whether role grants at least min.
func AtLeast(role, min string) bool { return roleRank[role] >= roleRank[min] && roleRank[min] > 0 }

// Service holds the sign-in state.
type Service struct {
	Pool *pgxpool.Pool
	// SessionTTL is a session's lifetime. Default: 7 days.
	SessionTTL time.Duration
	// Keyring seals TOTP secrets; TOTP enrolment fails without one.
	Keyring *secrets.Keyring
	// Now is the clock of TOTP checks and session freshness (tests).
	Now func() time.Time
	// LoginIP and LoginAccount count failed sign-ins in Postgres, so all
	// replicas enforce one limit (README "Security model").
	LoginIP      *ratelimit.Failures
	LoginAccount *ratelimit.Failures
	// codeFailures counts wrong second-factor codes per account;
	// passwordFailures wrong current passwords of signed-in users.
	codeFailures     *ratelimit.Limiter
	passwordFailures *ratelimit.Limiter
	dummy            string
}

// New makes a Service: 20 failed sign-ins per 5 minutes per IP; 10 per 5
// minutes per account, after which the account waits 30 s after each
// failure; 5 wrong second-factor codes per 5 minutes per account.
func New(pool *pgxpool.Pool) *Service {
	dummy, _ := auth.HashPassword(context.Background(), auth.RandomToken(16))
	return &Service{Pool: pool, SessionTTL: 7 * 24 * time.Hour, Now: time.Now,
		LoginIP:      &ratelimit.Failures{Pool: pool, Limit: 20, Window: 5 * time.Minute},
		LoginAccount: &ratelimit.Failures{Pool: pool, Limit: 10, Window: 5 * time.Minute, Backoff: 30 * time.Second},
		codeFailures: ratelimit.New(5, 5*time.Minute), passwordFailures: ratelimit.New(10, 5*time.Minute), dummy: dummy}
}

// PendingTTL is how long a session may wait for its second factor.
const PendingTTL = 10 * time.Minute

// Hash is how tokens are stored.
func Hash(token string) []byte {
	h := sha256.Sum256([]byte(token))
	return h[:]
}

// Principal is who makes a request.
type Principal struct {
	UserID    int64
	Email     string
	Name      string
	IsAdmin   bool
	SessionID int64  // 0 for API tokens
	CSRF      string // the session's CSRF token
	// MFAPending: the session still needs a TOTP or recovery code.
	MFAPending bool
	// MustChangePassword: the user signed in with a one-time password and
	// must choose a new one before doing anything else.
	MustChangePassword bool
	// SessionStart is when the session was opened: security settings
	// want a fresh one.
	SessionStart time.Time
	// TokenTeam restricts an API token to one team; TokenScopes lists
	// what it may do ("read", "write").
	TokenTeam   int64
	TokenScopes []string
}

// CanWrite reports whether the principal may change things.
func (p *Principal) CanWrite() bool {
	if p.SessionID != 0 {
		return true
	}
	for _, s := range p.TokenScopes {
		if s == "write" {
			return true
		}
	}
	return false
}

// Session is a new session: Token goes into the cookie, CSRF into the
// page.
type Session struct {
	ID     int64
	Token  string
	CSRF   string
	UserID int64
	// MFARequired: the session is pending until a TOTP or recovery code
	// is given (POST /api/login/totp).
	MFARequired bool
	// MustChangePassword: the session may only change the password.
	MustChangePassword bool
}

// Login checks a password and opens a session. Only failures count
// against the limits; a right password clears the account's count. A hash
// made with older parameters is replaced by a new one.
func (s *Service) Login(ctx context.Context, email, password, ip, userAgent string) (Session, error) {
	email = strings.ToLower(strings.TrimSpace(email))
	ipKey, acctKey := "login-ip:"+ip, "login-acct:"+email
	for _, l := range []struct {
		f   *ratelimit.Failures
		key string
	}{{s.LoginIP, ipKey}, {s.LoginAccount, acctKey}} {
		if blocked, err := l.f.Blocked(ctx, l.key); err != nil || blocked {
			if err == nil {
				err = ErrRateLimited
			}
			return Session{}, err
		}
	}
	fail := func() (Session, error) {
		for _, err := range []error{s.LoginIP.Record(ctx, ipKey), s.LoginAccount.Record(ctx, acctKey)} {
			if err != nil {
				return Session{}, err
			}
		}
		return Session{}, ErrBadCredentials
	}
	var id int64
	var hash *string
	err := s.Pool.QueryRow(ctx, "SELECT id, password_hash FROM users WHERE lower(email) = $1", email).Scan(&id, &hash)
	if errors.Is(err, pgx.ErrNoRows) || (err == nil && hash == nil) {
		// Same work as for a real account.
		if _, err := auth.Check(ctx, s.dummy, password); err != nil {
			return Session{}, err
		}
		return fail()
	}
	if err != nil {
		return Session{}, err
	}
	m, err := auth.Check(ctx, *hash, password)
	if err != nil {
		return Session{}, err
	}
	if !m.OK {
		return fail()
	}
	if err := s.LoginAccount.Reset(ctx, acctKey); err != nil {
		return Session{}, err
	}
	if m.Rehash {
		if err := s.rehash(ctx, id, *hash, password); err != nil {
			return Session{}, err
		}
	}
	return s.Open(ctx, id, ip, userAgent)
}

// rehash replaces a hash made with older parameters, unless the password
// changed meanwhile.
func (s *Service) rehash(ctx context.Context, userID int64, old, password string) error {
	h, err := auth.HashPassword(ctx, password)
	if err != nil {
		return err
	}
	_, err = s.Pool.Exec(ctx, "UPDATE users SET password_hash = $3 WHERE id = $1 AND password_hash = $2", userID, old, h)
	return err
}

// Open starts a session for a user whose first factor (password or an
// OAuth provider) is proven. With TOTP enabled the session is pending:
// mfa_passed is false and it expires after PendingTTL unless a code
// completes it.
func (s *Service) Open(ctx context.Context, userID int64, ip, ua string) (Session, error) {
	sess := Session{Token: auth.RandomToken(32), CSRF: auth.RandomToken(24), UserID: userID}
	if len(ua) > 300 {
		ua = ua[:300]
	}
	err := s.Pool.QueryRow(ctx, `WITH u AS (SELECT id, totp_enabled, must_change_password FROM users WHERE id = $1),
		ins AS (INSERT INTO sessions (user_id, token_hash, csrf_token, user_agent, ip, mfa_passed, expires_at)
			SELECT u.id, $2, $3, $4, $5, NOT u.totp_enabled,
				now() + CASE WHEN u.totp_enabled THEN $7::interval ELSE $6::interval END
			FROM u RETURNING id, mfa_passed)
		SELECT ins.id, NOT ins.mfa_passed, u.must_change_password FROM ins, u`,
		userID, Hash(sess.Token), sess.CSRF, ua, ip, s.SessionTTL.String(), PendingTTL.String()).
		Scan(&sess.ID, &sess.MFARequired, &sess.MustChangePassword)
	return sess, err
}

// FromSession resolves a session cookie.
func (s *Service) FromSession(ctx context.Context, token string) (*Principal, error) {
	if token == "" || len(token) > 200 {
		return nil, ErrUnauthorized
	}
	p := &Principal{}
	err := s.Pool.QueryRow(ctx, `UPDATE sessions s SET last_seen_at = now() FROM users u
		WHERE s.token_hash = $1 AND s.revoked_at IS NULL AND s.expires_at > now() AND u.id = s.user_id
		RETURNING s.id, s.csrf_token, u.id, u.email, u.name, u.is_admin, NOT s.mfa_passed, u.must_change_password, s.created_at`, Hash(token)).
		Scan(&p.SessionID, &p.CSRF, &p.UserID, &p.Email, &p.Name, &p.IsAdmin, &p.MFAPending, &p.MustChangePassword, &p.SessionStart)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, ErrUnauthorized
	}
	return p, err
}

// CheckCSRF compares a request's CSRF header with the session's.
func (p *Principal) CheckCSRF(got string) bool {
	if p.SessionID == 0 {
		return true // API tokens are not sent by browsers on their own
	}
	return got != "" && subtle.ConstantTimeCompare([]byte(got), []byte(p.CSRF)) == 1
}

// Logout revokes a session.
func (s *Service) Logout(ctx context.Context, token string) error {
	_, err := s.Pool.Exec(ctx, "UPDATE sessions SET revoked_at = now() WHERE token_hash = $1 AND revoked_at IS NULL", Hash(token))
	return err
}

// SessionInfo is a session as its owner sees it.
type SessionInfo struct {
	ID        int64  `json:"id"`
	UserAgent string `json:"user_agent"`
	// Device is the user agent in words ("Chrome on Linux").
	Device     string    `json:"device"`
	IP         string    `json:"ip"`
	CreatedAt  time.Time `json:"created_at"`
	LastSeenAt time.Time `json:"last_seen_at"`
	Current    bool      `json:"current"`
}

// Sessions lists a user's open sessions.
func (s *Service) Sessions(ctx context.Context, p *Principal) ([]SessionInfo, error) {
	rows, err := s.Pool.Query(ctx, `SELECT id, user_agent, ip, created_at, last_seen_at FROM sessions
		WHERE user_id = $1 AND revoked_at IS NULL AND expires_at > now() ORDER BY last_seen_at DESC`, p.UserID)
	if err != nil {
		return nil, err
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (SessionInfo, error) {
		var si SessionInfo
		err := r.Scan(&si.ID, &si.UserAgent, &si.IP, &si.CreatedAt, &si.LastSeenAt)
		si.Current = si.ID == p.SessionID
		si.Device = DescribeUserAgent(si.UserAgent)
		return si, err
	})
	return out, err
}

// RevokeSession ends one of the user's own sessions.
func (s *Service) RevokeSession(ctx context.Context, userID, sessionID int64) error {
	tag, err := s.Pool.Exec(ctx, "UPDATE sessions SET revoked_at = now() WHERE id = $1 AND user_id = $2 AND revoked_at IS NULL", sessionID, userID)
	if err == nil && tag.RowsAffected() == 0 {
		return ErrForbidden
	}
	return err
}

// TokenPrefix starts every API token.
const TokenPrefix = "wht_"

// CreateToken makes an API token for a team the user belongs to; the raw
// token is returned once.
func (s *Service) CreateToken(ctx context.Context, userID, teamID int64, name string, scopes []string, ttl time.Duration) (string, int64, error) {
	if name == "" || len(name) > 100 {
		return "", 0, errs.Field("name", "A token's name has 1 to 100 characters.")
	}
	for _, sc := range scopes {
		if sc != "read" && sc != "write" {
			return "", 0, errs.Field("scopes", fmt.Sprintf("%q is not a scope: a token can read, or read and write.", sc))
		}
	}
	if len(scopes) == 0 {
		scopes = []string{"read"}
	}
	if ttl < time.Hour || ttl > 366*24*time.Hour {
		return "", 0, errs.Field("expires_in_days", "A token expires after 1 hour to 1 year.")
	}
	raw := TokenPrefix + auth.RandomToken(32)
	var id int64
	err := s.Pool.QueryRow(ctx, `INSERT INTO api_tokens (team_id, user_id, name, token_hash, prefix, scopes, expires_at)
		SELECT $1, $2, $3, $4, $5, $6, now() + $7::interval FROM memberships WHERE team_id = $1 AND user_id = $2
		RETURNING id`, teamID, userID, name, Hash(raw), raw[:len(TokenPrefix)+6], scopes, ttl.String()).Scan(&id)
	if errors.Is(err, pgx.ErrNoRows) {
		return "", 0, ErrForbidden
	}
	return raw, id, err
}

// FromToken resolves an API token.
func (s *Service) FromToken(ctx context.Context, raw string) (*Principal, error) {
	if !strings.HasPrefix(raw, TokenPrefix) || len(raw) > 200 {
		return nil, ErrUnauthorized
	}
	p := &Principal{}
	err := s.Pool.QueryRow(ctx, `UPDATE api_tokens t SET last_used_at = now() FROM users u
		WHERE t.token_hash = $1 AND t.revoked_at IS NULL AND (t.expires_at IS NULL OR t.expires_at > now()) AND u.id = t.user_id
		RETURNING u.id, u.email, u.name, t.team_id, t.scopes`, Hash(raw)).Scan(&p.UserID, &p.Email, &p.Name, &p.TokenTeam, &p.TokenScopes)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, ErrUnauthorized
	}
	return p, err
}

// Role returns the principal's role in a team ("" when none). An API
// token sees only its own team.
func (s *Service) Role(ctx context.Context, p *Principal, teamID int64) (string, error) {
	if p.TokenTeam != 0 && p.TokenTeam != teamID {
		return "", nil
	}
	var role string
	err := s.Pool.QueryRow(ctx, "SELECT role FROM memberships WHERE team_id = $1 AND user_id = $2", teamID, p.UserID).Scan(&role)
	if errors.Is(err, pgx.ErrNoRows) {
		return "", nil
	}
	return role, err
}

// Team is a team as its members see it.
type Team struct {
	ID   int64  `json:"id"`
	Name string `json:"name"`
	Slug string `json:"slug"`
	Plan string `json:"plan"`
	Role string `json:"role"`
}

// Teams lists the principal's teams.
func (s *Service) Teams(ctx context.Context, p *Principal) ([]Team, error) {
	rows, err := s.Pool.Query(ctx, `SELECT t.id, t.name, t.slug, t.plan, m.role FROM teams t JOIN memberships m ON m.team_id = t.id
		WHERE m.user_id = $1 AND ($2 = 0 OR t.id = $2) ORDER BY t.name`, p.UserID, p.TokenTeam)
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, func(r pgx.CollectableRow) (Team, error) {
		var t Team
		err := r.Scan(&t.ID, &t.Name, &t.Slug, &t.Plan, &t.Role)
		return t, err
	})
}

// Execer is a pool or a transaction.
type Execer interface {
	Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error)
}

// Audit records a change in audit_events (in the change's transaction
// when q is one).
func Audit(ctx context.Context, q Execer, teamID, userID int64, action, target, ip string, details map[string]any) error {
	if details == nil {
		details = map[string]any{}
	}
	var team, user any
	if teamID != 0 {
		team = teamID
	}
	if userID != 0 {
		user = userID
	}
	_, err := q.Exec(ctx, `INSERT INTO audit_events (team_id, user_id, action, target, details, ip) VALUES ($1, $2, $3, $4, $5, $6)`,
		team, user, action, target, details, ip)
	return err
}
