package store

import (
	"errors"
	"fmt"
	"strconv"

	"github.com/golang-migrate/migrate/v4"
	migratepgx "github.com/golang-migrate/migrate/v4/database/pgx/v5"
	"github.com/golang-migrate/migrate/v4/source/iofs"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/jackc/pgx/v5/stdlib"

	"github.com/wisehosting/wisehosting/migrations"
)

// DirtyError means a migration failed half-way and the schema is in an
// unknown state. The control plane refuses to start on it.
type DirtyError struct {
	Version uint
	// Previous is the migration before Version, the one to force when
	// Version's did not complete: -1 when Version is the first (golang-
	// migrate's "no migration applied"). Version numbers have gaps, so it
	// is not Version-1.
	Previous int
}

func (e *DirtyError) Error() string {
	prev := strconv.Itoa(e.Previous)
	if e.Previous < 0 {
		prev = "-- -1" // "--": a negative number is not a flag
	}
	return fmt.Sprintf("database schema is dirty at migration version %d: a migration failed part-way. "+
		"Inspect the schema and repair it by hand, then mark the version you are really at with "+
		"`wisehosting migrate force %d` if the migration completed, or `wisehosting migrate force %s` if it did not "+
		"(flags such as --config before the version), and start again",
		e.Version, e.Version, prev)
}

func dirty(version uint) *DirtyError {
	return &DirtyError{Version: version, Previous: PreviousVersion(version)}
}

// PreviousVersion is the newest embedded migration older than v, or -1
// when there is none.
func PreviousVersion(v uint) int {
	prev := -1
	for _, x := range versions() {
		if x < v {
			prev = int(x)
		}
	}
	return prev
}

// Status describes the schema of a database.
type Status struct {
	Version uint // 0 when no migration has run
	Dirty   bool
	Latest  uint // newest embedded migration
}

// Migrator runs the embedded migrations. golang-migrate takes a Postgres
// advisory lock, so replicas starting together apply each step once.
type Migrator struct {
	m *migrate.Migrate
}

// NewMigrator opens a dedicated connection (not from the pool: migrate
// closes its handle) for the pool's database.
func NewMigrator(pool *pgxpool.Pool) (*Migrator, error) {
	db := stdlib.OpenDB(*pool.Config().ConnConfig.Copy())
	drv, err := migratepgx.WithInstance(db, &migratepgx.Config{MigrationsTable: "schema_migrations"})
	if err != nil {
		db.Close()
		return nil, fmt.Errorf("opening migration driver: %w", err)
	}
	src, err := iofs.New(migrations.FS, ".")
	if err != nil {
		drv.Close()
		return nil, fmt.Errorf("reading embedded migrations: %w", err)
	}
	m, err := migrate.NewWithInstance("iofs", src, "pgx5", drv)
	if err != nil {
		drv.Close()
		return nil, fmt.Errorf("creating migrator: %w", err)
	}
	return &Migrator{m: m}, nil
}

// Close releases the migration connection.
func (mg *Migrator) Close() error {
	serr, derr := mg.m.Close()
	return errors.Join(serr, derr)
}

// Status reports the current version, dirtiness and newest migration.
func (mg *Migrator) Status() (Status, error) {
	var st Status
	v, dirty, err := mg.m.Version()
	switch {
	case errors.Is(err, migrate.ErrNilVersion):
	case err != nil:
		return st, fmt.Errorf("reading schema version: %w", err)
	default:
		st.Version, st.Dirty = v, dirty
	}
	st.Latest = LatestVersion()
	return st, nil
}

// Up applies every pending migration; it refuses a dirty schema.
func (mg *Migrator) Up() error {
	st, err := mg.Status()
	if err != nil {
		return err
	}
	if st.Dirty {
		return dirty(st.Version)
	}
	if st.Version > st.Latest {
		return fmt.Errorf("database schema is at version %d but this binary knows migrations up to %d: "+
			"run a newer wisehosting binary", st.Version, st.Latest)
	}
	if err := mg.m.Up(); err != nil && !errors.Is(err, migrate.ErrNoChange) {
		var de migrate.ErrDirty
		if errors.As(err, &de) {
			return dirty(uint(de.Version))
		}
		return fmt.Errorf("applying migrations: %w", err)
	}
	return nil
}

// Down reverts n migrations (all of them when n <= 0).
func (mg *Migrator) Down(n int) error {
	var err error
	if n <= 0 {
		err = mg.m.Down()
	} else {
		err = mg.m.Steps(-n)
	}
	if err != nil && !errors.Is(err, migrate.ErrNoChange) {
		return fmt.Errorf("reverting migrations: %w", err)
	}
	return nil
}

// Force records version as applied and clean, without running anything.
// It is the operator's way out of a dirty state after a manual repair.
func (mg *Migrator) Force(version int) error {
	if err := mg.m.Force(version); err != nil {
		return fmt.Errorf("forcing schema version %d: %w", version, err)
	}
	return nil
}

// LatestVersion is the number of the newest embedded migration.
func LatestVersion() uint {
	vs := versions()
	if len(vs) == 0 {
		return 0
	}
	return vs[len(vs)-1]
}

// versions lists the embedded migrations' numbers, oldest first.
func versions() []uint {
	src, err := iofs.New(migrations.FS, ".")
	if err != nil {
		return nil
	}
	defer src.Close()
	v, err := src.First()
	if err != nil {
		return nil
	}
	out := []uint{v}
	for {
		next, err := src.Next(v)
		if err != nil {
			return out
		}
		out = append(out, next)
		v = next
	}
}
