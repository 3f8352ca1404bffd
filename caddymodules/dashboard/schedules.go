package dashboard

import (
	"net/http"
	"strconv"

	"github.com/jackc/pgx/v5"

	"github.com/wisehosting/wisehosting/caddymodules/api"
	"github.com/wisehosting/wisehosting/internal/accounts"
	"github.com/wisehosting/wisehosting/internal/cron"
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
	list, err := volumes.List(r.Context(), h.wh.Pool(), app.ID)
	if err != nil {
		h.fail(w, "listing volumes", err)
		return
	}
	if list == nil {
		list = []volumes.Volume{}
	}
	api.WriteJSON(w, http.StatusOK, map[string]any{"volumes": list, "grace_seconds": int64(h.wh.VolumeGracePeriod().Seconds())})
}

func (h *Handler) createVolume(w http.ResponseWriter, r *http.Request) {
	app, ok := h.appAccess(w, r, accounts.RoleAdmin)
	if !ok {
		return
	}
	var in volumes.New
	if !decode(w, r, &in) {
		return
	}
	var v volumes.Volume
	err := pgx.BeginFunc(r.Context(), h.wh.Pool(), func(tx pgx.Tx) error {
		var err error
		if v, err = volumes.Create(r.Context(), tx, app.TeamID, app.ID, in); err != nil {
			return err
		}
		return h.audit1(r.Context(), tx, r, app.TeamID, "volume.create", app.Slug, map[string]any{"volume_id": v.ID,
			"name": v.Name, "mount_path": v.MountPath, "size_mb": v.SizeMB})
	})
	if err != nil {
		h.fail(w, "creating the volume", err)
		return
	}
	api.WriteJSON(w, http.StatusCreated, v)
}

// releaseVolume detaches a volume from its app; its data is removed after
// the grace period (remove_after in the answer).
func (h *Handler) releaseVolume(w http.ResponseWriter, r *http.Request) {
	app, ok := h.appAccess(w, r, accounts.RoleAdmin)
	if !ok {
		return
	}
	var v volumes.Volume
	err := pgx.BeginFunc(r.Context(), h.wh.Pool(), func(tx pgx.Tx) error {
		var err error
		if v, err = volumes.Release(r.Context(), tx, app.TeamID, app.ID, pathID(r, "volume"), h.wh.VolumeGracePeriod()); err != nil {
			return err
		}
		return h.audit1(r.Context(), tx, r, app.TeamID, "volume.release", app.Slug, map[string]any{"volume_id": v.ID, "name": v.Name})
	})
	if err != nil {
		h.fail(w, "releasing the volume", err)
		return
	}
	api.WriteJSON(w, http.StatusOK, v)
}

// teamVolumes lists a team's volumes, released ones with their removal
// time, until they are removed.
func (h *Handler) teamVolumes(w http.ResponseWriter, r *http.Request) {
	team, ok := h.teamRole(w, r, accounts.RoleMember)
	if !ok {
		return
	}
	list, err := volumes.ListTeam(r.Context(), h.wh.Pool(), team)
	if err != nil {
		h.fail(w, "listing volumes", err)
		return
	}
	if list == nil {
		list = []volumes.Volume{}
	}
	api.WriteJSON(w, http.StatusOK, map[string]any{"volumes": list})
}

func (h *Handler) listCron(w http.ResponseWriter, r *http.Request) {
	app, ok := h.appAccess(w, r, accounts.RoleMember)
	if !ok {
		return
	}
	list, err := cron.List(r.Context(), h.wh.Pool(), app.ID)
	if err != nil {
		h.fail(w, "listing scheduled jobs", err)
		return
	}
	if list == nil {
		list = []cron.Job{}
	}
	api.WriteJSON(w, http.StatusOK, map[string]any{"cron_jobs": list})
}

func (h *Handler) createCron(w http.ResponseWriter, r *http.Request) {
	app, ok := h.appAccess(w, r, accounts.RoleAdmin)
	if !ok {
		return
	}
	var in cron.Spec
	if !decode(w, r, &in) {
		return
	}
	var j cron.Job
	err := pgx.BeginFunc(r.Context(), h.wh.Pool(), func(tx pgx.Tx) error {
		var err error
		if j, err = cron.Create(r.Context(), tx, app.ID, in); err != nil {
			return err
		}
		return h.audit1(r.Context(), tx, r, app.TeamID, "cron.create", app.Slug, map[string]any{"cron_job_id": j.ID,
			"name": j.Name, "schedule": j.Schedule, "timezone": j.Timezone})
	})
	if err != nil {
		h.fail(w, "creating the scheduled job", err)
		return
	}
	api.WriteJSON(w, http.StatusCreated, j)
}

func (h *Handler) getCron(w http.ResponseWriter, r *http.Request) {
	app, ok := h.appAccess(w, r, accounts.RoleMember)
	if !ok {
		return
	}
	j, err := cron.Get(r.Context(), h.wh.Pool(), app.ID, pathID(r, "job"))
	if err != nil {
		h.fail(w, "loading the scheduled job", err)
		return
	}
	api.WriteJSON(w, http.StatusOK, j)
}

func (h *Handler) updateCron(w http.ResponseWriter, r *http.Request) {
	app, ok := h.appAccess(w, r, accounts.RoleAdmin)
	if !ok {
		return
	}
	var in cron.Spec
	if !decode(w, r, &in) {
		return
	}
	var j cron.Job
	err := pgx.BeginFunc(r.Context(), h.wh.Pool(), func(tx pgx.Tx) error {
		var err error
		if j, err = cron.Update(r.Context(), tx, app.ID, pathID(r, "job"), in); err != nil {
			return err
		}
		return h.audit1(r.Context(), tx, r, app.TeamID, "cron.update", app.Slug, map[string]any{"cron_job_id": j.ID,
			"name": j.Name, "schedule": j.Schedule, "timezone": j.Timezone, "enabled": j.Enabled})
	})
	if err != nil {
		h.fail(w, "changing the scheduled job", err)
		return
	}
	api.WriteJSON(w, http.StatusOK, j)
}

func (h *Handler) deleteCron(w http.ResponseWriter, r *http.Request) {
	app, ok := h.appAccess(w, r, accounts.RoleAdmin)
	if !ok {
		return
	}
	id := pathID(r, "job")
	err := pgx.BeginFunc(r.Context(), h.wh.Pool(), func(tx pgx.Tx) error {
		if err := cron.Delete(r.Context(), tx, app.ID, id); err != nil {
			return err
		}
		return h.audit1(r.Context(), tx, r, app.TeamID, "cron.delete", app.Slug, map[string]any{"cron_job_id": id})
	})
	if err != nil {
		h.fail(w, "deleting the scheduled job", err)
		return
	}
	api.WriteJSON(w, http.StatusOK, map[string]any{"status": "deleted"})
}

func (h *Handler) cronRuns(w http.ResponseWriter, r *http.Request) {
	app, ok := h.appAccess(w, r, accounts.RoleMember)
	if !ok {
		return
	}
	id := pathID(r, "job")
	if _, err := cron.Get(r.Context(), h.wh.Pool(), app.ID, id); err != nil {
		h.fail(w, "loading the scheduled job", err)
		return
	}
	limit, _ := strconv.Atoi(r.URL.Query().Get("limit"))
	runs, err := cron.Runs(r.Context(), h.wh.Pool(), app.ID, id, limit)
	if err != nil {
		h.fail(w, "listing runs", err)
		return
	}
	if runs == nil {
		runs = []cron.Run{}
	}
	api.WriteJSON(w, http.StatusOK, map[string]any{"runs": runs})
}

// runCron starts a run now, outside the schedule.
func (h *Handler) runCron(w http.ResponseWriter, r *http.Request) {
	app, ok := h.appAccess(w, r, accounts.RoleAdmin)
	if !ok {
		return
	}
	var run cron.Run
	err := pgx.BeginFunc(r.Context(), h.wh.Pool(), func(tx pgx.Tx) error {
		var err error
		if run, err = cron.RunNow(r.Context(), tx, app.ID, pathID(r, "job")); err != nil {
			return err
		}
		return h.audit1(r.Context(), tx, r, app.TeamID, "cron.run", app.Slug, map[string]any{"cron_job_id": run.JobID, "run_id": run.ID})
	})
	if err != nil {
		h.fail(w, "starting the run", err)
		return
	}
	api.WriteJSON(w, http.StatusAccepted, run)
}
