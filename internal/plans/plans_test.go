package plans

import (
	"context"
	"strings"
	"sync"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/wisehosting/wisehosting/internal/errs"
	"github.com/wisehosting/wisehosting/internal/pgtest"
)

func TestRegistryValidation(t *testing.T) {
	if _, err := NewRegistry(nil, ""); err != nil {
		t.Fatalf("built-in plans: %v", err)
	}
	cases := []struct {
		plans map[string]Plan
		def   string
		want  string
	}{
		{map[string]Plan{"basic": {Apps: 1}}, "", `no plan named "free"`},
		{map[string]Plan{"basic": {Apps: 1}}, "gold", `default_plan "gold" is not defined`},
		{map[string]Plan{"free": {CPUMillis: -1}}, "", "cpu_millis must not be negative"},
		{map[string]Plan{"free": {}, "bad name": {}}, "", `plan name "bad name"`},
		{map[string]Plan{"free": {}, "": {}}, "", `plan name ""`},
		{map[string]Plan{"free": {}, "pro\"; --": {}}, "", `plan name`},
		{map[string]Plan{"free": {}, strings.Repeat("p", 41): {}}, "", `plan name`},
		{map[string]Plan{"free": {}, "pro": {Apps: -3, DiskMB: -1}}, "", "apps must not be negative"},
	}
	for _, c := range cases {
		if _, err := NewRegistry(c.plans, c.def); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%v/%q: %v, want %q", c.plans, c.def, err, c.want)
		}
	}
}

type fixture struct {
	db   *pgtest.DB
	reg  *Registry
	team int64
}

func setup(t *testing.T, plan string) *fixture {
	t.Helper()
	db := pgtest.New(t)
	reg, err := NewRegistry(map[string]Plan{
		"free":  {CPUMillis: 500, MemoryMB: 256, DiskMB: 1024, BandwidthKbit: 10000, Replicas: 1, Apps: 2},
		"pro":   {CPUMillis: 2000, MemoryMB: 2048, Apps: 20, CustomDomains: true, Previews: true},
		"infra": {}, // no limits at all
	}, "free")
	if err != nil {
		t.Fatal(err)
	}
	f := &fixture{db: db, reg: reg}
	db.Pool.QueryRow(context.Background(), "INSERT INTO teams (name, slug, plan) VALUES ('t', 't', $1) RETURNING id", plan).Scan(&f.team)
	return f
}

func (f *fixture) tx(t *testing.T, fn func(tx pgx.Tx) error) error {
	t.Helper()
	return pgx.BeginFunc(context.Background(), f.db.Pool, fn)
}

func limitErr(t *testing.T, err error, limit string) {
	t.Helper()
	if !errs.Is(err, errs.Forbidden) || !strings.Contains(err.Error(), limit) || !strings.Contains(err.Error(), `plan "`) {
		t.Fatalf("err = %v, want a refusal naming %s", err, limit)
	}
}

func TestRefusals(t *testing.T) {
	f := setup(t, "free")
	ctx := context.Background()
	ok := Limits{CPUMillis: 500, MemoryMB: 256, DiskMB: 1024, BandwidthKbit: 5000, Replicas: 1}
	for limit, l := range map[string]Limits{
		"cpu_millis":     {CPUMillis: 501, MemoryMB: 1, BandwidthKbit: 1},
		"memory_mb":      {MemoryMB: 257, BandwidthKbit: 1},
		"disk_mb":        {DiskMB: 2048, BandwidthKbit: 1},
		"bandwidth_kbit": {BandwidthKbit: 10001},
		"replicas":       {Replicas: 2, BandwidthKbit: 1},
	} {
		err := f.tx(t, func(tx pgx.Tx) error { return f.reg.CheckCreateApp(ctx, tx, f.team, l) })
		limitErr(t, err, limit)
		err = f.tx(t, func(tx pgx.Tx) error { return f.reg.CheckScale(ctx, tx, f.team, l) })
		limitErr(t, err, limit)
		err = f.tx(t, func(tx pgx.Tx) error { return f.reg.CheckDeploy(ctx, tx, f.team, l) })
		limitErr(t, err, limit)
	}
	// Two apps allowed: the third is refused, previews do not count.
	for i, slug := range []string{"a", "b"} {
		err := f.tx(t, func(tx pgx.Tx) error {
			if err := f.reg.CheckCreateApp(ctx, tx, f.team, ok); err != nil {
				return err
			}
			_, err := tx.Exec(ctx, "INSERT INTO apps (team_id, slug, name) VALUES ($1, $2, $2)", f.team, slug)
			return err
		})
		if err != nil {
			t.Fatalf("app %d: %v", i, err)
		}
	}
	var parent int64
	f.db.Pool.QueryRow(ctx, "SELECT id FROM apps WHERE slug = 'a'").Scan(&parent)
	f.db.Pool.Exec(ctx, "INSERT INTO apps (team_id, slug, name, preview_of, pr_number) VALUES ($1, 'a-pr-1', 'p', $2, 1)", f.team, parent)
	err := f.tx(t, func(tx pgx.Tx) error { return f.reg.CheckCreateApp(ctx, tx, f.team, ok) })
	limitErr(t, err, "apps")
	if !strings.Contains(err.Error(), "allows 2 apps; the team has 2") {
		t.Fatalf("message %q", err)
	}
	if !strings.Contains(err.Error(), `plan "free" allows 2 apps; the team has 2`) {
		t.Fatalf("message %q", err)
	}
	limitErr(t, f.tx(t, func(tx pgx.Tx) error { return f.reg.CheckDomain(ctx, tx, f.team) }), "custom_domains")
	limitErr(t, f.tx(t, func(tx pgx.Tx) error { return f.reg.CheckPreview(ctx, tx, f.team) }), "previews")
	// Limits not set (zero) are not refused: the scheduler gives the app
	// the plan's limits. Negative ones are.
	if err := f.tx(t, func(tx pgx.Tx) error { return f.reg.CheckScale(ctx, tx, f.team, Limits{}) }); err != nil {
		t.Fatalf("unset limits: %v", err)
	}
	if err := f.tx(t, func(tx pgx.Tx) error { return f.reg.CheckScale(ctx, tx, f.team, Limits{MemoryMB: -5}) }); err == nil ||
		!strings.Contains(err.Error(), "memory_mb must not be negative") {
		t.Fatalf("negative: %v", err)
	}
	if err := f.tx(t, func(tx pgx.Tx) error { return f.reg.CheckScale(ctx, tx, f.team, Limits{Replicas: -1}) }); err == nil {
		t.Fatal("negative replicas accepted")
	}
	// A team on a plan that is not configured is an error, not a guess.
	f.db.Pool.Exec(ctx, "UPDATE teams SET plan = 'gold' WHERE id = $1", f.team)
	if err := f.tx(t, func(tx pgx.Tx) error { return f.reg.CheckDomain(ctx, tx, f.team) }); err == nil || !strings.Contains(err.Error(), `plan "gold", which is not configured`) {
		t.Fatalf("unknown plan: %v", err)
	}
	if err := f.tx(t, func(tx pgx.Tx) error { return f.reg.CheckDomain(ctx, tx, 987654) }); err == nil || !strings.Contains(err.Error(), "not found") {
		t.Fatalf("unknown team: %v", err)
	}

	// On pro the same requests pass; on a plan without limits anything does.
	f.db.Pool.Exec(ctx, "UPDATE teams SET plan = 'pro' WHERE id = $1", f.team)
	for _, check := range []func(tx pgx.Tx) error{
		func(tx pgx.Tx) error {
			return f.reg.CheckCreateApp(ctx, tx, f.team, Limits{CPUMillis: 2000, MemoryMB: 2048})
		},
		func(tx pgx.Tx) error { return f.reg.CheckDomain(ctx, tx, f.team) },
		func(tx pgx.Tx) error { return f.reg.CheckPreview(ctx, tx, f.team) },
	} {
		if err := f.tx(t, check); err != nil {
			t.Fatalf("pro: %v", err)
		}
	}
	f.db.Pool.Exec(ctx, "UPDATE teams SET plan = 'infra' WHERE id = $1", f.team)
	if err := f.tx(t, func(tx pgx.Tx) error {
		return f.reg.CheckCreateApp(ctx, tx, f.team, Limits{CPUMillis: 64000, MemoryMB: 1 << 20, Replicas: 9})
	}); err != nil {
		t.Fatalf("infra: %v", err)
	}
}

// Concurrent creations cannot both take the last app slot: the team row
// is locked by the check.
func TestLastSlotTakenOnce(t *testing.T) {
	f := setup(t, "free")
	ctx := context.Background()
	f.db.Pool.Exec(ctx, "INSERT INTO apps (team_id, slug, name) VALUES ($1, 'a', 'a')", f.team)
	var wg sync.WaitGroup
	errs := make([]error, 8)
	for i := range errs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = f.tx(t, func(tx pgx.Tx) error {
				if err := f.reg.CheckCreateApp(ctx, tx, f.team, Limits{BandwidthKbit: 100}); err != nil {
					return err
				}
				_, err := tx.Exec(ctx, "INSERT INTO apps (team_id, slug, name) VALUES ($1, $2, $2)", f.team, "c"+string(rune('a'+i)))
				return err
			})
		}()
	}
	wg.Wait()
	okN := 0
	for _, err := range errs {
		if err == nil {
			okN++
		}
	}
	var n int
	f.db.Pool.QueryRow(ctx, "SELECT count(*) FROM apps WHERE team_id = $1", f.team).Scan(&n)
	if okN != 1 || n != 2 {
		t.Fatalf("%d creations succeeded, %d apps; want 1 and 2", okN, n)
	}
}

func TestCheckTeamsAtStart(t *testing.T) {
	f := setup(t, "free")
	ctx := context.Background()
	if err := f.reg.CheckTeams(ctx, f.db.Pool); err != nil {
		t.Fatal(err)
	}
	f.db.Pool.Exec(ctx, "INSERT INTO teams (name, slug, plan) VALUES ('x', 'x', 'legacy'), ('y', 'y', 'legacy')")
	err := f.reg.CheckTeams(ctx, f.db.Pool)
	if err == nil || !strings.Contains(err.Error(), `"legacy" (2 teams)`) || !strings.Contains(err.Error(), "configured: free, infra, pro") {
		t.Fatalf("err = %v", err)
	}
}

func TestEffective(t *testing.T) {
	free := Plan{CPUMillis: 500, MemoryMB: 256, DiskMB: 1024, BandwidthKbit: 10000}
	cases := []struct {
		in, want Limits
		lowered  string
	}{
		{Limits{CPUMillis: 250, MemoryMB: 128, DiskMB: 512, BandwidthKbit: 100}, Limits{CPUMillis: 250, MemoryMB: 128, DiskMB: 512, BandwidthKbit: 100}, ""},
		{Limits{CPUMillis: 2000, MemoryMB: 2048, DiskMB: 1024, BandwidthKbit: 10000, Replicas: 3},
			Limits{CPUMillis: 500, MemoryMB: 256, DiskMB: 1024, BandwidthKbit: 10000, Replicas: 3}, "cpu_millis 2000 → 500, memory_mb 2048 → 256"},
		{Limits{}, Limits{CPUMillis: 500, MemoryMB: 256, DiskMB: 1024, BandwidthKbit: 10000},
			"cpu_millis unlimited → 500, memory_mb unlimited → 256, disk_mb unlimited → 1024, bandwidth_kbit unlimited → 10000"},
	}
	for _, c := range cases {
		got, lowered := free.Effective(c.in)
		if got != c.want || strings.Join(lowered, ", ") != c.lowered {
			t.Errorf("%+v: %+v %q, want %+v %q", c.in, got, lowered, c.want, c.lowered)
		}
	}
	// A plan without limits changes nothing, zero included.
	if got, lowered := (Plan{}).Effective(Limits{MemoryMB: 1 << 20}); got != (Limits{MemoryMB: 1 << 20}) || lowered != nil {
		t.Errorf("no limits: %+v %v", got, lowered)
	}
}
