package dashboard

import (
	"net/http"

	"github.com/wisehosting/wisehosting/caddymodules/api"

	"github.com/wisehosting/wisehosting/internal/accounts"
	"github.com/wisehosting/wisehosting/internal/alerts"
	"github.com/wisehosting/wisehosting/internal/deploys"
)

func (h *Handler) listAlertRules(w http.ResponseWriter, r *http.Request) {
	app, ok := h.appAccess(w, r, accounts.RoleMember)
	if !ok {
		return
	}
	rules, err := h.alerts.List(r.Context(), app.TeamID, app.ID, 0)
	h.answer(w, http.StatusOK, "listing alert rules", map[string]any{"rules": rules}, err)
}

// ruleEntry is the audit record of a change of an alert rule.
func ruleEntry(r *http.Request, app deploys.App, action string) accounts.Hook[alerts.Rule] {
	return func(ru alerts.Rule) accounts.Entry {
		details := map[string]any{"rule_id": ru.ID, "threshold": ru.Threshold, "sustain_s": ru.SustainS}
		if action == "alert_rule.create" {
			details["kind"] = ru.Kind
		} else {
			details["enabled"] = ru.Enabled
		}
		return entry(r, app.TeamID, action, app.Slug, details)
	}
}

func (h *Handler) createAlertRule(w http.ResponseWriter, r *http.Request) {
	app, ok := h.appAccess(w, r, accounts.RoleAdmin)
	if !ok {
		return
	}
	in := struct {
		Kind      string  `json:"kind"`
		Threshold float64 `json:"threshold"`
		SustainS  *int    `json:"sustain_s"`
		Enabled   *bool   `json:"enabled"`
	}{}
	if !api.Decode(w, r, &in) {
		return
	}
	rule, err := h.alerts.Create(r.Context(), app.TeamID, app.ID, alerts.RuleSpec{Kind: in.Kind, Threshold: &in.Threshold,
		SustainS: in.SustainS, Enabled: in.Enabled}, ruleEntry(r, app, "alert_rule.create"))
	h.answer(w, http.StatusCreated, "creating the alert rule", rule, err)
}

func (h *Handler) updateAlertRule(w http.ResponseWriter, r *http.Request) {
	app, ok := h.appAccess(w, r, accounts.RoleAdmin)
	if !ok {
		return
	}
	in := struct {
		Threshold *float64 `json:"threshold"`
		SustainS  *int     `json:"sustain_s"`
		Enabled   *bool    `json:"enabled"`
	}{}
	if !api.Decode(w, r, &in) {
		return
	}
	rule, err := h.alerts.Update(r.Context(), app.TeamID, app.ID, pathID(r, "rule"), alerts.RuleSpec{Threshold: in.Threshold,
		SustainS: in.SustainS, Enabled: in.Enabled}, ruleEntry(r, app, "alert_rule.update"))
	h.answer(w, http.StatusOK, "updating the alert rule", rule, err)
}

func (h *Handler) deleteAlertRule(w http.ResponseWriter, r *http.Request) {
	app, ok := h.appAccess(w, r, accounts.RoleAdmin)
	if !ok {
		return
	}
	err := h.alerts.Delete(r.Context(), app.ID, pathID(r, "rule"), func(id int64) accounts.Entry {
		return entry(r, app.TeamID, "alert_rule.delete", app.Slug, map[string]any{"rule_id": id})
	})
	h.answer(w, http.StatusOK, "deleting the alert rule", map[string]any{"ok": true}, err)
}

// alertsList answers ?state=open|resolved|all (default all, open first)
// for one app or (app 0) the whole team.
func (h *Handler) alertsList(w http.ResponseWriter, r *http.Request, team, app int64) {
	out, err := h.alerts.Alerts(r.Context(), team, app, r.URL.Query().Get("state"))
	h.answer(w, http.StatusOK, "listing alerts", map[string]any{"alerts": out}, err)
}

func (h *Handler) appAlerts(w http.ResponseWriter, r *http.Request) {
	app, ok := h.appAccess(w, r, accounts.RoleMember)
	if ok {
		h.alertsList(w, r, app.TeamID, app.ID)
	}
}

func (h *Handler) teamAlerts(w http.ResponseWriter, r *http.Request) {
	team, ok := h.teamRole(w, r, accounts.RoleMember)
	if ok {
		h.alertsList(w, r, team, 0)
	}
}
