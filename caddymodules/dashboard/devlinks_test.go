package dashboard_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/wisehosting/wisehosting/caddymodules/cptest"
	"github.com/wisehosting/wisehosting/caddymodules/dashboard"
	"github.com/wisehosting/wisehosting/internal/pgtest"
	"github.com/wisehosting/wisehosting/internal/secrets"
	"github.com/wisehosting/wisehosting/internal/workers"
)

// TestNoWorkerMessageAndAppLinks: with no worker online every signed-in
// person learns why (the configured hint, else how to add one); apps
// carry their links (with apps_port) and their last deploy time.
func TestNoWorkerMessageAndAppLinks(t *testing.T) {
	t.Setenv("WH_TEST_NO_WORKER", "the local worker needs podman: run  sudo apt-get install -y podman")
	db := pgtest.New(t)
	cp := cptest.Start(t, db, cptest.Options{Core: map[string]any{"subdomain_base": "localhost", "apps_port": 8443},
		Handlers: []map[string]any{{"handler": "wisehosting_dashboard", "insecure_cookie": true, "no_worker_hint": "{env.WH_TEST_NO_WORKER}"}}})
	f := &fixture{t: t, db: db, base: cp.URL}
	ctx := context.Background()
	team := f.team("acme", "free")
	f.user("alice@acme.test", "alice-password-1", map[int64]string{team: "member"})
	f.user("root@acme.test", "root-password-1", map[int64]string{team: "owner"})
	alice, root := f.login("alice@acme.test", "alice-password-1"), f.login("root@acme.test", "root-password-1")

	(&client{f: f}).want(401, "GET", "/api/workers/online", nil)
	st := alice.want(200, "GET", "/api/workers/online", nil)
	if st["online"] != float64(0) || st["message"] != "the local worker needs podman: run  sudo apt-get install -y podman" {
		t.Fatalf("no worker: %v", st)
	}

	app := root.want(201, "POST", fmt.Sprintf("/api/teams/%d/apps", team), map[string]any{"name": "Shop", "slug": "shop", "git_repo": "https://git.example/shop.git"})
	id := int64(app["id"].(float64))
	if app["url"] != "https://shop.localhost:8443" || fmt.Sprint(app["urls"]) != "[https://shop.localhost:8443]" || app["last_deploy_at"] != nil {
		t.Fatalf("new app: %v", app)
	}
	alice.want(202, "POST", fmt.Sprintf("/api/apps/%d/deployments", id), map[string]any{})
	root.want(201, "POST", fmt.Sprintf("/api/apps/%d/domains", id), map[string]any{"hostname": "www.shop.example"})
	// Verification needs DNS; here the row is marked verified directly.
	db.Pool.Exec(ctx, "UPDATE domains SET verified_at = now() WHERE app_id = $1", id)
	list := alice.want(200, "GET", fmt.Sprintf("/api/teams/%d/apps", team), nil)["apps"].([]any)
	got := list[0].(map[string]any)
	if fmt.Sprint(got["urls"]) != "[https://shop.localhost:8443 https://www.shop.example]" || got["last_deploy_at"] == nil {
		t.Fatalf("listed app: %v", got)
	}
	// The overview: the newest deployment, who started it; not live yet.
	ld, _ := got["last_deploy"].(map[string]any)
	if ld == nil || ld["by"] != "alice@acme.test" || ld["status"] != "queued" || ld["trigger"] != "manual" || got["live_deployment_id"] != float64(0) {
		t.Fatalf("listed app's overview: %v", got)
	}
	// A domain's records name the exact TXT and CNAME to publish.
	doms := alice.want(200, "GET", fmt.Sprintf("/api/apps/%d/domains", id), nil)["domains"].([]any)
	recs := fmt.Sprint(doms[0].(map[string]any)["records"])
	if !strings.Contains(recs, "map[name:www.shop.example type:CNAME value:shop.localhost]") || !strings.Contains(recs, "name:_wisehosting.www.shop.example type:TXT") ||
		doms[0].(map[string]any)["certificate"] != nil {
		t.Fatalf("domain records: %v", doms[0])
	}

	kr, err := secrets.NewKeyring(cptest.Secret)
	if err != nil {
		t.Fatal(err)
	}
	w, _, err := workers.Add(ctx, db.Pool, kr, "w1", "z.test", "127.0.0.1")
	if err != nil {
		t.Fatal(err)
	}
	db.Pool.Exec(ctx, "UPDATE workers SET status = 'online' WHERE id = $1", w.ID)
	st = alice.want(200, "GET", "/api/workers/online", nil)
	if st["online"] != float64(1) || st["message"] != nil {
		t.Fatalf("one worker online: %v", st)
	}
	// A name is taken once, revoked or not, and the refusal says so.
	if _, _, err := workers.Add(ctx, db.Pool, kr, "w1", "", ""); err == nil || err.Error() != "a worker named w1 already exists" || !errors.Is(err, workers.ErrExists) {
		t.Fatalf("second w1: %v", err)
	}

	// Without a hint, the message says how to add a worker.
	f2 := start(t, nil)
	f2.user("bob@example.test", "bob-password-1", nil)
	if st := f2.login("bob@example.test", "bob-password-1").want(200, "GET", "/api/workers/online", nil); st["message"] != dashboard.DefaultNoWorkerHint {
		t.Fatalf("default message: %v", st)
	}
}
