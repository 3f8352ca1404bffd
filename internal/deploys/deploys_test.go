package deploys

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/wisehosting/wisehosting/internal/gitproviders"
	"github.com/wisehosting/wisehosting/internal/jobs"
	"github.com/wisehosting/wisehosting/internal/pgtest"
)

func seedApp(t *testing.T, db *pgtest.DB, slug string) App {
	t.Helper()
	ctx := context.Background()
	var teamID, appID int64
	if err := db.Pool.QueryRow(ctx, "INSERT INTO teams (name, slug) VALUES ($1, $1) RETURNING id", "team-"+slug).Scan(&teamID); err != nil {
		t.Fatal(err)
	}
	err := db.Pool.QueryRow(ctx, `INSERT INTO apps (team_id, slug, name, git_repo, git_branch, git_provider, port)
		VALUES ($1, $2, $2, 'https://github.com/acme/site.git', 'main', 'github', 8080) RETURNING id`, teamID, slug).Scan(&appID)
	if err != nil {
		t.Fatal(err)
	}
	a, err := LoadApp(ctx, db.Pool, appID)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

func count(t *testing.T, db *pgtest.DB, q string, args ...any) int {
	t.Helper()
	var n int
	if err := db.Pool.QueryRow(context.Background(), q, args...).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

func push(delivery, branch, commit string) *gitproviders.Event {
	return &gitproviders.Event{Provider: gitproviders.GitHub, Kind: gitproviders.EventPush, DeliveryID: delivery,
		Branch: branch, Commit: commit, Message: "change"}
}

func TestPushDeploysOnceAndIgnoresOtherBranches(t *testing.T) {
	t.Parallel()
	db := pgtest.New(t)
	ctx := context.Background()
	app := seedApp(t, db, "site")

	out, err := HandleEvent(ctx, db.Pool, app, push("d1", "main", "aaa111"), Policy{})
	if err != nil || out.Action != "deployed" || out.DeploymentID == 0 || out.JobID == 0 {
		t.Fatalf("push: %+v %v", out, err)
	}
	var kind, state, slug, commit string
	db.Pool.QueryRow(ctx, "SELECT kind, state, payload->>'slug', payload->>'commit' FROM jobs WHERE id = $1", out.JobID).Scan(&kind, &state, &slug, &commit)
	if kind != "deploy" || state != "pending" || slug != "site" || commit != "aaa111" {
		t.Fatalf("job: %s %s %s %s", kind, state, slug, commit)
	}
	if n := count(t, db, "SELECT count(*) FROM deployments WHERE id = $1 AND app_id = $2 AND trigger = 'push' AND status = 'queued'", out.DeploymentID, app.ID); n != 1 {
		t.Fatalf("deployment row missing")
	}

	// The provider retries the same delivery.
	out, err = HandleEvent(ctx, db.Pool, app, push("d1", "main", "aaa111"), Policy{})
	if err != nil || out.Action != "duplicate" {
		t.Fatalf("redelivery: %+v %v", out, err)
	}
	// A different delivery of the same commit (e.g. a second webhook).
	out, err = HandleEvent(ctx, db.Pool, app, push("d2", "main", "aaa111"), Policy{})
	if err != nil || out.Action != "duplicate" {
		t.Fatalf("same commit: %+v %v", out, err)
	}
	out, err = HandleEvent(ctx, db.Pool, app, push("d3", "feature", "bbb222"), Policy{})
	if err != nil || out.Action != "ignored" {
		t.Fatalf("other branch: %+v %v", out, err)
	}
	if n := count(t, db, "SELECT count(*) FROM jobs"); n != 1 {
		t.Fatalf("%d jobs, want 1", n)
	}
}

func TestPullRequestPreviewLifecycle(t *testing.T) {
	t.Parallel()
	db := pgtest.New(t)
	ctx := context.Background()
	app := seedApp(t, db, "shop")
	pr := func(delivery, action, sha string) *gitproviders.Event {
		return &gitproviders.Event{Provider: gitproviders.GitLab, Kind: gitproviders.EventPullRequest, DeliveryID: delivery,
			PR: &gitproviders.PullRequest{Number: 42, Action: action, HeadBranch: "feat/x", HeadSHA: sha, Title: "X"}}
	}
	out, err := HandleEvent(ctx, db.Pool, app, pr("p1", gitproviders.PROpened, "c1"), Policy{})
	if err != nil || out.Action != "preview_deployed" {
		t.Fatalf("open: %+v %v", out, err)
	}
	preview, err := LoadApp(ctx, db.Pool, out.AppID)
	if err != nil {
		t.Fatal(err)
	}
	if preview.Slug != "shop-pr-42" || preview.PreviewOf != app.ID || preview.GitBranch != "feat/x" || preview.TeamID != app.TeamID {
		t.Fatalf("preview app %+v", preview)
	}
	out, err = HandleEvent(ctx, db.Pool, app, pr("p2", gitproviders.PRUpdated, "c2"), Policy{})
	if err != nil || out.Action != "preview_deployed" || out.AppID != preview.ID {
		t.Fatalf("update: %+v %v", out, err)
	}
	out, err = HandleEvent(ctx, db.Pool, app, pr("p3", gitproviders.PRClosed, "c2"), Policy{})
	if err != nil || out.Action != "preview_closed" {
		t.Fatalf("close: %+v %v", out, err)
	}
	if n := count(t, db, "SELECT count(*) FROM jobs WHERE app_id = $1 AND kind = 'delete'", preview.ID); n != 1 {
		t.Fatalf("no delete job for the closed preview")
	}
	if n := count(t, db, "SELECT count(*) FROM apps WHERE id = $1 AND status = 'stopped'", preview.ID); n != 1 {
		t.Fatalf("preview not stopped")
	}
}

func TestPreviewPolicyRefuses(t *testing.T) {
	t.Parallel()
	db := pgtest.New(t)
	app := seedApp(t, db, "blog")
	deny := func(ctx context.Context, q jobs.Querier, teamID int64) error {
		return errors.New("plan free does not allow preview deployments")
	}
	ev := &gitproviders.Event{Provider: gitproviders.GitHub, Kind: gitproviders.EventPullRequest, DeliveryID: "x",
		PR: &gitproviders.PullRequest{Number: 1, Action: gitproviders.PROpened, HeadBranch: "b", HeadSHA: "s"}}
	out, err := HandleEvent(context.Background(), db.Pool, app, ev, Policy{Previews: deny})
	if err != nil || out.Action != "ignored" || !strings.Contains(out.Reason, "preview") {
		t.Fatalf("%+v %v", out, err)
	}
	if n := count(t, db, "SELECT count(*) FROM apps"); n != 1 {
		t.Fatal("preview app created despite the policy")
	}
}

func TestRollbackReusesImage(t *testing.T) {
	t.Parallel()
	db := pgtest.New(t)
	ctx := context.Background()
	app := seedApp(t, db, "api")
	var good, bad int64
	db.Pool.QueryRow(ctx, "INSERT INTO deployments (app_id, status, commit_sha, image) VALUES ($1, 'succeeded', 'c1', 'localhost/wh/api:1') RETURNING id", app.ID).Scan(&good)
	db.Pool.QueryRow(ctx, "INSERT INTO deployments (app_id, status, commit_sha) VALUES ($1, 'failed', 'c2') RETURNING id", app.ID).Scan(&bad)

	var c Created
	err := pgx.BeginFunc(ctx, db.Pool, func(tx pgx.Tx) (err error) {
		c, err = Trigger(ctx, tx, app, Spec{RollbackOf: good, Trigger: "rollback"})
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	var kind, image string
	db.Pool.QueryRow(ctx, "SELECT kind, payload->>'image' FROM jobs WHERE id = $1", c.JobID).Scan(&kind, &image)
	if kind != "rollback" || image != "localhost/wh/api:1" {
		t.Fatalf("rollback job %s %s", kind, image)
	}
	err = pgx.BeginFunc(ctx, db.Pool, func(tx pgx.Tx) error {
		_, err := Trigger(ctx, tx, app, Spec{RollbackOf: bad})
		return err
	})
	if err == nil {
		t.Fatal("rollback to a failed deployment accepted")
	}
	// Another app's deployment is not a rollback target (IDOR).
	other := seedApp(t, db, "other")
	err = pgx.BeginFunc(ctx, db.Pool, func(tx pgx.Tx) error {
		_, err := Trigger(ctx, tx, other, Spec{RollbackOf: good})
		return err
	})
	if err == nil {
		t.Fatal("rollback to another app's deployment accepted")
	}
}

func TestPreviewSlug(t *testing.T) {
	if s := PreviewSlug("shop", 7); s != "shop-pr-7" {
		t.Fatal(s)
	}
	long := strings.Repeat("a", 62) + "b"
	s := PreviewSlug(long, 12345)
	if len(s) > 63 || !ValidSlug(s) || !strings.HasSuffix(s, "-pr-12345") {
		t.Fatalf("%q", s)
	}
	if s := PreviewSlug(strings.Repeat("a", 53)+"-bcd", 1234); !ValidSlug(s) {
		t.Fatalf("%q invalid", s)
	}
}
