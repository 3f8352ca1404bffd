package accounts

import (
	"context"
	"errors"
	"fmt"
	"net/mail"
	"strings"
	"unicode/utf8"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/wisehosting/wisehosting/internal/auth"
)

// normalizeEmail checks an address an operator typed and lowercases it.
func normalizeEmail(email string) (string, error) {
	e := strings.ToLower(strings.TrimSpace(email))
	a, err := mail.ParseAddress(e)
	if err != nil || a.Address != e || len(e) > 254 {
		return "", inputErr(fmt.Sprintf("%q is not an e-mail address", email))
	}
	return e, nil
}

// AddUser creates an account for email with a one-time password, returned
// once: the first sign-in must replace it. admin makes an instance
// administrator. Owners add the account to their teams from the
// dashboard's team page.
func (s *Service) AddUser(ctx context.Context, email string, admin bool) (int64, string, error) {
	e, err := normalizeEmail(email)
	if err != nil {
		return 0, "", err
	}
	pw := auth.RandomToken(15)
	hash, err := auth.HashPassword(ctx, pw)
	if err != nil {
		return 0, "", err
	}
	var id int64
	err = pgx.BeginFunc(ctx, s.Pool, func(tx pgx.Tx) error {
		var taken bool
		if err := tx.QueryRow(ctx, "SELECT EXISTS (SELECT 1 FROM users WHERE lower(email) = $1)", e).Scan(&taken); err != nil {
			return err
		}
		if taken {
			return inputErr(fmt.Sprintf("an account for %s already exists (wisehosting user reset-password %s gives it a new password)", e, e))
		}
		if err := tx.QueryRow(ctx, `INSERT INTO users (email, name, password_hash, is_admin, must_change_password)
			VALUES ($1, '', $2, $3, true) RETURNING id`, e, hash, admin).Scan(&id); err != nil {
			var pe *pgconn.PgError
			if errors.As(err, &pe) && pe.Code == "23505" {
				return inputErr(fmt.Sprintf("an account for %s already exists", e))
			}
			return err
		}
		return Audit(ctx, tx, 0, id, "user.add", e, "", map[string]any{"admin": admin, "by": "operator command"})
	})
	if err != nil {
		return 0, "", err
	}
	return id, pw, nil
}

// ResetPassword gives the account of email a new one-time password,
// returned once, which the next sign-in must replace; every session of
// the account ends. Two-factor authentication stays as it was.
func (s *Service) ResetPassword(ctx context.Context, email string) (string, error) {
	e, err := normalizeEmail(email)
	if err != nil {
		return "", err
	}
	pw := auth.RandomToken(15)
	hash, err := auth.HashPassword(ctx, pw)
	if err != nil {
		return "", err
	}
	err = pgx.BeginFunc(ctx, s.Pool, func(tx pgx.Tx) error {
		var id int64
		err := tx.QueryRow(ctx, `UPDATE users SET password_hash = $2, must_change_password = true, updated_at = now()
			WHERE lower(email) = $1 RETURNING id`, e, hash).Scan(&id)
		if errors.Is(err, pgx.ErrNoRows) {
			return inputErr(fmt.Sprintf("there is no account for %s", e))
		}
		if err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, "UPDATE sessions SET revoked_at = now() WHERE user_id = $1 AND revoked_at IS NULL", id); err != nil {
			return err
		}
		return Audit(ctx, tx, 0, id, "user.password_reset", e, "", map[string]any{"by": "operator command"})
	})
	if err != nil {
		return "", err
	}
	return pw, nil
}

// CreateInvited creates the account of an invited address with the
// password its owner chose, in tx (which also makes the membership).
func (s *Service) CreateInvited(ctx context.Context, tx pgx.Tx, email, name, password string) (int64, error) {
	e, err := normalizeEmail(email)
	if err != nil {
		return 0, err
	}
	if utf8.RuneCountInString(password) < MinPasswordLen {
		return 0, inputErr(fmt.Sprintf("the password must have at least %d characters", MinPasswordLen))
	}
	if len(password) > auth.MaxPasswordLen {
		return 0, inputErr(fmt.Sprintf("the password may have at most %d bytes", auth.MaxPasswordLen))
	}
	if len(name) > 100 {
		name = name[:100]
	}
	hash, err := auth.HashPassword(ctx, password)
	if err != nil {
		return 0, err
	}
	var id int64
	err = tx.QueryRow(ctx, `INSERT INTO users (email, name, password_hash)
		SELECT $1, $2, $3 WHERE NOT EXISTS (SELECT 1 FROM users WHERE lower(email) = $1) RETURNING id`, e, name, hash).Scan(&id)
	if errors.Is(err, pgx.ErrNoRows) {
		return 0, inputErr(fmt.Sprintf("an account for %s exists: sign in, then open the invitation link again", e))
	}
	return id, err
}
