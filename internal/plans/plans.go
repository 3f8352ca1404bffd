// Package plans is the plan registry: what a team on each plan may use.
// Plans are configured on the core app (with built-in free and pro plans
// when none are), every team names one (teams.plan), and the checks here
// run inside the transaction of the change they guard, with the team's row
// locked, so two concurrent requests cannot both take the last app slot.
//
// A refusal is an errs.Forbidden error whose message names the plan and the limit,
// for the user.
package plans

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"sort"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/wisehosting/wisehosting/internal/errs"
)

// Plan is what a team may use. A zero limit is no limit.
type Plan struct {
	// Per-app limits.
	CPUMillis     int `json:"cpu_millis,omitempty"`
	MemoryMB      int `json:"memory_mb,omitempty"`
	DiskMB        int `json:"disk_mb,omitempty"`
	BandwidthKbit int `json:"bandwidth_kbit,omitempty"` // 0: unlimited
	Replicas      int `json:"replicas,omitempty"`
	// Apps is the number of apps (previews not counted) a team may have.
	Apps int `json:"apps,omitempty"`
	// CustomDomains allows verified custom domains.
	CustomDomains bool `json:"custom_domains,omitempty"`
	// Previews allows pull-request preview deployments.
	Previews bool `json:"previews,omitempty"`
}

// Builtin are the plans used when the configuration defines none: on a
// platform its operator runs for themselves, "free" (every team's plan
// until told otherwise) holds back nothing a single team needs; operators
// who sell plans define their own.
func Builtin() map[string]Plan {
	return map[string]Plan{
		"free": {CPUMillis: 2000, MemoryMB: 2048, DiskMB: 10240, Apps: 25, CustomDomains: true, Previews: true},
		"pro":  {CPUMillis: 8000, MemoryMB: 16384, DiskMB: 51200, Apps: 200, CustomDomains: true, Previews: true},
	}
}

// DefaultPlan is the plan of new teams when none is configured.
const DefaultPlan = "free"

// refuse builds a refusal; the message starts with the plan's name
// (`plan "free" allows 3 apps; …`, `plan "free": memory_mb is at most …`).
func refuse(plan, limit, format string, a ...any) error {
	return errs.New(errs.Forbidden, fmt.Sprintf("plan %q", plan)+fmt.Sprintf(format, a...))
}

var validName = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_-]{0,39}$`)

// Registry holds the configured plans.
type Registry struct {
	plans map[string]Plan
	def   string
}

// NewRegistry validates plans (nil or empty: Builtin) and the default.
func NewRegistry(plans map[string]Plan, def string) (*Registry, error) {
	if len(plans) == 0 {
		plans = Builtin()
	}
	if def == "" {
		def = DefaultPlan
		if _, ok := plans[def]; !ok {
			return nil, fmt.Errorf("plans: no default_plan set and no plan named %q", DefaultPlan)
		}
	}
	var errs []error
	names := make([]string, 0, len(plans))
	for n := range plans {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		p := plans[n]
		if !validName.MatchString(n) {
			errs = append(errs, fmt.Errorf("plan name %q: use up to 40 letters, digits, dashes and underscores", n))
		}
		for limit, v := range map[string]int{"cpu_millis": p.CPUMillis, "memory_mb": p.MemoryMB, "disk_mb": p.DiskMB,
			"bandwidth_kbit": p.BandwidthKbit, "replicas": p.Replicas, "apps": p.Apps} {
			if v < 0 {
				errs = append(errs, fmt.Errorf("plan %q: %s must not be negative (got %d)", n, limit, v))
			}
		}
	}
	if _, ok := plans[def]; !ok {
		errs = append(errs, fmt.Errorf("default_plan %q is not defined (plans: %s)", def, strings.Join(names, ", ")))
	}
	if len(errs) > 0 {
		return nil, fmt.Errorf("plans: %w", errors.Join(errs...))
	}
	cp := make(map[string]Plan, len(plans))
	for k, v := range plans {
		cp[k] = v
	}
	return &Registry{plans: cp, def: def}, nil
}

// Default is the plan name new teams get.
func (r *Registry) Default() string { return r.def }

// Names lists the plans.
func (r *Registry) Names() []string {
	out := make([]string, 0, len(r.plans))
	for n := range r.plans {
		out = append(out, n)
	}
	sort.Strings(out)
	return out
}

// Get returns a plan by name.
func (r *Registry) Get(name string) (Plan, bool) {
	p, ok := r.plans[name]
	return p, ok
}

// Querier is a transaction (or a pool).
type Querier interface {
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
	Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error)
}

// CheckTeams fails when a team in the database is on a plan that is not
// configured (run at start: a renamed or removed plan is an operator
// error to fix, not something to guess about).
func (r *Registry) CheckTeams(ctx context.Context, q interface {
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
}) error {
	rows, err := q.Query(ctx, "SELECT plan, count(*) FROM teams GROUP BY plan ORDER BY plan")
	if err != nil {
		return fmt.Errorf("plans: reading teams: %w", err)
	}
	defer rows.Close()
	var unknown []string
	for rows.Next() {
		var name string
		var n int
		if err := rows.Scan(&name, &n); err != nil {
			return err
		}
		if _, ok := r.plans[name]; !ok {
			unknown = append(unknown, fmt.Sprintf("%q (%d teams)", name, n))
		}
	}
	if err := rows.Err(); err != nil {
		return err
	}
	if len(unknown) > 0 {
		return fmt.Errorf("plans: teams are on plans that are not configured: %s (configured: %s)",
			strings.Join(unknown, ", "), strings.Join(r.Names(), ", "))
	}
	return nil
}

// TeamPlan locks the team's row for the rest of tx and returns its plan.
func (r *Registry) TeamPlan(ctx context.Context, tx Querier, teamID int64) (string, Plan, error) {
	var name string
	err := tx.QueryRow(ctx, "SELECT plan FROM teams WHERE id = $1 FOR UPDATE", teamID).Scan(&name)
	if errors.Is(err, pgx.ErrNoRows) {
		return "", Plan{}, fmt.Errorf("team %d not found", teamID)
	}
	if err != nil {
		return "", Plan{}, err
	}
	p, ok := r.plans[name]
	if !ok {
		return name, Plan{}, fmt.Errorf("team %d is on plan %q, which is not configured", teamID, name)
	}
	return name, p, nil
}

// Limits are the resources an app asks for. A zero CPU, memory, disk or
// bandwidth value is "not set": the app gets its plan's limit when it is
// placed (see Plan.Effective), or no limit on a plan without one.
type Limits struct {
	CPUMillis, MemoryMB, DiskMB, BandwidthKbit, Replicas int
}

// checkLimits compares the limits an app asks for with the plan.
func checkLimits(name string, p Plan, l Limits) error {
	for _, f := range append(l.fields(), field{"replicas", &l.Replicas}) {
		if *f.v < 0 {
			return fmt.Errorf("%s must not be negative (got %d)", f.name, *f.v)
		}
	}
	if p.Replicas > 0 && l.Replicas > p.Replicas {
		return refuse(name, "replicas", ": replicas is at most %d (asked for %d)", p.Replicas, l.Replicas)
	}
	caps := p.limits()
	for i, f := range l.fields() {
		if m := *caps.fields()[i].v; m > 0 && *f.v > m {
			return refuse(name, f.name, ": %s is at most %d (asked for %d)", f.name, m, *f.v)
		}
	}
	return nil
}

type field struct {
	name string
	v    *int
}

// fields are the per-app resource limits the scheduler and the worker
// enforce (replicas is checked at the edges only).
func (l *Limits) fields() []field {
	return []field{{"cpu_millis", &l.CPUMillis}, {"memory_mb", &l.MemoryMB}, {"disk_mb", &l.DiskMB}, {"bandwidth_kbit", &l.BandwidthKbit}}
}

func (p Plan) limits() Limits {
	return Limits{CPUMillis: p.CPUMillis, MemoryMB: p.MemoryMB, DiskMB: p.DiskMB, BandwidthKbit: p.BandwidthKbit, Replicas: p.Replicas}
}

// Effective is what an app asking for l runs with on plan p: where the
// plan has a limit, a value above it or not set (zero) becomes the plan's
// limit. lowered names each change ("memory_mb 2048 → 256",
// "bandwidth_kbit unlimited → 20000"), for the deployment's log. The
// scheduler places jobs by these values, so it never reserves more than
// the plan allows and the worker enforces what was reserved.
func (p Plan) Effective(l Limits) (eff Limits, lowered []string) {
	eff = l
	caps := p.limits()
	for i, f := range eff.fields() {
		m := *caps.fields()[i].v
		if m <= 0 || (*f.v > 0 && *f.v <= m) {
			continue
		}
		from := "unlimited"
		if *f.v > 0 {
			from = fmt.Sprint(*f.v)
		}
		lowered = append(lowered, fmt.Sprintf("%s %s → %d", f.name, from, m))
		*f.v = m
	}
	return eff, lowered
}

// CheckCreateApp runs in the transaction that creates an app: the team
// must have an app slot left and the limits must fit the plan.
func (r *Registry) CheckCreateApp(ctx context.Context, tx Querier, teamID int64, l Limits) error {
	name, p, err := r.TeamPlan(ctx, tx, teamID)
	if err != nil {
		return err
	}
	var n int
	if err := tx.QueryRow(ctx, "SELECT count(*) FROM apps WHERE team_id = $1 AND preview_of IS NULL", teamID).Scan(&n); err != nil {
		return err
	}
	if p.Apps > 0 && n >= p.Apps {
		return refuse(name, "apps", " allows %d apps; the team has %d", p.Apps, n)
	}
	return checkLimits(name, p, l)
}

// CheckScale runs in the transaction that changes an app's limits.
func (r *Registry) CheckScale(ctx context.Context, tx Querier, teamID int64, l Limits) error {
	name, p, err := r.TeamPlan(ctx, tx, teamID)
	if err != nil {
		return err
	}
	return checkLimits(name, p, l)
}

// CheckDeploy runs in the transaction that enqueues a deploy: an app whose
// limits no longer fit its team's plan (after a downgrade) is refused
// until it is scaled down, so the scheduler never reserves more than the
// plan allows.
func (r *Registry) CheckDeploy(ctx context.Context, tx Querier, teamID int64, l Limits) error {
	return r.CheckScale(ctx, tx, teamID, l)
}

// CheckDomain runs in the transaction that adds a custom domain.
func (r *Registry) CheckDomain(ctx context.Context, tx Querier, teamID int64) error {
	name, p, err := r.TeamPlan(ctx, tx, teamID)
	if err != nil {
		return err
	}
	if !p.CustomDomains {
		return refuse(name, "custom_domains", " does not include custom domains (custom_domains); upgrade the plan to add one")
	}
	return nil
}

// CheckPreview runs in the transaction that would open a preview.
func (r *Registry) CheckPreview(ctx context.Context, tx Querier, teamID int64) error {
	name, p, err := r.TeamPlan(ctx, tx, teamID)
	if err != nil {
		return err
	}
	if !p.Previews {
		return refuse(name, "previews", " does not include preview deployments (previews)")
	}
	return nil
}
