package accounts

import (
	"context"
	"fmt"
	"unicode/utf8"

	"github.com/jackc/pgx/v5"

	"github.com/wisehosting/wisehosting/internal/auth"
	"github.com/wisehosting/wisehosting/internal/errs"
)

// MinPasswordLen is the shortest password a person may choose.
const MinPasswordLen = 12

// inputErr is a request the user can correct; its text says how.
func inputErr(msg string) error { return errs.New(errs.Invalid, msg) }

// ChangePassword replaces the principal's password. The current password
// is required (accounts that have none, made through OAuth, need a fresh
// session instead); the new one must be long enough and differ from it.
// It clears must_change_password and revokes every other session of the
// user, returning how many.
func (s *Service) ChangePassword(ctx context.Context, p *Principal, current, next, ip string) (int64, error) {
	if p.SessionID == 0 {
		return 0, ErrSessionRequired
	}
	if utf8.RuneCountInString(next) < MinPasswordLen {
		return 0, inputErr(fmt.Sprintf("the new password must have at least %d characters", MinPasswordLen))
	}
	if len(next) > auth.MaxPasswordLen {
		return 0, inputErr(fmt.Sprintf("the new password may have at most %d bytes", auth.MaxPasswordLen))
	}
	var revoked int64
	err := pgx.BeginFunc(ctx, s.Pool, func(tx pgx.Tx) error {
		has, err := s.verifyPassword(ctx, tx, p.UserID, current)
		if err != nil {
			return err
		}
		if !has && !s.Fresh(p) {
			return ErrNotFresh
		}
		if has && current == next {
			return inputErr("the new password must differ from the current one")
		}
		hash, err := auth.HashPassword(ctx, next)
		if err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, "UPDATE users SET password_hash = $2, must_change_password = false, updated_at = now() WHERE id = $1",
			p.UserID, hash); err != nil {
			return err
		}
		tag, err := tx.Exec(ctx, "UPDATE sessions SET revoked_at = now() WHERE user_id = $1 AND id <> $2 AND revoked_at IS NULL",
			p.UserID, p.SessionID)
		if err != nil {
			return err
		}
		revoked = tag.RowsAffected()
		return Audit(ctx, tx, 0, p.UserID, "user.password_change", p.Email, ip, map[string]any{"revoked_sessions": revoked})
	})
	return revoked, err
}
