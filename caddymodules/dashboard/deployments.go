package dashboard

import (
	"errors"
	"net/http"

	"github.com/jackc/pgx/v5"

	"github.com/wisehosting/wisehosting/caddymodules/api"
	"github.com/wisehosting/wisehosting/internal/accounts"
	"github.com/wisehosting/wisehosting/internal/deploys"
	"github.com/wisehosting/wisehosting/internal/jobs"
	"github.com/wisehosting/wisehosting/internal/replicas"
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
	var c jobs.Cancelled
	err := pgx.BeginFunc(r.Context(), h.wh.Pool(), func(tx pgx.Tx) error {
		var n int
		if err := tx.QueryRow(r.Context(), "SELECT count(*) FROM deployments WHERE id = $1 AND app_id = $2", dep, app.ID).Scan(&n); err != nil {
			return err
		}
		if n == 0 {
			return pgx.ErrNoRows
		}
		var err error
		if c, err = deploys.Cancel(r.Context(), tx, dep, "cancelled by "+principal(r).Email); err != nil {
			return err
		}
		return h.audit1(r.Context(), tx, r, app.TeamID, "deployment.cancel", app.Slug, map[string]any{"deployment_id": dep, "job_id": c.Job.ID})
	})
	switch {
	case errors.Is(err, jobs.ErrNoActiveJob), errors.Is(err, jobs.ErrNotCancellable):
		api.WriteError(w, http.StatusConflict, "the deployment has already ended")
		return
	case err != nil:
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
	var n int
	err := pgx.BeginFunc(r.Context(), h.wh.Pool(), func(tx pgx.Tx) error {
		var err error
		if n, err = replicas.Restart(r.Context(), tx, app.ID); err != nil {
			return err
		}
		return h.audit1(r.Context(), tx, r, app.TeamID, "app.restart", app.Slug, map[string]any{"app_id": app.ID, "instances": n})
	})
	if err != nil {
		h.fail(w, "restarting the app", err)
		return
	}
	api.WriteJSON(w, http.StatusAccepted, map[string]any{"status": "restarting", "instances": n})
}
