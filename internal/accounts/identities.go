package accounts

import (
	"context"
	"errors"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
)

// ExternalIdentity is who an OAuth provider says signed in.
type ExternalIdentity struct {
	Provider string
	// Subject is the provider's stable account id (never the e-mail
	// address or the user name, which can change hands).
	Subject string
	Email   string
	// EmailVerified: the provider confirmed that the person controls
	// Email. Only then is Email used to find or create an account.
	EmailVerified bool
	Name          string
}

// What ResolveExternal did.
const (
	ExternalSignIn = "signin" // the identity was known
	ExternalLinked = "link"   // linked to the account with its verified e-mail
	ExternalSignUp = "signup" // a new account was made
)

// Errors of ResolveExternal, worded for the person signing in.
var (
	ErrNoAccount = errors.New("no account uses this sign-in, and sign-ups are closed: ask an administrator to invite you, " +
		"or sign in with your password and a provider whose verified e-mail matches your account")
	ErrUnverifiedEmail = errors.New("the provider did not confirm an e-mail address for this account: verify it there and try again")
)

// ResolveExternal finds the account of an OAuth identity: the one it is
// linked to; else the account whose e-mail is the identity's verified
// e-mail (and links it); else, when allowSignup, a new account without a
// password. Links and sign-ups are audited.
func (s *Service) ResolveExternal(ctx context.Context, id ExternalIdentity, allowSignup bool, ip string) (int64, string, error) {
	email := strings.ToLower(strings.TrimSpace(id.Email))
	if id.Provider == "" || id.Subject == "" {
		return 0, "", errors.New("identity without provider or subject")
	}
	var userID int64
	var outcome string
	err := pgx.BeginFunc(ctx, s.Pool, func(tx pgx.Tx) error {
		err := tx.QueryRow(ctx, "SELECT user_id FROM oauth_identities WHERE provider = $1 AND subject = $2", id.Provider, id.Subject).Scan(&userID)
		if err == nil {
			outcome = ExternalSignIn
			if id.EmailVerified && email != "" {
				_, err = tx.Exec(ctx, "UPDATE oauth_identities SET email = $3 WHERE provider = $1 AND subject = $2", id.Provider, id.Subject, email)
			}
			return err
		}
		if !errors.Is(err, pgx.ErrNoRows) {
			return err
		}
		if id.EmailVerified && email != "" {
			err = tx.QueryRow(ctx, "SELECT id FROM users WHERE lower(email) = $1 FOR UPDATE", email).Scan(&userID)
			switch {
			case err == nil:
				outcome = ExternalLinked
			case errors.Is(err, pgx.ErrNoRows):
			default:
				return err
			}
		}
		if outcome == "" {
			if !allowSignup {
				return ErrNoAccount
			}
			if !id.EmailVerified || email == "" {
				return ErrUnverifiedEmail
			}
			name := id.Name
			if len(name) > 100 {
				name = name[:100]
			}
			if err := tx.QueryRow(ctx, "INSERT INTO users (email, name) VALUES ($1, $2) RETURNING id", email, name).Scan(&userID); err != nil {
				return err
			}
			outcome = ExternalSignUp
		}
		if _, err := tx.Exec(ctx, "INSERT INTO oauth_identities (user_id, provider, subject, email) VALUES ($1, $2, $3, $4)",
			userID, id.Provider, id.Subject, email); err != nil {
			return err
		}
		return Audit(ctx, tx, 0, userID, "user.oauth_"+outcome, id.Provider, ip, map[string]any{"subject": id.Subject, "email": email})
	})
	if err != nil {
		return 0, "", err
	}
	return userID, outcome, nil
}

// IdentityInfo is a linked OAuth identity as its owner sees it.
type IdentityInfo struct {
	Provider  string    `json:"provider"`
	Email     string    `json:"email"`
	CreatedAt time.Time `json:"created_at"`
}

// SecurityInfo is the state of a user's sign-in settings.
type SecurityInfo struct {
	HasPassword        bool           `json:"has_password"`
	MustChangePassword bool           `json:"must_change_password"`
	TOTPEnabled        bool           `json:"totp_enabled"`
	RecoveryCodesLeft  int            `json:"recovery_codes_left"`
	Identities         []IdentityInfo `json:"identities"`
}

// Security reports a user's sign-in settings.
func (s *Service) Security(ctx context.Context, userID int64) (SecurityInfo, error) {
	var si SecurityInfo
	err := s.Pool.QueryRow(ctx, `SELECT password_hash IS NOT NULL, must_change_password, totp_enabled, cardinality(recovery_codes_hash)
		FROM users WHERE id = $1`, userID).Scan(&si.HasPassword, &si.MustChangePassword, &si.TOTPEnabled, &si.RecoveryCodesLeft)
	if err != nil {
		return si, err
	}
	rows, err := s.Pool.Query(ctx, "SELECT provider, email, created_at FROM oauth_identities WHERE user_id = $1 ORDER BY provider, id", userID)
	if err != nil {
		return si, err
	}
	si.Identities, err = pgx.CollectRows(rows, func(r pgx.CollectableRow) (IdentityInfo, error) {
		var ii IdentityInfo
		err := r.Scan(&ii.Provider, &ii.Email, &ii.CreatedAt)
		return ii, err
	})
	if si.Identities == nil {
		si.Identities = []IdentityInfo{}
	}
	return si, err
}
