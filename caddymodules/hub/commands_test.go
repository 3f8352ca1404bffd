package hub

import (
	"context"
	"testing"

	caddycmd "github.com/caddyserver/caddy/v2/cmd"
	"github.com/spf13/pflag"

	"github.com/wisehosting/wisehosting/internal/pgtest"
	"github.com/wisehosting/wisehosting/internal/workers"
)

func runWorker(t *testing.T, db *pgtest.DB, args ...string) (int, error) {
	t.Helper()
	t.Setenv("WISEHOSTING_DATABASE_URL", db.URL)
	fs := pflag.NewFlagSet("worker", pflag.ContinueOnError)
	fs.String("config", "", "")
	fs.String("adapter", "", "")
	fs.String("zone", "", "")
	fs.String("wg-ip", "", "")
	if err := fs.Parse(args); err != nil {
		t.Fatal(err)
	}
	return cmdWorker(caddycmd.Flags{FlagSet: fs})
}

// `worker drain` stops new deploys on a worker, `worker resume` ends it;
// an unknown or revoked worker is an error.
func TestWorkerDrainCommand(t *testing.T) {
	db := pgtest.New(t)
	ctx := context.Background()
	w, _, err := workers.Add(ctx, db.Pool, "w1", "", "")
	if err != nil {
		t.Fatal(err)
	}
	if code, err := runWorker(t, db, "drain", "w1"); code != 0 || err != nil {
		t.Fatalf("drain: %d %v", code, err)
	}
	if got, _ := workers.Get(ctx, db.Pool, w.ID); got.Status != "draining" {
		t.Fatalf("after drain: %s", got.Status)
	}
	if code, err := runWorker(t, db, "resume", "w1"); code != 0 || err != nil {
		t.Fatalf("resume: %d %v", code, err)
	}
	if got, _ := workers.Get(ctx, db.Pool, w.ID); got.Status != "offline" {
		t.Fatalf("after resume of a never-connected worker: %s", got.Status)
	}
	if _, err := runWorker(t, db, "drain", "nope"); err == nil {
		t.Fatal("drained an unknown worker")
	}
	workers.Revoke(ctx, db.Pool, "w1")
	if _, err := runWorker(t, db, "drain", "w1"); err == nil {
		t.Fatal("drained a revoked worker")
	}
}
