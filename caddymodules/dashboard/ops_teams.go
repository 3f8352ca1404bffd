package dashboard

import (
	"net/http"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/wisehosting/wisehosting/caddymodules/api"
	"github.com/wisehosting/wisehosting/internal/accounts"
	"github.com/wisehosting/wisehosting/internal/deploys"
	"github.com/wisehosting/wisehosting/internal/teams"
)

// listWorkers shows the worker fleet to instance admins (users.is_admin,
// signed in with a session: API tokens belong to a team, not to the
// instance): status, drained or not, last contact, capacity against what
// their apps reserve, and what the apps used in the latest usage buckets.
func (h *Handler) listWorkers(w http.ResponseWriter, r *http.Request) {
	if !principal(r).IsAdmin {
		api.WriteError(w, http.StatusForbidden, "only instance administrators see the workers")
		return
	}
	rows, err := h.wh.Pool().Query(r.Context(), `SELECT w.id, w.name, w.zone, w.status, w.last_seen, w.agent_version, w.disk_quota,
			w.cpu_millis, w.memory_mb, w.disk_mb, w.max_jobs, w.images_bytes,
			count(a.id), COALESCE(sum(a.cpu_millis), 0), COALESCE(sum(a.memory_mb), 0), COALESCE(sum(a.disk_mb), 0),
			(SELECT count(*) FROM jobs j WHERE j.worker_id = w.id AND j.state IN ('assigned', 'running')),
			COALESCE((SELECT sum(u.cpu_pct_sum / NULLIF(u.samples, 0)) FROM usage_samples u JOIN apps x ON x.id = u.app_id
				WHERE x.worker_id = w.id AND u.bucket = (SELECT max(bucket) FROM usage_samples s WHERE s.app_id = u.app_id)
				AND u.bucket > now() - interval '15 minutes'), 0),
			COALESCE((SELECT sum(u.mem_bytes_max) FROM usage_samples u JOIN apps x ON x.id = u.app_id
				WHERE x.worker_id = w.id AND u.bucket = (SELECT max(bucket) FROM usage_samples s WHERE s.app_id = u.app_id)
				AND u.bucket > now() - interval '15 minutes'), 0)::bigint
		FROM workers w LEFT JOIN apps a ON a.worker_id = w.id AND a.status <> 'stopped'
		GROUP BY w.id ORDER BY w.name`)
	if err != nil {
		h.fail(w, "listing workers", err)
		return
	}
	type capacity struct {
		CPUMillis int `json:"cpu_millis"`
		MemoryMB  int `json:"memory_mb"`
		DiskMB    int `json:"disk_mb"`
	}
	type workerView struct {
		ID        int64      `json:"id"`
		Name      string     `json:"name"`
		Zone      string     `json:"zone"`
		Status    string     `json:"status"`
		Draining  bool       `json:"draining"`
		LastSeen  *time.Time `json:"last_seen,omitempty"`
		Version   string     `json:"agent_version"`
		DiskQuota string     `json:"disk_quota"`
		Capacity  capacity   `json:"capacity"`
		MaxJobs   int        `json:"max_jobs"`
		// ImagesBytes is the disk the worker's app images use (its last
		// report).
		ImagesBytes int64    `json:"images_bytes"`
		Apps        int      `json:"apps"`
		Reserved    capacity `json:"reserved"`
		ActiveJobs  int      `json:"active_jobs"`
		CPUPct      float64  `json:"cpu_pct"`
		MemBytes    int64    `json:"mem_bytes"`
	}
	out, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (workerView, error) {
		var v workerView
		err := row.Scan(&v.ID, &v.Name, &v.Zone, &v.Status, &v.LastSeen, &v.Version, &v.DiskQuota,
			&v.Capacity.CPUMillis, &v.Capacity.MemoryMB, &v.Capacity.DiskMB, &v.MaxJobs, &v.ImagesBytes,
			&v.Apps, &v.Reserved.CPUMillis, &v.Reserved.MemoryMB, &v.Reserved.DiskMB, &v.ActiveJobs, &v.CPUPct, &v.MemBytes)
		v.Draining = v.Status == "draining"
		return v, err
	})
	if err != nil {
		h.fail(w, "listing workers", err)
		return
	}
	if out == nil {
		out = []workerView{}
	}
	api.WriteJSON(w, http.StatusOK, map[string]any{"workers": out})
}

// createTeam makes a team with the caller as owner, on the configured
// default plan.
func (h *Handler) createTeam(w http.ResponseWriter, r *http.Request) {
	p := principal(r)
	if p.SessionID == 0 {
		api.WriteError(w, http.StatusForbidden, "teams are created from a signed-in session")
		return
	}
	var in struct {
		Name string `json:"name"`
		Slug string `json:"slug"`
	}
	if !decode(w, r, &in) {
		return
	}
	in.Name, in.Slug = strings.TrimSpace(in.Name), strings.ToLower(strings.TrimSpace(in.Slug))
	var problems []string
	if in.Name == "" || len(in.Name) > 100 {
		problems = append(problems, "name must have 1 to 100 characters")
	}
	if !deploys.ValidSlug(in.Slug) {
		problems = append(problems, "slug must be lowercase letters, digits and dashes (at most 63)")
	}
	if len(problems) > 0 {
		unprocessable(w, strings.Join(problems, "; "))
		return
	}
	plan := h.wh.PlanRegistry().Default()
	var t accounts.Team
	err := pgx.BeginFunc(r.Context(), h.wh.Pool(), func(tx pgx.Tx) error {
		var err error
		if t, err = teams.CreateOwned(r.Context(), tx, in.Name, in.Slug, plan, p.UserID, p.IsAdmin); err != nil {
			return err
		}
		return h.audit1(r.Context(), tx, r, t.ID, "team.create", t.Slug, map[string]any{"plan": plan})
	})
	if err != nil {
		h.fail(w, "creating the team", err)
		return
	}
	api.WriteJSON(w, http.StatusCreated, t)
}

func (h *Handler) listMembers(w http.ResponseWriter, r *http.Request) {
	team, ok := h.teamRole(w, r, accounts.RoleMember)
	if !ok {
		return
	}
	out, err := h.invitations().Members(r.Context(), team, principal(r).UserID)
	if err != nil {
		h.fail(w, "listing members", err)
		return
	}
	api.WriteJSON(w, http.StatusOK, map[string]any{"members": out})
}

// addMember adds an existing account, found by e-mail, to the team.
func (h *Handler) addMember(w http.ResponseWriter, r *http.Request) {
	team, in, ok := h.grantRequest(w, r)
	if !ok {
		return
	}
	myRole, _ := h.acc.Role(r.Context(), principal(r), team)
	m, err := h.invitations().Add(r.Context(), team, myRole, in.Email, in.Role, func(tx pgx.Tx, m teams.Member) error {
		return h.audit1(r.Context(), tx, r, team, "member.add", m.Email, map[string]any{"user_id": m.UserID, "role": m.Role})
	})
	if err != nil {
		h.fail(w, "adding the member", err)
		return
	}
	api.WriteJSON(w, http.StatusCreated, m)
}

// grantRequest reads {email, role} for adding someone to the path's team:
// the caller is an admin there, the role is valid (default member) and
// the caller may grant it.
func (h *Handler) grantRequest(w http.ResponseWriter, r *http.Request) (int64, grantInput, bool) {
	var in grantInput
	team, ok := h.teamRole(w, r, accounts.RoleAdmin)
	if !ok || !decode(w, r, &in) {
		return 0, in, false
	}
	if in.Role == "" {
		in.Role = accounts.RoleMember
	}
	myRole, _ := h.acc.Role(r.Context(), principal(r), team)
	switch {
	case !teams.ValidRole(in.Role):
		h.fail(w, "", teams.ErrBadRole)
		return 0, in, false
	case !teams.CanGrant(myRole, in.Role):
		h.fail(w, "", teams.ErrCannotGrant)
		return 0, in, false
	}
	return team, in, true
}

type grantInput struct {
	Email string `json:"email"`
	Role  string `json:"role"`
}

// updateMember changes a member's role (the rules: teams.Service.SetRole).
func (h *Handler) updateMember(w http.ResponseWriter, r *http.Request) {
	team, ok := h.teamRole(w, r, accounts.RoleAdmin)
	if !ok {
		return
	}
	var in struct {
		Role string `json:"role"`
	}
	if !decode(w, r, &in) {
		return
	}
	myRole, _ := h.acc.Role(r.Context(), principal(r), team)
	target, err := h.invitations().SetRole(r.Context(), team, myRole, pathID(r, "user"), in.Role, func(tx pgx.Tx, target teams.Member) error {
		return h.audit1(r.Context(), tx, r, team, "member.role", target.Email, map[string]any{"user_id": target.UserID, "from": target.Role, "to": in.Role})
	})
	if err != nil {
		h.fail(w, "changing the role", err)
		return
	}
	target.Role = in.Role
	api.WriteJSON(w, http.StatusOK, target)
}

// removeMember takes someone out of the team, or the caller leaves it (the
// rules: teams.Service.Remove).
func (h *Handler) removeMember(w http.ResponseWriter, r *http.Request) {
	team, ok := h.teamRole(w, r, accounts.RoleMember)
	if !ok {
		return
	}
	p := principal(r)
	myRole, _ := h.acc.Role(r.Context(), p, team)
	_, err := h.invitations().Remove(r.Context(), team, p.UserID, myRole, pathID(r, "user"), func(tx pgx.Tx, target teams.Member) error {
		return h.audit1(r.Context(), tx, r, team, "member.remove", target.Email,
			map[string]any{"user_id": target.UserID, "role": target.Role, "left": target.UserID == p.UserID})
	})
	if err != nil {
		h.fail(w, "removing the member", err)
		return
	}
	api.WriteJSON(w, http.StatusOK, map[string]any{"ok": true})
}
