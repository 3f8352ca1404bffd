// Package alerts evaluates alert rules: per app, a condition (CPU, memory,
// network or disk above a threshold, the worker offline, a crash loop, a
// failed deployment) must hold for the rule's sustain window before an
// alert fires, and must stay false for a clear window (and the alert must
// have lasted a minimum time) before it resolves, so a value hovering at
// the threshold does not cause a storm of fire/resolve pairs.
//
// It also keeps the rules as teams manage them and lists their alerts
// (Rules, rules.go): at most MaxRules per app, each checked against its
// kind (kinds.go).
package alerts

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/wisehosting/wisehosting/internal/events"
	"github.com/wisehosting/wisehosting/internal/store"
)

// Change is an alert that fired or resolved.
type Change struct {
	AlertID int64
	RuleID  int64
	AppID   int64
	Kind    string
	Value   float64
	Fired   bool // false: resolved
	Message string
}

// Event is the change as an event (alert.fired or alert.resolved).
func (c Change) Event() events.Event {
	kind := events.AlertResolved
	if c.Fired {
		kind = events.AlertFired
	}
	return events.Event{Kind: kind, AppID: c.AppID, Data: map[string]any{
		"alert_id": c.AlertID, "rule_id": c.RuleID, "kind": c.Kind, "value": c.Value, "message": c.Message}}
}

// Evaluator evaluates every enabled rule.
type Evaluator struct {
	Pool *pgxpool.Pool
	// ClearFor is how long a condition must stay false before its alert
	// resolves. Default 2m.
	ClearFor time.Duration
	// MinDuration is the shortest an alert lasts. Default 5m.
	MinDuration time.Duration
}

type ruleState struct {
	id, app                  int64
	kind                     string
	threshold                float64
	sustain                  time.Duration
	pendingSince, clearSince *time.Time
	openAlert                *int64
	firedAt                  *time.Time
	value                    *float64
}

func (r *ruleState) breached() bool {
	if r.value == nil {
		return false
	}
	if k, _ := Kind(r.kind); k.Max == 0 {
		return *r.value > 0
	}
	return *r.value > r.threshold
}

func unit(kind string) string { k, _ := Kind(kind); return k.Short }

// Evaluate checks every rule at now and applies firing and resolving,
// emitting alert.fired and alert.resolved in the same transaction. One
// evaluator runs at a time across replicas (transaction-scoped advisory
// lock); a replica that does not get the lock returns no changes.
func (e *Evaluator) Evaluate(ctx context.Context, now time.Time) ([]Change, error) {
	clearFor, minDur := e.ClearFor, e.MinDuration
	if clearFor <= 0 {
		clearFor = 2 * time.Minute
	}
	if minDur <= 0 {
		minDur = 5 * time.Minute
	}
	var changes []Change
	_, err := store.Exclusive(ctx, e.Pool, "wisehosting.alerts", func(tx pgx.Tx) error {
		changes = nil
		rows, err := tx.Query(ctx, `SELECT r.id, r.app_id, r.kind, r.threshold, r.sustain_s, r.pending_since, r.clear_since,
				al.id, al.fired_at,
				CASE r.kind
					WHEN 'cpu' THEN u.cpu_pct_sum / NULLIF(u.samples, 0)
					WHEN 'memory' THEN u.mem_bytes_max / 1048576.0
					WHEN 'disk' THEN u.disk_bytes / 1048576.0
					WHEN 'network' THEN (u.net_rx_bytes + u.net_tx_bytes) / 300.0
					WHEN 'offline' THEN CASE WHEN a.status = 'running' AND (w.id IS NULL OR w.status NOT IN ('online', 'draining')
						OR (w.status = 'draining' AND COALESCE(w.last_seen, '-infinity') < $1::timestamptz - interval '2 minutes')) THEN 1 ELSE 0 END
					WHEN 'crashloop' THEN CASE WHEN a.status = 'crashed' THEN 1 ELSE 0 END
					WHEN 'deployment_failed' THEN CASE WHEN d.status = 'failed' THEN 1 ELSE 0 END
					WHEN 'cron_failed' THEN CASE WHEN cr.state = 'failed' THEN 1 ELSE 0 END
				END
			FROM alert_rules r
			JOIN apps a ON a.id = r.app_id
			LEFT JOIN workers w ON w.id = a.worker_id
			LEFT JOIN alerts al ON al.rule_id = r.id AND al.resolved_at IS NULL
			LEFT JOIN LATERAL (SELECT * FROM usage_samples s WHERE s.app_id = r.app_id AND s.bucket > $1::timestamptz - interval '10 minutes'
				ORDER BY s.bucket DESC LIMIT 1) u ON true
			LEFT JOIN LATERAL (SELECT status FROM deployments x WHERE x.app_id = r.app_id ORDER BY x.id DESC LIMIT 1) d ON true
			LEFT JOIN LATERAL (SELECT state FROM cron_runs x WHERE x.app_id = r.app_id AND r.kind = 'cron_failed'
				AND x.state IN ('succeeded', 'failed') ORDER BY x.id DESC LIMIT 1) cr ON true
			WHERE r.enabled
			FOR UPDATE OF r`, now)
		if err != nil {
			return err
		}
		var rules []*ruleState
		for rows.Next() {
			r := &ruleState{}
			var sustain int
			if err := rows.Scan(&r.id, &r.app, &r.kind, &r.threshold, &sustain, &r.pendingSince, &r.clearSince, &r.openAlert, &r.firedAt, &r.value); err != nil {
				rows.Close()
				return err
			}
			r.sustain = time.Duration(sustain) * time.Second
			rules = append(rules, r)
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return err
		}
		for _, r := range rules {
			ch, err := e.step(ctx, tx, r, now, clearFor, minDur)
			if err != nil {
				return fmt.Errorf("rule %d: %w", r.id, err)
			}
			if ch != nil {
				if err := events.Emit(ctx, tx, ch.Event()); err != nil {
					return err
				}
				changes = append(changes, *ch)
			}
		}
		return nil
	})
	return changes, err
}

func (e *Evaluator) step(ctx context.Context, tx pgx.Tx, r *ruleState, now time.Time, clearFor, minDur time.Duration) (*Change, error) {
	val := 0.0
	if r.value != nil {
		val = *r.value
	}
	if r.breached() {
		if r.openAlert != nil {
			_, err := tx.Exec(ctx, "UPDATE alert_rules SET clear_since = NULL WHERE id = $1", r.id)
			return nil, err
		}
		if r.pendingSince == nil {
			_, err := tx.Exec(ctx, "UPDATE alert_rules SET pending_since = $2, clear_since = NULL WHERE id = $1", r.id, now)
			return nil, err
		}
		if now.Sub(*r.pendingSince) < r.sustain {
			return nil, nil
		}
		msg := fmt.Sprintf("%s at %.1f%s (threshold %.1f%s) for %s", r.kind, val, unit(r.kind), r.threshold, unit(r.kind), now.Sub(*r.pendingSince).Round(time.Second))
		switch r.kind {
		case "offline":
			msg = "the app's worker is offline"
		case "crashloop":
			msg = "the app keeps crashing"
		case "deployment_failed":
			msg = "the latest deployment failed"
		case "cron_failed":
			msg = "the latest run of a scheduled job failed"
		}
		var id int64
		if err := tx.QueryRow(ctx, `INSERT INTO alerts (rule_id, app_id, kind, value, message, fired_at) VALUES ($1, $2, $3, $4, $5, $6) RETURNING id`,
			r.id, r.app, r.kind, val, msg, now).Scan(&id); err != nil {
			return nil, err
		}
		_, err := tx.Exec(ctx, "UPDATE alert_rules SET clear_since = NULL WHERE id = $1", r.id)
		return &Change{AlertID: id, RuleID: r.id, AppID: r.app, Kind: r.kind, Value: val, Fired: true, Message: msg}, err
	}
	// Condition false.
	if r.openAlert == nil {
		if r.pendingSince != nil {
			_, err := tx.Exec(ctx, "UPDATE alert_rules SET pending_since = NULL WHERE id = $1", r.id)
			return nil, err
		}
		return nil, nil
	}
	if r.clearSince == nil {
		_, err := tx.Exec(ctx, "UPDATE alert_rules SET clear_since = $2 WHERE id = $1", r.id, now)
		return nil, err
	}
	if now.Sub(*r.clearSince) < clearFor || now.Sub(*r.firedAt) < minDur {
		return nil, nil
	}
	if _, err := tx.Exec(ctx, "UPDATE alerts SET resolved_at = $2 WHERE id = $1", *r.openAlert, now); err != nil {
		return nil, err
	}
	_, err := tx.Exec(ctx, "UPDATE alert_rules SET pending_since = NULL, clear_since = NULL WHERE id = $1", r.id)
	return &Change{AlertID: *r.openAlert, RuleID: r.id, AppID: r.app, Kind: r.kind, Value: val, Fired: false, Message: r.kind + " back to normal"}, err
}
