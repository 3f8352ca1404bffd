// Package pgtest gives tests their own real Postgres database.
//
// The first call in a test binary migrates a template database (one per
// schema version, shared by every package and kept between runs); each
// New(t) then clones it with CREATE DATABASE … TEMPLATE, which takes a few
// milliseconds, and drops the clone when the test ends. Packages and tests
// can therefore run in parallel without seeing each other's rows.
//
// The server is $WH_TEST_DATABASE_URL, else postgres://postgres@127.0.0.1:5432/postgres.
package pgtest

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io/fs"
	"net/url"
	"os"
	"sort"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/wisehosting/wisehosting/internal/store"
	"github.com/wisehosting/wisehosting/migrations"
)

// AdminURL is the maintenance connection used to create databases.
func AdminURL() string {
	if u := os.Getenv("WH_TEST_DATABASE_URL"); u != "" {
		return u
	}
	return "postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable"
}

// URLFor returns AdminURL with its database replaced by name.
func URLFor(name string) string {
	u, err := url.Parse(AdminURL())
	if err != nil {
		panic(err)
	}
	u.Path = "/" + name
	return u.String()
}

var (
	tmplOnce sync.Once
	tmplName string
	tmplErr  error
)

// schemaHash names the template after the migration files, so a changed
// migration gets a fresh template instead of a stale one.
func schemaHash() string {
	h := sha256.New()
	names, _ := fs.Glob(migrations.FS, "*.sql")
	sort.Strings(names)
	for _, n := range names {
		b, _ := fs.ReadFile(migrations.FS, n)
		h.Write([]byte(n))
		h.Write(b)
	}
	return hex.EncodeToString(h.Sum(nil))[:12]
}

func admin(ctx context.Context) (*pgx.Conn, error) {
	return pgx.Connect(ctx, AdminURL())
}

func template(ctx context.Context) (string, error) {
	tmplOnce.Do(func() {
		tmplName = "wh_tmpl_" + schemaHash()
		tmplErr = buildTemplate(ctx, tmplName)
	})
	return tmplName, tmplErr
}

func buildTemplate(ctx context.Context, name string) error {
	c, err := admin(ctx)
	if err != nil {
		return fmt.Errorf("pgtest: connecting to %s: %w (is Postgres running? see README)", AdminURL(), err)
	}
	defer c.Close(ctx)
	// Serialise template creation across test binaries.
	if _, err := c.Exec(ctx, "SELECT pg_advisory_lock(727274)"); err != nil {
		return err
	}
	defer c.Exec(context.Background(), "SELECT pg_advisory_unlock(727274)")
	var ready bool
	err = c.QueryRow(ctx, "SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1 AND datistemplate)", name).Scan(&ready)
	if err != nil || ready {
		return err
	}
	building := name + "_b"
	c.Exec(ctx, "DROP DATABASE IF EXISTS "+building+" WITH (FORCE)")
	if _, err := c.Exec(ctx, "CREATE DATABASE "+building); err != nil {
		return err
	}
	pool, err := store.Open(ctx, URLFor(building), store.Options{MaxConns: 2})
	if err != nil {
		return err
	}
	mg, err := store.NewMigrator(pool)
	if err == nil {
		err = mg.Up()
		mg.Close()
	}
	pool.Close()
	if err != nil {
		return fmt.Errorf("pgtest: migrating template: %w", err)
	}
	c.Exec(ctx, "DROP DATABASE IF EXISTS "+name+" WITH (FORCE)")
	if _, err := c.Exec(ctx, "ALTER DATABASE "+building+" RENAME TO "+name); err != nil {
		return err
	}
	_, err = c.Exec(ctx, "ALTER DATABASE "+name+" WITH is_template true")
	return err
}

// DB is a throwaway database for one test.
type DB struct {
	Name string
	URL  string
	Pool *pgxpool.Pool
}

// New creates a migrated database for t, dropped when t ends.
func New(t testing.TB) *DB {
	t.Helper()
	db := NewEmpty(t, true)
	return db
}

// NewEmpty creates a database for t; migrated clones the schema template,
// otherwise the database is empty (for migration tests).
func NewEmpty(t testing.TB, migrated bool) *DB {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	var tmpl string
	if migrated {
		var err error
		if tmpl, err = template(ctx); err != nil {
			t.Fatal(err)
		}
	}
	c, err := admin(ctx)
	if err != nil {
		t.Fatalf("pgtest: %v", err)
	}
	defer c.Close(ctx)
	var rnd [6]byte
	rand.Read(rnd[:])
	name := "wh_t_" + hex.EncodeToString(rnd[:])
	q := "CREATE DATABASE " + name
	if tmpl != "" {
		q += " TEMPLATE " + tmpl
	}
	// Concurrent clones of one template can collide ("source database is
	// being accessed by other users"); retry briefly.
	for i := 0; ; i++ {
		_, err = c.Exec(ctx, q)
		if err == nil || i == 50 {
			break
		}
		time.Sleep(time.Duration(20+i*10) * time.Millisecond)
	}
	if err != nil {
		t.Fatalf("pgtest: creating database: %v", err)
	}
	db := &DB{Name: name, URL: URLFor(name)}
	t.Cleanup(func() {
		if db.Pool != nil {
			db.Pool.Close()
		}
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if c, err := admin(ctx); err == nil {
			c.Exec(ctx, "DROP DATABASE IF EXISTS "+name+" WITH (FORCE)")
			c.Close(ctx)
		}
	})
	db.Pool, err = store.Open(ctx, db.URL, store.Options{MaxConns: 8, AppName: "wisehosting-test"})
	if err != nil {
		t.Fatal(err)
	}
	return db
}
