package dashboard

import (
	"net/http"
	"strings"

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
	out, err := h.workers.Fleet(r.Context())
	if err != nil {
		h.fail(w, "listing workers", err)
		return
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
	if !api.Decode(w, r, &in) {
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
	t, err := h.teams.CreateTeam(r.Context(), in.Name, in.Slug, plan, p.UserID, p.IsAdmin, func(t accounts.Team) accounts.Entry {
		return entry(r, t.ID, "team.create", t.Slug, map[string]any{"plan": plan})
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
	out, err := h.teams.Members(r.Context(), team, principal(r).UserID)
	if err != nil {
		h.fail(w, "listing members", err)
		return
	}
	api.WriteJSON(w, http.StatusOK, map[string]any{"members": out})
}

// addMember adds an existing account, found by e-mail, to the team.
func (h *Handler) addMember(w http.ResponseWriter, r *http.Request) {
	team, myRole, in, ok := h.grantRequest(w, r)
	if !ok {
		return
	}
	m, err := h.teams.Add(r.Context(), team, myRole, in.Email, in.Role, func(m teams.Member) accounts.Entry {
		return entry(r, team, "member.add", m.Email, map[string]any{"user_id": m.UserID, "role": m.Role})
	})
	if err != nil {
		h.fail(w, "adding the member", err)
		return
	}
	api.WriteJSON(w, http.StatusCreated, m)
}

// grantRequest reads {email, role} for adding someone to the path's team,
// where the caller is an admin, and gives the caller's role there (the
// service checks that it may grant the role).
func (h *Handler) grantRequest(w http.ResponseWriter, r *http.Request) (int64, string, grantInput, bool) {
	var in grantInput
	team, ok := h.teamRole(w, r, accounts.RoleAdmin)
	if !ok || !api.Decode(w, r, &in) {
		return 0, "", in, false
	}
	myRole, _ := h.acc.Role(r.Context(), principal(r), team)
	return team, myRole, in, true
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
	if !api.Decode(w, r, &in) {
		return
	}
	myRole, _ := h.acc.Role(r.Context(), principal(r), team)
	target, err := h.teams.SetRole(r.Context(), team, myRole, pathID(r, "user"), in.Role, func(target teams.Member) accounts.Entry {
		return entry(r, team, "member.role", target.Email, map[string]any{"user_id": target.UserID, "from": target.Role, "to": in.Role})
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
	_, err := h.teams.Remove(r.Context(), team, p.UserID, myRole, pathID(r, "user"), func(target teams.Member) accounts.Entry {
		return entry(r, team, "member.remove", target.Email,
			map[string]any{"user_id": target.UserID, "role": target.Role, "left": target.UserID == p.UserID})
	})
	if err != nil {
		h.fail(w, "removing the member", err)
		return
	}
	api.WriteJSON(w, http.StatusOK, map[string]any{"ok": true})
}
