package alerts

import (
	"context"
	"testing"

	"github.com/wisehosting/wisehosting/internal/errs"
)

// TestRuleRules: a rule is checked against its kind, takes the defaults,
// is scoped by team and app, restarts its sustain window when changed,
// and an app has at most MaxRules; alerts are listed by state.
func TestRuleRules(t *testing.T) {
	f := setup(t, "cpu", 80, 60)
	ctx := context.Background()
	s := &Rules{Pool: f.db.Pool}
	var team int64
	f.db.Pool.QueryRow(ctx, "SELECT team_id FROM apps WHERE id = $1", f.app).Scan(&team)
	th := 90.0
	if _, err := s.Create(ctx, team, f.app, RuleSpec{Kind: "nonsense", Threshold: &th}, nil); !errs.Is(err, errs.Invalid) {
		t.Fatalf("an unknown kind: %v", err)
	}
	if _, err := s.Create(ctx, team+1, f.app, RuleSpec{Kind: "cpu", Threshold: &th}, nil); !errs.Is(err, errs.NotFound) {
		t.Fatalf("another team's app: %v", err)
	}
	r, err := s.Create(ctx, team, f.app, RuleSpec{Kind: "cpu", Threshold: &th}, nil)
	if err != nil || r.SustainS != 120 || !r.Enabled || r.Threshold != 90 || r.Unit == "" {
		t.Fatalf("create %+v %v", r, err)
	}
	f.db.Pool.Exec(ctx, "UPDATE alert_rules SET pending_since = now() WHERE id = $1", r.ID)
	off := false
	got, err := s.Update(ctx, team, f.app, r.ID, RuleSpec{Enabled: &off}, nil)
	if err != nil || got.Enabled || got.Pending != nil || got.Threshold != 90 {
		t.Fatalf("update %+v %v", got, err)
	}
	if _, err := s.Update(ctx, team+1, f.app, r.ID, RuleSpec{Enabled: &off}, nil); err != ErrNoRule {
		t.Fatalf("another team's rule: %v", err)
	}
	if list, err := s.List(ctx, team, f.app, 0); err != nil || len(list) != 2 {
		t.Fatalf("list %+v %v", list, err)
	}
	for i := 2; i < MaxRules; i++ {
		if _, err := s.Create(ctx, team, f.app, RuleSpec{Kind: "cpu", Threshold: &th}, nil); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := s.Create(ctx, team, f.app, RuleSpec{Kind: "cpu", Threshold: &th}, nil); !errs.Is(err, errs.Invalid) {
		t.Fatalf("rule %d: %v", MaxRules+1, err)
	}
	if err := s.Delete(ctx, f.app, r.ID, nil); err != nil {
		t.Fatal(err)
	}
	if err := s.Delete(ctx, f.app, r.ID, nil); err != ErrNoRule {
		t.Fatalf("deleting twice: %v", err)
	}
	f.db.Pool.Exec(ctx, "INSERT INTO alerts (rule_id, app_id, kind, value, message) VALUES ($1, $2, 'cpu', 95, 'hot')", f.rule, f.app)
	if open, err := s.Alerts(ctx, team, 0, "open"); err != nil || len(open) != 1 || open[0].AppSlug != "a" {
		t.Fatalf("open alerts %+v %v", open, err)
	}
	if resolved, err := s.Alerts(ctx, team, f.app, "resolved"); err != nil || len(resolved) != 0 {
		t.Fatalf("resolved alerts %+v %v", resolved, err)
	}
	if other, err := s.Alerts(ctx, team+1, 0, ""); err != nil || len(other) != 0 {
		t.Fatalf("another team's alerts %+v %v", other, err)
	}
	if _, err := s.Alerts(ctx, team, 0, "closed"); err != ErrBadState {
		t.Fatalf("a bad state: %v", err)
	}
}
