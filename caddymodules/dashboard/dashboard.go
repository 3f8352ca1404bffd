// Package dashboard is the handler `wisehosting_dashboard`: the JSON API
// people and programs use (under /api/) and the embedded single-page UI
// (everything else). Every query is scoped by the caller's team
// membership; an app, deployment or domain of another team answers 404,
// as if it did not exist.
//
// Sign-in: password (the first admin, created at start, must replace its
// one-time password), OAuth providers (routes_auth.go), a TOTP code when
// the user turned it on, or an API token
// (`Authorization: Bearer wht_…`, one team, read or write scope). Browser
// sessions live in the `wh_session` cookie (Secure, HttpOnly,
// SameSite=Strict); every state-changing request of a session carries the
// session's CSRF token in X-CSRF-Token. Every change writes an
// audit_events row.
package dashboard

import (
	"context"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/httpcaddyfile"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"go.uber.org/zap"

	"github.com/wisehosting/wisehosting/caddymodules/api"
	"github.com/wisehosting/wisehosting/caddymodules/core"
	"github.com/wisehosting/wisehosting/internal/accounts"
	"github.com/wisehosting/wisehosting/internal/alerts"
	"github.com/wisehosting/wisehosting/internal/apps"
	"github.com/wisehosting/wisehosting/internal/auth"
	"github.com/wisehosting/wisehosting/internal/cron"
	"github.com/wisehosting/wisehosting/internal/deploys"
	"github.com/wisehosting/wisehosting/internal/domains"
	"github.com/wisehosting/wisehosting/internal/errs"
	"github.com/wisehosting/wisehosting/internal/gitconn"
	"github.com/wisehosting/wisehosting/internal/network"
	"github.com/wisehosting/wisehosting/internal/teams"
	"github.com/wisehosting/wisehosting/internal/volumes"
	"github.com/wisehosting/wisehosting/internal/workers"
)

//go:embed ui
var uiFiles embed.FS

//go:embed openapi.json
var openapiDoc []byte

func init() {
	caddy.RegisterModule(new(Handler))
	httpcaddyfile.RegisterHandlerDirective("wisehosting_dashboard", parseCaddyfile)
	httpcaddyfile.RegisterDirectiveOrder("wisehosting_dashboard", httpcaddyfile.Before, "respond")
}

// CookieName is the session cookie.
const CookieName = "wh_session"

// Handler serves the dashboard.
type Handler struct {
	// InsecureCookie drops the Secure flag of the session cookie (plain
	// HTTP development setups only).
	InsecureCookie bool `json:"insecure_cookie,omitempty"`
	// LiveRecheck is how often a live log stream re-checks that its
	// session or token is still valid and the app still exists; the
	// stream closes when not. Default: 15s.
	LiveRecheck caddy.Duration `json:"live_recheck,omitempty"`
	// NoWorkerHint is what the apps page and Deploy say when no worker is
	// online (placeholders such as {env.X} are resolved; empty values fall
	// back to the default, which tells how to add a worker). `make run`
	// sets it to the reason its local worker did not start.
	NoWorkerHint string `json:"no_worker_hint,omitempty"`
	// AuthConfig: OAuth providers and sign-up (routes_auth.go).
	AuthConfig

	wh      *core.App
	acc     *accounts.Service
	teams   *teams.Service
	apps    *apps.Service
	volumes *volumes.Service
	cron    *cron.Service
	alerts  *alerts.Rules
	workers *workers.Service
	domains *domains.Service
	routes  *network.Routes
	logger  *zap.Logger
	mux     *http.ServeMux
	ui      http.Handler
	ops     opsDeps
	git     *gitconn.Service
	// statusStop ends the commit status reporting; pending remembers the
	// deployments already reported as pending.
	statusStop func()
	pending    seenSet

	noWorkerHint string
}

// CaddyModule returns the Caddy module information.
func (*Handler) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{ID: "http.handlers.wisehosting_dashboard", New: func() caddy.Module { return new(Handler) }}
}

// Provision wires the API.
func (h *Handler) Provision(ctx caddy.Context) error {
	wh, err := core.FromContext(ctx)
	if err != nil {
		return err
	}
	h.wh, h.logger = wh, ctx.Logger()
	h.noWorkerHint = strings.TrimSpace(caddy.NewReplacer().ReplaceKnown(h.NoWorkerHint, ""))
	if h.noWorkerHint == "" {
		h.noWorkerHint = DefaultNoWorkerHint
	}
	if err := h.oauthCredentials(); err != nil {
		return err
	}
	h.acc = accounts.New(wh.Pool())
	h.teams = &teams.Service{Pool: wh.Pool(), Accounts: h.acc}
	h.workers = &workers.Service{Pool: wh.Pool()}
	h.volumes = &volumes.Service{Pool: wh.Pool(), Grace: wh.VolumeGracePeriod()}
	h.cron = &cron.Service{Pool: wh.Pool()}
	h.alerts = &alerts.Rules{Pool: wh.Pool()}
	h.apps = &apps.Service{Pool: wh.Pool(), Keyring: wh.Keyring(), Plans: wh.PlanRegistry(), VolumeGrace: wh.VolumeGracePeriod(), URL: wh.AppURL}
	h.domains = &domains.Service{Pool: wh.Pool(), SubdomainBase: wh.SubdomainBase, Allow: wh.PlanRegistry().CheckDomain}
	if len(wh.DomainResolvers) > 0 {
		resolvers, err := domains.ParseResolvers(strings.Join(wh.DomainResolvers, " "))
		if err != nil {
			return fmt.Errorf("domain_resolvers: %w", err)
		}
		h.domains.Verifier = &domains.Verifier{Resolvers: resolvers}
	}
	sub, err := fs.Sub(uiFiles, "ui")
	if err != nil {
		return err
	}
	h.ui = http.FileServerFS(sub)
	h.provisionAuth()
	h.provisionGit()
	h.provisionOps()
	h.routes = &network.Routes{Pool: wh.Pool()}
	m := http.NewServeMux()
	h.endpoints(func(pattern string, fn http.HandlerFunc) { m.HandleFunc(pattern, fn) })
	m.HandleFunc("/api/", func(w http.ResponseWriter, r *http.Request) {
		api.WriteError(w, http.StatusNotFound, "no such endpoint")
	})
	h.mux = m
	return nil
}

// Patterns lists the API's patterns (documented in openapi.json).
func Patterns() []string {
	var out []string
	new(Handler).endpoints(func(pattern string, _ http.HandlerFunc) { out = append(out, pattern) })
	return out
}

// endpoints gives every endpoint of the API to handle.
func (h *Handler) endpoints(handle func(string, http.HandlerFunc)) {
	handle("POST /api/login", h.login)
	handle("POST /api/logout", h.authed(h.logout))
	handle("GET /api/me", h.authed(h.me))
	handle("GET /api/sessions", h.authed(h.sessions))
	handle("DELETE /api/sessions/{id}", h.authed(h.revokeSession))
	handle("POST /api/tokens", h.authed(h.createToken))
	handle("GET /api/tokens", h.authed(h.listTokens))
	handle("DELETE /api/tokens/{id}", h.authed(h.revokeToken))
	handle("GET /api/teams/{team}/apps", h.authed(h.listApps))
	handle("POST /api/teams/{team}/apps", h.authed(h.createApp))
	handle("GET /api/teams/{team}/audit", h.authed(h.audit))
	handle("GET /api/apps/{app}", h.authed(h.getApp))
	handle("PATCH /api/apps/{app}", h.authed(h.updateApp))
	handle("DELETE /api/apps/{app}", h.authed(h.deleteApp))
	handle("POST /api/apps/{app}/deployments", h.authed(h.deploy))
	handle("GET /api/apps/{app}/deployments", h.authed(h.listDeployments))
	handle("GET /api/apps/{app}/deployments/{dep}/logs", h.authed(h.deploymentLogs))
	handle("POST /api/apps/{app}/deployments/{dep}/cancel", h.authed(h.cancelDeployment))
	handle("POST /api/apps/{app}/restart", h.authed(h.restartApp))
	handle("GET /api/apps/{app}/env", h.authed(h.listEnv))
	handle("PUT /api/apps/{app}/env/{key}", h.authed(h.setEnv))
	handle("DELETE /api/apps/{app}/env/{key}", h.authed(h.deleteEnv))
	handle("GET /api/apps/{app}/domains", h.authed(h.listDomains))
	handle("POST /api/apps/{app}/domains", h.authed(h.addDomain))
	handle("POST /api/apps/{app}/domains/{domain}/verify", h.authed(h.verifyDomain))
	handle("DELETE /api/apps/{app}/domains/{domain}", h.authed(h.removeDomain))
	handle("GET /api/openapi.json", h.openapi)
	h.authRoutes(handle)
	h.gitRoutes(handle)
	h.opsRoutes(handle)
	h.appRoutes(handle)
	h.stateRoutes(handle)
	h.invitationRoutes(handle)
}

// ServeHTTP serves /api/ and the UI.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request, next caddyhttp.Handler) error {
	if strings.HasPrefix(r.URL.Path, "/api/") || strings.HasPrefix(r.URL.Path, "/oauth/") {
		h.mux.ServeHTTP(w, r)
		return nil
	}
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		return next.ServeHTTP(w, r)
	}
	w.Header().Set("Content-Security-Policy", "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; connect-src 'self'; frame-ancestors 'none'")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.Header().Set("Referrer-Policy", "same-origin")
	if !strings.Contains(r.URL.Path[1:], ".") {
		r2 := r.Clone(r.Context())
		r2.URL.Path = "/"
		h.ui.ServeHTTP(w, r2)
		return nil
	}
	h.ui.ServeHTTP(w, r)
	return nil
}

type ctxKey struct{}

func principal(r *http.Request) *accounts.Principal {
	return r.Context().Value(ctxKey{}).(*accounts.Principal)
}

// caller resolves the request's API token or session cookie
// (accounts.ErrUnauthorized: neither, or not valid).
func (h *Handler) caller(ctx context.Context, r *http.Request) (*accounts.Principal, error) {
	if tok, ok := auth.BearerToken(r.Header); ok {
		return h.acc.FromToken(ctx, tok)
	}
	if c, err := r.Cookie(CookieName); err == nil {
		return h.acc.FromSession(ctx, c.Value)
	}
	return nil, accounts.ErrUnauthorized
}

// authed resolves the caller (session cookie or API token), enforces CSRF
// on a session's state-changing requests and write scope on a token's.
func (h *Handler) authed(fn http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		p, err := h.caller(r.Context(), r)
		if err != nil {
			if !errors.Is(err, accounts.ErrUnauthorized) {
				h.logger.Error("dashboard: resolving the caller", zap.Error(err))
			}
			api.WriteError(w, http.StatusUnauthorized, "sign in first")
			return
		}
		if !h.gate(w, r, p) {
			return
		}
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			if !p.CheckCSRF(r.Header.Get("X-CSRF-Token")) {
				api.WriteError(w, http.StatusForbidden, "missing or wrong X-CSRF-Token")
				return
			}
			if !p.CanWrite() {
				api.WriteError(w, http.StatusForbidden, "this API token is read-only")
				return
			}
		}
		r.Body = http.MaxBytesReader(w, r.Body, 1<<20)
		fn(w, r.WithContext(context.WithValue(r.Context(), ctxKey{}, p)))
	}
}

// answer writes v with code, or err (see fail) when there is one.
func (h *Handler) answer(w http.ResponseWriter, code int, what string, v any, err error) {
	if err != nil {
		h.fail(w, what, err)
		return
	}
	api.WriteJSON(w, code, v)
}

// fail answers err (see api.Fail); what names the failed step in logs.
func (h *Handler) fail(w http.ResponseWriter, what string, err error) {
	api.Fail(w, h.logger, "dashboard: "+what, err)
}

func pathID(r *http.Request, name string) int64 {
	id, err := strconv.ParseInt(r.PathValue(name), 10, 64)
	if err != nil || id <= 0 {
		return 0
	}
	return id
}

// teamRole checks the caller's role in the path's team (404 when none).
func (h *Handler) teamRole(w http.ResponseWriter, r *http.Request, min string) (int64, bool) {
	team := pathID(r, "team")
	role, err := h.acc.Role(r.Context(), principal(r), team)
	if err != nil {
		h.fail(w, "checking membership", err)
		return 0, false
	}
	if role == "" {
		api.WriteError(w, http.StatusNotFound, "not found")
		return 0, false
	}
	if !accounts.AtLeast(role, min) {
		api.WriteError(w, http.StatusForbidden, "your role in this team ("+role+") cannot do this")
		return 0, false
	}
	return team, true
}

// appAccess loads the path's app if the caller's team role allows min.
func (h *Handler) appAccess(w http.ResponseWriter, r *http.Request, min string) (deploys.App, bool) {
	id := pathID(r, "app")
	team, err := h.apps.TeamOf(r.Context(), id)
	if err == nil {
		var role string
		if role, err = h.acc.Role(r.Context(), principal(r), team); err == nil && role == "" {
			err = apps.ErrNotFound // another team's app looks like no app
		} else if err == nil && !accounts.AtLeast(role, min) {
			api.WriteError(w, http.StatusForbidden, "your role in this team ("+role+") cannot do this")
			return deploys.App{}, false
		}
	}
	if err != nil {
		h.fail(w, "loading the app", err)
		return deploys.App{}, false
	}
	app, err := h.apps.Load(r.Context(), team, id)
	if err != nil {
		h.fail(w, "loading the app", err)
		return deploys.App{}, false
	}
	return app, true
}

// appRequest loads the path's app if the caller's team role allows min
// and decodes the request's body into a T.
func appRequest[T any](h *Handler, w http.ResponseWriter, r *http.Request, min string) (deploys.App, T, bool) {
	var in T
	app, ok := h.appAccess(w, r, min)
	if !ok || !api.Decode(w, r, &in) {
		return app, in, false
	}
	return app, in, true
}

// entry is the audit record of the caller's change in team.
func entry(r *http.Request, team int64, action, target string, details map[string]any) accounts.Entry {
	return accounts.Entry{TeamID: team, UserID: principal(r).UserID, IP: api.ClientIP(r), Action: action, Target: target, Details: details}
}

// record writes the audit record of a change already made.
func (h *Handler) record(r *http.Request, team int64, action, target string, details map[string]any) {
	if err := h.acc.Record(r.Context(), entry(r, team, action, target, details)); err != nil {
		h.logger.Error("dashboard: writing an audit record", zap.String("action", action), zap.Error(err))
	}
}

func (h *Handler) setCookie(w http.ResponseWriter, value string, maxAge int) {
	http.SetCookie(w, &http.Cookie{Name: CookieName, Value: value, Path: "/", MaxAge: maxAge, HttpOnly: true,
		Secure: !h.InsecureCookie, SameSite: http.SameSiteStrictMode})
}

func (h *Handler) login(w http.ResponseWriter, r *http.Request) {
	if !strings.HasPrefix(r.Header.Get("Content-Type"), "application/json") {
		api.WriteError(w, http.StatusUnsupportedMediaType, "send JSON")
		return
	}
	r.Body = http.MaxBytesReader(w, r.Body, 16<<10)
	var in struct {
		Email    string `json:"email"`
		Password string `json:"password"`
	}
	if !api.Decode(w, r, &in) {
		return
	}
	ip := api.ClientIP(r)
	sess, err := h.acc.Login(r.Context(), in.Email, in.Password, ip, r.UserAgent())
	switch {
	case errors.Is(err, auth.ErrBusy):
		w.Header().Set("Retry-After", "5")
		api.WriteError(w, http.StatusTooManyRequests, err.Error())
		return
	case errors.Is(err, accounts.ErrRateLimited):
		w.Header().Set("Retry-After", "300")
		api.WriteError(w, http.StatusTooManyRequests, err.Error())
		return
	case errors.Is(err, accounts.ErrBadCredentials):
		api.WriteError(w, http.StatusUnauthorized, err.Error())
		return
	case err != nil:
		h.fail(w, "signing in", err)
		return
	}
	h.acc.Record(r.Context(), accounts.Entry{UserID: sess.UserID, IP: ip, Action: "session.login",
		Details: map[string]any{"method": "password", "mfa_pending": sess.MFARequired}})
	h.setCookie(w, sess.Token, int(h.acc.SessionTTL.Seconds()))
	api.WriteJSON(w, http.StatusOK, map[string]any{"csrf_token": sess.CSRF, "mfa_required": sess.MFARequired, "must_change_password": sess.MustChangePassword})
}

func (h *Handler) logout(w http.ResponseWriter, r *http.Request) {
	if c, err := r.Cookie(CookieName); err == nil {
		h.acc.Logout(r.Context(), c.Value)
	}
	h.setCookie(w, "", -1)
	api.WriteJSON(w, http.StatusOK, map[string]any{"ok": true})
}

func (h *Handler) me(w http.ResponseWriter, r *http.Request) {
	p := principal(r)
	teams, err := h.acc.Teams(r.Context(), p)
	if err != nil {
		h.fail(w, "listing teams", err)
		return
	}
	api.WriteJSON(w, http.StatusOK, map[string]any{"user": map[string]any{"id": p.UserID, "email": p.Email, "name": p.Name, "is_admin": p.IsAdmin,
		"must_change_password": p.MustChangePassword},
		"teams": teams, "csrf_token": p.CSRF, "subdomain_base": h.wh.SubdomainBase})
}

func (h *Handler) sessions(w http.ResponseWriter, r *http.Request) {
	s, err := h.acc.Sessions(r.Context(), principal(r))
	if err != nil {
		h.fail(w, "listing sessions", err)
		return
	}
	api.WriteJSON(w, http.StatusOK, map[string]any{"sessions": s})
}

func (h *Handler) revokeSession(w http.ResponseWriter, r *http.Request) {
	if err := h.acc.RevokeSession(r.Context(), principal(r).UserID, pathID(r, "id")); err != nil {
		if errors.Is(err, accounts.ErrForbidden) {
			api.WriteError(w, http.StatusNotFound, "not found")
			return
		}
		h.fail(w, "revoking the session", err)
		return
	}
	api.WriteJSON(w, http.StatusOK, map[string]any{"ok": true})
}

func (h *Handler) createToken(w http.ResponseWriter, r *http.Request) {
	var in struct {
		TeamID        int64    `json:"team_id"`
		Name          string   `json:"name"`
		Scopes        []string `json:"scopes"`
		ExpiresInDays int      `json:"expires_in_days"`
	}
	if !api.Decode(w, r, &in) {
		return
	}
	p := principal(r)
	if p.SessionID == 0 {
		api.WriteError(w, http.StatusForbidden, "API tokens are created from a signed-in session")
		return
	}
	if in.ExpiresInDays == 0 {
		in.ExpiresInDays = 90
	}
	if in.ExpiresInDays < 1 || in.ExpiresInDays > 366 {
		h.fail(w, "creating a token", errs.Field("expires_in_days", "A token expires after 1 to 366 days."))
		return
	}
	raw, id, err := h.acc.CreateToken(r.Context(), p.UserID, in.TeamID, in.Name, in.Scopes, time.Duration(in.ExpiresInDays)*24*time.Hour)
	if errors.Is(err, accounts.ErrForbidden) {
		api.WriteError(w, http.StatusNotFound, "not found")
		return
	}
	if err != nil {
		h.fail(w, "creating a token", err)
		return
	}
	h.record(r, in.TeamID, "token.create", in.Name, map[string]any{"token_id": id, "scopes": in.Scopes})
	api.WriteJSON(w, http.StatusCreated, map[string]any{"id": id, "token": raw})
}

// appView is an app with, once, the webhook made when it was created.
type appView struct {
	apps.View
	// Hook is set once, when the app is created with a webhook.
	Hook *gitconn.Hook `json:"hook,omitempty"`
}

func (h *Handler) view(ctx context.Context, id int64) (appView, error) {
	v, err := h.apps.View(ctx, id)
	return appView{View: v}, err
}

func (h *Handler) listApps(w http.ResponseWriter, r *http.Request) {
	team, ok := h.teamRole(w, r, accounts.RoleMember)
	if !ok {
		return
	}
	out, err := h.apps.List(r.Context(), team)
	if err != nil {
		h.fail(w, "listing apps", err)
		return
	}
	api.WriteJSON(w, http.StatusOK, map[string]any{"apps": out})
}

func (h *Handler) createApp(w http.ResponseWriter, r *http.Request) {
	team, ok := h.teamRole(w, r, accounts.RoleAdmin)
	if !ok {
		return
	}
	in := apps.Defaults()
	if !api.Decode(w, r, &in) {
		return
	}
	if in.ConnectionID != 0 {
		conn, err := h.git.Get(r.Context(), team, in.ConnectionID)
		if err != nil {
			if errors.Is(err, gitconn.ErrNotFound) {
				err = errs.Field("git_connection_id", "no such git connection in this team")
			}
			h.gitFail(w, "loading the git connection", err)
			return
		}
		repo, err := h.git.Repo(r.Context(), conn, strings.TrimSpace(in.Repo))
		if err != nil {
			h.gitFail(w, "looking up the repository", err)
			return
		}
		in.Repo, in.GitRepo, in.GitProvider = repo.FullName, repo.CloneURL, conn.Provider
		if in.GitBranch == "" {
			in.GitBranch = repo.DefaultBranch
		}
	}
	c, err := h.apps.Create(r.Context(), team, in, h.wh.AllowLocalGit, func(c apps.Created) accounts.Entry {
		ev := map[string]any{"app_id": c.ID, "git_connection_id": c.ConnectionID, "repo": c.Repo}
		if c.Image != "" {
			ev = map[string]any{"app_id": c.ID, "image": c.Image, "registry_username": c.RegistryUsername}
		}
		return entry(r, team, "app.create", c.Slug, ev)
	})
	var problems *apps.Problems
	if errors.As(err, &problems) {
		// Every problem names its field; the answer's field is the first
		// one, so a form shows the message next to it.
		api.WriteJSON(w, http.StatusUnprocessableEntity, map[string]any{"error": problems.Error(), "field": problems.Fields[0], "fields": problems.Fields})
		return
	}
	if err != nil {
		h.fail(w, "creating the app", err)
		return
	}
	id := c.ID
	v, _ := h.view(r.Context(), id)
	// The webhook: installed at the provider through the connection, or
	// its URL and secret (shown this once) for the user to add by hand.
	if c.GitProvider != "" && h.publicURL() != "" {
		app, err := h.apps.Load(r.Context(), team, id)
		if err == nil {
			var hk gitconn.Hook
			if hk, err = h.git.InstallHook(r.Context(), app, h.publicURL()); err == nil {
				v.Hook = &hk
				h.record(r, team, "app.hook_install", app.Slug, map[string]any{"installed": hk.Installed, "reason": hk.Reason})
			}
		}
		if err != nil {
			h.logger.Error("dashboard: installing the webhook of a new app", zap.Int64("app", id), zap.Error(err))
		}
	}
	api.WriteJSON(w, http.StatusCreated, v)
}

func (h *Handler) getApp(w http.ResponseWriter, r *http.Request) {
	app, ok := h.appAccess(w, r, accounts.RoleMember)
	if !ok {
		return
	}
	v, err := h.view(r.Context(), app.ID)
	if err != nil {
		h.fail(w, "loading the app", err)
		return
	}
	api.WriteJSON(w, http.StatusOK, v)
}

// updateApp changes an app's settings. Changing its repository or branch
// re-checks them at the provider (when the app has a connection) and
// reinstalls its webhook.
func (h *Handler) updateApp(w http.ResponseWriter, r *http.Request) {
	app, ok := h.appAccess(w, r, accounts.RoleAdmin)
	if !ok {
		return
	}
	var in apps.Patch
	if !api.Decode(w, r, &in) {
		return
	}
	old := app
	c, err := h.apps.Edit(r.Context(), app, in, h.wh.AllowLocalGit, func(c apps.Change) accounts.Entry {
		action := "app.update"
		if in.Scaling() {
			action = "app.scale"
		}
		app := c.App
		replicas := 0
		if c.Instances != nil {
			replicas = c.Instances.Replicas
		}
		return entry(r, app.TeamID, action, app.Slug, map[string]any{"cpu_millis": app.CPUMillis, "memory_mb": app.MemoryMB,
			"repo": app.RepoName, "git_repo": app.GitRepo, "git_branch": app.GitBranch, "framework": app.Framework, "port": app.Port,
			"health_path": app.HealthPath, "auto_deploy": app.AutoDeploy, "previews": app.Previews, "fork_previews": app.ForkPreviews,
			"root_dir": app.RootDir, "dockerfile": app.Dockerfile, "build_command": app.BuildCommand, "start_command": app.StartCommand,
			"image": app.SourceImage, "registry_login_changed": c.Login != nil, "replicas": replicas})
	})
	if err != nil {
		h.gitFail(w, "updating the app", err)
		return
	}
	app = c.App
	v, _ := h.view(r.Context(), app.ID)
	if app.RepoName != old.RepoName && h.publicURL() != "" {
		// The old repository's hook goes; the new one gets a fresh secret.
		if err := h.git.RemoveHook(r.Context(), old); err != nil {
			h.logger.Warn("dashboard: removing the webhook of the previous repository", zap.Int64("app", app.ID), zap.Error(err))
		}
		app.HookID = ""
		if hk, err := h.git.InstallHook(r.Context(), app, h.publicURL()); err == nil {
			v.Hook = &hk
			v.HookInstalled = hk.Installed
		} else {
			h.logger.Error("dashboard: installing the webhook", zap.Int64("app", app.ID), zap.Error(err))
		}
	}
	api.WriteJSON(w, http.StatusOK, v)
}

func (h *Handler) deploy(w http.ResponseWriter, r *http.Request) {
	app, ok := h.appAccess(w, r, accounts.RoleMember)
	if !ok {
		return
	}
	var in struct {
		RollbackOf int64 `json:"rollback_of"`
	}
	if !api.Decode(w, r, &in) {
		return
	}
	trigger := "manual"
	if in.RollbackOf != 0 {
		trigger = "rollback"
	}
	c, err := h.apps.Deploy(r.Context(), app, deploys.Spec{Trigger: trigger, UserID: principal(r).UserID, RollbackOf: in.RollbackOf},
		func(c deploys.Created) accounts.Entry {
			return entry(r, app.TeamID, "deployment.create", app.Slug, map[string]any{"deployment_id": c.DeploymentID, "rollback_of": in.RollbackOf})
		})
	if err != nil {
		h.fail(w, "starting the deployment", err)
		return
	}
	api.WriteJSON(w, http.StatusAccepted, map[string]any{"deployment_id": c.DeploymentID, "job_id": c.JobID})
}

func (h *Handler) listDeployments(w http.ResponseWriter, r *http.Request) {
	app, ok := h.appAccess(w, r, accounts.RoleMember)
	if !ok {
		return
	}
	out, err := h.apps.Deployments(r.Context(), app.ID)
	if err != nil {
		h.fail(w, "listing deployments", err)
		return
	}
	api.WriteJSON(w, http.StatusOK, map[string]any{"deployments": out})
}

// deploymentLogs returns the log lines after ?after=<id> (the UI polls it
// for the live view).
func (h *Handler) deploymentLogs(w http.ResponseWriter, r *http.Request) {
	app, ok := h.appAccess(w, r, accounts.RoleMember)
	if !ok {
		return
	}
	after, _ := strconv.ParseInt(r.URL.Query().Get("after"), 10, 64)
	status, out, err := h.apps.Log(r.Context(), app.ID, pathID(r, "dep"), after)
	if err != nil {
		h.fail(w, "reading logs", err)
		return
	}
	api.WriteJSON(w, http.StatusOK, map[string]any{"status": status, "lines": out})
}

func (h *Handler) listEnv(w http.ResponseWriter, r *http.Request) {
	app, ok := h.appAccess(w, r, accounts.RoleMember)
	if !ok {
		return
	}
	out, err := h.apps.Env(r.Context(), app.ID)
	if err != nil {
		h.fail(w, "listing variables", err)
		return
	}
	// Values are write-only: they leave the control plane only towards the
	// worker that runs the app.
	api.WriteJSON(w, http.StatusOK, map[string]any{"env": out})
}

func (h *Handler) setEnv(w http.ResponseWriter, r *http.Request) {
	app, ok := h.appAccess(w, r, accounts.RoleAdmin)
	if !ok {
		return
	}
	var in struct {
		Value string `json:"value"`
	}
	if !api.Decode(w, r, &in) {
		return
	}
	key := r.PathValue("key")
	if err := h.apps.SetEnv(r.Context(), app.ID, key, in.Value, h.envEntry(r, app, "env.set")); err != nil {
		h.fail(w, "saving the variable", err)
		return
	}
	api.WriteJSON(w, http.StatusOK, map[string]any{"key": key})
}

// envEntry is the audit record of a change of an app's variable.
func (h *Handler) envEntry(r *http.Request, app deploys.App, action string) accounts.Hook[string] {
	return func(key string) accounts.Entry { return entry(r, app.TeamID, action, app.Slug+"/"+key, nil) }
}

func (h *Handler) deleteEnv(w http.ResponseWriter, r *http.Request) {
	app, ok := h.appAccess(w, r, accounts.RoleAdmin)
	if !ok {
		return
	}
	if err := h.apps.DeleteEnv(r.Context(), app.ID, r.PathValue("key"), h.envEntry(r, app, "env.delete")); err != nil {
		h.fail(w, "deleting the variable", err)
		return
	}
	api.WriteJSON(w, http.StatusOK, map[string]any{"ok": true})
}

type domainView struct {
	domains.Domain
	Record       string `json:"record"`
	Instructions string `json:"instructions"`
	// Records to publish (TXT proof, CNAME target), exact values.
	Records []domains.Record `json:"records"`
	// Certificate the proxies hold for the hostname; null until issued.
	Certificate *domains.Certificate `json:"certificate"`
}

// domainView describes d for the app whose slug is given; certs are the
// recorded certificates by hostname (nil: none looked up).
func (h *Handler) domainView(d domains.Domain, slug string, certs map[string]domains.Certificate) domainView {
	target := ""
	if h.wh.SubdomainBase != "" {
		target = slug + "." + h.wh.SubdomainBase
	}
	v := domainView{Domain: d, Record: d.RecordName(), Instructions: d.Instructions(), Records: d.Records(target)}
	if c, ok := certs[d.Hostname]; ok {
		v.Certificate = &c
	}
	return v
}

func (h *Handler) listDomains(w http.ResponseWriter, r *http.Request) {
	app, ok := h.appAccess(w, r, accounts.RoleMember)
	if !ok {
		return
	}
	ds, err := h.domains.List(r.Context(), app.TeamID, app.ID)
	if err != nil {
		h.fail(w, "listing domains", err)
		return
	}
	hosts := make([]string, 0, len(ds))
	for _, d := range ds {
		hosts = append(hosts, d.Hostname)
	}
	certs, err := h.domains.Certificates(r.Context(), hosts)
	if err != nil {
		h.fail(w, "listing domains", err)
		return
	}
	out := []domainView{}
	for _, d := range ds {
		out = append(out, h.domainView(d, app.Slug, certs))
	}
	api.WriteJSON(w, http.StatusOK, map[string]any{"domains": out})
}

func (h *Handler) addDomain(w http.ResponseWriter, r *http.Request) {
	app, ok := h.appAccess(w, r, accounts.RoleAdmin)
	if !ok {
		return
	}
	var in struct {
		Hostname string `json:"hostname"`
	}
	if !api.Decode(w, r, &in) {
		return
	}
	d, err := h.domains.Add(r.Context(), app.TeamID, app.ID, in.Hostname)
	if err != nil {
		h.fail(w, "adding the domain", err)
		return
	}
	h.record(r, app.TeamID, "domain.add", d.Hostname, map[string]any{"app_id": app.ID})
	api.WriteJSON(w, http.StatusCreated, h.domainView(d, app.Slug, nil))
}

func (h *Handler) verifyDomain(w http.ResponseWriter, r *http.Request) {
	app, d, ok := h.appDomain(w, r)
	if !ok {
		return
	}
	d, err := h.domains.Verify(r.Context(), app.TeamID, d.ID)
	if err != nil {
		h.fail(w, "verifying the domain", err)
		return
	}
	h.record(r, app.TeamID, "domain.verify", d.Hostname, nil)
	api.WriteJSON(w, http.StatusOK, h.domainView(d, app.Slug, nil))
}

func (h *Handler) audit(w http.ResponseWriter, r *http.Request) {
	team, ok := h.teamRole(w, r, accounts.RoleAdmin)
	if !ok {
		return
	}
	out, err := h.acc.AuditLog(r.Context(), team)
	if err != nil {
		h.fail(w, "reading the audit log", err)
		return
	}
	api.WriteJSON(w, http.StatusOK, map[string]any{"events": out})
}

func (h *Handler) openapi(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "application/json")
	w.Write(openapiDoc)
}

func parseCaddyfile(h httpcaddyfile.Helper) (caddyhttp.MiddlewareHandler, error) {
	d := h.Dispenser
	d.Next()
	hd := new(Handler)
	if d.NextArg() {
		return nil, d.ArgErr()
	}
	for d.NextBlock(0) {
		switch d.Val() {
		case "insecure_cookie":
			hd.InsecureCookie = true
		case "live_recheck":
			if !d.NextArg() {
				return nil, d.ArgErr()
			}
			dur, err := caddy.ParseDuration(d.Val())
			if err != nil || dur <= 0 {
				return nil, d.Errf("live_recheck: invalid duration %q", d.Val())
			}
			hd.LiveRecheck = caddy.Duration(dur)
		case "no_worker_hint":
			if !d.NextArg() {
				return nil, d.ArgErr()
			}
			hd.NoWorkerHint = d.Val()
			if d.NextArg() {
				return nil, d.ArgErr()
			}
		case "oauth", "allow_signup":
			if err := hd.AuthConfig.parseCaddyfile(d); err != nil {
				return nil, err
			}
		default:
			return nil, d.Errf("unknown wisehosting_dashboard option %q", d.Val())
		}
	}
	return hd, nil
}

// Interface guards.
var (
	_ caddy.Provisioner           = (*Handler)(nil)
	_ caddy.CleanerUpper          = (*Handler)(nil)
	_ caddyhttp.MiddlewareHandler = (*Handler)(nil)
)
