package core

import (
	"context"
	"fmt"
	"os"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"go.uber.org/zap"

	"github.com/wisehosting/wisehosting/internal/auth"
	"github.com/wisehosting/wisehosting/internal/teams"
)

// BootstrapAdmin creates the first admin account, its team and owner
// membership (the team on plan) when the database has no users, and returns the one-time
// password (empty when an account already exists). The account has
// must_change_password set: the dashboard lets its sessions do nothing but
// choose a new password until then. Replicas starting together serialise
// on a transaction-scoped advisory lock.
func BootstrapAdmin(ctx context.Context, pool *pgxpool.Pool, email, plan string) (string, error) {
	var password string
	err := pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, "SELECT pg_advisory_xact_lock(hashtext('wisehosting.bootstrap_admin'))"); err != nil {
			return err
		}
		var n int
		if err := tx.QueryRow(ctx, "SELECT count(*) FROM users").Scan(&n); err != nil {
			return err
		}
		if n > 0 {
			return nil
		}
		pw := auth.RandomToken(15)
		hash, err := auth.HashPassword(ctx, pw)
		if err != nil {
			return err
		}
		var uid int64
		if err := tx.QueryRow(ctx, `INSERT INTO users (email, name, password_hash, is_admin, must_change_password)
			VALUES ($1, 'Administrator', $2, true, true) RETURNING id`, email, hash).Scan(&uid); err != nil {
			return err
		}
		t, err := teams.Create(ctx, tx, "Default", "default", plan, uid)
		if err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, `INSERT INTO audit_events (team_id, user_id, action, target) VALUES ($1, $2, 'user.bootstrap_admin', $3)`, t.ID, uid, email); err != nil {
			return err
		}
		password = pw
		return nil
	})
	if err != nil {
		return "", fmt.Errorf("creating first admin account: %w", err)
	}
	return password, nil
}

func (a *App) bootstrapAdmin(ctx context.Context) error {
	if a.AdminEmail == "off" {
		return nil
	}
	pw, err := BootstrapAdmin(ctx, a.pool, a.AdminEmail, a.plans.Default())
	if err != nil {
		return err
	}
	if pw == "" {
		return nil
	}
	a.logger.Warn("first admin account created; this one-time password is shown once, the first sign-in asks for a new one",
		zap.String("email", a.AdminEmail), zap.String("password", pw))
	// Also to stderr without JSON quoting, so `make run` shows it plainly.
	fmt.Fprintf(os.Stderr, "\n  First admin account: %s\n  One-time password:   %s (the first sign-in asks for a new one)\n\n", a.AdminEmail, pw)
	return nil
}
