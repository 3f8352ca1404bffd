package deploys

import (
	"context"
	"testing"

	"github.com/wisehosting/wisehosting/internal/gitproviders"
	"github.com/wisehosting/wisehosting/internal/pgtest"
	"github.com/wisehosting/wisehosting/internal/secrets"
)

func prEvent(delivery string, n int, sha string, fork bool) *gitproviders.Event {
	pr := &gitproviders.PullRequest{Number: n, Action: gitproviders.PROpened, HeadBranch: "feature", HeadSHA: sha, Title: "change"}
	if fork {
		pr.Fork, pr.HeadRepo = true, "https://github.com/mallory/site.git"
	}
	return &gitproviders.Event{Provider: gitproviders.GitHub, Kind: gitproviders.EventPullRequest, DeliveryID: delivery, PR: pr}
}

// A fork's pull request gets no preview unless the app allows forks, and
// then one that builds the fork without the parent's variables and token;
// a same-repository pull request keeps both.
func TestForkPullRequestsGetNoSecrets(t *testing.T) {
	t.Parallel()
	db := pgtest.New(t)
	ctx := context.Background()
	kr, err := secrets.NewKeyring("fork-test-secret-0123456789abcdef0123")
	if err != nil {
		t.Fatal(err)
	}
	app := seedApp(t, db, "site")
	if err := SetEnv(ctx, db.Pool, kr, app.ID, "API_KEY", "parent-secret"); err != nil {
		t.Fatal(err)
	}
	if err := SetGitToken(ctx, db.Pool, kr, app.ID, "ghp_parent"); err != nil {
		t.Fatal(err)
	}

	out, err := HandleEvent(ctx, db.Pool, app, prEvent("f1", 8, "ccc333", true), Policy{})
	if err != nil || out.Action != "ignored" || count(t, db, "SELECT count(*) FROM apps WHERE preview_of = $1", app.ID) != 0 {
		t.Fatalf("fork PR without fork previews: %+v %v", out, err)
	}

	db.Pool.Exec(ctx, "UPDATE apps SET fork_previews = true WHERE id = $1", app.ID)
	app, _ = LoadApp(ctx, db.Pool, app.ID)
	out, err = HandleEvent(ctx, db.Pool, app, prEvent("f2", 8, "ccc333", true), Policy{})
	if err != nil || out.Action != "preview_deployed" {
		t.Fatalf("fork PR with fork previews: %+v %v", out, err)
	}
	fork, _ := LoadApp(ctx, db.Pool, out.AppID)
	env, err := LoadEnv(ctx, db.Pool, kr, fork.ID)
	tok, err2 := GitToken(ctx, db.Pool, kr, fork.ID)
	if err != nil || err2 != nil || len(env) != 0 || tok != "" || !fork.FromFork || fork.GitRepo != "https://github.com/mallory/site.git" {
		t.Fatalf("fork preview: env %v token %q app %+v (%v %v)", env, tok, fork, err, err2)
	}
	if n := count(t, db, "SELECT count(*) FROM deployment_logs WHERE deployment_id = $1 AND line = $2", out.DeploymentID, ForkBanner); n != 1 {
		t.Fatalf("no fork banner in the deployment log")
	}

	out, err = HandleEvent(ctx, db.Pool, app, prEvent("s1", 9, "ddd444", false), Policy{})
	if err != nil || out.Action != "preview_deployed" {
		t.Fatalf("same-repo PR: %+v %v", out, err)
	}
	env, _ = LoadEnv(ctx, db.Pool, kr, out.AppID)
	tok, _ = GitToken(ctx, db.Pool, kr, out.AppID)
	if env["API_KEY"] != "parent-secret" || tok != "ghp_parent" {
		t.Fatalf("same-repo preview lost its parent's secrets: %v %q", env, tok)
	}
	if n := count(t, db, "SELECT count(*) FROM deployment_logs WHERE deployment_id = $1", out.DeploymentID); n != 0 {
		t.Fatalf("a same-repo preview has the fork banner")
	}
}

// Previews and automatic deploys can be turned off per app.
func TestAutoDeployAndPreviewsOff(t *testing.T) {
	t.Parallel()
	db := pgtest.New(t)
	ctx := context.Background()
	app := seedApp(t, db, "quiet")
	db.Pool.Exec(ctx, "UPDATE apps SET auto_deploy = false, previews = false WHERE id = $1", app.ID)
	app, _ = LoadApp(ctx, db.Pool, app.ID)
	if out, err := HandleEvent(ctx, db.Pool, app, push("q1", "main", "eee555"), Policy{}); err != nil || out.Action != "ignored" {
		t.Fatalf("push with auto_deploy off: %+v %v", out, err)
	}
	if out, err := HandleEvent(ctx, db.Pool, app, prEvent("q2", 3, "fff666", false), Policy{}); err != nil || out.Action != "ignored" {
		t.Fatalf("PR with previews off: %+v %v", out, err)
	}
}
