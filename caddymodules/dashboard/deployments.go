package dashboard

import (
	"net/http"

	"github.com/wisehosting/wisehosting/caddymodules/api"
	"github.com/wisehosting/wisehosting/internal/accounts"
	"github.com/wisehosting/wisehosting/internal/jobs"
)

// cancelDeployment stops a deployment in progress: a queued one ends at
// once; one a worker builds or starts is stopped there and ends when the
// worker reports (202 with "requested"). The app keeps what served it.
func (h *Handler) cancelDeployment(w http.ResponseWriter, r *http.Request) {
	app, ok := h.appAccess(w, r, accounts.RoleMember)
	if !ok {
		return
	}
	dep := pathID(r, "dep")
	c, err := h.apps.Cancel(r.Context(), app, dep, "cancelled by "+principal(r).Email, func(c jobs.Cancelled) accounts.Entry {
		return entry(r, app.TeamID, "deployment.cancel", app.Slug, map[string]any{"deployment_id": dep, "job_id": c.Job.ID})
	})
	if err != nil {
		h.fail(w, "cancelling the deployment", err)
		return
	}
	if c.Ended {
		api.WriteJSON(w, http.StatusOK, map[string]any{"deployment_id": dep, "status": "cancelled"})
		return
	}
	api.WriteJSON(w, http.StatusAccepted, map[string]any{"deployment_id": dep, "status": "cancel requested"})
}

// restartApp restarts the app's instances one at a time (202): each
// leaves routing while it restarts when another one serves.
func (h *Handler) restartApp(w http.ResponseWriter, r *http.Request) {
	app, ok := h.appAccess(w, r, accounts.RoleMember)
	if !ok {
		return
	}
	n, err := h.apps.Restart(r.Context(), app, func(n int) accounts.Entry {
		return entry(r, app.TeamID, "app.restart", app.Slug, map[string]any{"app_id": app.ID, "instances": n})
	})
	h.answer(w, http.StatusAccepted, "restarting the app", map[string]any{"status": "restarting", "instances": n}, err)
}
