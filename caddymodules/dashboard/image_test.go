package dashboard_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
)

// An app made from a prebuilt image: the reference is checked strictly,
// the registry password is sealed at rest, never answered and never in a
// queued job, and other teams and members cannot change it.
func TestImageAppsAreTeamScoped(t *testing.T) {
	f, _ := startGit(t)
	a, b := f.team("team-a", "free"), f.team("team-b", "free")
	f.user("alice@a.test", "alice password 1", map[int64]string{a: "owner"})
	f.user("carol@a.test", "carol password 1", map[int64]string{a: "member"})
	f.user("bob@b.test", "bob password 12", map[int64]string{b: "owner"})
	alice, carol, bob := f.login("alice@a.test", "alice password 1"), f.login("carol@a.test", "carol password 1"), f.login("bob@b.test", "bob password 12")
	apps := fmt.Sprintf("/api/teams/%d/apps", a)
	ref := "registry.example.test/acme/site@sha256:" + strings.Repeat("0a", 32)

	for field, body := range map[string]map[string]any{
		"image":             {"image": "busybox:1"},
		"registry_password": {"image": ref, "registry_username": "bot"},
		"registry_username": {"git_repo": "https://example.test/x.git", "registry_username": "bot", "registry_password": "x"},
	} {
		body["name"], body["slug"], body["cpu_millis"], body["memory_mb"] = "X", "x", 100, 64
		if got := alice.want(422, "POST", apps, body); got["field"] != field {
			t.Errorf("%v: %v", body, got)
		}
	}
	app := alice.want(201, "POST", apps, map[string]any{"name": "Img", "slug": "img", "image": ref, "registry_username": "bot",
		"registry_password": "s3cret-registry-pass", "cpu_millis": 100, "memory_mb": 64})
	id := int64(app["id"].(float64))
	if app["image"] != ref || app["has_registry_password"] != true || app["auto_deploy"] != false || app["previews"] != false {
		t.Fatalf("created: %v", app)
	}
	var enc string
	f.db.Pool.QueryRow(context.Background(), "SELECT registry_password_enc FROM apps WHERE id = $1", id).Scan(&enc)
	if enc == "" || strings.Contains(enc, "s3cret") {
		t.Fatalf("password at rest: %q", enc)
	}
	alice.want(202, "POST", fmt.Sprintf("/api/apps/%d/deployments", id), map[string]any{})
	var payload string
	f.db.Pool.QueryRow(context.Background(), "SELECT payload::text FROM jobs WHERE app_id = $1", id).Scan(&payload)
	if !strings.Contains(payload, ref) || strings.Contains(payload, "s3cret") {
		t.Fatalf("queued job: %s", payload)
	}
	for _, who := range []*client{alice, carol} {
		if s := fmt.Sprint(who.want(200, "GET", fmt.Sprintf("/api/apps/%d", id), nil)); strings.Contains(s, "s3cret") {
			t.Fatalf("answered: %s", s)
		}
	}
	bob.want(404, "PATCH", fmt.Sprintf("/api/apps/%d", id), map[string]any{"registry_username": "x", "registry_password": "y"})
	carol.want(403, "PATCH", fmt.Sprintf("/api/apps/%d", id), map[string]any{"registry_username": "x", "registry_password": "y"})
	if got := alice.want(422, "PATCH", fmt.Sprintf("/api/apps/%d", id), map[string]any{"image": "registry.example.test/acme/site"}); got["field"] != "image" {
		t.Fatalf("no tag: %v", got)
	}
	if v := alice.want(200, "PATCH", fmt.Sprintf("/api/apps/%d", id), map[string]any{"image": "registry.example.test/acme/site:2",
		"registry_username": "", "registry_password": ""}); v["image"] != "registry.example.test/acme/site:2" || v["has_registry_password"] != false {
		t.Fatalf("changed: %v", v)
	}
	if got := alice.want(422, "PATCH", fmt.Sprintf("/api/apps/%d", id), map[string]any{"git_repo": "https://example.test/x.git"}); got["field"] != "git_repo" {
		t.Fatalf("image app took a repository: %v", got)
	}
	// A git app takes no image.
	git := alice.want(201, "POST", apps, map[string]any{"name": "Git", "slug": "git", "git_repo": "https://example.test/x.git", "cpu_millis": 100, "memory_mb": 64})
	if got := alice.want(422, "PATCH", fmt.Sprintf("/api/apps/%d", int64(git["id"].(float64))), map[string]any{"image": ref}); got["field"] != "image" {
		t.Fatalf("git app took an image: %v", got)
	}
	if ev := fmt.Sprint(alice.want(200, "GET", fmt.Sprintf("/api/teams/%d/audit", a), nil)["events"]); !strings.Contains(ev, "image:"+ref) || strings.Contains(ev, "s3cret") {
		t.Errorf("audit: %s", ev)
	}
}
