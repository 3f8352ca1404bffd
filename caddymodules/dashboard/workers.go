package dashboard

import (
	"net/http"

	"github.com/wisehosting/wisehosting/caddymodules/api"
)

// DefaultNoWorkerHint is what the dashboard says when no worker is online
// and no_worker_hint is not set.
const DefaultNoWorkerHint = "Deployments wait in the queue until a worker is online. On the worker host: " +
	"wisehosting worker add NAME --zone ZONE --wg-ip MESH_IP on the control plane, then " +
	"WISEHOSTING_WORKER_KEY=whk_… wisehosting-agent -cp PUBLIC_URL -mesh-ip MESH_IP -zone ZONE (README: The worker agent)."

// workerStatus tells any signed-in person whether deploys can run now:
// how many workers take deploys and, when none does, what to do about it.
func (h *Handler) workerStatus(w http.ResponseWriter, r *http.Request) {
	n, err := h.workers.Online(r.Context())
	if err != nil {
		h.fail(w, "counting workers", err)
		return
	}
	out := map[string]any{"online": n}
	if n == 0 {
		out["message"] = h.noWorkerHint
	}
	api.WriteJSON(w, http.StatusOK, out)
}

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
	wk, err := h.workers.Drain(r.Context(), pathID(r, "worker"), draining)
	if err != nil {
		h.fail(w, "changing the worker", err)
		return
	}
	action := "worker.resume"
	if draining {
		action = "worker.drain"
	}
	h.record(r, 0, action, wk.Name, map[string]any{"worker_id": wk.ID})
	api.WriteJSON(w, http.StatusOK, map[string]any{"id": wk.ID, "name": wk.Name, "status": wk.Status})
}
