package apps

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/wisehosting/wisehosting/internal/accounts"
	"github.com/wisehosting/wisehosting/internal/deploys"
	"github.com/wisehosting/wisehosting/internal/errs"
	"github.com/wisehosting/wisehosting/internal/jobs"
	"github.com/wisehosting/wisehosting/internal/pgtest"
	"github.com/wisehosting/wisehosting/internal/plans"
	"github.com/wisehosting/wisehosting/internal/replicas"
	"github.com/wisehosting/wisehosting/internal/secrets"
)

func service(t *testing.T) (*Service, *pgtest.DB, int64) {
	t.Helper()
	db := pgtest.New(t)
	reg, err := plans.NewRegistry(map[string]plans.Plan{"free": {Apps: 2, MemoryMB: 512, Replicas: 3}}, "free")
	if err != nil {
		t.Fatal(err)
	}
	kr, err := secrets.NewKeyring("0123456789abcdef0123456789abcdef")
	if err != nil {
		t.Fatal(err)
	}
	var team int64
	if err := db.Pool.QueryRow(context.Background(), "INSERT INTO teams (name, slug, plan) VALUES ('t', 't', 'free') RETURNING id").Scan(&team); err != nil {
		t.Fatal(err)
	}
	return &Service{Pool: db.Pool, Keyring: kr, Plans: reg, URL: func(slug string) string { return "https://" + slug + ".apps.test" }}, db, team
}

func actions(t *testing.T, db *pgtest.DB, team int64) []string {
	t.Helper()
	rows, err := db.Pool.Query(context.Background(), "SELECT action FROM audit_events WHERE team_id = $1 ORDER BY id", team)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for rows.Next() {
		var a string
		rows.Scan(&a)
		out = append(out, a)
	}
	return out
}

func audit[T any](team int64, action string) accounts.Hook[T] {
	return func(T) accounts.Entry { return accounts.Entry{TeamID: team, Action: action} }
}

// TestCreateRules: a new app's settings are checked field by field and
// completed; a taken slug is a conflict on the slug; the plan's limits
// hold; lookups are scoped by team.
func TestCreateRules(t *testing.T) {
	s, db, team := service(t)
	ctx := context.Background()
	_, err := s.Create(ctx, team, New{Name: " ", Slug: "Bad_Slug", Image: "nginx", RegistryPassword: "x", Replicas: 99}, false, nil)
	var p *Problems
	if !errors.As(err, &p) || p.Fields[0] != "name" || len(p.Fields) < 4 {
		t.Fatalf("problems %+v %v", p, err)
	}
	c, err := s.Create(ctx, team, New{Name: " Shop ", Slug: " Shop ", GitRepo: "https://git.example.test/o/shop.git", Framework: "auto",
		CPUMillis: 500, MemoryMB: 256, AutoDeploy: true}, false, audit[Created](team, "app.create"))
	if err != nil || c.Slug != "shop" || c.Name != "Shop" || c.GitBranch != "main" || c.Replicas != 1 {
		t.Fatalf("create %+v %v", c, err)
	}
	if _, err := s.Create(ctx, team, New{Name: "again", Slug: "shop", GitRepo: "https://git.example.test/o/x.git"}, false, nil); !errs.Is(err, errs.Conflict) {
		t.Fatalf("a taken slug: %v", err)
	} else if e, _ := errs.As(err); e.Field != "slug" {
		t.Fatalf("field %q", e.Field)
	}
	if _, err := s.Create(ctx, team, New{Name: "big", Slug: "big", GitRepo: "https://git.example.test/o/x.git", MemoryMB: 4096}, false, nil); !errs.Is(err, errs.Forbidden) {
		t.Fatalf("above the plan: %v", err)
	}
	v, err := s.View(ctx, c.ID)
	if err != nil || v.URL != "https://shop.apps.test" || len(v.URLs) != 1 || v.Replicas != 1 || v.Instances == nil {
		t.Fatalf("view %+v %v", v, err)
	}
	if list, err := s.List(ctx, team); err != nil || len(list) != 1 || list[0].ID != c.ID {
		t.Fatalf("list %+v %v", list, err)
	}
	if got, err := s.TeamOf(ctx, c.ID); err != nil || got != team {
		t.Fatalf("team of %d %v", got, err)
	}
	if _, err := s.TeamOf(ctx, c.ID+100); err != ErrNotFound {
		t.Fatalf("an unknown app: %v", err)
	}
	if _, err := s.Load(ctx, team+1, c.ID); err != ErrNotFound {
		t.Fatalf("another team's app: %v", err)
	}
	if got := actions(t, db, team); len(got) != 1 || got[0] != "app.create" {
		t.Fatalf("audit %v", got)
	}
}

// TestChangeEnvDeployDelete: settings and instances change within the
// plan; variables are set, listed by name and deleted; a deployment is
// started and cancelled once; a preview is not deleted by hand; a deleted
// app that never ran is gone. Each change writes its audit record.
func TestChangeEnvDeployDelete(t *testing.T) {
	s, db, team := service(t)
	ctx := context.Background()
	c, err := s.Create(ctx, team, New{Name: "a", Slug: "a", GitRepo: "https://git.example.test/o/a.git", CPUMillis: 500, MemoryMB: 256}, false, nil)
	if err != nil {
		t.Fatal(err)
	}
	app, err := s.Load(ctx, team, c.ID)
	if err != nil {
		t.Fatal(err)
	}
	app.MemoryMB = 1024
	if err := s.Update(ctx, Change{App: app}, nil); !errs.Is(err, errs.Forbidden) {
		t.Fatalf("above the plan: %v", err)
	}
	app.MemoryMB, app.HealthPath = 384, "/up"
	inst := replicas.Settings{Replicas: 2, MaxSurge: 1}
	if err := s.Update(ctx, Change{App: app, Instances: &inst}, audit[Change](team, "app.scale")); err != nil {
		t.Fatal(err)
	}
	if got, err := s.Instances(ctx, app.ID); err != nil || got.Replicas != 2 {
		t.Fatalf("instances %+v %v", got, err)
	}
	if err := s.SetEnv(ctx, app.ID, "DB_URL", "postgres://x", audit[string](team, "env.set")); err != nil {
		t.Fatal(err)
	}
	if err := s.SetEnv(ctx, app.ID, "BIG", string(make([]byte, MaxValue+1)), nil); !errs.Is(err, errs.Invalid) {
		t.Fatalf("a value too large: %v", err)
	}
	if env, err := s.Env(ctx, app.ID); err != nil || len(env) != 1 || env[0].Key != "DB_URL" {
		t.Fatalf("env %+v %v", env, err)
	}
	if err := s.DeleteEnv(ctx, app.ID, "DB_URL", audit[string](team, "env.delete")); err != nil {
		t.Fatal(err)
	}
	if err := s.DeleteEnv(ctx, app.ID, "DB_URL", nil); err != ErrNotFound {
		t.Fatalf("deleting a missing variable: %v", err)
	}
	d, err := s.Deploy(ctx, app, deploys.Spec{Trigger: "manual"}, audit[deploys.Created](team, "deployment.create"))
	if err != nil {
		t.Fatal(err)
	}
	if deps, err := s.Deployments(ctx, app.ID); err != nil || len(deps) != 1 || deps[0].ID != d.DeploymentID || deps[0].Status != "queued" {
		t.Fatalf("deployments %+v %v", deps, err)
	}
	if status, lines, err := s.Log(ctx, app.ID, d.DeploymentID, 0); err != nil || status != "queued" || lines == nil {
		t.Fatalf("log %q %v %v", status, lines, err)
	}
	if _, _, err := s.Log(ctx, app.ID+1, d.DeploymentID, 0); !errs.Is(err, errs.NotFound) {
		t.Fatalf("another app's deployment: %v", err)
	}
	if _, err := s.Cancel(ctx, app, d.DeploymentID+100, "test", nil); err != ErrNotFound {
		t.Fatalf("cancelling an unknown deployment: %v", err)
	}
	if cn, err := s.Cancel(ctx, app, d.DeploymentID, "test", audit[jobs.Cancelled](team, "deployment.cancel")); err != nil || !cn.Ended {
		t.Fatalf("cancel %+v %v", cn, err)
	}
	if _, err := s.Cancel(ctx, app, d.DeploymentID, "test", nil); err != ErrEnded {
		t.Fatalf("cancelling twice: %v", err)
	}
	if _, err := s.Delete(ctx, deploys.App{ID: app.ID, PreviewOf: app.ID}, "test", nil); !errs.Is(err, errs.Conflict) {
		t.Fatalf("deleting a preview: %v", err)
	}
	if del, err := s.Delete(ctx, app, "test", audit[deploys.Deleted](team, "app.delete")); err != nil || !del.Removed {
		t.Fatalf("delete %+v %v", del, err)
	}
	want := []string{"app.scale", "env.set", "env.delete", "deployment.create", "deployment.cancel", "app.delete"}
	got := actions(t, db, team)
	if len(got) != len(want) {
		t.Fatalf("audit %v, want %v", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("audit %v, want %v", got, want)
		}
	}
}

// TestEditRules: each setting is checked and the first field at fault is
// named; a valid patch is saved with its audit record; an app being
// deleted takes no change.
func TestEditRules(t *testing.T) {
	s, db, team := service(t)
	ctx := context.Background()
	c, err := s.Create(ctx, team, New{Name: "a", Slug: "a", GitRepo: "https://git.example.test/o/a.git", CPUMillis: 500, MemoryMB: 256}, false, nil)
	if err != nil {
		t.Fatal(err)
	}
	app, _ := s.Load(ctx, team, c.ID)
	str := func(v string) *string { return &v }
	num := func(v int) *int { return &v }
	for field, p := range map[string]Patch{
		"health_path":       {HealthPath: str("no-slash")},
		"framework":         {Framework: str("cobol")},
		"port":              {Port: num(70000)},
		"git_branch":        {GitBranch: str("-x")},
		"repo":              {Repo: str("o/a")},
		"image":             {Image: str("nginx:1")},
		"registry_username": {RegistryUsername: str("u")},
		"replicas":          {Replicas: num(-1)},
	} {
		_, err := s.Edit(ctx, app, p, false, nil)
		if e, ok := errs.As(err); !ok || e.Kind != errs.Invalid || e.Field != field {
			t.Errorf("%s: %v", field, err)
		}
	}
	got, err := s.Edit(ctx, app, Patch{HealthPath: str("/up"), Framework: str("go"), MemoryMB: num(384)}, false, audit[Change](team, "app.scale"))
	if err != nil || got.App.HealthPath != "/up" || got.App.Framework != "go" || got.App.MemoryMB != 384 || got.Instances != nil {
		t.Fatalf("edit %+v %v", got, err)
	}
	if now, _ := s.Load(ctx, team, app.ID); now.HealthPath != "/up" || now.MemoryMB != 384 {
		t.Fatalf("saved %+v", now)
	}
	if got := actions(t, db, team); len(got) != 1 || got[0] != "app.scale" {
		t.Fatalf("audit %v", got)
	}
	app.Deleting = true
	if _, err := s.Edit(ctx, app, Patch{}, false, nil); !errs.Is(err, errs.Conflict) {
		t.Fatalf("editing an app being deleted: %v", err)
	}
}

// TestOperatorChangesAudited: `wisehosting app scale` and `app restart`
// write the same audit records as the API, by no person but the
// operator's command.
func TestOperatorChangesAudited(t *testing.T) {
	s, db, team := service(t)
	ctx := context.Background()
	var worker, app int64
	if err := db.Pool.QueryRow(ctx, "INSERT INTO workers (name, api_key_hash, status) VALUES ('w', 'k', 'online') RETURNING id").Scan(&worker); err != nil {
		t.Fatal(err)
	}
	if err := db.Pool.QueryRow(ctx, "INSERT INTO apps (team_id, slug, name, worker_id, status) VALUES ($1, 'web', 'Web', $2, 'running') RETURNING id", team, worker).Scan(&app); err != nil {
		t.Fatal(err)
	}
	if _, err := db.Pool.Exec(ctx, "INSERT INTO deployments (app_id, status, image, worker_id, finished_at) VALUES ($1, 'succeeded', 'img', $2, now())", app, worker); err != nil {
		t.Fatal(err)
	}
	if n, err := s.RestartBySlug(ctx, "web"); err != nil || n != 1 {
		t.Fatalf("restart: %d %v", n, err)
	}
	if _, err := s.RestartBySlug(ctx, "nope"); err == nil {
		t.Fatal("restart of an unknown app")
	}
	surge := 2
	if _, _, err := s.ScaleBySlug(ctx, "web", 1, &surge, nil); err != nil {
		t.Fatalf("scale: %v", err)
	}
	if _, _, err := s.ScaleBySlug(ctx, "web", 9, nil, nil); err == nil {
		t.Fatal("scale beyond the plan")
	}
	rows, err := db.Pool.Query(ctx, "SELECT action, target, user_id IS NULL, details->>'by', (details->>'app_id')::bigint FROM audit_events WHERE team_id = $1 ORDER BY id", team)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for rows.Next() {
		var action, target, by string
		var noUser bool
		var id int64
		if err := rows.Scan(&action, &target, &noUser, &by, &id); err != nil {
			t.Fatal(err)
		}
		if target != "web" || !noUser || by != "operator command" || id != app {
			t.Errorf("%s: target %q, no user %v, by %q, app %d", action, target, noUser, by, id)
		}
		got = append(got, action)
	}
	if strings.Join(got, " ") != "app.restart app.scale" {
		t.Fatalf("audited %v, want app.restart then app.scale", got)
	}
}
