package backup

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"filippo.io/age"
	"github.com/jackc/pgx/v5"

	"github.com/wisehosting/wisehosting/internal/pgtest"
	"github.com/wisehosting/wisehosting/internal/secrets"
)

// A backup encrypted to an age recipient restores with the recipient's
// identity only (the master secret does not open it).
func TestBackupToAgeRecipient(t *testing.T) {
	ctx := context.Background()
	src := pgtest.New(t)
	src.Pool.Exec(ctx, "INSERT INTO teams (name, slug) VALUES ('Acme', 'acme')")
	id, err := age.GenerateX25519Identity()
	if err != nil {
		t.Fatal(err)
	}
	kr, _ := secrets.NewKeyring(master)
	if _, err := CreateFor(ctx, Target{URL: src.URL}, kr, "age1notarecipient", t.TempDir(), time.Now()); err == nil {
		t.Fatal("a bad recipient was accepted")
	}
	path, err := CreateFor(ctx, Target{URL: src.URL}, kr, id.Recipient().String(), t.TempDir(), time.Now())
	if err != nil {
		t.Fatal(err)
	}
	b, _ := os.ReadFile(path)
	if !strings.HasPrefix(string(b), ageHeader) || strings.Contains(string(b), "PGDMP") || strings.Contains(string(b), "acme") {
		t.Fatal("not an age-encrypted backup")
	}
	dst := pgtest.NewEmpty(t, false)
	if err := Restore(ctx, path, Target{URL: dst.URL}, kr); err == nil || !strings.Contains(err.Error(), "--age-identity") {
		t.Fatalf("restored without the identity: %v", err)
	}
	other, _ := age.GenerateX25519Identity()
	otherFile := filepath.Join(t.TempDir(), "other.txt")
	os.WriteFile(otherFile, []byte(other.String()+"\n"), 0o600)
	if err := RestoreWith(ctx, path, Target{URL: dst.URL}, kr, otherFile); err == nil {
		t.Fatal("restored with another identity")
	}
	idFile := filepath.Join(t.TempDir(), "identity.txt")
	os.WriteFile(idFile, []byte("# backup key\n"+id.String()+"\n"), 0o600)
	if err := RestoreWith(ctx, path, Target{URL: dst.URL}, nil, idFile); err != nil {
		t.Fatal(err)
	}
	conn, err := pgx.Connect(ctx, dst.URL)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	var name string
	if err := conn.QueryRow(ctx, "SELECT name FROM teams WHERE slug = 'acme'").Scan(&name); err != nil || name != "Acme" {
		t.Fatalf("restored team %q %v", name, err)
	}
}
