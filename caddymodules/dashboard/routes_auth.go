package dashboard

import (
	"context"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"html"
	"net/http"
	"sort"
	"strings"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	qrcode "github.com/skip2/go-qrcode"
	"go.uber.org/zap"

	"github.com/wisehosting/wisehosting/caddymodules/api"
	"github.com/wisehosting/wisehosting/internal/accounts"
	"github.com/wisehosting/wisehosting/internal/auth"
	"github.com/wisehosting/wisehosting/internal/credentials"
	"github.com/wisehosting/wisehosting/internal/httpx"
	"github.com/wisehosting/wisehosting/internal/oauthlogin"
	"github.com/wisehosting/wisehosting/internal/ratelimit"
)

// AuthConfig is the sign-in configuration of the dashboard beyond
// passwords.
type AuthConfig struct {
	// OAuth maps a provider (google, github, gitlab, bitbucket,
	// codeberg) to its OAuth application. The provider's callback URL is
	// <public_url>/oauth/<provider>/callback, with the wisehosting app's
	// public_url (default: the scheme and host of the request that starts
	// the sign-in).
	OAuth map[string]oauthlogin.Settings `json:"oauth,omitempty"`
	// AllowSignup lets a person whose provider-verified e-mail matches no
	// account create one by signing in with a provider. Default off: only
	// existing accounts (matched by verified e-mail, then by the linked
	// identity) can sign in with OAuth.
	AllowSignup bool `json:"allow_signup,omitempty"`

	providers map[string]*oauthlogin.Provider
	states    *oauthlogin.States
	oauthRate *ratelimit.Limiter
}

// stateCookie binds an OAuth sign-in to the browser that started it.
const stateCookie = "wh_oauth_state"

// What a session may do before it is complete (see gate).
var (
	pendingMFARoutes = map[string]bool{"POST /api/login/totp": true, "POST /api/logout": true}
	mustChangeRoutes = map[string]bool{"GET /api/me": true, "POST /api/logout": true, "POST /api/password": true}
)

// oauthCredentials takes each OAuth client secret from its systemd
// credential (<provider>_oauth_client_secret) when there is one: it wins
// over the config, like every other secret.
func (h *Handler) oauthCredentials() error {
	for id, s := range h.OAuth {
		if err := credentials.Apply(credentials.OAuthClientSecret(id), &s.ClientSecret); err != nil {
			return err
		}
		h.OAuth[id] = s
	}
	return nil
}

// provisionAuth builds the sign-in providers.
func (h *Handler) provisionAuth() {
	h.acc.Keyring = h.wh.Keyring()
	h.states = &oauthlogin.States{Pool: h.wh.Pool(), Keyring: h.wh.Keyring()}
	h.oauthRate = ratelimit.New(60, 5*time.Minute)
	h.providers = map[string]*oauthlogin.Provider{}
	repl := caddy.NewReplacer()
	client := httpx.NewSecureClient()
	for id, s := range h.OAuth {
		s.ClientID = repl.ReplaceKnown(s.ClientID, "")
		s.ClientSecret = repl.ReplaceKnown(s.ClientSecret, "")
		if p, err := oauthlogin.New(id, s, client); err == nil {
			h.providers[id] = p
		} // else Validate reports it
	}
}

// authRoutes adds the sign-in routes beyond password login: OAuth
// providers, TOTP and recovery codes, password change.
func (h *Handler) authRoutes(handle func(string, http.HandlerFunc)) {
	handle("GET /api/auth/providers", h.oauthProviders)
	handle("GET /oauth/{provider}/start", h.oauthStart)
	handle("GET /oauth/{provider}/callback", h.oauthCallback)
	handle("POST /api/login/totp", h.authed(h.loginTOTP))
	handle("POST /api/password", h.authed(h.changePassword))
	handle("GET /api/account/security", h.authed(h.security))
	handle("POST /api/account/totp", h.authed(h.totpBegin))
	handle("POST /api/account/totp/confirm", h.authed(h.totpConfirm))
	handle("POST /api/account/totp/disable", h.authed(h.totpDisable))
	handle("POST /api/account/recovery-codes", h.authed(h.recoveryCodes))
}

// Validate checks the OAuth configuration.
func (h *Handler) Validate() error {
	for id, s := range h.OAuth {
		if err := s.Validate(id); err != nil {
			return err
		}
	}
	return nil
}

// gate lets an incomplete session reach only what completes it: a
// session waiting for its second factor gets 401 elsewhere (with its CSRF
// token, so a page reached through an OAuth redirect can send the code),
// and a user who must replace a one-time password gets 403.
func (h *Handler) gate(w http.ResponseWriter, r *http.Request, p *accounts.Principal) bool {
	if p.MFAPending && !pendingMFARoutes[r.Pattern] {
		api.WriteJSON(w, http.StatusUnauthorized, map[string]any{"mfa_required": true, "csrf_token": p.CSRF,
			"error": "enter the code from your authenticator app, or a recovery code, to finish signing in"})
		return false
	}
	if p.MustChangePassword && !mustChangeRoutes[r.Pattern] {
		api.WriteJSON(w, http.StatusForbidden, map[string]any{"password_change_required": true,
			"error": "choose a new password first: your current one was for one use only"})
		return false
	}
	return true
}

// authFail answers an error of the accounts service.
func (h *Handler) authFail(w http.ResponseWriter, what string, err error) {
	switch {
	case errors.Is(err, auth.ErrBusy):
		w.Header().Set("Retry-After", "5")
		api.WriteError(w, http.StatusTooManyRequests, err.Error())
	case errors.Is(err, accounts.ErrRateLimited):
		w.Header().Set("Retry-After", "300")
		api.WriteError(w, http.StatusTooManyRequests, "too many wrong passwords or codes; wait a few minutes")
	case errors.Is(err, accounts.ErrBadCredentials):
		api.WriteError(w, http.StatusForbidden, "wrong password")
	default:
		h.fail(w, what, err)
	}
}

// codeInput is a password and/or a second-factor code.
type codeInput struct {
	Password     string `json:"password"`
	Code         string `json:"code"`
	RecoveryCode string `json:"recovery_code"`
}

func (h *Handler) loginTOTP(w http.ResponseWriter, r *http.Request) {
	var in codeInput
	if !api.Decode(w, r, &in) {
		return
	}
	p := principal(r)
	token, method, err := h.acc.CompleteMFA(r.Context(), p, in.Code, in.RecoveryCode)
	if errors.Is(err, accounts.ErrBadCode) {
		api.WriteError(w, http.StatusUnauthorized, err.Error())
		return
	}
	if err != nil {
		h.authFail(w, "checking the code", err)
		return
	}
	h.record(r, 0, "session.mfa", "", map[string]any{"method": method})
	h.setCookie(w, token, int(h.acc.SessionTTL.Seconds()))
	api.WriteJSON(w, http.StatusOK, map[string]any{"csrf_token": p.CSRF, "must_change_password": p.MustChangePassword})
}

func (h *Handler) changePassword(w http.ResponseWriter, r *http.Request) {
	var in struct {
		Current string `json:"current_password"`
		New     string `json:"new_password"`
	}
	if !api.Decode(w, r, &in) {
		return
	}
	n, err := h.acc.ChangePassword(r.Context(), principal(r), in.Current, in.New, api.ClientIP(r))
	if err != nil {
		h.authFail(w, "changing the password", err)
		return
	}
	api.WriteJSON(w, http.StatusOK, map[string]any{"ok": true, "revoked_sessions": n})
}

func (h *Handler) security(w http.ResponseWriter, r *http.Request) {
	si, err := h.acc.Security(r.Context(), principal(r).UserID)
	if err != nil {
		h.fail(w, "reading security settings", err)
		return
	}
	api.WriteJSON(w, http.StatusOK, si)
}

func (h *Handler) totpBegin(w http.ResponseWriter, r *http.Request) {
	var in codeInput
	if !api.Decode(w, r, &in) {
		return
	}
	setup, err := h.acc.BeginTOTP(r.Context(), principal(r), in.Password)
	if err != nil {
		h.authFail(w, "starting two-factor setup", err)
		return
	}
	// The QR code is drawn here, not by a third-party service: it holds
	// the secret.
	png, err := qrcode.Encode(setup.URL, qrcode.Medium, 256)
	if err != nil {
		h.fail(w, "drawing the QR code", err)
		return
	}
	api.WriteJSON(w, http.StatusOK, map[string]any{"secret": setup.Secret, "otpauth_url": setup.URL,
		"qr_png": "data:image/png;base64," + base64.StdEncoding.EncodeToString(png)})
}

func (h *Handler) totpConfirm(w http.ResponseWriter, r *http.Request) {
	var in codeInput
	if !api.Decode(w, r, &in) {
		return
	}
	codes, err := h.acc.ConfirmTOTP(r.Context(), principal(r), in.Code)
	if err != nil {
		h.authFail(w, "turning on two-factor authentication", err)
		return
	}
	h.record(r, 0, "user.totp_enable", principal(r).Email, nil)
	api.WriteJSON(w, http.StatusOK, map[string]any{"recovery_codes": codes})
}

func (h *Handler) totpDisable(w http.ResponseWriter, r *http.Request) {
	var in codeInput
	if !api.Decode(w, r, &in) {
		return
	}
	if err := h.acc.DisableTOTP(r.Context(), principal(r), in.Password, in.Code); err != nil {
		h.authFail(w, "turning off two-factor authentication", err)
		return
	}
	h.record(r, 0, "user.totp_disable", principal(r).Email, nil)
	api.WriteJSON(w, http.StatusOK, map[string]any{"ok": true})
}

func (h *Handler) recoveryCodes(w http.ResponseWriter, r *http.Request) {
	var in codeInput
	if !api.Decode(w, r, &in) {
		return
	}
	codes, err := h.acc.RegenerateRecoveryCodes(r.Context(), principal(r), in.Password, in.Code)
	if err != nil {
		h.authFail(w, "making recovery codes", err)
		return
	}
	h.record(r, 0, "user.recovery_codes", principal(r).Email, nil)
	api.WriteJSON(w, http.StatusOK, map[string]any{"recovery_codes": codes})
}

// oauthProviders lists the sign-in buttons (no sign-in needed).
func (h *Handler) oauthProviders(w http.ResponseWriter, r *http.Request) {
	type button struct {
		ID       string `json:"id"`
		Name     string `json:"name"`
		StartURL string `json:"start_url"`
	}
	out := []button{}
	for id, p := range h.providers {
		out = append(out, button{ID: id, Name: p.Name, StartURL: "/oauth/" + id + "/start"})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	api.WriteJSON(w, http.StatusOK, map[string]any{"providers": out, "allow_signup": h.AllowSignup})
}

func (h *Handler) redirectURI(r *http.Request, provider string) string {
	base := strings.TrimRight(h.wh.PublicURL, "/")
	if base == "" {
		scheme := "https"
		if r.TLS == nil {
			scheme = "http"
		}
		base = scheme + "://" + r.Host
	}
	return base + "/oauth/" + provider + "/callback"
}

// oauthPage answers a browser that came back from a provider with a
// problem: a small page with a fixed message and a way back.
func oauthPage(w http.ResponseWriter, code int, msg string) {
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Content-Security-Policy", "default-src 'none'; frame-ancestors 'none'")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(code)
	fmt.Fprintf(w, `<!doctype html><html lang="en"><head><meta charset="utf-8"><title>Sign-in failed · WiseHosting</title></head>
<body><h1>Sign-in failed</h1><p>%s</p><p><a href="/">Back to the sign-in page</a></p></body></html>`, html.EscapeString(msg))
}

func (h *Handler) setStateCookie(w http.ResponseWriter, value string, maxAge int) {
	// Lax, not Strict: the provider sends the browser back with a
	// cross-site top-level GET, which must carry this cookie.
	http.SetCookie(w, &http.Cookie{Name: stateCookie, Value: value, Path: "/oauth/", MaxAge: maxAge, HttpOnly: true,
		Secure: !h.InsecureCookie, SameSite: http.SameSiteLaxMode})
}

func (h *Handler) oauthStart(w http.ResponseWriter, r *http.Request) {
	p := h.providers[r.PathValue("provider")]
	if p == nil {
		oauthPage(w, http.StatusNotFound, "This sign-in provider is not configured.")
		return
	}
	if !h.oauthRate.Allow(api.ClientIP(r)) {
		w.Header().Set("Retry-After", "300")
		oauthPage(w, http.StatusTooManyRequests, "Too many sign-in attempts from your address; wait a few minutes.")
		return
	}
	pending, err := h.states.Begin(r.Context(), p.ID, h.redirectURI(r, p.ID))
	if err != nil {
		h.logger.Error("dashboard: starting an OAuth sign-in", zap.String("provider", p.ID), zap.Error(err))
		oauthPage(w, http.StatusInternalServerError, "The sign-in could not be started; try again.")
		return
	}
	h.setStateCookie(w, pending.State, int(oauthlogin.StateTTL.Seconds()))
	w.Header().Set("Cache-Control", "no-store")
	http.Redirect(w, r, p.AuthCodeURL(pending.State, pending.Verifier, pending.RedirectURI), http.StatusFound)
}

// oauthReturn checks a browser coming back from a provider: the provider
// is configured, the address is within its limit, and the state matches
// the browser's cookie; the state is then spent (sign-in or connect flow,
// whichever take consumes) before anything else, so it is used up even
// when the provider reports an error. what names the flow in messages.
func (h *Handler) oauthReturn(w http.ResponseWriter, r *http.Request, what string,
	take func(ctx context.Context, provider, state string) (oauthlogin.Pending, error),
) (*oauthlogin.Provider, oauthlogin.Pending, bool) {
	p := h.providers[r.PathValue("provider")]
	if p == nil {
		oauthPage(w, http.StatusNotFound, "This provider is not configured.")
		return nil, oauthlogin.Pending{}, false
	}
	if !h.oauthRate.Allow(api.ClientIP(r)) {
		w.Header().Set("Retry-After", "300")
		oauthPage(w, http.StatusTooManyRequests, "Too many sign-in attempts from your address; wait a few minutes.")
		return nil, oauthlogin.Pending{}, false
	}
	h.setStateCookie(w, "", -1) // whatever happens, this attempt is over
	q := r.URL.Query()
	state := q.Get("state")
	c, err := r.Cookie(stateCookie)
	if state == "" || err != nil || subtle.ConstantTimeCompare([]byte(c.Value), []byte(state)) != 1 {
		oauthPage(w, http.StatusBadRequest, "This "+what+" was not started in this browser, or it was already used. Start again.")
		return nil, oauthlogin.Pending{}, false
	}
	pending, err := take(r.Context(), p.ID, state)
	if err != nil {
		if !errors.Is(err, oauthlogin.ErrBadState) {
			h.logger.Error("dashboard: reading OAuth state", zap.Error(err))
		}
		oauthPage(w, http.StatusBadRequest, "This "+what+" link has expired or was already used. Start again.")
		return nil, oauthlogin.Pending{}, false
	}
	if q.Get("error") != "" || q.Get("code") == "" {
		oauthPage(w, http.StatusBadRequest, "The "+what+" was cancelled or refused at "+p.Name+".")
		return nil, oauthlogin.Pending{}, false
	}
	return p, pending, true
}

func (h *Handler) oauthCallback(w http.ResponseWriter, r *http.Request) {
	ctx, ip := r.Context(), api.ClientIP(r)
	p, pending, ok := h.oauthReturn(w, r, "sign-in", h.states.Take)
	if !ok {
		return
	}
	q := r.URL.Query()
	tok, err := p.Exchange(ctx, q.Get("code"), pending.Verifier, pending.RedirectURI)
	if err != nil {
		h.logger.Warn("dashboard: OAuth code exchange failed", zap.String("provider", p.ID), zap.Error(err))
		oauthPage(w, http.StatusBadGateway, "The sign-in could not be completed with "+p.Name+"; try again.")
		return
	}
	ident, err := p.Identity(ctx, tok)
	if err != nil {
		h.logger.Warn("dashboard: reading the OAuth identity failed", zap.String("provider", p.ID), zap.Error(err))
		oauthPage(w, http.StatusBadGateway, p.Name+" did not say who you are; try again.")
		return
	}
	// The provider's token is not kept: sign-in needs it only this once.
	uid, outcome, err := h.acc.ResolveExternal(ctx, accounts.ExternalIdentity{Provider: p.ID, Subject: ident.Subject, Email: ident.Email,
		EmailVerified: ident.EmailVerified, Name: ident.Name}, h.AllowSignup, ip)
	if errors.Is(err, accounts.ErrNoAccount) || errors.Is(err, accounts.ErrUnverifiedEmail) {
		h.acc.Record(ctx, accounts.Entry{IP: ip, Action: "session.oauth_refused", Target: p.ID,
			Details: map[string]any{"subject": ident.Subject, "email": ident.Email, "email_verified": ident.EmailVerified}})
		oauthPage(w, http.StatusForbidden, err.Error())
		return
	}
	if err != nil {
		h.logger.Error("dashboard: resolving an OAuth identity", zap.String("provider", p.ID), zap.Error(err))
		oauthPage(w, http.StatusInternalServerError, "The sign-in failed; try again.")
		return
	}
	if outcome == accounts.ExternalSignUp {
		// A new account starts with a team of its own, on the default plan.
		plan := h.wh.PlanRegistry().Default()
		if _, err := h.teams.CreatePersonal(ctx, uid, ident.Email, ident.Name, plan, func(t accounts.Team) accounts.Entry {
			return accounts.Entry{TeamID: t.ID, UserID: uid, IP: ip, Action: "team.create", Target: t.Slug,
				Details: map[string]any{"plan": plan, "reason": "sign-up"}}
		}); err != nil {
			h.logger.Error("dashboard: creating the team of a new account", zap.Int64("user", uid), zap.Error(err))
		}
	}
	sess, err := h.acc.Open(ctx, uid, ip, r.UserAgent())
	if err != nil {
		h.logger.Error("dashboard: opening a session", zap.Error(err))
		oauthPage(w, http.StatusInternalServerError, "The sign-in failed; try again.")
		return
	}
	h.acc.Record(ctx, accounts.Entry{UserID: uid, IP: ip, Action: "session.login", Target: p.ID,
		Details: map[string]any{"method": "oauth", "provider": p.ID, "outcome": outcome, "mfa_pending": sess.MFARequired}})
	h.setCookie(w, sess.Token, int(h.acc.SessionTTL.Seconds()))
	w.Header().Set("Cache-Control", "no-store")
	// The UI finds out from /api/me whether a code or a new password is
	// needed.
	http.Redirect(w, r, "/", http.StatusSeeOther)
}

// parseCaddyfile reads the sign-in options of the wisehosting_dashboard
// block (the dispenser is on the option's name):
//
//	allow_signup
//	oauth github {
//		client_id     <id>
//		client_secret {env.GITHUB_CLIENT_SECRET}
//		base_url      https://github.example.com
//		auth_url      <url>
//		token_url     <url>
//		userinfo_url  <url>
//		scopes        read:user user:email
//		name          "GitHub"
//	}
func (c *AuthConfig) parseCaddyfile(d *caddyfile.Dispenser) error {
	switch d.Val() {
	case "allow_signup":
		if d.NextArg() {
			return d.ArgErr()
		}
		c.AllowSignup = true
	case "oauth":
		var id string
		if !d.Args(&id) {
			return d.ArgErr()
		}
		if d.NextArg() {
			return d.ArgErr()
		}
		if _, dup := c.OAuth[id]; dup {
			return d.Errf("oauth %s is configured twice", id)
		}
		var s oauthlogin.Settings
		for nesting := d.Nesting(); d.NextBlock(nesting); {
			opt := d.Val()
			if opt == "scopes" {
				s.Scopes = d.RemainingArgs()
				if len(s.Scopes) == 0 {
					return d.ArgErr()
				}
				continue
			}
			var v string
			if !d.AllArgs(&v) {
				return d.ArgErr()
			}
			switch opt {
			case "client_id":
				s.ClientID = v
			case "client_secret":
				s.ClientSecret = v
			case "base_url":
				s.BaseURL = v
			case "auth_url":
				s.AuthURL = v
			case "token_url":
				s.TokenURL = v
			case "userinfo_url":
				s.UserinfoURL = v
			case "name":
				s.Name = v
			default:
				return d.Errf("unknown oauth option %q", opt)
			}
		}
		if c.OAuth == nil {
			c.OAuth = map[string]oauthlogin.Settings{}
		}
		c.OAuth[id] = s
	}
	return nil
}

// Interface guard.
var _ caddy.Validator = (*Handler)(nil)
