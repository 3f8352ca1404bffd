package e2e

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"

	"github.com/wisehosting/wisehosting/agent/runtime/podmantest"
)

// startRegistry runs Debian's docker-registry (the distribution registry)
// on an ephemeral loopback port with htpasswd authentication for user,
// password. It speaks plain HTTP: the test's Podman service marks it
// insecure in its own registries.conf, nothing else does.
func startRegistry(t *testing.T, dir, user, password string) (addr string) {
	t.Helper()
	hash, err := bcrypt.GenerateFromPassword([]byte(password), bcrypt.DefaultCost)
	if err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(dir, "htpasswd"), []byte(user+":"+string(hash)+"\n"), 0o600)
	addr = freeAddr(t)
	conf := filepath.Join(dir, "registry.yml")
	os.WriteFile(conf, []byte(fmt.Sprintf(`version: 0.1
log:
  level: info
storage:
  filesystem:
    rootdirectory: %s
http:
  addr: %s
auth:
  htpasswd:
    realm: wisehosting-test
    path: %s
`, filepath.Join(dir, "data"), addr, filepath.Join(dir, "htpasswd"))), 0o600)
	reg := startProc(t, "registry", dir, nil, "/usr/bin/docker-registry", "serve", conf)
	waitListen(t, reg, addr)
	return addr
}

// TestDeployPrebuiltImage is the prebuilt-image journey through the public
// API: a team pushes a busybox-based image to its own registry (a real
// one on loopback, with a login), creates an app from the image with the
// registry credentials, deploys it on a real worker and reaches it through
// the zone router; a new push of the tag deploys the new image, and a
// rollback brings back the worker's copy of the first one. A wrong
// password fails the deployment with a sentence, never a 500, and the
// password is never shown again.
func TestDeployPrebuiltImage(t *testing.T) {
	work := t.TempDir()
	regAddr := startRegistry(t, work, "ci-bot", "registry-pass-1")
	regConf := filepath.Join(work, "registries.conf")
	os.WriteFile(regConf, []byte(fmt.Sprintf("[[registry]]\nlocation = %q\ninsecure = true\n", regAddr)), 0o644)
	svc := podmantest.Start(t, "CONTAINERS_REGISTRIES_CONF="+regConf)
	_, dbURL := startPostgres(t)
	t.Cleanup(func() {
		for _, slug := range []string{"prebuilt", "badlogin"} {
			out, _ := svc.Podman(context.Background(), "ps", "-aq", "--filter", "label=io.wisehosting.slug="+slug)
			for _, id := range strings.Fields(out) {
				svc.Podman(context.Background(), "rm", "-f", "-t", "1", id)
			}
		}
	})

	// The team's CI: build and push version one with podman.
	ctx := context.Background()
	ref := regAddr + "/acme/site:prod"
	pushImage := func(page string) {
		t.Helper()
		src := t.TempDir()
		os.WriteFile(filepath.Join(src, "index.html"), []byte(page), 0o644)
		os.WriteFile(filepath.Join(src, "Containerfile"), []byte("FROM "+podmantest.BaseImage+"\nCOPY index.html /srv/index.html\nUSER 65534\nCMD [\"httpd\", \"-f\", \"-p\", \"8080\", \"-h\", \"/srv\"]\n"), 0o644)
		if out, err := svc.Podman(ctx, "build", "-q", "-t", ref, src); err != nil {
			t.Fatalf("build: %v %s", err, out)
		}
		if out, err := svc.Podman(ctx, "push", "--creds", "ci-bot:registry-pass-1", ref); err != nil {
			t.Fatalf("push: %v %s", err, out)
		}
		// Only the registry has it now: the worker must pull it.
		svc.Podman(ctx, "rmi", ref)
	}
	pushImage("<h1>prebuilt version one</h1>\n")

	j := startJourney(t, work, dbURL, svc, "")
	zoneAddr, api, team := j.zoneAddr, j.api, j.team
	apps := fmt.Sprintf("/api/teams/%d/apps", team)

	// The reference is checked strictly, the login as a pair.
	for _, c := range []struct {
		body       map[string]any
		field, msg string
	}{
		{map[string]any{"image": "nginx:1"}, "image", "must name its registry"},
		{map[string]any{"image": regAddr + "/acme/site"}, "image", "no tag or digest"},
		{map[string]any{"image": ref + " --tls-verify=false"}, "image", "not valid"},
		{map[string]any{"image": ref, "git_repo": "https://example.com/x.git"}, "image", "not both"},
		{map[string]any{"image": ref, "registry_username": "ci-bot"}, "registry_password", "required"},
	} {
		c.body["name"], c.body["slug"] = "Bad", "bad"
		api.wantError("POST", apps, c.body, 422, c.field, regexp.MustCompile(c.msg))
	}

	app := api.call("POST", apps, map[string]any{"name": "Prebuilt", "slug": "prebuilt", "image": ref,
		"registry_username": "ci-bot", "registry_password": "registry-pass-1", "cpu_millis": 250, "memory_mb": 64}, 201)
	id := int64(app["id"].(float64))
	if app["image"] != ref || app["registry_username"] != "ci-bot" || app["has_registry_password"] != true || app["hook"] != nil {
		t.Fatalf("created: %v", app)
	}
	deploy := func(appID int64, body map[string]any) float64 {
		t.Helper()
		return api.call("POST", fmt.Sprintf("/api/apps/%d/deployments", appID), body, 202)["deployment_id"].(float64)
	}
	zone := &http.Client{Timeout: 10 * time.Second}
	serves := func(want string) {
		t.Helper()
		waitFor(t, "prebuilt to serve "+want, 60*time.Second, func() bool {
			c, b, err := getHost(zone, "http://"+zoneAddr, "prebuilt.z.test", "/")
			return err == nil && c == 200 && strings.Contains(b, want)
		})
	}
	first := deploy(id, map[string]any{})
	api.waitDeployment(id, first-1, 3*time.Minute)
	serves("prebuilt version one")

	// A new push of the tag, deployed: the worker pulls again.
	pushImage("<h1>prebuilt version two</h1>\n")
	second := deploy(id, map[string]any{})
	api.waitDeployment(id, second-1, 3*time.Minute)
	serves("prebuilt version two")

	// Rollback: the worker's copy of the first image, not the tag's
	// current content.
	back := deploy(id, map[string]any{"rollback_of": first})
	api.waitDeployment(id, back-1, 2*time.Minute)
	serves("prebuilt version one")

	// A wrong password: the deployment fails with a sentence.
	bad := api.call("POST", apps, map[string]any{"name": "Bad login", "slug": "badlogin", "image": ref,
		"registry_username": "ci-bot", "registry_password": "wrong-password", "cpu_millis": 100, "memory_mb": 32}, 201)
	badID := int64(bad["id"].(float64))
	deploy(badID, map[string]any{})
	var last map[string]any
	waitFor(t, "the bad login's deployment to fail", 2*time.Minute, func() bool {
		deps := api.call("GET", fmt.Sprintf("/api/apps/%d/deployments", badID), nil, 200)["deployments"].([]any)
		if len(deps) == 0 {
			return false
		}
		last = deps[0].(map[string]any)
		return last["status"] == "failed" || last["status"] == "succeeded"
	})
	if last["status"] != "failed" || !strings.Contains(fmt.Sprint(last["error"]), "the registry refused the credentials for "+ref) {
		t.Fatalf("wrong password: %v", last)
	}
	// The login is replaced through the API, and then it deploys.
	api.wantError("PATCH", fmt.Sprintf("/api/apps/%d", badID), map[string]any{"image": regAddr + "/acme/site"}, 422, "image", regexp.MustCompile("no tag or digest"))
	api.call("PATCH", fmt.Sprintf("/api/apps/%d", badID), map[string]any{"registry_username": "ci-bot", "registry_password": "registry-pass-1"}, 200)
	again := deploy(badID, map[string]any{})
	api.waitDeployment(badID, again-1, 3*time.Minute)

	// Never shown again; in the audit log without it.
	for _, path := range []string{fmt.Sprintf("/api/apps/%d", id), apps, fmt.Sprintf("/api/teams/%d/audit", team)} {
		if s := fmt.Sprint(api.call("GET", path, nil, 200)); strings.Contains(s, "registry-pass-1") || strings.Contains(s, "wrong-password") {
			t.Fatalf("%s shows the registry password: %s", path, s)
		}
	}
	if ev := fmt.Sprint(api.call("GET", fmt.Sprintf("/api/teams/%d/audit", team), nil, 200)); !strings.Contains(ev, "image:"+ref) {
		t.Errorf("no image in the audit log: %s", ev)
	}
}
