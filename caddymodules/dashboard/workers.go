package dashboard

import (
	"errors"
	"net/http"

	"github.com/jackc/pgx/v5"

	"github.com/wisehosting/wisehosting/caddymodules/api"
	"github.com/wisehosting/wisehosting/internal/workers"
)

// drainWorker and resumeWorker stop and restart new placements on a
// worker (instance administrators, from a session): the same as
// `wisehosting worker drain|resume` and the internal API.
func (h *Handler) drainWorker(w http.ResponseWriter, r *http.Request)  { h.setDraining(w, r, true) }
func (h *Handler) resumeWorker(w http.ResponseWriter, r *http.Request) { h.setDraining(w, r, false) }

func (h *Handler) setDraining(w http.ResponseWriter, r *http.Request, draining bool) {
	p := principal(r)
	if !p.IsAdmin || p.SessionID == 0 {
		api.WriteError(w, http.StatusForbidden, "only instance administrators, signed in, manage workers")
		return
	}
	var name string
	err := h.wh.Pool().QueryRow(r.Context(), "SELECT name FROM workers WHERE id = $1", pathID(r, "worker")).Scan(&name)
	if err != nil {
		h.fail(w, "loading the worker", err)
		return
	}
	wk, err := workers.SetDraining(r.Context(), h.wh.Pool(), name, draining)
	if errors.Is(err, pgx.ErrNoRows) {
		api.WriteError(w, http.StatusConflict, "a revoked worker cannot be drained or resumed")
		return
	}
	if err != nil {
		h.fail(w, "changing the worker", err)
		return
	}
	action := "worker.resume"
	if draining {
		action = "worker.drain"
	}
	h.audit1(r.Context(), h.wh.Pool(), r, 0, action, name, map[string]any{"worker_id": wk.ID})
	api.WriteJSON(w, http.StatusOK, map[string]any{"id": wk.ID, "name": wk.Name, "status": wk.Status})
}
