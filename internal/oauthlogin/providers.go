// Package oauthlogin signs people in with an OAuth 2.0 provider (Google,
// GitHub, GitLab, Bitbucket, Codeberg/Gitea): the providers' endpoints and
// userinfo wire formats, the authorization-code exchange with PKCE (S256),
// and the one-time state of a sign-in in progress (state.go). Deciding
// which account an identity belongs to is internal/accounts' job.
package oauthlogin

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"sort"
	"strings"
	"time"

	"golang.org/x/oauth2"
)

// Settings configure one provider (the dashboard's `oauth <provider>`
// block). Endpoints default to the provider's public service; BaseURL
// points them at a self-hosted GitLab, Gitea or GitHub Enterprise, and
// the three URLs override single endpoints.
type Settings struct {
	// ClientID of the OAuth application registered at the provider.
	ClientID string `json:"client_id"`
	// ClientSecret of the OAuth application. Caddy placeholders such as
	// {env.GITHUB_CLIENT_SECRET} are replaced at start.
	ClientSecret string `json:"client_secret"`
	// BaseURL of a self-hosted instance, e.g. https://gitlab.example.com
	// (GitHub Enterprise: the web address; its API is BaseURL/api/v3).
	BaseURL string `json:"base_url,omitempty"`
	// AuthURL overrides the authorization endpoint.
	AuthURL string `json:"auth_url,omitempty"`
	// TokenURL overrides the token endpoint.
	TokenURL string `json:"token_url,omitempty"`
	// UserinfoURL overrides the user endpoint (GitHub, Bitbucket and
	// Gitea also read UserinfoURL + "/emails").
	UserinfoURL string `json:"userinfo_url,omitempty"`
	// Scopes replace the default scopes.
	Scopes []string `json:"scopes,omitempty"`
	// Name is the label of the sign-in button (default: the provider's
	// name).
	Name string `json:"name,omitempty"`
}

// kind is what differs between providers.
type kind struct {
	name      string
	base      string // default BaseURL
	auth      string // paths under BaseURL
	token     string
	tokenURL  string // absolute token URL of the public service, when not under base
	userinfo  func(base string, custom bool) string
	scopes    []string
	authStyle oauth2.AuthStyle
	emails    bool // read UserinfoURL + "/emails" for verified addresses
}

var kinds = map[string]kind{
	"google": {name: "Google", base: "https://accounts.google.com", auth: "/o/oauth2/v2/auth", token: "/token",
		tokenURL: "https://oauth2.googleapis.com/token",
		userinfo: func(b string, custom bool) string {
			if !custom {
				return "https://openidconnect.googleapis.com/v1/userinfo"
			}
			return b + "/v1/userinfo"
		}, scopes: []string{"openid", "email", "profile"}, authStyle: oauth2.AuthStyleInParams},
	"github": {name: "GitHub", base: "https://github.com", auth: "/login/oauth/authorize", token: "/login/oauth/access_token",
		userinfo: func(b string, custom bool) string {
			if !custom {
				return "https://api.github.com/user"
			}
			return b + "/api/v3/user"
		}, scopes: []string{"read:user", "user:email"}, authStyle: oauth2.AuthStyleInParams, emails: true},
	"gitlab": {name: "GitLab", base: "https://gitlab.com", auth: "/oauth/authorize", token: "/oauth/token",
		userinfo: func(b string, _ bool) string { return b + "/api/v4/user" },
		scopes:   []string{"read_user"}, authStyle: oauth2.AuthStyleInParams},
	"bitbucket": {name: "Bitbucket", base: "https://bitbucket.org", auth: "/site/oauth2/authorize", token: "/site/oauth2/access_token",
		userinfo: func(b string, custom bool) string {
			if !custom {
				return "https://api.bitbucket.org/2.0/user"
			}
			return b + "/2.0/user"
		}, scopes: []string{"account", "email"}, authStyle: oauth2.AuthStyleInHeader, emails: true},
	"codeberg": {name: "Codeberg", base: "https://codeberg.org", auth: "/login/oauth/authorize", token: "/login/oauth/access_token",
		userinfo: func(b string, _ bool) string { return b + "/api/v1/user" },
		scopes:   []string{"read:user"}, authStyle: oauth2.AuthStyleInParams, emails: true},
}

// Known reports whether id names a supported provider.
func Known(id string) bool { _, ok := kinds[id]; return ok }

// IDs lists the supported providers.
func IDs() []string {
	out := make([]string, 0, len(kinds))
	for id := range kinds {
		out = append(out, id)
	}
	sort.Strings(out)
	return out
}

// Provider is a configured provider, ready for sign-ins.
type Provider struct {
	ID          string
	Name        string
	config      oauth2.Config // RedirectURL is set per sign-in
	userinfoURL string
	emails      bool
	client      *http.Client
}

// checkURL accepts https URLs, and http only to loopback (tests and
// development setups).
func checkURL(field, raw string) error {
	u, err := url.Parse(raw)
	if err != nil || u.Host == "" {
		return fmt.Errorf("%s %q is not an absolute URL", field, raw)
	}
	switch u.Scheme {
	case "https":
		return nil
	case "http":
		host := u.Hostname()
		if ip := net.ParseIP(host); host == "localhost" || (ip != nil && ip.IsLoopback()) {
			return nil
		}
	}
	return fmt.Errorf("%s %q must be an https URL", field, raw)
}

// Validate checks one provider's settings.
func (s Settings) Validate(id string) error {
	if !Known(id) {
		return fmt.Errorf("unknown OAuth provider %q (known: %s)", id, strings.Join(IDs(), ", "))
	}
	if s.ClientID == "" || s.ClientSecret == "" {
		return fmt.Errorf("OAuth provider %s: client_id and client_secret (or the systemd credential %s_oauth_client_secret) are required", id, id)
	}
	for _, f := range []struct{ name, v string }{{"base_url", s.BaseURL}, {"auth_url", s.AuthURL}, {"token_url", s.TokenURL}, {"userinfo_url", s.UserinfoURL}} {
		if f.v != "" {
			if err := checkURL(f.name, f.v); err != nil {
				return fmt.Errorf("OAuth provider %s: %w", id, err)
			}
		}
	}
	return nil
}

// New makes a provider from settings (validated with Validate); client
// makes the token and userinfo calls and must have timeouts.
func New(id string, s Settings, client *http.Client) (*Provider, error) {
	if err := s.Validate(id); err != nil {
		return nil, err
	}
	k := kinds[id]
	base, custom := strings.TrimRight(s.BaseURL, "/"), s.BaseURL != ""
	if !custom {
		base = k.base
	}
	p := &Provider{ID: id, Name: k.name, userinfoURL: k.userinfo(base, custom), emails: k.emails, client: client,
		config: oauth2.Config{ClientID: s.ClientID, ClientSecret: s.ClientSecret, Scopes: k.scopes,
			Endpoint: oauth2.Endpoint{AuthURL: base + k.auth, TokenURL: base + k.token, AuthStyle: k.authStyle}}}
	if !custom && k.tokenURL != "" {
		p.config.Endpoint.TokenURL = k.tokenURL
	}
	if s.Name != "" {
		p.Name = s.Name
	}
	if s.AuthURL != "" {
		p.config.Endpoint.AuthURL = s.AuthURL
	}
	if s.TokenURL != "" {
		p.config.Endpoint.TokenURL = s.TokenURL
	}
	if s.UserinfoURL != "" {
		p.userinfoURL = strings.TrimRight(s.UserinfoURL, "/")
	}
	if len(s.Scopes) > 0 {
		p.config.Scopes = s.Scopes
	}
	return p, nil
}

// repoScopes are what connecting a provider for deployments asks for:
// reading private repositories, managing their webhooks and posting
// commit statuses.
var repoScopes = map[string][]string{
	"github":    {"repo", "admin:repo_hook", "read:user"},
	"gitlab":    {"api"},
	"bitbucket": {"account", "repository", "webhook", "pullrequest"},
	"codeberg":  {"read:user", "write:repository"},
}

// ConnectURL is where the browser goes to grant repository access (the
// provider's repository scopes instead of the sign-in ones).
func (p *Provider) ConnectURL(state, verifier, redirectURI string) string {
	c := p.config
	c.RedirectURL = redirectURI
	c.Scopes = repoScopes[p.ID]
	return c.AuthCodeURL(state, oauth2.S256ChallengeOption(verifier))
}

// Config is a copy of the provider's OAuth configuration (refreshing and
// revoking a connection's grant).
func (p *Provider) Config() *oauth2.Config {
	c := p.config
	return &c
}

// AuthCodeURL is where the browser goes to sign in: it carries state and
// the S256 challenge of verifier.
func (p *Provider) AuthCodeURL(state, verifier, redirectURI string) string {
	c := p.config
	c.RedirectURL = redirectURI
	return c.AuthCodeURL(state, oauth2.S256ChallengeOption(verifier))
}

// Exchange trades an authorization code (and the PKCE verifier) for an
// access token.
func (p *Provider) Exchange(ctx context.Context, code, verifier, redirectURI string) (*oauth2.Token, error) {
	ctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	c := p.config
	c.RedirectURL = redirectURI
	tok, err := c.Exchange(context.WithValue(ctx, oauth2.HTTPClient, p.client), code, oauth2.VerifierOption(verifier))
	if err != nil {
		return nil, fmt.Errorf("exchanging the code with %s: %w", p.ID, err)
	}
	return tok, nil
}

// maxUserinfo bounds a userinfo answer.
const maxUserinfo = 1 << 20

func (p *Provider) get(ctx context.Context, url string, tok *oauth2.Token) ([]byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Authorization", "Bearer "+tok.AccessToken)
	req.Header.Set("Accept", "application/json")
	req.Header.Set("User-Agent", "WiseHosting")
	resp, err := p.client.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxUserinfo+1))
	if err != nil {
		return nil, err
	}
	if len(body) > maxUserinfo {
		return nil, errors.New("answer too large")
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("%s answered %s", url, resp.Status)
	}
	return body, nil
}

// Identity asks the provider who the token belongs to.
func (p *Provider) Identity(ctx context.Context, tok *oauth2.Token) (Identity, error) {
	ctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	user, err := p.get(ctx, p.userinfoURL, tok)
	if err != nil {
		return Identity{}, fmt.Errorf("reading the %s user: %w", p.ID, err)
	}
	var emails []byte
	if p.emails {
		// Without the e-mail list no address counts as verified: the
		// sign-in still works for an identity that is already linked.
		emails, _ = p.get(ctx, p.userinfoURL+"/emails", tok)
	}
	id, err := ParseIdentity(p.ID, user, emails)
	if err != nil {
		return Identity{}, fmt.Errorf("reading the %s user: %w", p.ID, err)
	}
	return id, nil
}
