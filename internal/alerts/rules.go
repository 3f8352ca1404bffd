package alerts

import (
	"context"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/wisehosting/wisehosting/internal/accounts"
	"github.com/wisehosting/wisehosting/internal/errs"
)

// MaxRules is how many alert rules an app may have.
const MaxRules = 50

// Rule is an app's alert rule as its team reads it.
type Rule struct {
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

// RuleSpec is a new rule or a change of one (nil fields: the default of
// a new rule, 120 s sustained and enabled, or unchanged).
type RuleSpec struct {
	Kind      string   `json:"kind"`
	Threshold *float64 `json:"threshold"`
	SustainS  *int     `json:"sustain_s"`
	Enabled   *bool    `json:"enabled"`
}

// Rules keeps apps' alert rules and reads their alerts, scoped by team;
// each change writes its audit record in its transaction.
type Rules struct {
	Pool *pgxpool.Pool
}

// ErrNoRule: no such rule of the app.
var ErrNoRule = errs.New(errs.NotFound, "not found")

// List lists an app's rules (one when id is not 0; never nil).
func (s *Rules) List(ctx context.Context, teamID, appID, id int64) ([]Rule, error) {
	rows, err := s.Pool.Query(ctx, `SELECT ru.id, ru.app_id, ru.kind, ru.threshold, ru.sustain_s, ru.enabled, ru.pending_since,
			EXISTS (SELECT 1 FROM alerts al WHERE al.rule_id = ru.id AND al.resolved_at IS NULL), ru.created_at
		FROM alert_rules ru JOIN apps a ON a.id = ru.app_id
		WHERE a.team_id = $1 AND ru.app_id = $2 AND ($3 = 0 OR ru.id = $3) ORDER BY ru.id`, teamID, appID, id)
	if err != nil {
		return nil, err
	}
	out, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (Rule, error) {
		var x Rule
		err := row.Scan(&x.ID, &x.AppID, &x.Kind, &x.Threshold, &x.SustainS, &x.Enabled, &x.Pending, &x.Firing, &x.CreatedAt)
		k, _ := Kind(x.Kind)
		x.Unit = k.Unit
		return x, err
	})
	if out == nil {
		out = []Rule{}
	}
	return out, err
}

// Get reads rule id of an app.
func (s *Rules) Get(ctx context.Context, teamID, appID, id int64) (Rule, error) {
	rules, err := s.List(ctx, teamID, appID, id)
	if err == nil && len(rules) != 1 {
		err = ErrNoRule
	}
	if err != nil {
		return Rule{}, err
	}
	return rules[0], nil
}

// Create adds a rule to an app of team (at most MaxRules).
func (s *Rules) Create(ctx context.Context, teamID, appID int64, spec RuleSpec, audit accounts.Hook[Rule]) (Rule, error) {
	r := Rule{AppID: appID, Kind: spec.Kind, SustainS: 120, Enabled: true}
	if spec.Threshold != nil {
		r.Threshold = *spec.Threshold
	}
	apply(&r, spec)
	if msg := CheckRule(r.Kind, r.Threshold, r.SustainS); msg != "" {
		return Rule{}, errs.Invalidf("%s", msg)
	}
	r, err := accounts.Change(ctx, s.Pool, audit, func(tx pgx.Tx) (Rule, error) {
		var n int
		if err := tx.QueryRow(ctx, "SELECT count(*) FROM alert_rules WHERE app_id = $1", appID).Scan(&n); err != nil {
			return r, err
		}
		if n >= MaxRules {
			return r, errs.Invalidf("an app has at most %d alert rules", MaxRules)
		}
		err := tx.QueryRow(ctx, `INSERT INTO alert_rules (app_id, kind, threshold, sustain_s, enabled)
			SELECT id, $3, $4, $5, $6 FROM apps WHERE id = $1 AND team_id = $2 RETURNING id`,
			appID, teamID, r.Kind, r.Threshold, r.SustainS, r.Enabled).Scan(&r.ID)
		return r, err
	})
	if err != nil {
		return Rule{}, err
	}
	return s.Get(ctx, teamID, appID, r.ID)
}

// Update changes rule id of an app; a changed rule starts its sustain
// window again. The kind does not change.
func (s *Rules) Update(ctx context.Context, teamID, appID, id int64, spec RuleSpec, audit accounts.Hook[Rule]) (Rule, error) {
	r, err := s.Get(ctx, teamID, appID, id)
	if err != nil {
		return r, err
	}
	if spec.Threshold != nil {
		r.Threshold = *spec.Threshold
	}
	apply(&r, spec)
	if msg := CheckRule(r.Kind, r.Threshold, r.SustainS); msg != "" {
		return Rule{}, errs.Invalidf("%s", msg)
	}
	if _, err := accounts.Change(ctx, s.Pool, audit, func(tx pgx.Tx) (Rule, error) {
		tag, err := tx.Exec(ctx, `UPDATE alert_rules SET threshold = $3, sustain_s = $4, enabled = $5, pending_since = NULL
			WHERE id = $1 AND app_id = $2`, r.ID, appID, r.Threshold, r.SustainS, r.Enabled)
		if err == nil && tag.RowsAffected() == 0 {
			err = ErrNoRule
		}
		return r, err
	}); err != nil {
		return Rule{}, err
	}
	return s.Get(ctx, teamID, appID, r.ID)
}

func apply(r *Rule, spec RuleSpec) {
	if spec.SustainS != nil {
		r.SustainS = *spec.SustainS
	}
	if spec.Enabled != nil {
		r.Enabled = *spec.Enabled
	}
}

// Delete removes rule id of an app.
func (s *Rules) Delete(ctx context.Context, appID, id int64, audit accounts.Hook[int64]) error {
	_, err := accounts.Change(ctx, s.Pool, audit, func(tx pgx.Tx) (int64, error) {
		tag, err := tx.Exec(ctx, "DELETE FROM alert_rules WHERE id = $1 AND app_id = $2", id, appID)
		if err == nil && tag.RowsAffected() == 0 {
			err = ErrNoRule
		}
		return id, err
	})
	return err
}

// Alert is a fired alert as its team reads it.
type Alert struct {
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

// ErrBadState: the alert state filter is not one of open, resolved, all.
var ErrBadState = errs.New(errs.Invalid, "state is open, resolved or all")

// Alerts lists the newest 200 alerts of one app or (app 0) the whole
// team, in state open, resolved or all ("": all), open first (never nil).
func (s *Rules) Alerts(ctx context.Context, teamID, appID int64, state string) ([]Alert, error) {
	if state == "" {
		state = "all"
	}
	if state != "open" && state != "resolved" && state != "all" {
		return nil, ErrBadState
	}
	rows, err := s.Pool.Query(ctx, `SELECT al.id, al.rule_id, al.app_id, a.slug, al.kind, al.value, al.message, al.fired_at, al.resolved_at
		FROM alerts al JOIN apps a ON a.id = al.app_id
		WHERE a.team_id = $1 AND ($2 = 0 OR al.app_id = $2)
			AND ($3 = 'all' OR ($3 = 'open') = (al.resolved_at IS NULL))
		ORDER BY al.resolved_at IS NULL DESC, al.fired_at DESC, al.id DESC LIMIT 200`, teamID, appID, state)
	if err != nil {
		return nil, err
	}
	out, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (Alert, error) {
		var a Alert
		err := row.Scan(&a.ID, &a.RuleID, &a.AppID, &a.AppSlug, &a.Kind, &a.Value, &a.Message, &a.FiredAt, &a.ResolvedAt)
		return a, err
	})
	if out == nil {
		out = []Alert{}
	}
	return out, err
}
