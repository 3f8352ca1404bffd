package dashboard

import (
	"context"
	"errors"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/wisehosting/wisehosting/caddymodules/api"
	"github.com/wisehosting/wisehosting/internal/accounts"
	"github.com/wisehosting/wisehosting/internal/deploys"
	"github.com/wisehosting/wisehosting/internal/errs"
	"github.com/wisehosting/wisehosting/internal/events"
	"github.com/wisehosting/wisehosting/internal/gitconn"
	"github.com/wisehosting/wisehosting/internal/gitproviders"
	"github.com/wisehosting/wisehosting/internal/oauthlogin"
)

// provisionGit builds the git connection service (after provisionAuth:
// it uses the OAuth providers) and reports deployment statuses to the
// providers (until Cleanup).
func (h *Handler) provisionGit() {
	h.statusStop = h.wh.Events().Subscribe(h.reportStatus)
	h.git = &gitconn.Service{Pool: h.wh.Pool(), Keyring: h.wh.Keyring(), APIURL: map[string]string{}, OAuth: map[string]gitconn.OAuthApp{},
		StatusURL: func(slug string) string {
			if h.wh.SubdomainBase == "" {
				return ""
			}
			return "https://" + slug + "." + h.wh.SubdomainBase
		}}
	h.apps.Git = h.git
	for id, s := range h.OAuth {
		if !gitproviders.Known(id) || s.BaseURL == "" {
			continue
		}
		h.git.APIURL[id] = apiRootOf(id, strings.TrimRight(s.BaseURL, "/"))
	}
	for id, p := range h.providers {
		if gitproviders.Known(id) {
			h.git.OAuth[id] = gitconn.OAuthApp{Config: p.Config(), WebURL: strings.TrimRight(h.OAuth[id].BaseURL, "/"), APIURL: h.git.APIURL[id]}
		}
	}
}

// gitRoutes: a team's git connections (token or OAuth), their
// repositories, branches and framework detection, and an app's webhook.
func (h *Handler) gitRoutes(handle func(string, http.HandlerFunc)) {
	handle("GET /api/teams/{team}/git/connections", h.authed(h.listConnections))
	handle("POST /api/teams/{team}/git/connections", h.authed(h.createConnection))
	handle("DELETE /api/teams/{team}/git/connections/{conn}", h.authed(h.deleteConnection))
	handle("GET /api/teams/{team}/git/connections/{conn}/repos", h.authed(h.listRepos))
	handle("GET /api/teams/{team}/git/connections/{conn}/branches", h.authed(h.listBranches))
	handle("GET /api/teams/{team}/git/connections/{conn}/detect", h.authed(h.detectFramework))
	handle("GET /api/teams/{team}/git/oauth/{provider}", h.authed(h.connectOAuth))
	handle("GET /oauth/{provider}/callback/connect", h.connectCallback)
	handle("GET /api/apps/{app}/hook", h.authed(h.getHook))
	handle("POST /api/apps/{app}/hook", h.authed(h.installHook))
	handle("PUT /api/apps/{app}/git-token", h.authed(h.setGitToken))
	handle("DELETE /api/apps/{app}/git-token", h.authed(h.deleteGitToken))
}

// apiRootOf is the REST root of a self-hosted provider at base (the
// sign-in configuration's base_url).
func apiRootOf(provider, base string) string {
	switch provider {
	case gitproviders.GitHub:
		return base + "/api/v3"
	case gitproviders.GitLab:
		return base + "/api/v4"
	case gitproviders.Bitbucket:
		return base + "/2.0"
	case gitproviders.Codeberg:
		return base + "/api/v1"
	}
	return base
}

// Cleanup stops reporting deployments to providers.
func (h *Handler) Cleanup() error {
	if h.statusStop != nil {
		h.statusStop()
	}
	return nil
}

// gitFail answers an error of a git connection call: a field error, a
// provider's refusal (with Retry-After when it rate-limits), or the
// generic failure.
func (h *Handler) gitFail(w http.ResponseWriter, what string, err error) {
	var pe *gitproviders.Error
	if errors.As(err, &pe) {
		if pe.RetryAfter > 0 {
			w.Header().Set("Retry-After", strconv.Itoa(int(pe.RetryAfter.Round(time.Second).Seconds())))
		}
		api.WriteError(w, pe.Status, pe.Msg)
	} else {
		h.fail(w, what, err)
	}
}

func (h *Handler) listConnections(w http.ResponseWriter, r *http.Request) {
	team, ok := h.teamRole(w, r, accounts.RoleMember)
	if !ok {
		return
	}
	cs, err := h.git.List(r.Context(), team)
	if err != nil {
		h.gitFail(w, "listing git connections", err)
		return
	}
	api.WriteJSON(w, http.StatusOK, map[string]any{"connections": cs})
}

// createConnection stores a pasted personal access token after checking
// it with the provider. The token is never shown again.
func (h *Handler) createConnection(w http.ResponseWriter, r *http.Request) {
	team, ok := h.teamRole(w, r, accounts.RoleAdmin)
	if !ok {
		return
	}
	var in struct {
		Provider string `json:"provider"`
		Token    string `json:"token"`
		APIURL   string `json:"api_url"`
	}
	if !api.Decode(w, r, &in) {
		return
	}
	c, err := h.git.Connect(r.Context(), team, principal(r).UserID, in.Provider, in.APIURL, "token", gitconn.Tokens{Access: in.Token},
		func(c gitconn.Connection) accounts.Entry {
			return entry(r, team, "git_connection.create", c.Provider+":"+c.Account, map[string]any{"connection_id": c.ID, "method": "token"})
		})
	if err != nil {
		h.gitFail(w, "connecting the provider", err)
		return
	}
	api.WriteJSON(w, http.StatusCreated, c)
}

// teamConnection loads the path's connection of the path's team.
func (h *Handler) teamConnection(w http.ResponseWriter, r *http.Request, min string) (gitconn.Connection, bool) {
	team, ok := h.teamRole(w, r, min)
	if !ok {
		return gitconn.Connection{}, false
	}
	c, err := h.git.Get(r.Context(), team, pathID(r, "conn"))
	if err != nil {
		h.gitFail(w, "loading the git connection", err)
		return c, false
	}
	return c, true
}

func (h *Handler) deleteConnection(w http.ResponseWriter, r *http.Request) {
	c, ok := h.teamConnection(w, r, accounts.RoleAdmin)
	if !ok {
		return
	}
	warnings, err := h.git.Delete(r.Context(), c.TeamID, c.ID)
	if err != nil {
		h.gitFail(w, "removing the git connection", err)
		return
	}
	if warnings == nil {
		warnings = []string{}
	}
	h.record(r, c.TeamID, "git_connection.delete", c.Provider+":"+c.Account, map[string]any{"connection_id": c.ID, "warnings": warnings})
	api.WriteJSON(w, http.StatusOK, map[string]any{"ok": true, "warnings": warnings})
}

func (h *Handler) listRepos(w http.ResponseWriter, r *http.Request) {
	c, ok := h.teamConnection(w, r, accounts.RoleMember)
	if !ok {
		return
	}
	q := r.URL.Query()
	page, _ := strconv.Atoi(q.Get("page"))
	per, _ := strconv.Atoi(q.Get("per_page"))
	out, err := h.git.Repos(r.Context(), c, q.Get("q"), page, per)
	if err != nil {
		h.gitFail(w, "listing repositories", err)
		return
	}
	api.WriteJSON(w, http.StatusOK, out)
}

func (h *Handler) listBranches(w http.ResponseWriter, r *http.Request) {
	c, ok := h.teamConnection(w, r, accounts.RoleMember)
	if !ok {
		return
	}
	bs, err := h.git.Branches(r.Context(), c, r.URL.Query().Get("repo"))
	if err != nil {
		h.gitFail(w, "listing branches", err)
		return
	}
	api.WriteJSON(w, http.StatusOK, map[string]any{"branches": bs})
}

func (h *Handler) detectFramework(w http.ResponseWriter, r *http.Request) {
	c, ok := h.teamConnection(w, r, accounts.RoleMember)
	if !ok {
		return
	}
	q := r.URL.Query()
	fw, err := h.git.Detect(r.Context(), c, q.Get("repo"), q.Get("branch"))
	if err != nil {
		h.gitFail(w, "detecting the framework", err)
		return
	}
	api.WriteJSON(w, http.StatusOK, map[string]any{"framework": fw})
}

// hookView is an app's webhook without its secret.
func (h *Handler) hookView(app deploys.App) gitconn.Hook {
	provider := app.GitProvider
	if provider == "" {
		provider = gitproviders.GitHub
	}
	url := gitconn.HookURL(h.publicURL(), provider, app.ID)
	hk := gitconn.Hook{URL: url, Provider: provider, Installed: app.HookID != ""}
	if !hk.Installed {
		hk.Steps = gitconn.Steps(provider, url)
	}
	return hk
}

// publicURL is the control plane's address for providers' deliveries.
func (h *Handler) publicURL() string { return strings.TrimRight(h.wh.PublicURL, "/") }

func (h *Handler) getHook(w http.ResponseWriter, r *http.Request) {
	app, ok := h.appAccess(w, r, accounts.RoleMember)
	if !ok {
		return
	}
	api.WriteJSON(w, http.StatusOK, h.hookView(app))
}

// installHook (re)creates the app's webhook with a fresh secret: at the
// provider when the app has a connection that may, else the secret is
// shown once with the steps to add the hook by hand. Either way the old
// secret stops working (rotation).
func (h *Handler) installHook(w http.ResponseWriter, r *http.Request) {
	app, ok := h.appAccess(w, r, accounts.RoleAdmin)
	if !ok {
		return
	}
	if app.PreviewOf != 0 {
		api.WriteError(w, http.StatusConflict, "a preview uses its app's webhook")
		return
	}
	if h.publicURL() == "" {
		api.WriteError(w, http.StatusConflict, "the control plane has no public_url: providers would not know where to deliver")
		return
	}
	if app.GitProvider == "" {
		api.WriteJSON(w, http.StatusUnprocessableEntity, map[string]string{"field": "git_provider",
			"error": "set the app's git_provider (github, gitlab, bitbucket or codeberg) first"})
		return
	}
	hk, err := h.git.InstallHook(r.Context(), app, h.publicURL())
	if err != nil {
		h.gitFail(w, "installing the webhook", err)
		return
	}
	h.record(r, app.TeamID, "app.hook_rotate", app.Slug, map[string]any{"installed": hk.Installed, "reason": hk.Reason})
	api.WriteJSON(w, http.StatusOK, hk)
}

// setGitToken stores an app-level deploy token (write-only) that clones
// the app's private repository instead of its connection's token.
func (h *Handler) setGitToken(w http.ResponseWriter, r *http.Request) {
	app, ok := h.appAccess(w, r, accounts.RoleAdmin)
	if !ok {
		return
	}
	var in struct {
		Token string `json:"token"`
	}
	if !api.Decode(w, r, &in) {
		return
	}
	err := h.apps.SetGitToken(r.Context(), app.ID, in.Token, func(int64) accounts.Entry {
		return entry(r, app.TeamID, "app.git_token_set", app.Slug, nil)
	})
	if err != nil {
		h.gitFail(w, "saving the token", err)
		return
	}
	api.WriteJSON(w, http.StatusOK, map[string]any{"ok": true})
}

func (h *Handler) deleteGitToken(w http.ResponseWriter, r *http.Request) {
	app, ok := h.appAccess(w, r, accounts.RoleAdmin)
	if !ok {
		return
	}
	err := h.apps.RemoveGitToken(r.Context(), app.ID, func(int64) accounts.Entry {
		return entry(r, app.TeamID, "app.git_token_delete", app.Slug, nil)
	})
	h.answer(w, http.StatusOK, "removing the token", map[string]any{"ok": true}, err)
}

// statusTimeout bounds one commit status call.
const statusTimeout = 20 * time.Second

// reportStatus posts a deployment's progress to its provider as a commit
// status: pending at its first progress, then success with the app's URL
// or failure. It runs off the event bus's goroutine.
func (h *Handler) reportStatus(e events.Event) {
	var state string
	switch e.Kind {
	case events.DeploymentStarted:
		state = gitproviders.StatusPending
	case events.DeploymentFinished:
		state = gitproviders.StatusSuccess
	case events.DeploymentFailed:
		state = gitproviders.StatusFailure
	default:
		return
	}
	dep, _ := e.Data["deployment_id"].(int64)
	if dep == 0 {
		return
	}
	if state == gitproviders.StatusPending && !h.pending.first(dep) {
		return
	}
	go func() {
		ctx, cancel := context.WithTimeout(h.wh.Context(), statusTimeout)
		defer cancel()
		if err := h.git.ReportDeployment(ctx, dep, state); err != nil {
			h.logger.Warn("dashboard: reporting a deployment to its git provider", zap.Int64("deployment", dep), zap.String("state", state), zap.Error(err))
		}
	}()
}

// seenSet remembers the deployments already reported pending (bounded).
type seenSet struct {
	mu   sync.Mutex
	ids  map[int64]struct{}
	fifo []int64
}

func (s *seenSet) first(id int64) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ids == nil {
		s.ids = map[int64]struct{}{}
	}
	if _, ok := s.ids[id]; ok {
		return false
	}
	s.ids[id] = struct{}{}
	s.fifo = append(s.fifo, id)
	if len(s.fifo) > 1024 {
		delete(s.ids, s.fifo[0])
		s.fifo = s.fifo[1:]
	}
	return true
}

// connectOAuth starts connecting a provider to the team with OAuth (the
// sign-in application, asking for repository scopes): the browser goes to
// the provider and comes back to /oauth/<provider>/callback/connect.
func (h *Handler) connectOAuth(w http.ResponseWriter, r *http.Request) {
	team, ok := h.teamRole(w, r, accounts.RoleAdmin)
	if !ok {
		return
	}
	p := h.providers[r.PathValue("provider")]
	if p == nil || !gitproviders.Known(p.ID) {
		api.WriteJSON(w, http.StatusUnprocessableEntity, map[string]string{"field": "provider",
			"error": "this provider has no OAuth application configured here: paste a personal access token instead"})
		return
	}
	pending, err := h.states.BeginConnect(r.Context(), p.ID, h.redirectURI(r, p.ID)+"/connect", team, principal(r).UserID)
	if err != nil {
		h.fail(w, "starting the connection", err)
		return
	}
	h.setStateCookie(w, pending.State, int(oauthlogin.StateTTL.Seconds()))
	w.Header().Set("Cache-Control", "no-store")
	http.Redirect(w, r, p.ConnectURL(pending.State, pending.Verifier, pending.RedirectURI), http.StatusFound)
}

// connectCallback finishes an OAuth connection: the state (one-time,
// bound to this browser by its cookie and to the user and team that
// started it) is spent, the code exchanged, the grant stored encrypted.
func (h *Handler) connectCallback(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	p, pending, ok := h.oauthReturn(w, r, "connection", h.states.TakeConnect)
	if !ok {
		return
	}
	// The member who started it must still be an admin of the team.
	role, _ := h.acc.Role(ctx, &accounts.Principal{UserID: pending.UserID}, pending.TeamID)
	if !accounts.AtLeast(role, accounts.RoleAdmin) {
		oauthPage(w, http.StatusForbidden, "You are no longer an admin of this team.")
		return
	}
	tok, err := p.Exchange(ctx, r.URL.Query().Get("code"), pending.Verifier, pending.RedirectURI)
	if err != nil {
		h.logger.Warn("dashboard: OAuth code exchange for a git connection failed", zap.String("provider", p.ID), zap.Error(err))
		oauthPage(w, http.StatusBadGateway, "The connection could not be completed with "+p.Name+"; try again.")
		return
	}
	conn, err := h.git.Connect(ctx, pending.TeamID, pending.UserID, p.ID, "", "oauth",
		gitconn.Tokens{Access: tok.AccessToken, Refresh: tok.RefreshToken, Expiry: tok.Expiry}, func(conn gitconn.Connection) accounts.Entry {
			return accounts.Entry{TeamID: pending.TeamID, UserID: pending.UserID, IP: api.ClientIP(r), Action: "git_connection.create",
				Target: conn.Provider + ":" + conn.Account, Details: map[string]any{"connection_id": conn.ID, "method": "oauth"}}
		})
	if err != nil {
		var pe *gitproviders.Error
		if errors.As(err, &pe) || errs.Is(err, errs.Invalid) {
			oauthPage(w, http.StatusBadGateway, err.Error())
			return
		}
		h.logger.Error("dashboard: storing a git connection", zap.Error(err))
		oauthPage(w, http.StatusInternalServerError, "The connection could not be stored; try again.")
		return
	}
	w.Header().Set("Cache-Control", "no-store")
	http.Redirect(w, r, "/?git_connected="+strconv.FormatInt(conn.ID, 10), http.StatusSeeOther)
}
