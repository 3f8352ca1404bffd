package deploys

import (
	"context"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/wisehosting/wisehosting/internal/errs"
	"github.com/wisehosting/wisehosting/internal/gitproviders"
	"github.com/wisehosting/wisehosting/internal/pgtest"
	"github.com/wisehosting/wisehosting/internal/plans"
)

// Every way to deploy asks the plan: a manual deploy, a rollback, a push
// and a pull request of an app above its team's plan are refused with the
// limit named and write nothing; within the plan they deploy.
func TestPlanPolicyRefusesEveryDeployPath(t *testing.T) {
	t.Parallel()
	db := pgtest.New(t)
	ctx := context.Background()
	reg, err := plans.NewRegistry(map[string]plans.Plan{
		"free": {MemoryMB: 128},
		"pro":  {MemoryMB: 1024, Previews: true},
	}, "free")
	if err != nil {
		t.Fatal(err)
	}
	pol := PlanPolicy(reg)
	app := seedApp(t, db, "shop") // memory_mb 256 by default
	var good int64
	db.Pool.QueryRow(ctx, `INSERT INTO deployments (app_id, status, image) VALUES ($1, 'succeeded', 'localhost/shop:1') RETURNING id`, app.ID).Scan(&good)
	before := count(t, db, "SELECT count(*) FROM deployments")

	for name, spec := range map[string]Spec{
		"manual":   {Trigger: "manual", Policy: pol.Deploy},
		"rollback": {Trigger: "rollback", RollbackOf: good, Policy: pol.Deploy},
	} {
		err := pgx.BeginFunc(ctx, db.Pool, func(tx pgx.Tx) error {
			_, err := Trigger(ctx, tx, app, spec)
			return err
		})
		if !errs.Is(err, errs.Forbidden) || !strings.Contains(err.Error(), `plan "free": memory_mb is at most 128 (asked for 256)`) {
			t.Fatalf("%s: %v", name, err)
		}
	}
	out, err := HandleEvent(ctx, db.Pool, app, push("p1", "main", "abc"), pol)
	if err != nil || out.Action != "refused" || !strings.Contains(out.Reason, "memory_mb") {
		t.Fatalf("push: %+v %v", out, err)
	}
	pr := &gitproviders.Event{Provider: gitproviders.GitHub, Kind: gitproviders.EventPullRequest, DeliveryID: "pr1",
		PR: &gitproviders.PullRequest{Number: 7, Action: gitproviders.PROpened, HeadBranch: "b", HeadSHA: "s1"}}
	out, err = HandleEvent(ctx, db.Pool, app, pr, pol)
	if err != nil || out.Action != "ignored" || !strings.Contains(out.Reason, "previews") {
		t.Fatalf("pull request on free: %+v %v", out, err)
	}
	if n := count(t, db, "SELECT count(*) FROM deployments"); n != before || count(t, db, "SELECT count(*) FROM jobs") != 0 ||
		count(t, db, "SELECT count(*) FROM apps WHERE preview_of IS NOT NULL") != 0 {
		t.Fatalf("refusals wrote rows: %d deployments", n)
	}

	// On pro everything goes through, the preview included.
	db.Pool.Exec(ctx, "UPDATE teams SET plan = 'pro' WHERE id = $1", app.TeamID)
	if out, err := HandleEvent(ctx, db.Pool, app, push("p2", "main", "abc"), pol); err != nil || out.Action != "deployed" {
		t.Fatalf("push on pro: %+v %v", out, err)
	}
	pr.DeliveryID = "pr2"
	if out, err := HandleEvent(ctx, db.Pool, app, pr, pol); err != nil || out.Action != "preview_deployed" {
		t.Fatalf("pull request on pro: %+v %v", out, err)
	}
	if err := pgx.BeginFunc(ctx, db.Pool, func(tx pgx.Tx) error {
		_, err := Trigger(ctx, tx, app, Spec{Trigger: "rollback", RollbackOf: good, Policy: pol.Deploy})
		return err
	}); err != nil {
		t.Fatalf("rollback on pro: %v", err)
	}
}
