package backup

import (
	"context"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/wisehosting/wisehosting/internal/pgtest"
	"github.com/wisehosting/wisehosting/internal/secrets"
)

const master = "0123456789abcdef0123456789abcdef"

func TestBackupRestoreRoundTrip(t *testing.T) {
	ctx := context.Background()
	src := pgtest.New(t)
	if _, err := src.Pool.Exec(ctx, "INSERT INTO teams (name, slug) VALUES ('Acme', 'acme')"); err != nil {
		t.Fatal(err)
	}
	kr, _ := secrets.NewKeyring(master)
	dir := t.TempDir()
	path, err := Create(ctx, Target{URL: src.URL}, kr, dir, time.Date(2026, 12, 2, 3, 4, 5, 0, time.UTC))
	if err != nil {
		t.Fatal(err)
	}
	if st, _ := os.Stat(path); st == nil || st.Mode().Perm() != 0o600 || !strings.HasSuffix(path, "wisehosting-20261202T030405Z.whbackup") {
		t.Fatalf("backup file %s %v", path, st)
	}
	b, _ := os.ReadFile(path)
	if strings.Contains(string(b), "acme") || strings.Contains(string(b), "PGDMP") {
		t.Fatal("the backup is not encrypted")
	}
	list, err := List(dir)
	if err != nil || len(list) != 1 || list[0].Path != path || list[0].Size == 0 {
		t.Fatalf("list %+v %v", list, err)
	}

	// Another master secret cannot read it; a changed byte is refused.
	other, _ := secrets.NewKeyring(strings.Repeat("z", 32))
	dst := pgtest.NewEmpty(t, false)
	if err := Restore(ctx, path, Target{URL: dst.URL}, other); err == nil || !strings.Contains(err.Error(), "master secret") {
		t.Fatalf("wrong secret: %v", err)
	}
	tampered := path + ".x"
	bad := []byte(string(b))
	bad[len(header)+20] ^= 1
	os.WriteFile(tampered, bad, 0o600)
	if err := Restore(ctx, tampered, Target{URL: dst.URL}, kr); err == nil {
		t.Fatal("tampered backup restored")
	}
	// Never over live data.
	if err := Restore(ctx, path, Target{URL: src.URL}, kr); err == nil || !strings.Contains(err.Error(), "empty database") {
		t.Fatalf("restore over a live database: %v", err)
	}

	if err := Restore(ctx, path, Target{URL: dst.URL}, kr); err != nil {
		t.Fatal(err)
	}
	conn, err := pgx.Connect(ctx, dst.URL)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	var name string
	var version int
	if err := conn.QueryRow(ctx, "SELECT name FROM teams WHERE slug = 'acme'").Scan(&name); err != nil || name != "Acme" {
		t.Fatalf("restored team %q %v", name, err)
	}
	if err := conn.QueryRow(ctx, "SELECT version FROM schema_migrations").Scan(&version); err != nil || version == 0 {
		t.Fatalf("restored schema version %d %v", version, err)
	}
}
