package deploys

import (
	"context"
	"testing"

	"github.com/wisehosting/wisehosting/internal/gitproviders"
	"github.com/wisehosting/wisehosting/internal/pgtest"
	"github.com/wisehosting/wisehosting/internal/secrets"
)

func TestEnvEncryptedAndInheritedByPreviews(t *testing.T) {
	t.Parallel()
	db := pgtest.New(t)
	ctx := context.Background()
	kr, _ := secrets.NewKeyring("0123456789abcdef0123456789abcdef")
	app := seedApp(t, db, "envapp")
	if err := SetEnv(ctx, db.Pool, kr, app.ID, "DATABASE_URL", "postgres://secret@db/app"); err != nil {
		t.Fatal(err)
	}
	if err := SetEnv(ctx, db.Pool, kr, app.ID, "1BAD", "x"); err == nil {
		t.Fatal("invalid name accepted")
	}
	var stored string
	db.Pool.QueryRow(ctx, "SELECT value_enc FROM env_vars WHERE app_id = $1", app.ID).Scan(&stored)
	if stored == "" || stored == "postgres://secret@db/app" {
		t.Fatalf("value stored in clear: %q", stored)
	}
	env, err := LoadEnv(ctx, db.Pool, kr, app.ID)
	if err != nil || env["DATABASE_URL"] != "postgres://secret@db/app" {
		t.Fatalf("%v %v", env, err)
	}
	// A preview gets its parent's variables.
	ev := &gitproviders.Event{Provider: "github", Kind: gitproviders.EventPullRequest, DeliveryID: "e",
		PR: &gitproviders.PullRequest{Number: 3, Action: gitproviders.PROpened, HeadBranch: "b", HeadSHA: "s"}}
	out, err := HandleEvent(ctx, db.Pool, app, ev, Policy{})
	if err != nil {
		t.Fatal(err)
	}
	env, err = LoadEnv(ctx, db.Pool, kr, out.AppID)
	if err != nil || env["DATABASE_URL"] != "postgres://secret@db/app" {
		t.Fatalf("preview env: %v %v", env, err)
	}
	// A ciphertext moved to another app's row does not decrypt.
	other := seedApp(t, db, "other")
	db.Pool.Exec(ctx, "INSERT INTO env_vars (app_id, key, value_enc) VALUES ($1, 'STOLEN', $2)", other.ID, stored)
	if _, err := LoadEnv(ctx, db.Pool, kr, other.ID); err == nil {
		t.Fatal("a value copied from another app decrypted")
	}
	if err := SetGitToken(ctx, db.Pool, kr, app.ID, "ghp_token"); err != nil {
		t.Fatal(err)
	}
	if tok, err := GitToken(ctx, db.Pool, kr, out.AppID); err != nil || tok != "ghp_token" {
		t.Fatalf("preview git token %q %v", tok, err)
	}
}
