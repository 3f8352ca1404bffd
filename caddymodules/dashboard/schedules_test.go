package dashboard_test

import (
	"fmt"
	"strings"
	"testing"
)

// The volumes and scheduled-jobs endpoints: inputs refused with a
// sentence and the field; a member reads and only admins change; a
// read-only token changes nothing; another team's caller sees and changes
// nothing (404 as if nothing existed), also through an app of its own;
// every change is audited.
func TestVolumesAndCronAPI(t *testing.T) {
	f := start(t, nil)
	teamA, teamB := f.team("acme", "free"), f.team("globex", "free")
	f.user("alice@acme.test", "alice-password-1", map[int64]string{teamA: "owner"})
	f.user("bob@globex.test", "bob-password-1", map[int64]string{teamB: "owner"})
	f.user("carol@acme.test", "carol-password-1", map[int64]string{teamA: "member"})
	alice, bob, carol := f.login("alice@acme.test", "alice-password-1"), f.login("bob@globex.test", "bob-password-1"), f.login("carol@acme.test", "carol-password-1")

	app := alice.want(201, "POST", fmt.Sprintf("/api/teams/%d/apps", teamA), map[string]any{"name": "Shop", "slug": "shop", "port": 3000})
	ap := fmt.Sprintf("/api/apps/%d", int64(app["id"].(float64)))
	other := bob.want(201, "POST", fmt.Sprintf("/api/teams/%d/apps", teamB), map[string]any{"name": "Other", "slug": "other", "port": 3000})
	op := fmt.Sprintf("/api/apps/%d", int64(other["id"].(float64)))

	for _, c := range []struct {
		path  string
		body  map[string]any
		field string
	}{
		{"/volumes", map[string]any{"name": "data", "mount_path": "/proc/x", "size_mb": 5}, "mount_path"},
		{"/volumes", map[string]any{"name": "-x", "mount_path": "/data", "size_mb": 5}, "name"},
		{"/volumes", map[string]any{"name": "data", "mount_path": "/data", "size_mb": -1}, "size_mb"},
		{"/cron", map[string]any{"name": "nightly", "schedule": "0 3 * * *", "command": []string{"a\x00b"}}, "command"},
		{"/cron", map[string]any{"name": "nightly", "schedule": "0 25 * * *", "command": []string{"true"}}, "schedule"},
		{"/cron", map[string]any{"name": "nightly", "schedule": "0 3 * * *", "command": []string{"true"}, "timeout_s": 0.5}, ""},
		{"/cron", map[string]any{"name": "nightly", "schedule": "0 3 * * *", "command": []string{"true"}, "timeout_s": 100000}, "timeout_s"},
	} {
		code, out, _ := alice.do("POST", ap+c.path, c.body)
		if c.field == "" {
			if code != 400 {
				t.Errorf("%v: %d %v", c.body, code, out)
			}
			continue
		}
		if code != 422 || out["field"] != c.field || out["error"] == "" {
			t.Errorf("%v: %d %v, want 422 on %s", c.body, code, out, c.field)
		}
	}

	vol := alice.want(201, "POST", ap+"/volumes", map[string]any{"name": "data", "mount_path": "/data", "size_mb": 64})
	job := alice.want(201, "POST", ap+"/cron", map[string]any{"name": "nightly", "schedule": "0 3 * * *", "timezone": "Europe/Berlin",
		"command": []string{"/app/cleanup", "--days", "7"}})
	if job["timeout_s"].(float64) != 600 || job["enabled"] != true || job["next_run_at"] == nil {
		t.Fatalf("job defaults: %v", job)
	}
	volPath := fmt.Sprintf("%s/volumes/%d", ap, int64(vol["id"].(float64)))
	jobPath := fmt.Sprintf("%s/cron/%d", ap, int64(job["id"].(float64)))

	// A member reads; only admins change.
	carol.want(200, "GET", ap+"/volumes", nil)
	carol.want(200, "GET", ap+"/cron", nil)
	carol.want(200, "GET", jobPath+"/runs", nil)
	carol.want(403, "POST", ap+"/volumes", map[string]any{"name": "x", "mount_path": "/x", "size_mb": 1})
	carol.want(403, "PATCH", jobPath, map[string]any{"enabled": false})
	carol.want(403, "POST", jobPath+"/runs", nil)
	carol.want(403, "DELETE", volPath, nil)
	tok := alice.want(201, "POST", "/api/tokens", map[string]any{"team_id": teamA, "name": "ro", "scopes": []string{"read"}})
	ro := &client{f: f, token: tok["token"].(string)}
	ro.want(200, "GET", ap+"/cron", nil)
	ro.want(403, "DELETE", jobPath, nil)

	// Another team: nothing, also through its own app's path.
	for _, c := range []struct{ method, path string }{
		{"GET", ap + "/volumes"}, {"POST", ap + "/volumes"}, {"DELETE", volPath}, {"GET", ap + "/cron"}, {"POST", ap + "/cron"},
		{"GET", jobPath}, {"PATCH", jobPath}, {"DELETE", jobPath}, {"GET", jobPath + "/runs"}, {"POST", jobPath + "/runs"},
		{"DELETE", strings.Replace(volPath, ap, op, 1)}, {"GET", strings.Replace(jobPath, ap, op, 1)},
		{"PATCH", strings.Replace(jobPath, ap, op, 1)}, {"POST", strings.Replace(jobPath, ap, op, 1) + "/runs"},
		{"DELETE", strings.Replace(jobPath, ap, op, 1)},
	} {
		body := map[string]any{}
		if c.method == "POST" && strings.HasSuffix(c.path, "/volumes") {
			body = map[string]any{"name": "b", "mount_path": "/b", "size_mb": 1}
		} else if c.method == "POST" && strings.HasSuffix(c.path, "/cron") {
			body = map[string]any{"name": "b", "schedule": "* * * * *", "command": []string{"true"}}
		} else if c.method == "PATCH" {
			body = map[string]any{"enabled": false}
		}
		if code, out, _ := bob.do(c.method, c.path, body); code != 404 {
			t.Errorf("bob %s %s: %d %v", c.method, c.path, code, out)
		}
	}
	if vs := bob.want(200, "GET", fmt.Sprintf("/api/teams/%d/volumes", teamB), nil)["volumes"].([]any); len(vs) != 0 {
		t.Fatalf("bob sees volumes: %v", vs)
	}
	bob.want(404, "GET", fmt.Sprintf("/api/teams/%d/volumes", teamA), nil)

	// Changes by the owner: pause, run now (no deployment yet: skipped
	// with the reason), release the volume with its removal time.
	if j := alice.want(200, "PATCH", jobPath, map[string]any{"enabled": false, "schedule": "*/5 * * * *"}); j["enabled"] != false || j["schedule"] != "*/5 * * * *" {
		t.Fatalf("patched: %v", j)
	}
	run := alice.want(202, "POST", jobPath+"/runs", nil)
	if run["state"] != "skipped" || !strings.Contains(run["error"].(string), "no successful deployment") {
		t.Fatalf("run now without a deployment: %v", run)
	}
	rel := alice.want(200, "DELETE", volPath, nil)
	if rel["remove_after"] == nil || rel["released_at"] == nil {
		t.Fatalf("released: %v", rel)
	}
	if vs := alice.want(200, "GET", fmt.Sprintf("/api/teams/%d/volumes", teamA), nil)["volumes"].([]any); len(vs) != 1 || vs[0].(map[string]any)["remove_after"] == nil {
		t.Fatalf("team volumes: %v", vs)
	}
	alice.want(200, "DELETE", jobPath, nil)
	alice.want(404, "GET", jobPath, nil)
	audit := fmt.Sprint(alice.want(200, "GET", fmt.Sprintf("/api/teams/%d/audit", teamA), nil))
	for _, action := range []string{"volume.create", "volume.release", "cron.create", "cron.update", "cron.run", "cron.delete"} {
		if !strings.Contains(audit, action) {
			t.Errorf("audit log lacks %s", action)
		}
	}
}
