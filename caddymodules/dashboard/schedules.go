package dashboard

import (
	"net/http"
	"strconv"

	"github.com/wisehosting/wisehosting/caddymodules/api"
	"github.com/wisehosting/wisehosting/internal/accounts"
	"github.com/wisehosting/wisehosting/internal/cron"
	"github.com/wisehosting/wisehosting/internal/deploys"
	"github.com/wisehosting/wisehosting/internal/volumes"
)

// stateRoutes adds the endpoints of an app's persistent volumes and
// scheduled jobs (internal/volumes, internal/cron).
func (h *Handler) stateRoutes(handle func(string, http.HandlerFunc)) {
	handle("GET /api/apps/{app}/volumes", h.authed(h.listVolumes))
	handle("POST /api/apps/{app}/volumes", h.authed(h.createVolume))
	handle("DELETE /api/apps/{app}/volumes/{volume}", h.authed(h.releaseVolume))
	handle("GET /api/teams/{team}/volumes", h.authed(h.teamVolumes))
	handle("GET /api/apps/{app}/cron", h.authed(h.listCron))
	handle("POST /api/apps/{app}/cron", h.authed(h.createCron))
	handle("GET /api/apps/{app}/cron/{job}", h.authed(h.getCron))
	handle("PATCH /api/apps/{app}/cron/{job}", h.authed(h.updateCron))
	handle("DELETE /api/apps/{app}/cron/{job}", h.authed(h.deleteCron))
	handle("GET /api/apps/{app}/cron/{job}/runs", h.authed(h.cronRuns))
	handle("POST /api/apps/{app}/cron/{job}/runs", h.authed(h.runCron))
}

func (h *Handler) listVolumes(w http.ResponseWriter, r *http.Request) {
	app, ok := h.appAccess(w, r, accounts.RoleMember)
	if !ok {
		return
	}
	list, err := h.volumes.List(r.Context(), app.ID)
	if err != nil {
		h.fail(w, "listing volumes", err)
		return
	}
	api.WriteJSON(w, http.StatusOK, map[string]any{"volumes": list, "grace_seconds": int64(h.volumes.Grace.Seconds())})
}

func (h *Handler) createVolume(w http.ResponseWriter, r *http.Request) {
	app, in, ok := appRequest[volumes.New](h, w, r, accounts.RoleAdmin)
	if !ok {
		return
	}
	v, err := h.volumes.Create(r.Context(), app.TeamID, app.ID, in, func(v volumes.Volume) accounts.Entry {
		return entry(r, app.TeamID, "volume.create", app.Slug, map[string]any{"volume_id": v.ID,
			"name": v.Name, "mount_path": v.MountPath, "size_mb": v.SizeMB})
	})
	h.answer(w, http.StatusCreated, "creating the volume", v, err)
}

// releaseVolume detaches a volume from its app; its data is removed after
// the grace period (remove_after in the answer).
func (h *Handler) releaseVolume(w http.ResponseWriter, r *http.Request) {
	app, ok := h.appAccess(w, r, accounts.RoleAdmin)
	if !ok {
		return
	}
	v, err := h.volumes.Release(r.Context(), app.TeamID, app.ID, pathID(r, "volume"), func(v volumes.Volume) accounts.Entry {
		return entry(r, app.TeamID, "volume.release", app.Slug, map[string]any{"volume_id": v.ID, "name": v.Name})
	})
	h.answer(w, http.StatusOK, "releasing the volume", v, err)
}

// teamVolumes lists a team's volumes, released ones with their removal
// time, until they are removed.
func (h *Handler) teamVolumes(w http.ResponseWriter, r *http.Request) {
	team, ok := h.teamRole(w, r, accounts.RoleMember)
	if !ok {
		return
	}
	list, err := h.volumes.ListTeam(r.Context(), team)
	h.answer(w, http.StatusOK, "listing volumes", map[string]any{"volumes": list}, err)
}

func (h *Handler) listCron(w http.ResponseWriter, r *http.Request) {
	app, ok := h.appAccess(w, r, accounts.RoleMember)
	if !ok {
		return
	}
	list, err := h.cron.List(r.Context(), app.ID)
	h.answer(w, http.StatusOK, "listing scheduled jobs", map[string]any{"cron_jobs": list}, err)
}

// cronEntry is the audit record of a change of a scheduled job.
func cronEntry(r *http.Request, app deploys.App, action string) accounts.Hook[cron.Job] {
	return func(j cron.Job) accounts.Entry {
		details := map[string]any{"cron_job_id": j.ID, "name": j.Name, "schedule": j.Schedule, "timezone": j.Timezone}
		if action == "cron.update" {
			details["enabled"] = j.Enabled
		}
		return entry(r, app.TeamID, action, app.Slug, details)
	}
}

func (h *Handler) createCron(w http.ResponseWriter, r *http.Request) {
	app, in, ok := appRequest[cron.Spec](h, w, r, accounts.RoleAdmin)
	if !ok {
		return
	}
	j, err := h.cron.Create(r.Context(), app.ID, in, cronEntry(r, app, "cron.create"))
	h.answer(w, http.StatusCreated, "creating the scheduled job", j, err)
}

func (h *Handler) getCron(w http.ResponseWriter, r *http.Request) {
	app, ok := h.appAccess(w, r, accounts.RoleMember)
	if !ok {
		return
	}
	j, err := h.cron.Get(r.Context(), app.ID, pathID(r, "job"))
	h.answer(w, http.StatusOK, "loading the scheduled job", j, err)
}

func (h *Handler) updateCron(w http.ResponseWriter, r *http.Request) {
	app, in, ok := appRequest[cron.Spec](h, w, r, accounts.RoleAdmin)
	if !ok {
		return
	}
	j, err := h.cron.Update(r.Context(), app.ID, pathID(r, "job"), in, cronEntry(r, app, "cron.update"))
	h.answer(w, http.StatusOK, "changing the scheduled job", j, err)
}

func (h *Handler) deleteCron(w http.ResponseWriter, r *http.Request) {
	app, ok := h.appAccess(w, r, accounts.RoleAdmin)
	if !ok {
		return
	}
	err := h.cron.Delete(r.Context(), app.ID, pathID(r, "job"), func(id int64) accounts.Entry {
		return entry(r, app.TeamID, "cron.delete", app.Slug, map[string]any{"cron_job_id": id})
	})
	h.answer(w, http.StatusOK, "deleting the scheduled job", map[string]any{"status": "deleted"}, err)
}

func (h *Handler) cronRuns(w http.ResponseWriter, r *http.Request) {
	app, ok := h.appAccess(w, r, accounts.RoleMember)
	if !ok {
		return
	}
	limit, _ := strconv.Atoi(r.URL.Query().Get("limit"))
	runs, err := h.cron.Runs(r.Context(), app.ID, pathID(r, "job"), limit)
	h.answer(w, http.StatusOK, "listing runs", map[string]any{"runs": runs}, err)
}

// runCron starts a run now, outside the schedule.
func (h *Handler) runCron(w http.ResponseWriter, r *http.Request) {
	app, ok := h.appAccess(w, r, accounts.RoleAdmin)
	if !ok {
		return
	}
	run, err := h.cron.RunNow(r.Context(), app.ID, pathID(r, "job"), func(run cron.Run) accounts.Entry {
		return entry(r, app.TeamID, "cron.run", app.Slug, map[string]any{"cron_job_id": run.JobID, "run_id": run.ID})
	})
	h.answer(w, http.StatusAccepted, "starting the run", run, err)
}
