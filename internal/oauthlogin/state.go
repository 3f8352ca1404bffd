package oauthlogin

import (
	"context"
	"crypto/sha256"
	"errors"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"golang.org/x/oauth2"

	"github.com/wisehosting/wisehosting/internal/auth"
	"github.com/wisehosting/wisehosting/internal/secrets"
)

// StateTTL is how long a sign-in may take at the provider.
const StateTTL = 10 * time.Minute

// ErrBadState means the callback's state is unknown, used, expired or
// another provider's.
var ErrBadState = errors.New("this sign-in link is not valid any more: start again")

// Pending is a sign-in in progress.
type Pending struct {
	State       string // goes to the provider and into the browser's cookie
	Verifier    string // PKCE verifier, never leaves the control plane
	RedirectURI string
}

func stateHash(state string) []byte {
	h := sha256.Sum256([]byte("wisehosting-oauth-state:" + state))
	return h[:]
}

// Begin records a new sign-in for provider and returns its state and
// verifier. Expired rows are swept on the way.
func Begin(ctx context.Context, pool *pgxpool.Pool, kr *secrets.Keyring, provider, redirectURI string) (Pending, error) {
	p := Pending{State: auth.RandomToken(32), Verifier: oauth2.GenerateVerifier(), RedirectURI: redirectURI}
	h := stateHash(p.State)
	enc, err := kr.EncryptString(secrets.PurposeOAuthTokens, p.Verifier, h)
	if err != nil {
		return Pending{}, err
	}
	if _, err := pool.Exec(ctx, "DELETE FROM oauth_states WHERE expires_at < now()"); err != nil {
		return Pending{}, err
	}
	_, err = pool.Exec(ctx, `INSERT INTO oauth_states (state_hash, provider, verifier_enc, redirect_uri, expires_at)
		VALUES ($1, $2, $3, $4, now() + $5::interval)`, h, provider, enc, redirectURI, StateTTL.String())
	return p, err
}

// Take consumes the sign-in of state: the DELETE … RETURNING makes it
// usable once, even with two callbacks racing.
func Take(ctx context.Context, pool *pgxpool.Pool, kr *secrets.Keyring, provider, state string) (Pending, error) {
	if state == "" || len(state) > 200 {
		return Pending{}, ErrBadState
	}
	h := stateHash(state)
	var prov, enc, redirect string
	var live bool
	err := pool.QueryRow(ctx, "DELETE FROM oauth_states WHERE state_hash = $1 RETURNING provider, verifier_enc, redirect_uri, expires_at > now()", h).
		Scan(&prov, &enc, &redirect, &live)
	if errors.Is(err, pgx.ErrNoRows) {
		return Pending{}, ErrBadState
	}
	if err != nil {
		return Pending{}, err
	}
	if prov != provider || !live {
		return Pending{}, ErrBadState
	}
	verifier, err := kr.DecryptString(secrets.PurposeOAuthTokens, enc, h)
	if err != nil {
		return Pending{}, err
	}
	return Pending{State: state, Verifier: verifier, RedirectURI: redirect}, nil
}
