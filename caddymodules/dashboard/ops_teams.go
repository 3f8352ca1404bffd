package dashboard

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/wisehosting/wisehosting/caddymodules/api"
	"github.com/wisehosting/wisehosting/internal/accounts"
	"github.com/wisehosting/wisehosting/internal/deploys"
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
		// Few teams per person keep a signed-in account from filling the
		// table; an instance admin is not limited.
		var n int
		if err := tx.QueryRow(r.Context(), "SELECT count(*) FROM memberships WHERE user_id = $1 AND role = 'owner'", p.UserID).Scan(&n); err != nil {
			return err
		}
		if n >= 20 && !p.IsAdmin {
			return errTooManyTeams
		}
		err := tx.QueryRow(r.Context(), "INSERT INTO teams (name, slug, plan) VALUES ($1, $2, $3) RETURNING id, name, slug, plan",
			in.Name, in.Slug, plan).Scan(&t.ID, &t.Name, &t.Slug, &t.Plan)
		if err != nil {
			return err
		}
		t.Role = accounts.RoleOwner
		if _, err := tx.Exec(r.Context(), "INSERT INTO memberships (team_id, user_id, role) VALUES ($1, $2, 'owner')", t.ID, p.UserID); err != nil {
			return err
		}
		return h.audit1(r.Context(), tx, r, t.ID, "team.create", t.Slug, map[string]any{"plan": plan})
	})
	switch {
	case errors.Is(err, errTooManyTeams):
		unprocessable(w, "you own 20 teams already")
	case err != nil && strings.Contains(err.Error(), "teams_slug_key"):
		api.WriteError(w, http.StatusConflict, "the team slug "+in.Slug+" is taken")
	case err != nil:
		h.fail(w, "creating the team", err)
	default:
		api.WriteJSON(w, http.StatusCreated, t)
	}
}

var (
	errTooManyTeams = errors.New("too many teams")
	errLastOwner    = errors.New("last owner")
)

type member struct {
	UserID int64     `json:"user_id"`
	Email  string    `json:"email"`
	Name   string    `json:"name"`
	Role   string    `json:"role"`
	Since  time.Time `json:"since"`
	You    bool      `json:"you"`
}

func (h *Handler) listMembers(w http.ResponseWriter, r *http.Request) {
	team, ok := h.teamRole(w, r, accounts.RoleMember)
	if !ok {
		return
	}
	rows, err := h.wh.Pool().Query(r.Context(), `SELECT u.id, u.email, u.name, m.role, m.created_at FROM memberships m JOIN users u ON u.id = m.user_id
		WHERE m.team_id = $1 ORDER BY CASE m.role WHEN 'owner' THEN 0 WHEN 'admin' THEN 1 ELSE 2 END, lower(u.email)`, team)
	if err != nil {
		h.fail(w, "listing members", err)
		return
	}
	me := principal(r).UserID
	out, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (member, error) {
		var m member
		err := row.Scan(&m.UserID, &m.Email, &m.Name, &m.Role, &m.Since)
		m.You = m.UserID == me
		return m, err
	})
	if err != nil {
		h.fail(w, "listing members", err)
		return
	}
	if out == nil {
		out = []member{}
	}
	api.WriteJSON(w, http.StatusOK, map[string]any{"members": out})
}

// canGrant is whether a caller of role may hand out (or take away) role
// target: owners anything, admins admin and member only.
func canGrant(role, target string) bool {
	return role == accounts.RoleOwner || (role == accounts.RoleAdmin && target != accounts.RoleOwner)
}

func validRole(r string) bool {
	return r == accounts.RoleOwner || r == accounts.RoleAdmin || r == accounts.RoleMember
}

// addMember adds an existing account, found by e-mail, to the team.
func (h *Handler) addMember(w http.ResponseWriter, r *http.Request) {
	team, in, ok := h.grantRequest(w, r)
	if !ok {
		return
	}
	email := strings.ToLower(strings.TrimSpace(in.Email))
	var m member
	err := pgx.BeginFunc(r.Context(), h.wh.Pool(), func(tx pgx.Tx) error {
		if err := tx.QueryRow(r.Context(), "SELECT id, email, name FROM users WHERE lower(email) = $1", email).Scan(&m.UserID, &m.Email, &m.Name); err != nil {
			return err
		}
		if err := tx.QueryRow(r.Context(), `INSERT INTO memberships (team_id, user_id, role) VALUES ($1, $2, $3)
			ON CONFLICT DO NOTHING RETURNING role, created_at`, team, m.UserID, in.Role).Scan(&m.Role, &m.Since); err != nil {
			if errors.Is(err, pgx.ErrNoRows) {
				return errAlreadyMember
			}
			return err
		}
		return h.audit1(r.Context(), tx, r, team, "member.add", m.Email, map[string]any{"user_id": m.UserID, "role": in.Role})
	})
	switch {
	case errors.Is(err, errAlreadyMember):
		api.WriteError(w, http.StatusConflict, m.Email+" is a member already")
	case errors.Is(err, pgx.ErrNoRows):
		unprocessable(w, "no account has this e-mail address: invite it by link instead (Invite by link, below)")
	case err != nil:
		h.fail(w, "adding the member", err)
	default:
		api.WriteJSON(w, http.StatusCreated, m)
	}
}

var errAlreadyMember = errors.New("already a member")

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
	if !validRole(in.Role) {
		unprocessable(w, "role is owner, admin or member")
		return 0, in, false
	}
	myRole, _ := h.acc.Role(r.Context(), principal(r), team)
	if !canGrant(myRole, in.Role) {
		api.WriteError(w, http.StatusForbidden, "only owners can make owners")
		return 0, in, false
	}
	return team, in, true
}

type grantInput struct {
	Email string `json:"email"`
	Role  string `json:"role"`
}

// changeMember applies fn to the path's member under a lock on the team's
// memberships, so two changes cannot both take away the last owner.
func (h *Handler) changeMember(ctx context.Context, r *http.Request, team int64, fn func(tx pgx.Tx, target member, owners int) error) (member, error) {
	var target member
	err := pgx.BeginFunc(ctx, h.wh.Pool(), func(tx pgx.Tx) error {
		rows, err := tx.Query(ctx, `SELECT m.user_id, u.email, m.role FROM memberships m JOIN users u ON u.id = m.user_id
			WHERE m.team_id = $1 FOR UPDATE OF m`, team)
		if err != nil {
			return err
		}
		all, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (member, error) {
			var m member
			err := row.Scan(&m.UserID, &m.Email, &m.Role)
			return m, err
		})
		if err != nil {
			return err
		}
		owners, found := 0, false
		for _, m := range all {
			if m.Role == accounts.RoleOwner {
				owners++
			}
			if m.UserID == pathID(r, "user") {
				target, found = m, true
			}
		}
		if !found {
			return pgx.ErrNoRows
		}
		return fn(tx, target, owners)
	})
	return target, err
}

// updateMember changes a member's role. Admins manage admins and members;
// only owners touch owners; the last owner stays an owner.
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
	if !validRole(in.Role) {
		unprocessable(w, "role is owner, admin or member")
		return
	}
	myRole, _ := h.acc.Role(r.Context(), principal(r), team)
	target, err := h.changeMember(r.Context(), r, team, func(tx pgx.Tx, target member, owners int) error {
		if !canGrant(myRole, in.Role) || !canGrant(myRole, target.Role) {
			return accounts.ErrForbidden
		}
		if target.Role == accounts.RoleOwner && in.Role != accounts.RoleOwner && owners <= 1 {
			return errLastOwner
		}
		if _, err := tx.Exec(r.Context(), "UPDATE memberships SET role = $3 WHERE team_id = $1 AND user_id = $2", team, target.UserID, in.Role); err != nil {
			return err
		}
		return h.audit1(r.Context(), tx, r, team, "member.role", target.Email, map[string]any{"user_id": target.UserID, "from": target.Role, "to": in.Role})
	})
	if h.memberFail(w, "changing the role", err) {
		return
	}
	target.Role = in.Role
	api.WriteJSON(w, http.StatusOK, target)
}

// removeMember takes someone out of the team (admins: admins and
// members; owners: anyone); anyone may leave. The last owner stays.
func (h *Handler) removeMember(w http.ResponseWriter, r *http.Request) {
	team, ok := h.teamRole(w, r, accounts.RoleMember)
	if !ok {
		return
	}
	p := principal(r)
	myRole, _ := h.acc.Role(r.Context(), p, team)
	_, err := h.changeMember(r.Context(), r, team, func(tx pgx.Tx, target member, owners int) error {
		self := target.UserID == p.UserID
		if !self && (!accounts.AtLeast(myRole, accounts.RoleAdmin) || !canGrant(myRole, target.Role)) {
			return accounts.ErrForbidden
		}
		if target.Role == accounts.RoleOwner && owners <= 1 {
			return errLastOwner
		}
		if _, err := tx.Exec(r.Context(), "DELETE FROM memberships WHERE team_id = $1 AND user_id = $2", team, target.UserID); err != nil {
			return err
		}
		// API tokens belong to a member's place in the team: they go with it.
		if _, err := tx.Exec(r.Context(), "UPDATE api_tokens SET revoked_at = now() WHERE team_id = $1 AND user_id = $2 AND revoked_at IS NULL",
			team, target.UserID); err != nil {
			return err
		}
		return h.audit1(r.Context(), tx, r, team, "member.remove", target.Email, map[string]any{"user_id": target.UserID, "role": target.Role, "left": self})
	})
	if h.memberFail(w, "removing the member", err) {
		return
	}
	api.WriteJSON(w, http.StatusOK, map[string]any{"ok": true})
}

func (h *Handler) memberFail(w http.ResponseWriter, what string, err error) bool {
	switch {
	case err == nil:
		return false
	case errors.Is(err, accounts.ErrForbidden):
		api.WriteError(w, http.StatusForbidden, "your role in this team cannot change this member's role (only owners manage owners)")
	case errors.Is(err, errLastOwner):
		unprocessable(w, "a team keeps at least one owner: make someone else owner first")
	default:
		h.fail(w, what, err)
	}
	return true
}
