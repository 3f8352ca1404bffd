package dashboard

import (
	"errors"
	"net/http"

	"go.uber.org/zap"

	"github.com/wisehosting/wisehosting/caddymodules/api"
	"github.com/wisehosting/wisehosting/internal/accounts"
	"github.com/wisehosting/wisehosting/internal/apps"
	"github.com/wisehosting/wisehosting/internal/deploys"
	"github.com/wisehosting/wisehosting/internal/domains"
)

// listTokens lists the caller's API tokens (names and prefixes only). A
// token lists only the tokens of its own team.
func (h *Handler) listTokens(w http.ResponseWriter, r *http.Request) {
	p := principal(r)
	toks, err := h.acc.Tokens(r.Context(), p.UserID)
	if err != nil {
		h.fail(w, "listing tokens", err)
		return
	}
	if p.TokenTeam != 0 {
		mine := toks[:0]
		for _, t := range toks {
			if t.TeamID == p.TokenTeam {
				mine = append(mine, t)
			}
		}
		toks = mine
	}
	api.WriteJSON(w, http.StatusOK, map[string]any{"tokens": toks})
}

// revokeToken revokes one of the caller's API tokens (a session only:
// tokens do not manage tokens).
func (h *Handler) revokeToken(w http.ResponseWriter, r *http.Request) {
	p := principal(r)
	if p.SessionID == 0 {
		api.WriteError(w, http.StatusForbidden, "API tokens are managed from a signed-in session")
		return
	}
	team, err := h.acc.RevokeToken(r.Context(), p.UserID, pathID(r, "id"))
	if errors.Is(err, accounts.ErrForbidden) {
		api.WriteError(w, http.StatusNotFound, "not found")
		return
	}
	if err != nil {
		h.fail(w, "revoking the token", err)
		return
	}
	h.record(r, team, "token.revoke", "", map[string]any{"token_id": pathID(r, "id")})
	api.WriteJSON(w, http.StatusOK, map[string]any{"ok": true})
}

// deleteApp removes an app: at once when it never ran, else its worker
// removes its containers first (202, status "deleting").
func (h *Handler) deleteApp(w http.ResponseWriter, r *http.Request) {
	app, ok := h.appAccess(w, r, accounts.RoleAdmin)
	if !ok {
		return
	}
	if err := apps.Deletable(app); err != nil {
		h.fail(w, "deleting the app", err)
		return
	}
	// Its webhook goes first, while the connection's token is at hand.
	if err := h.git.RemoveHook(r.Context(), app); err != nil {
		h.logger.Warn("dashboard: removing the webhook of a deleted app", zap.Int64("app", app.ID), zap.Error(err))
	}
	d, err := h.apps.Delete(r.Context(), app, "the app was deleted by "+principal(r).Email, func(d deploys.Deleted) accounts.Entry {
		return entry(r, app.TeamID, "app.delete", app.Slug, map[string]any{"app_id": app.ID, "jobs": d.JobIDs})
	})
	if err != nil {
		h.fail(w, "deleting the app", err)
		return
	}
	if d.Removed {
		api.WriteJSON(w, http.StatusOK, map[string]any{"status": "deleted"})
		return
	}
	api.WriteJSON(w, http.StatusAccepted, map[string]any{"status": "deleting", "job_ids": d.JobIDs})
}

// removeDomain detaches a custom domain from the app.
func (h *Handler) removeDomain(w http.ResponseWriter, r *http.Request) {
	app, d, ok := h.appDomain(w, r)
	if !ok {
		return
	}
	if err := h.domains.Remove(r.Context(), app.TeamID, d.ID); err != nil {
		h.fail(w, "removing the domain", err)
		return
	}
	h.record(r, app.TeamID, "domain.remove", d.Hostname, map[string]any{"app_id": app.ID})
	api.WriteJSON(w, http.StatusOK, map[string]any{"ok": true})
}

// appDomain loads the path's app, for a caller who is an admin of its
// team, and the path's domain if it belongs to that app (404 otherwise,
// another app's domain included).
func (h *Handler) appDomain(w http.ResponseWriter, r *http.Request) (deploys.App, domains.Domain, bool) {
	app, ok := h.appAccess(w, r, accounts.RoleAdmin)
	if !ok {
		return app, domains.Domain{}, false
	}
	d, err := h.domains.Get(r.Context(), app.TeamID, pathID(r, "domain"))
	if err != nil || d.AppID != app.ID {
		api.WriteError(w, http.StatusNotFound, "not found")
		return app, domains.Domain{}, false
	}
	return app, d, true
}
