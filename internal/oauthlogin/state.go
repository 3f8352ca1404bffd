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
	// Connect: the flow connects a git provider to TeamID for UserID
	// (repository scopes), not a sign-in.
	Connect        bool
	TeamID, UserID int64
}

func stateHash(state string) []byte {
	h := sha256.Sum256([]byte("wisehosting-oauth-state:" + state))
	return h[:]
}

// Begin records a new sign-in for provider and returns its state and
// verifier. Expired rows are swept on the way.
func Begin(ctx context.Context, pool *pgxpool.Pool, kr *secrets.Keyring, provider, redirectURI string) (Pending, error) {
	return begin(ctx, pool, kr, provider, Pending{RedirectURI: redirectURI})
}

// BeginConnect records a new flow connecting provider to a team.
func BeginConnect(ctx context.Context, pool *pgxpool.Pool, kr *secrets.Keyring, provider, redirectURI string, teamID, userID int64) (Pending, error) {
	return begin(ctx, pool, kr, provider, Pending{RedirectURI: redirectURI, Connect: true, TeamID: teamID, UserID: userID})
}

func begin(ctx context.Context, pool *pgxpool.Pool, kr *secrets.Keyring, provider string, p Pending) (Pending, error) {
	p.State, p.Verifier = auth.RandomToken(32), oauth2.GenerateVerifier()
	redirectURI := p.RedirectURI
	purpose := "signin"
	if p.Connect {
		purpose = "connect"
	}
	h := stateHash(p.State)
	enc, err := kr.EncryptString(secrets.PurposeOAuthTokens, p.Verifier, h)
	if err != nil {
		return Pending{}, err
	}
	if _, err := pool.Exec(ctx, "DELETE FROM oauth_states WHERE expires_at < now()"); err != nil {
		return Pending{}, err
	}
	_, err = pool.Exec(ctx, `INSERT INTO oauth_states (state_hash, provider, verifier_enc, redirect_uri, expires_at, purpose, team_id, user_id)
		VALUES ($1, $2, $3, $4, now() + $5::interval, $6, $7, $8)`, h, provider, enc, redirectURI, StateTTL.String(), purpose,
		nullID(p.TeamID), nullID(p.UserID))
	return p, err
}

func nullID(id int64) any {
	if id == 0 {
		return nil
	}
	return id
}

// Take consumes the sign-in of state: the DELETE … RETURNING makes it
// usable once, even with two callbacks racing. A connect flow's state is
// refused here.
func Take(ctx context.Context, pool *pgxpool.Pool, kr *secrets.Keyring, provider, state string) (Pending, error) {
	return take(ctx, pool, kr, provider, state, false)
}

// TakeConnect consumes the connect flow of state (a sign-in's is refused).
func TakeConnect(ctx context.Context, pool *pgxpool.Pool, kr *secrets.Keyring, provider, state string) (Pending, error) {
	return take(ctx, pool, kr, provider, state, true)
}

func take(ctx context.Context, pool *pgxpool.Pool, kr *secrets.Keyring, provider, state string, connect bool) (Pending, error) {
	if state == "" || len(state) > 200 {
		return Pending{}, ErrBadState
	}
	h := stateHash(state)
	var prov, enc, redirect, purpose string
	var live bool
	var team, user int64
	err := pool.QueryRow(ctx, `DELETE FROM oauth_states WHERE state_hash = $1
		RETURNING provider, verifier_enc, redirect_uri, expires_at > now(), purpose, COALESCE(team_id, 0), COALESCE(user_id, 0)`, h).
		Scan(&prov, &enc, &redirect, &live, &purpose, &team, &user)
	if errors.Is(err, pgx.ErrNoRows) {
		return Pending{}, ErrBadState
	}
	if err != nil {
		return Pending{}, err
	}
	if prov != provider || !live || (purpose == "connect") != connect {
		return Pending{}, ErrBadState
	}
	verifier, err := kr.DecryptString(secrets.PurposeOAuthTokens, enc, h)
	if err != nil {
		return Pending{}, err
	}
	return Pending{State: state, Verifier: verifier, RedirectURI: redirect, Connect: connect, TeamID: team, UserID: user}, nil
}
