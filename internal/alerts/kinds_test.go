package alerts

import (
	"context"
	"regexp"
	"slices"
	"testing"

	"github.com/wisehosting/wisehosting/internal/pgtest"
)

// TestKindsMatchCheckConstraint keeps the Go table and the database's CHECK
// constraint on alert_rules.kind the same set: a kind added to one only
// would be refused by the database or unknown to the evaluator.
func TestKindsMatchCheckConstraint(t *testing.T) {
	db := pgtest.New(t)
	var def string
	err := db.Pool.QueryRow(context.Background(), `SELECT pg_get_constraintdef(c.oid) FROM pg_constraint c
		WHERE c.conrelid = 'alert_rules'::regclass AND c.contype = 'c' AND pg_get_constraintdef(c.oid) LIKE '%kind%'`).Scan(&def)
	if err != nil {
		t.Fatal(err)
	}
	var inDB []string
	for _, m := range regexp.MustCompile(`'([a-z_]+)'::text`).FindAllStringSubmatch(def, -1) {
		inDB = append(inDB, m[1])
	}
	if len(inDB) == 0 {
		t.Fatalf("no kinds read from the constraint %q", def)
	}
	inGo := KindNames()
	slices.Sort(inDB)
	slices.Sort(inGo)
	if !slices.Equal(inDB, inGo) {
		t.Fatalf("alert_rules.kind CHECK %v, Go table %v (constraint: %s)", inDB, inGo, def)
	}
}

func TestCheckRule(t *testing.T) {
	for _, c := range []struct {
		kind      string
		threshold float64
		sustain   int
		ok        bool
	}{
		{"cpu", 80, 120, true},
		{"cpu", 0, 120, false},
		{"offline", 0, 0, true},
		{"offline", 1, 0, false},
		{"memory", 512, -1, false},
		{"memory", 512, MaxSustain + 1, false},
		{"nope", 0, 0, false},
	} {
		if got := CheckRule(c.kind, c.threshold, c.sustain); (got == "") != c.ok {
			t.Errorf("CheckRule(%q, %g, %d) = %q", c.kind, c.threshold, c.sustain, got)
		}
	}
}
