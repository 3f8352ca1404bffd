package hub

import (
	"context"
	"testing"

	caddycmd "github.com/caddyserver/caddy/v2/cmd"
	"github.com/spf13/pflag"

	"github.com/wisehosting/wisehosting/internal/pgtest"
	"github.com/wisehosting/wisehosting/internal/secrets"
	"github.com/wisehosting/wisehosting/internal/workers"
)

const testSecret = "commands-test-secret-0123456789abcdef"

func testKeyring(t *testing.T) *secrets.Keyring {
	kr, err := secrets.NewKeyring(testSecret)
	if err != nil {
		t.Fatal(err)
	}
	return kr
}

func runWorker(t *testing.T, db *pgtest.DB, args ...string) (int, error) {
	t.Helper()
	t.Setenv("WISEHOSTING_DATABASE_URL", db.URL)
	t.Setenv("WISEHOSTING_SECRET", testSecret)
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
	w, _, err := workers.Add(ctx, db.Pool, testKeyring(t), "w1", "", "")
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

// Zone and mesh IP are the operator's: `worker add` and `worker set`
// refuse anything but a host name and an IP, so no rule can be smuggled
// into the proxies' routing through them.
func TestWorkerPlacementCommands(t *testing.T) {
	db := pgtest.New(t)
	ctx := context.Background()
	for _, zone := range []string{"z`) || HostRegexp(`.+", "de.example.com) || Host(x", "DE.example.com", "a b", "-x.test"} {
		if code, err := runWorker(t, db, "add", "w-bad", "--zone", zone); code == 0 || err == nil {
			t.Errorf("zone %q accepted", zone)
		}
	}
	if code, err := runWorker(t, db, "add", "w1", "--zone", "de.example.com", "--wg-ip", "10.50.0.7"); code != 0 || err != nil {
		t.Fatalf("add: %d %v", code, err)
	}
	ws, _ := workers.List(ctx, db.Pool)
	if len(ws) != 1 || ws[0].Zone != "de.example.com" || ws[0].WGIP != "10.50.0.7" {
		t.Fatalf("workers after add: %+v", ws)
	}
	if _, err := runWorker(t, db, "set", "w1", "--zone", "x`)"); err == nil {
		t.Fatal("set accepted a zone with a backquote")
	}
	if _, err := runWorker(t, db, "set", "w1", "--wg-ip", "10.50.0.8; rm"); err == nil {
		t.Fatal("set accepted a mesh IP that is not an IP")
	}
	if code, err := runWorker(t, db, "set", "w1", "--wg-ip", "10.50.0.8"); code != 0 || err != nil {
		t.Fatalf("set: %d %v", code, err)
	}
	got, _ := workers.Get(ctx, db.Pool, ws[0].ID)
	if got.WGIP != "10.50.0.8" || got.Zone != "de.example.com" {
		t.Fatalf("after set --wg-ip: %q %q", got.WGIP, got.Zone)
	}
	// Like the internal API's, the change is announced in its transaction.
	var announced int
	db.Pool.QueryRow(ctx, `SELECT count(*) FROM event_outbox WHERE kind = 'route.changed' AND payload->'data'->>'worker' = 'w1'`).Scan(&announced)
	if announced != 1 {
		t.Fatalf("route.changed events after set: %d", announced)
	}
	if code, err := runWorker(t, db, "set", "w1", "--zone", ""); code != 0 || err != nil {
		t.Fatalf("clearing the zone: %d %v", code, err)
	}
	if got, _ := workers.Get(ctx, db.Pool, ws[0].ID); got.Zone != "" || got.WGIP != "10.50.0.8" {
		t.Fatalf("after clearing the zone: %q %q", got.Zone, got.WGIP)
	}
}
