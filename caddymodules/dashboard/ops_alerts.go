package dashboard

import (
	"errors"
	"net/http"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/wisehosting/wisehosting/caddymodules/api"
	"github.com/wisehosting/wisehosting/internal/accounts"
	"github.com/wisehosting/wisehosting/internal/alerts"
)

type alertRule struct {
	ID        int64      `json:"id"`
	AppID     int64      `json:"app_id"`
	Kind      string     `json:"kind"`
	Threshold float64    `json:"threshold"`
	Unit      string     `json:"unit,omitempty"`
	SustainS  int        `json:"sustain_s"`
	Enabled   bool       `json:"enabled"`
	Pending   *time.Time `json:"pending_since,omitempty"`
	Firing    bool       `json:"firing"`
	CreatedAt time.Time  `json:"created_at"`
}

func (h *Handler) loadRules(r *http.Request, team, app, id int64) ([]alertRule, error) {
	rows, err := h.wh.Pool().Query(r.Context(), `SELECT ru.id, ru.app_id, ru.kind, ru.threshold, ru.sustain_s, ru.enabled, ru.pending_since,
			EXISTS (SELECT 1 FROM alerts al WHERE al.rule_id = ru.id AND al.resolved_at IS NULL), ru.created_at
		FROM alert_rules ru JOIN apps a ON a.id = ru.app_id
		WHERE a.team_id = $1 AND ru.app_id = $2 AND ($3 = 0 OR ru.id = $3) ORDER BY ru.id`, team, app, id)
	if err != nil {
		return nil, err
	}
	out, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (alertRule, error) {
		var x alertRule
		err := row.Scan(&x.ID, &x.AppID, &x.Kind, &x.Threshold, &x.SustainS, &x.Enabled, &x.Pending, &x.Firing, &x.CreatedAt)
		k, _ := alerts.Kind(x.Kind)
		x.Unit = k.Unit
		return x, err
	})
	if out == nil {
		out = []alertRule{}
	}
	return out, err
}

func (h *Handler) listAlertRules(w http.ResponseWriter, r *http.Request) {
	app, ok := h.appAccess(w, r, accounts.RoleMember)
	if !ok {
		return
	}
	rules, err := h.loadRules(r, app.TeamID, app.ID, 0)
	if err != nil {
		h.fail(w, "listing alert rules", err)
		return
	}
	api.WriteJSON(w, http.StatusOK, map[string]any{"rules": rules})
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
	if !decode(w, r, &in) {
		return
	}
	sustain, enabled := 120, true
	if in.SustainS != nil {
		sustain = *in.SustainS
	}
	if in.Enabled != nil {
		enabled = *in.Enabled
	}
	if msg := alerts.CheckRule(in.Kind, in.Threshold, sustain); msg != "" {
		unprocessable(w, msg)
		return
	}
	var id int64
	err := pgx.BeginFunc(r.Context(), h.wh.Pool(), func(tx pgx.Tx) error {
		var n int
		if err := tx.QueryRow(r.Context(), "SELECT count(*) FROM alert_rules WHERE app_id = $1", app.ID).Scan(&n); err != nil {
			return err
		}
		if n >= 50 {
			return errTooMany
		}
		if err := tx.QueryRow(r.Context(), `INSERT INTO alert_rules (app_id, kind, threshold, sustain_s, enabled)
			SELECT id, $3, $4, $5, $6 FROM apps WHERE id = $1 AND team_id = $2 RETURNING id`,
			app.ID, app.TeamID, in.Kind, in.Threshold, sustain, enabled).Scan(&id); err != nil {
			return err
		}
		return h.audit1(r.Context(), tx, r, app.TeamID, "alert_rule.create", app.Slug, map[string]any{"rule_id": id, "kind": in.Kind,
			"threshold": in.Threshold, "sustain_s": sustain})
	})
	if errors.Is(err, errTooMany) {
		unprocessable(w, "an app has at most 50 alert rules")
		return
	}
	if err != nil {
		h.fail(w, "creating the alert rule", err)
		return
	}
	rules, err := h.loadRules(r, app.TeamID, app.ID, id)
	if err != nil || len(rules) != 1 {
		h.fail(w, "loading the alert rule", err)
		return
	}
	api.WriteJSON(w, http.StatusCreated, rules[0])
}

var errTooMany = errors.New("too many alert rules")

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
	if !decode(w, r, &in) {
		return
	}
	rules, err := h.loadRules(r, app.TeamID, app.ID, pathID(r, "rule"))
	if err == nil && len(rules) != 1 {
		err = pgx.ErrNoRows
	}
	if err != nil {
		h.fail(w, "loading the alert rule", err)
		return
	}
	cur := rules[0]
	if in.Threshold != nil {
		cur.Threshold = *in.Threshold
	}
	if in.SustainS != nil {
		cur.SustainS = *in.SustainS
	}
	if in.Enabled != nil {
		cur.Enabled = *in.Enabled
	}
	if msg := alerts.CheckRule(cur.Kind, cur.Threshold, cur.SustainS); msg != "" {
		unprocessable(w, msg)
		return
	}
	err = pgx.BeginFunc(r.Context(), h.wh.Pool(), func(tx pgx.Tx) error {
		// A changed rule starts its sustain window again.
		tag, err := tx.Exec(r.Context(), `UPDATE alert_rules SET threshold = $3, sustain_s = $4, enabled = $5, pending_since = NULL
			WHERE id = $1 AND app_id = $2`, cur.ID, app.ID, cur.Threshold, cur.SustainS, cur.Enabled)
		if err == nil && tag.RowsAffected() == 0 {
			err = pgx.ErrNoRows
		}
		if err != nil {
			return err
		}
		return h.audit1(r.Context(), tx, r, app.TeamID, "alert_rule.update", app.Slug, map[string]any{"rule_id": cur.ID,
			"threshold": cur.Threshold, "sustain_s": cur.SustainS, "enabled": cur.Enabled})
	})
	if err != nil {
		h.fail(w, "updating the alert rule", err)
		return
	}
	rules, err = h.loadRules(r, app.TeamID, app.ID, cur.ID)
	if err != nil || len(rules) != 1 {
		h.fail(w, "loading the alert rule", err)
		return
	}
	api.WriteJSON(w, http.StatusOK, rules[0])
}

func (h *Handler) deleteAlertRule(w http.ResponseWriter, r *http.Request) {
	app, ok := h.appAccess(w, r, accounts.RoleAdmin)
	if !ok {
		return
	}
	id := pathID(r, "rule")
	err := pgx.BeginFunc(r.Context(), h.wh.Pool(), func(tx pgx.Tx) error {
		tag, err := tx.Exec(r.Context(), "DELETE FROM alert_rules WHERE id = $1 AND app_id = $2", id, app.ID)
		if err == nil && tag.RowsAffected() == 0 {
			err = pgx.ErrNoRows
		}
		if err != nil {
			return err
		}
		return h.audit1(r.Context(), tx, r, app.TeamID, "alert_rule.delete", app.Slug, map[string]any{"rule_id": id})
	})
	if err != nil {
		h.fail(w, "deleting the alert rule", err)
		return
	}
	api.WriteJSON(w, http.StatusOK, map[string]any{"ok": true})
}

type alertView struct {
	ID         int64      `json:"id"`
	RuleID     int64      `json:"rule_id"`
	AppID      int64      `json:"app_id"`
	AppSlug    string     `json:"app_slug"`
	Kind       string     `json:"kind"`
	Value      float64    `json:"value"`
	Message    string     `json:"message"`
	FiredAt    time.Time  `json:"fired_at"`
	ResolvedAt *time.Time `json:"resolved_at,omitempty"`
}

// alertsList answers ?state=open|resolved|all (default all, open first)
// for one app or (app 0) the whole team.
func (h *Handler) alertsList(w http.ResponseWriter, r *http.Request, team, app int64) {
	state := r.URL.Query().Get("state")
	if state == "" {
		state = "all"
	}
	if state != "open" && state != "resolved" && state != "all" {
		unprocessable(w, "state is open, resolved or all")
		return
	}
	rows, err := h.wh.Pool().Query(r.Context(), `SELECT al.id, al.rule_id, al.app_id, a.slug, al.kind, al.value, al.message, al.fired_at, al.resolved_at
		FROM alerts al JOIN apps a ON a.id = al.app_id
		WHERE a.team_id = $1 AND ($2 = 0 OR al.app_id = $2)
			AND ($3 = 'all' OR ($3 = 'open') = (al.resolved_at IS NULL))
		ORDER BY al.resolved_at IS NULL DESC, al.fired_at DESC, al.id DESC LIMIT 200`, team, app, state)
	if err != nil {
		h.fail(w, "listing alerts", err)
		return
	}
	out, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (alertView, error) {
		var a alertView
		err := row.Scan(&a.ID, &a.RuleID, &a.AppID, &a.AppSlug, &a.Kind, &a.Value, &a.Message, &a.FiredAt, &a.ResolvedAt)
		return a, err
	})
	if err != nil {
		h.fail(w, "listing alerts", err)
		return
	}
	if out == nil {
		out = []alertView{}
	}
	api.WriteJSON(w, http.StatusOK, map[string]any{"alerts": out})
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
