package dashboard

import (
	"net/http"
	"strings"

	"github.com/wisehosting/wisehosting/caddymodules/api"
	"github.com/wisehosting/wisehosting/internal/accounts"
	"github.com/wisehosting/wisehosting/internal/teams"
)

// Team invitations: owners and admins create a one-time link
// (<public_url>/invite/<token>) and send it however they like; whoever
// holds it signs in as the invited address, or creates that account, and
// joins with the invited role.
func (h *Handler) invitationRoutes(handle func(string, http.HandlerFunc)) {
	handle("GET /api/teams/{team}/invitations", h.authed(h.listInvitations))
	handle("POST /api/teams/{team}/invitations", h.authed(h.createInvitation))
	handle("DELETE /api/teams/{team}/invitations/{inv}", h.authed(h.revokeInvitation))
	handle("GET /api/invitations/{token}", h.showInvitation)
	handle("POST /api/invitations/{token}/accept", h.authed(h.acceptInvitation))
	handle("POST /api/invitations/{token}/signup", h.signupInvitation)
}

// inviteURL is the link of a token: on public_url, else on the host the
// inviter used.
func (h *Handler) inviteURL(r *http.Request, token string) string {
	base := h.publicURL()
	if base == "" {
		base = "https://" + r.Host
	}
	return base + "/invite/" + token
}

func (h *Handler) createInvitation(w http.ResponseWriter, r *http.Request) {
	team, myRole, in, ok := h.grantRequest(w, r)
	if !ok {
		return
	}
	inv, token, err := h.teams.Invite(r.Context(), team, principal(r).UserID, myRole, in.Email, in.Role, func(inv teams.Invitation) accounts.Entry {
		return entry(r, team, "invitation.create", inv.Email, map[string]any{"invitation_id": inv.ID, "role": inv.Role})
	})
	if h.invitationFail(w, "creating the invitation", err) {
		return
	}
	api.WriteJSON(w, http.StatusCreated, map[string]any{"invitation": inv, "url": h.inviteURL(r, token)})
}

func (h *Handler) listInvitations(w http.ResponseWriter, r *http.Request) {
	team, ok := h.teamRole(w, r, accounts.RoleAdmin)
	if !ok {
		return
	}
	list, err := h.teams.Pending(r.Context(), team)
	if err != nil {
		h.fail(w, "listing invitations", err)
		return
	}
	api.WriteJSON(w, http.StatusOK, map[string]any{"invitations": list})
}

func (h *Handler) revokeInvitation(w http.ResponseWriter, r *http.Request) {
	team, ok := h.teamRole(w, r, accounts.RoleAdmin)
	if !ok {
		return
	}
	_, err := h.teams.Revoke(r.Context(), team, pathID(r, "inv"), func(inv teams.Invitation) accounts.Entry {
		return entry(r, team, "invitation.revoke", inv.Email, map[string]any{"invitation_id": inv.ID})
	})
	if h.invitationFail(w, "revoking the invitation", err) {
		return
	}
	api.WriteJSON(w, http.StatusOK, map[string]any{"ok": true})
}

// showInvitation tells the link's holder what it is for and whether the
// invited address has an account (sign in) or not (choose a password).
func (h *Handler) showInvitation(w http.ResponseWriter, r *http.Request) {
	inv, hasAccount, err := h.teams.Show(r.Context(), r.PathValue("token"))
	if h.invitationFail(w, "reading the invitation", err) {
		return
	}
	api.WriteJSON(w, http.StatusOK, map[string]any{"team_name": inv.TeamName, "email": inv.Email, "role": inv.Role,
		"expires_at": inv.ExpiresAt, "has_account": hasAccount})
}

// acceptInvitation: the signed-in person (a session) joins the team.
func (h *Handler) acceptInvitation(w http.ResponseWriter, r *http.Request) {
	p := principal(r)
	if p.SessionID == 0 {
		api.WriteError(w, http.StatusForbidden, "accept invitations signed in, not with an API token")
		return
	}
	inv, err := h.teams.Join(r.Context(), r.PathValue("token"), p.UserID, p.Email, func(inv teams.Invitation) accounts.Entry {
		return entry(r, inv.TeamID, "invitation.accept", inv.Email, map[string]any{"invitation_id": inv.ID, "role": inv.Role})
	})
	if h.invitationFail(w, "accepting the invitation", err) {
		return
	}
	api.WriteJSON(w, http.StatusOK, map[string]any{"team_id": inv.TeamID, "team_name": inv.TeamName, "role": inv.Role})
}

// signupInvitation creates the invited address's account with the chosen
// password, makes it a member and signs it in.
func (h *Handler) signupInvitation(w http.ResponseWriter, r *http.Request) {
	if !strings.HasPrefix(r.Header.Get("Content-Type"), "application/json") {
		api.WriteError(w, http.StatusUnsupportedMediaType, "send JSON")
		return
	}
	r.Body = http.MaxBytesReader(w, r.Body, 16<<10)
	var in struct {
		Name     string `json:"name"`
		Password string `json:"password"`
	}
	if !api.Decode(w, r, &in) {
		return
	}
	inv, err := h.teams.SignUp(r.Context(), r.PathValue("token"), in.Name, in.Password, func(inv teams.Invitation) accounts.Entry {
		return accounts.Entry{TeamID: inv.TeamID, UserID: inv.AcceptedBy, IP: api.ClientIP(r), Action: "invitation.signup", Target: inv.Email,
			Details: map[string]any{"invitation_id": inv.ID, "role": inv.Role}}
	})
	if h.invitationFail(w, "creating the account", err) {
		return
	}
	sess, err := h.acc.Open(r.Context(), inv.AcceptedBy, api.ClientIP(r), r.UserAgent())
	if err != nil {
		h.fail(w, "signing in", err)
		return
	}
	h.setCookie(w, sess.Token, int(h.acc.SessionTTL.Seconds()))
	api.WriteJSON(w, http.StatusCreated, map[string]any{"csrf_token": sess.CSRF, "team_id": inv.TeamID, "team_name": inv.TeamName, "role": inv.Role})
}

// invitationFail answers err (true when there was one) in plain words.
func (h *Handler) invitationFail(w http.ResponseWriter, what string, err error) bool {
	if err == nil {
		return false
	}
	h.fail(w, what, err)
	return true
}
