package oauthlogin

import (
	"context"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/wisehosting/wisehosting/internal/secrets"
)

// States keeps the one-time states of OAuth flows in progress (sign-ins
// and git connections) in Postgres, sealed with Keyring.
type States struct {
	Pool    *pgxpool.Pool
	Keyring *secrets.Keyring
}

// Begin records a new sign-in (see the function Begin).
func (s *States) Begin(ctx context.Context, provider, redirectURI string) (Pending, error) {
	return Begin(ctx, s.Pool, s.Keyring, provider, redirectURI)
}

// BeginConnect records a new flow connecting provider to a team.
func (s *States) BeginConnect(ctx context.Context, provider, redirectURI string, teamID, userID int64) (Pending, error) {
	return BeginConnect(ctx, s.Pool, s.Keyring, provider, redirectURI, teamID, userID)
}

// Take spends the state of a sign-in (see the function Take).
func (s *States) Take(ctx context.Context, provider, state string) (Pending, error) {
	return Take(ctx, s.Pool, s.Keyring, provider, state)
}

// TakeConnect spends the state of a git connection flow.
func (s *States) TakeConnect(ctx context.Context, provider, state string) (Pending, error) {
	return TakeConnect(ctx, s.Pool, s.Keyring, provider, state)
}
