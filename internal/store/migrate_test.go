package store_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/wisehosting/wisehosting/internal/pgtest"
	"github.com/wisehosting/wisehosting/internal/store"
)

func tables(t *testing.T, db *pgtest.DB) map[string]bool {
	t.Helper()
	rows, err := db.Pool.Query(context.Background(),
		"SELECT tablename FROM pg_tables WHERE schemaname = 'public'")
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	out := map[string]bool{}
	for rows.Next() {
		var n string
		rows.Scan(&n)
		out[n] = true
	}
	return out
}

var schemaTables = []string{
	"users", "teams", "memberships", "sessions", "api_tokens", "workers", "apps", "deployments",
	"env_vars", "jobs", "domains", "routes", "certificates", "webhooks", "webhook_deliveries",
	"alert_rules", "alerts", "usage_samples", "runtime_logs", "audit_events",
}

func TestMigrateUpDown(t *testing.T) {
	t.Parallel()
	db := pgtest.NewEmpty(t, false)
	mg, err := store.NewMigrator(db.Pool)
	if err != nil {
		t.Fatal(err)
	}
	defer mg.Close()

	if err := mg.Up(); err != nil {
		t.Fatal(err)
	}
	st, err := mg.Status()
	if err != nil {
		t.Fatal(err)
	}
	if st.Dirty || st.Version != store.LatestVersion() || st.Version == 0 {
		t.Fatalf("after up: %+v (latest %d)", st, store.LatestVersion())
	}
	have := tables(t, db)
	for _, tb := range schemaTables {
		if !have[tb] {
			t.Errorf("table %s missing after up", tb)
		}
	}
	// Up again is a no-op.
	if err := mg.Up(); err != nil {
		t.Fatalf("second up: %v", err)
	}
	if err := mg.Down(0); err != nil {
		t.Fatal(err)
	}
	have = tables(t, db)
	for _, tb := range schemaTables {
		if have[tb] {
			t.Errorf("table %s still there after down", tb)
		}
	}
	// And up again from nothing: down migrations leave no debris behind.
	if err := mg.Up(); err != nil {
		t.Fatalf("up after down: %v", err)
	}
}

func TestDirtySchemaRefused(t *testing.T) {
	t.Parallel()
	db := pgtest.NewEmpty(t, false)
	mg, err := store.NewMigrator(db.Pool)
	if err != nil {
		t.Fatal(err)
	}
	defer mg.Close()
	if err := mg.Up(); err != nil {
		t.Fatal(err)
	}
	// Simulate a migration that died half-way.
	if _, err := db.Pool.Exec(context.Background(), "UPDATE schema_migrations SET dirty = true"); err != nil {
		t.Fatal(err)
	}
	err = mg.Up()
	var de *store.DirtyError
	if !errors.As(err, &de) {
		t.Fatalf("want DirtyError, got %v", err)
	}
	msg := err.Error()
	for _, want := range []string{"dirty", fmt.Sprintf("version %d", store.LatestVersion()), "wisehosting migrate force"} {
		if !strings.Contains(msg, want) {
			t.Errorf("dirty message %q lacks %q", msg, want)
		}
	}
	// The operator's way out.
	if err := mg.Force(int(de.Version)); err != nil {
		t.Fatal(err)
	}
	if err := mg.Up(); err != nil {
		t.Fatalf("after force: %v", err)
	}
}

// TestDirtyMessageNamesForceableVersions: the message names, for a
// migration that did not complete, the previous existing migration (the
// numbers have gaps) and -1 before the first; golang-migrate accepts both,
// and the control plane then migrates to the latest.
func TestDirtyMessageNamesForceableVersions(t *testing.T) {
	t.Parallel()
	ents, err := os.ReadDir("../../migrations")
	if err != nil {
		t.Fatal(err)
	}
	var nums []int
	for _, e := range ents {
		if n, ok := strings.CutSuffix(e.Name(), ".up.sql"); ok {
			v, err := strconv.Atoi(n[:strings.IndexByte(n, '_')])
			if err != nil {
				t.Fatal(err)
			}
			nums = append(nums, v)
		}
	}
	slices.Sort(nums)
	if len(nums) < 2 {
		t.Fatalf("migrations %v", nums)
	}
	latest, previous := nums[len(nums)-1], nums[len(nums)-2]
	ctx := context.Background()
	for _, c := range []struct {
		name        string
		dirtyAt     int
		force, want string
	}{
		{"latest", latest, strconv.Itoa(previous), "wisehosting migrate force " + strconv.Itoa(previous) + "`"},
		{"first", nums[0], "-1", "wisehosting migrate force -- -1`"},
	} {
		t.Run(c.name, func(t *testing.T) {
			db := pgtest.NewEmpty(t, false)
			mg, err := store.NewMigrator(db.Pool)
			if err != nil {
				t.Fatal(err)
			}
			defer mg.Close()
			// Apply up to the migration before the one that "fails",
			// then record that one as started and dirty, as golang-migrate
			// does when its SQL fails part-way.
			if err := mg.Up(); err != nil {
				t.Fatal(err)
			}
			if c.name == "first" {
				err = mg.Down(0)
			} else {
				err = mg.Down(1)
			}
			if err != nil {
				t.Fatal(err)
			}
			if _, err := db.Pool.Exec(ctx, "DELETE FROM schema_migrations"); err != nil {
				t.Fatal(err)
			}
			if _, err := db.Pool.Exec(ctx, "INSERT INTO schema_migrations (version, dirty) VALUES ($1, true)", c.dirtyAt); err != nil {
				t.Fatal(err)
			}
			err = mg.Up()
			var de *store.DirtyError
			if !errors.As(err, &de) || de.Previous != must(strconv.Atoi(c.force)) {
				t.Fatalf("dirty at %d: %v (%+v)", c.dirtyAt, err, de)
			}
			if !strings.Contains(err.Error(), c.want) {
				t.Fatalf("message %q lacks %q", err, c.want)
			}
			if err := mg.Force(de.Previous); err != nil {
				t.Fatalf("golang-migrate refused force %d: %v", de.Previous, err)
			}
			if err := mg.Up(); err != nil {
				t.Fatalf("up after force %d: %v", de.Previous, err)
			}
			if st, err := mg.Status(); err != nil || st.Dirty || st.Version != uint(latest) {
				t.Fatalf("after up: %+v %v", st, err)
			}
		})
	}
}

func must(v int, err error) int {
	if err != nil {
		panic(err)
	}
	return v
}

func TestNewerSchemaRefused(t *testing.T) {
	t.Parallel()
	db := pgtest.New(t)
	if _, err := db.Pool.Exec(context.Background(), "UPDATE schema_migrations SET version = 9999"); err != nil {
		t.Fatal(err)
	}
	mg, err := store.NewMigrator(db.Pool)
	if err != nil {
		t.Fatal(err)
	}
	defer mg.Close()
	if err := mg.Up(); err == nil || !strings.Contains(err.Error(), "newer") {
		t.Fatalf("want refusal of a newer schema, got %v", err)
	}
}
