// Package gitconn is a team's connections to git providers (an OAuth grant
// with repository scopes, or a pasted personal access token) and what the
// platform does with them: list repositories and branches, detect a
// repository's framework through the provider's API, install and remove an
// app's push webhook, and report deployments as commit statuses.
//
// Tokens are sealed with the git-tokens key bound to the connection's row
// and are never shown again; they are decrypted only to call the provider
// or to hand a clone token to the worker that builds (internal/deploys).
package gitconn

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"golang.org/x/oauth2"

	"github.com/wisehosting/wisehosting/internal/accounts"
	"github.com/wisehosting/wisehosting/internal/deploys"
	"github.com/wisehosting/wisehosting/internal/errs"
	"github.com/wisehosting/wisehosting/internal/gitproviders"
	"github.com/wisehosting/wisehosting/internal/httpx"
	"github.com/wisehosting/wisehosting/internal/secrets"
)

// Connection is a team's link to a provider account (never its token).
type Connection struct {
	ID        int64     `json:"id"`
	TeamID    int64     `json:"team_id"`
	Provider  string    `json:"provider"`
	APIURL    string    `json:"api_url,omitempty"`
	Method    string    `json:"method"` // oauth or token
	Account   string    `json:"account"`
	CreatedAt time.Time `json:"created_at"`
}

// ErrNotFound: no such connection in the caller's team.
var ErrNotFound = errs.New(errs.NotFound, "git connection not found")

// OAuthApp is the operator's OAuth application at a provider (the sign-in
// configuration), used to refresh and revoke connection grants.
type OAuthApp struct {
	Config *oauth2.Config
	// WebURL is the provider's web address (GitLab revocation endpoint).
	WebURL string
	// APIURL is the provider's API root ("" for the public one).
	APIURL string
}

// Service owns git_connections.
type Service struct {
	Pool    *pgxpool.Pool
	Keyring *secrets.Keyring
	// APIURL maps a provider to the API root the operator configured
	// (a self-hosted instance, GitHub Enterprise); absent: the public API.
	APIURL map[string]string
	// OAuth maps a provider to the operator's OAuth application (refresh
	// and revocation); absent: connections by token only.
	OAuth map[string]OAuthApp
	// HTTP calls operator-configured and public APIs; Guarded calls an
	// API root a user typed (self-hosted). Tests set both.
	HTTP    *http.Client
	Guarded *http.Client
	// StatusURL is the address a commit status of an app's deployment
	// links to ("": none).
	StatusURL func(slug string) string
}

func (s *Service) httpClient(userURL bool) *http.Client {
	if userURL {
		if s.Guarded != nil {
			return s.Guarded
		}
		return httpx.NewWebhookClient(httpx.GuardOptions{Timeout: 20 * time.Second})
	}
	if s.HTTP != nil {
		return s.HTTP
	}
	return httpx.NewSecureClient()
}

// apiRoot is where a connection's API calls go, and whether a user chose it.
func (s *Service) apiRoot(c Connection) (string, bool) {
	if c.APIURL != "" {
		return c.APIURL, true
	}
	if u := s.APIURL[c.Provider]; u != "" {
		return u, false
	}
	return gitproviders.DefaultBaseURL[c.Provider], false
}

// client makes a provider client for token. Interactive calls are not
// retried: a rate-limited provider is reported at once with its wait.
func (s *Service) client(c Connection, token string) (gitproviders.Client, error) {
	root, user := s.apiRoot(c)
	return gitproviders.NewClient(c.Provider, root, token, httpx.WithHTTPClient(s.httpClient(user)),
		httpx.WithRetry(httpx.RetryConfig{MaxAttempts: 1}), httpx.WithMaxResponse(8<<20))
}

// checkAPIURL accepts an https API root of a self-hosted instance.
func checkAPIURL(raw string) (string, error) {
	raw = strings.TrimRight(strings.TrimSpace(raw), "/")
	if raw == "" {
		return "", nil
	}
	u, err := url.Parse(raw)
	if err != nil || u.Scheme != "https" || u.Host == "" || u.User != nil || u.RawQuery != "" || u.Fragment != "" {
		return "", errs.Field("api_url", "api_url must be the https:// API root of your instance, e.g. https://gitlab.example.com/api/v4")
	}
	return raw, nil
}

const cols = `id, team_id, provider, api_url, method, account, created_at`

func scan(row pgx.Row) (Connection, error) {
	var c Connection
	err := row.Scan(&c.ID, &c.TeamID, &c.Provider, &c.APIURL, &c.Method, &c.Account, &c.CreatedAt)
	if errors.Is(err, pgx.ErrNoRows) {
		return c, ErrNotFound
	}
	return c, err
}

// List returns a team's connections.
func (s *Service) List(ctx context.Context, teamID int64) ([]Connection, error) {
	rows, err := s.Pool.Query(ctx, "SELECT "+cols+" FROM git_connections WHERE team_id = $1 ORDER BY id", teamID)
	if err != nil {
		return nil, err
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (Connection, error) { return scan(r) })
	if out == nil {
		out = []Connection{}
	}
	return out, err
}

// Get returns one of a team's connections.
func (s *Service) Get(ctx context.Context, teamID, id int64) (Connection, error) {
	return scan(s.Pool.QueryRow(ctx, "SELECT "+cols+" FROM git_connections WHERE id = $1 AND team_id = $2", id, teamID))
}

// Tokens is what a provider granted.
type Tokens struct {
	Access  string
	Refresh string
	Expiry  time.Time
}

// Connect is Create in a transaction of its own, with the audit record
// of the new connection.
func (s *Service) Connect(ctx context.Context, teamID, userID int64, provider, apiURL, method string, t Tokens, audit accounts.Hook[Connection]) (Connection, error) {
	return accounts.Change(ctx, s.Pool, audit, func(tx pgx.Tx) (Connection, error) {
		return s.Create(ctx, tx, teamID, userID, provider, apiURL, method, t)
	})
}

// Create checks the token with the provider (it must name an account) and
// stores the connection. method is "token" (pasted) or "oauth".
func (s *Service) Create(ctx context.Context, q pgx.Tx, teamID, userID int64, provider, apiURL, method string, t Tokens) (Connection, error) {
	if !gitproviders.Known(provider) {
		return Connection{}, errs.Field("provider", "provider must be one of "+strings.Join(gitproviders.Providers, ", "))
	}
	t.Access = strings.TrimSpace(t.Access)
	if t.Access == "" || len(t.Access) > 4096 || strings.ContainsAny(t.Access, " \t\r\n\x00") {
		return Connection{}, errs.Field("token", "paste the personal access token (one line, no spaces)")
	}
	root, err := checkAPIURL(apiURL)
	if err != nil {
		return Connection{}, err
	}
	c := Connection{TeamID: teamID, Provider: provider, APIURL: root, Method: method}
	cl, err := s.client(c, t.Access)
	if err != nil {
		return c, err
	}
	if c.Account, err = cl.User(ctx); err != nil {
		return c, fieldErr("token", gitproviders.Explain(provider, "checking the token", err))
	}
	var expires any
	if !t.Expiry.IsZero() {
		expires = t.Expiry
	}
	if c, err = scan(q.QueryRow(ctx, `INSERT INTO git_connections (team_id, provider, api_url, method, account, token_enc, expires_at, created_by)
		VALUES ($1, $2, $3, $4, $5, '', $6, $7) RETURNING `+cols, teamID, provider, root, method, c.Account, expires, nullable(userID))); err != nil {
		return c, err
	}
	return c, s.storeTokens(ctx, q, c.ID, t)
}

func nullable(id int64) any {
	if id == 0 {
		return nil
	}
	return id
}

// fieldErr attaches a provider's refusal to the form field that caused it.
func fieldErr(field string, err error) error {
	var pe *gitproviders.Error
	if errors.As(err, &pe) && pe.Status == http.StatusUnprocessableEntity {
		return errs.Field(field, pe.Msg)
	}
	return err
}

type execer interface {
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
}

func (s *Service) storeTokens(ctx context.Context, q execer, id int64, t Tokens) error {
	ad := deploys.ConnectionAD(id)
	access, err := s.Keyring.EncryptString(secrets.PurposeGitTokens, t.Access, ad)
	if err != nil {
		return err
	}
	var refresh, expires any
	if t.Refresh != "" {
		if refresh, err = s.Keyring.EncryptString(secrets.PurposeGitTokens, t.Refresh, ad); err != nil {
			return err
		}
	}
	if !t.Expiry.IsZero() {
		expires = t.Expiry
	}
	var got int64
	return q.QueryRow(ctx, `UPDATE git_connections SET token_enc = $2, refresh_token_enc = COALESCE($3, refresh_token_enc), expires_at = $4
		WHERE id = $1 RETURNING id`, id, access, refresh, expires).Scan(&got)
}

// token returns a connection's access token, refreshed first when it
// expires within a minute and the provider gave a refresh token.
func (s *Service) token(ctx context.Context, c Connection) (string, error) {
	var accessEnc string
	var refreshEnc *string
	var expires *time.Time
	if err := s.Pool.QueryRow(ctx, "SELECT token_enc, refresh_token_enc, expires_at FROM git_connections WHERE id = $1",
		c.ID).Scan(&accessEnc, &refreshEnc, &expires); err != nil {
		if errors.Is(err, pgx.ErrNoRows) {
			return "", ErrNotFound
		}
		return "", err
	}
	ad := deploys.ConnectionAD(c.ID)
	access, err := s.Keyring.DecryptString(secrets.PurposeGitTokens, accessEnc, ad)
	if err != nil {
		return "", fmt.Errorf("decrypting the token of git connection %d: %w", c.ID, err)
	}
	app, ok := s.OAuth[c.Provider]
	if expires == nil || time.Until(*expires) > time.Minute || refreshEnc == nil || !ok || c.Method != "oauth" {
		return access, nil
	}
	refresh, err := s.Keyring.DecryptString(secrets.PurposeGitTokens, *refreshEnc, ad)
	if err != nil {
		return "", err
	}
	rctx := context.WithValue(ctx, oauth2.HTTPClient, s.httpClient(false))
	tok, err := app.Config.TokenSource(rctx, &oauth2.Token{RefreshToken: refresh, Expiry: time.Unix(1, 0)}).Token()
	if err != nil {
		return "", &gitproviders.Error{Status: http.StatusUnprocessableEntity,
			Msg: fmt.Sprintf("%s refused to renew this connection's access: connect it again", gitproviders.DisplayName(c.Provider))}
	}
	if err := s.storeTokens(ctx, s.Pool, c.ID, Tokens{Access: tok.AccessToken, Refresh: tok.RefreshToken, Expiry: tok.Expiry}); err != nil {
		return "", err
	}
	return tok.AccessToken, nil
}

// Client is an API client of the connection, authenticated with its
// (refreshed) token.
func (s *Service) Client(ctx context.Context, c Connection) (gitproviders.Client, error) {
	tok, err := s.token(ctx, c)
	if err != nil {
		return nil, err
	}
	return s.client(c, tok)
}

// Delete removes a connection: the hooks it installed are removed at the
// provider (best effort: a provider that refuses does not keep the
// connection alive), an OAuth grant is revoked where the provider has an
// endpoint for it, and the row goes (apps keep their repository but lose
// the connection's token). It returns what could not be cleaned up.
func (s *Service) Delete(ctx context.Context, teamID, id int64) ([]string, error) {
	c, err := s.Get(ctx, teamID, id)
	if err != nil {
		return nil, err
	}
	var warnings []string
	if cl, err := s.Client(ctx, c); err == nil {
		rows, err := s.Pool.Query(ctx, "SELECT id, slug, git_repo_name, hook_id FROM apps WHERE git_connection_id = $1 AND hook_id <> ''", c.ID)
		if err != nil {
			return nil, err
		}
		type hooked struct {
			id               int64
			slug, repo, hook string
		}
		apps, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (hooked, error) {
			var h hooked
			return h, r.Scan(&h.id, &h.slug, &h.repo, &h.hook)
		})
		if err != nil {
			return nil, err
		}
		for _, a := range apps {
			if err := cl.DeleteHook(ctx, a.repo, gitproviders.Hook{ID: a.hook}); err != nil && httpx.StatusOf(err) != http.StatusNotFound {
				warnings = append(warnings, fmt.Sprintf("the webhook of %s on %s could not be removed: %v", a.slug, a.repo, gitproviders.Explain(c.Provider, "removing the webhook", err)))
			}
		}
		if c.Method == "oauth" {
			if err := s.revoke(ctx, c); err != nil {
				warnings = append(warnings, err.Error())
			}
		}
	} else {
		warnings = append(warnings, "the provider was not contacted: "+err.Error())
	}
	if _, err := s.Pool.Exec(ctx, "UPDATE apps SET hook_id = '' WHERE git_connection_id = $1", c.ID); err != nil {
		return warnings, err
	}
	tag, err := s.Pool.Exec(ctx, "DELETE FROM git_connections WHERE id = $1 AND team_id = $2", c.ID, teamID)
	if err == nil && tag.RowsAffected() == 0 {
		err = ErrNotFound
	}
	return warnings, err
}

// revoke ends an OAuth grant at the provider (GitHub and GitLab have an
// endpoint; Bitbucket and Gitea do not, there the user revokes it in
// their account settings).
func (s *Service) revoke(ctx context.Context, c Connection) error {
	app, ok := s.OAuth[c.Provider]
	if !ok {
		return nil
	}
	tok, err := s.token(ctx, c)
	if err != nil {
		return err
	}
	switch c.Provider {
	case gitproviders.GitHub:
		err = gitproviders.RevokeGitHubGrant(ctx, app.APIURL, app.Config.ClientID, app.Config.ClientSecret, tok,
			httpx.WithHTTPClient(s.httpClient(false)), httpx.WithRetry(httpx.RetryConfig{MaxAttempts: 1}))
	case gitproviders.GitLab:
		err = gitproviders.RevokeGitLabToken(ctx, app.WebURL, app.Config.ClientID, app.Config.ClientSecret, tok,
			httpx.WithHTTPClient(s.httpClient(false)), httpx.WithRetry(httpx.RetryConfig{MaxAttempts: 1}))
	default:
		return fmt.Errorf("%s has no revocation endpoint: revoke the grant in your account settings there", gitproviders.DisplayName(c.Provider))
	}
	if err != nil && httpx.StatusOf(err) != http.StatusNotFound {
		return fmt.Errorf("the grant could not be revoked at %s: %w", gitproviders.DisplayName(c.Provider), gitproviders.Explain(c.Provider, "revoking the grant", err))
	}
	return nil
}
