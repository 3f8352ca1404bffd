package dashboard_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"

	"github.com/wisehosting/wisehosting/caddymodules/core"
	"github.com/wisehosting/wisehosting/internal/events"
)

// Routes of an app through the API: list, add, update weights, remove;
// every rule refused with a sentence; tcp refused; another team's caller
// sees and changes nothing; each change audited and published as
// route.changed.
func TestAppRoutesAPI(t *testing.T) {
	f := start(t, nil)
	teamA, teamB := f.team("acme", "free"), f.team("globex", "free")
	f.user("alice@acme.test", "alice-password-1", map[int64]string{teamA: "owner"})
	f.user("bob@globex.test", "bob-password-1", map[int64]string{teamB: "owner"})
	f.user("carol@acme.test", "carol-password-1", map[int64]string{teamA: "member"})
	alice, bob, carol := f.login("alice@acme.test", "alice-password-1"), f.login("bob@globex.test", "bob-password-1"), f.login("carol@acme.test", "carol-password-1")

	a, _ := caddy.ActiveContext().App(core.AppName)
	changed := make(chan events.Event, 16)
	unsub := a.(*core.App).Events().Subscribe(func(e events.Event) {
		if e.Kind == events.RouteChanged {
			changed <- e
		}
	})
	defer unsub()
	event := func(change string) events.Event {
		t.Helper()
		select {
		case e := <-changed:
			if e.Data["change"] != change || e.TeamID != teamA {
				t.Fatalf("event %+v, want change %s of team %d", e, change, teamA)
			}
			return e
		case <-time.After(5 * time.Second):
			t.Fatalf("no route.changed (%s)", change)
			return events.Event{}
		}
	}

	app := alice.want(201, "POST", fmt.Sprintf("/api/teams/%d/apps", teamA), map[string]any{"name": "Shop", "slug": "shop", "port": 3000})
	base := fmt.Sprintf("/api/apps/%d/routes", int64(app["id"].(float64)))

	if got := alice.want(200, "GET", base, nil)["routes"].([]any); len(got) != 0 {
		t.Fatalf("new app has routes: %v", got)
	}
	root := alice.want(201, "POST", base, map[string]any{"path_prefix": "/", "weight": 90})
	event("added")
	if root["port"].(float64) != 3000 || root["protocol"] != "http" || root["weight"].(float64) != 90 {
		t.Fatalf("defaults: %v", root)
	}
	second := alice.want(201, "POST", base, map[string]any{"path_prefix": "/", "weight": 10, "protocol": "h2c"})
	event("added")
	api := alice.want(201, "POST", base, map[string]any{"path_prefix": "/api", "strip_prefix": true})
	event("added")
	secondPath := fmt.Sprintf("%s/%d", base, int64(second["id"].(float64)))
	upd := alice.want(200, "PATCH", secondPath, map[string]any{"weight": 50})
	if upd["weight"].(float64) != 50 || upd["protocol"] != "h2c" {
		t.Fatalf("update: %v", upd)
	}
	event("updated")
	if got := alice.want(200, "GET", base, nil)["routes"].([]any); len(got) != 3 {
		t.Fatalf("list: %v", got)
	}

	// Every rule, refused with a sentence (422), nothing stored.
	for _, c := range []struct {
		body any
		want string
	}{
		{map[string]any{"path_prefix": "api"}, "must start with /"},
		{map[string]any{"path_prefix": "/api/"}, "without a trailing slash"},
		{map[string]any{"path_prefix": "/a`) || Host(`evil"}, "path segments"},
		{map[string]any{"path_prefix": "/a/../b"}, "path segments"},
		{map[string]any{"port": 0}, "between 1 and 65535"},
		{map[string]any{"port": 70000}, "between 1 and 65535"},
		{map[string]any{"port": 5432}, "not a port of this app"},
		{map[string]any{"protocol": "tcp"}, "tcp is not supported"},
		{map[string]any{"protocol": "grpc"}, "must be http, https or h2c"},
		{map[string]any{"weight": 101}, "between 0 and 100"},
		{map[string]any{"weight": -1}, "between 0 and 100"},
		{map[string]any{"path_prefix": "/", "strip_prefix": true}, "strip_prefix needs"},
		{map[string]any{"path_prefix": "/api"}, "must agree on strip_prefix"},
		{map[string]any{"path_prefix": "/new", "weight": 0}, "at least one needs a weight above 0"},
	} {
		out := alice.want(422, "POST", base, c.body)
		if msg, _ := out["error"].(string); !strings.Contains(msg, c.want) {
			t.Errorf("%v: %q, want it to say %q", c.body, msg, c.want)
		}
	}
	alice.want(400, "POST", base, map[string]any{"path_prefix": "/x", "unknown": 1})
	apiPath := fmt.Sprintf("%s/%d", base, int64(api["id"].(float64)))
	alice.want(422, "PATCH", apiPath, map[string]any{"weight": 0}) // its group's last route above 0
	if got := alice.want(200, "GET", base, nil)["routes"].([]any); len(got) != 3 {
		t.Fatalf("a refused change was stored: %v", got)
	}

	// A member reads; only admins change.
	carol.want(200, "GET", base, nil)
	carol.want(403, "POST", base, map[string]any{"path_prefix": "/c"})
	carol.want(403, "DELETE", apiPath, nil)
	// Another team: as if nothing existed.
	bob.want(404, "GET", base, nil)
	bob.want(404, "POST", base, map[string]any{"path_prefix": "/b"})
	bob.want(404, "PATCH", apiPath, map[string]any{"weight": 5})
	bob.want(404, "DELETE", apiPath, nil)
	// A route id of another app, through an app of one's own.
	other := bob.want(201, "POST", fmt.Sprintf("/api/teams/%d/apps", teamB), map[string]any{"name": "Other", "slug": "other", "port": 3000})
	bob.want(404, "PATCH", fmt.Sprintf("/api/apps/%d/routes/%d", int64(other["id"].(float64)), int64(api["id"].(float64))), map[string]any{"weight": 5})
	bob.want(404, "DELETE", fmt.Sprintf("/api/apps/%d/routes/%d", int64(other["id"].(float64)), int64(api["id"].(float64))), nil)

	alice.want(200, "DELETE", apiPath, nil)
	event("removed")
	alice.want(404, "DELETE", apiPath, nil)
	select {
	case e := <-changed:
		t.Fatalf("unexpected event %+v", e)
	default:
	}

	// Audited, with what changed.
	audit := fmt.Sprint(alice.want(200, "GET", fmt.Sprintf("/api/teams/%d/audit", teamA), nil))
	for _, action := range []string{"route.add", "route.update", "route.remove"} {
		if !strings.Contains(audit, action) {
			t.Errorf("audit log lacks %s: %s", action, audit)
		}
	}
	var n int
	f.db.Pool.QueryRow(context.Background(), "SELECT count(*) FROM audit_events WHERE action LIKE 'route.%' AND team_id = $1", teamB).Scan(&n)
	if n != 0 {
		t.Fatalf("%d route audit rows for the other team", n)
	}
}
