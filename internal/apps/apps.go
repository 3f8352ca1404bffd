// Package apps owns apps as their team changes them: creating one (its
// settings checked, within the team's plan), changing its settings and
// instances, deleting it (its volumes released, its deployments
// cancelled), its environment variables, starting and cancelling its
// deployments for a person, and what people read of it (the app with
// where it runs, its deployments and their logs). Every change writes its
// audit record in its transaction; every lookup is scoped by team.
//
// Deployments themselves are internal/deploys'; instances
// internal/replicas'; volumes internal/volumes'.
package apps

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/wisehosting/wisehosting/internal/accounts"
	"github.com/wisehosting/wisehosting/internal/deploys"
	"github.com/wisehosting/wisehosting/internal/errs"
	"github.com/wisehosting/wisehosting/internal/gitconn"
	"github.com/wisehosting/wisehosting/internal/jobs"
	"github.com/wisehosting/wisehosting/internal/plans"
	"github.com/wisehosting/wisehosting/internal/replicas"
	"github.com/wisehosting/wisehosting/internal/secrets"
	"github.com/wisehosting/wisehosting/internal/volumes"
)

// Service keeps apps in Postgres.
type Service struct {
	Pool    *pgxpool.Pool
	Keyring *secrets.Keyring
	Plans   *plans.Registry
	// VolumeGrace is how long the volumes of a deleted app keep their data.
	VolumeGrace time.Duration
	// URL is an app's address from its slug ("": none).
	URL func(slug string) string
	// Git looks repositories of git connections up at their provider.
	Git *gitconn.Service
}

// ErrNotFound: no such app for this caller.
var ErrNotFound = errs.New(errs.NotFound, "not found")

// TeamOf is the team of app id.
func (s *Service) TeamOf(ctx context.Context, id int64) (int64, error) {
	var team int64
	err := s.Pool.QueryRow(ctx, "SELECT team_id FROM apps WHERE id = $1", id).Scan(&team)
	if errors.Is(err, pgx.ErrNoRows) {
		return 0, ErrNotFound
	}
	return team, err
}

// Load reads app id of team.
func (s *Service) Load(ctx context.Context, teamID, id int64) (deploys.App, error) {
	a, err := deploys.LoadTeamApp(ctx, s.Pool, teamID, id)
	if errors.Is(err, deploys.ErrNotFound) {
		return a, ErrNotFound
	}
	return a, err
}

// Instances reads an app's instance settings.
func (s *Service) Instances(ctx context.Context, id int64) (replicas.Settings, error) {
	var inst replicas.Settings
	err := s.Pool.QueryRow(ctx, "SELECT replicas, max_surge, max_unavailable FROM apps WHERE id = $1", id).Scan(
		&inst.Replicas, &inst.MaxSurge, &inst.MaxUnavailable)
	return inst, err
}

// Deploy starts a deployment of app (a rollback when spec names one).
func (s *Service) Deploy(ctx context.Context, app deploys.App, spec deploys.Spec, audit accounts.Hook[deploys.Created]) (deploys.Created, error) {
	var c deploys.Created
	spec.Policy = deploys.PlanPolicy(s.Plans).Deploy
	err := pgx.BeginFunc(ctx, s.Pool, func(tx pgx.Tx) error {
		var err error
		if c, err = deploys.Trigger(ctx, tx, app, spec); err != nil {
			return err
		}
		return audit.Write(ctx, tx, c)
	})
	return c, err
}

// ErrEnded: the deployment is not in progress any more.
var ErrEnded = errs.New(errs.Conflict, "the deployment has already ended")

// Cancel stops deployment dep of app: a queued one ends at once; one a
// worker builds or starts is stopped there (Ended false) and ends when
// the worker reports.
func (s *Service) Cancel(ctx context.Context, app deploys.App, dep int64, reason string, audit accounts.Hook[jobs.Cancelled]) (jobs.Cancelled, error) {
	var c jobs.Cancelled
	err := pgx.BeginFunc(ctx, s.Pool, func(tx pgx.Tx) error {
		var n int
		if err := tx.QueryRow(ctx, "SELECT count(*) FROM deployments WHERE id = $1 AND app_id = $2", dep, app.ID).Scan(&n); err != nil {
			return err
		}
		if n == 0 {
			return ErrNotFound
		}
		var err error
		if c, err = deploys.Cancel(ctx, tx, dep, reason); err != nil {
			return err
		}
		return audit.Write(ctx, tx, c)
	})
	if errors.Is(err, jobs.ErrNoActiveJob) || errors.Is(err, jobs.ErrNotCancellable) {
		return c, ErrEnded
	}
	return c, err
}

// Deletable says why app cannot be deleted by a person (nil: it can).
func Deletable(app deploys.App) error {
	if app.PreviewOf != 0 {
		return errs.Conflictf("a preview goes when its pull request closes, or with its app")
	}
	return nil
}

// Delete removes app (see deploys.Delete): its volumes keep their data
// for the grace period.
func (s *Service) Delete(ctx context.Context, app deploys.App, reason string, audit accounts.Hook[deploys.Deleted]) (deploys.Deleted, error) {
	if err := Deletable(app); err != nil {
		return deploys.Deleted{}, err
	}
	var d deploys.Deleted
	err := pgx.BeginFunc(ctx, s.Pool, func(tx pgx.Tx) error {
		// Lock the row: one deletion at a time.
		if _, err := tx.Exec(ctx, "SELECT 1 FROM apps WHERE id = $1 FOR UPDATE", app.ID); err != nil {
			return err
		}
		var err error
		if err = volumes.ReleaseApp(ctx, tx, app.ID, s.VolumeGrace); err != nil {
			return err
		}
		if d, err = deploys.Delete(ctx, tx, app, reason); err != nil {
			return err
		}
		return audit.Write(ctx, tx, d)
	})
	return d, err
}

// Variable is an environment variable's name; values are write-only (they
// leave the control plane only towards the worker that runs the app).
type Variable struct {
	Key       string    `json:"key"`
	UpdatedAt time.Time `json:"updated_at"`
}

// Env lists an app's variables by name (never nil).
func (s *Service) Env(ctx context.Context, appID int64) ([]Variable, error) {
	rows, err := s.Pool.Query(ctx, "SELECT key, updated_at FROM env_vars WHERE app_id = $1 ORDER BY key", appID)
	if err != nil {
		return nil, err
	}
	out, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (Variable, error) {
		var x Variable
		err := row.Scan(&x.Key, &x.UpdatedAt)
		return x, err
	})
	if out == nil {
		out = []Variable{}
	}
	return out, err
}

// MaxValue is the largest value of a variable.
const MaxValue = 64 << 10

// SetEnv sets (sealed) variable key of app.
func (s *Service) SetEnv(ctx context.Context, appID int64, key, value string, audit accounts.Hook[string]) error {
	if len(value) > MaxValue {
		return errs.Invalidf("a value may have at most 64 KiB")
	}
	return pgx.BeginFunc(ctx, s.Pool, func(tx pgx.Tx) error {
		if err := deploys.SetEnv(ctx, tx, s.Keyring, appID, key, value); err != nil {
			return err
		}
		return audit.Write(ctx, tx, key)
	})
}

// DeleteEnv removes variable key of app.
func (s *Service) DeleteEnv(ctx context.Context, appID int64, key string, audit accounts.Hook[string]) error {
	return pgx.BeginFunc(ctx, s.Pool, func(tx pgx.Tx) error {
		tag, err := tx.Exec(ctx, "DELETE FROM env_vars WHERE app_id = $1 AND key = $2", appID, key)
		if err == nil && tag.RowsAffected() == 0 {
			return ErrNotFound
		}
		if err != nil {
			return err
		}
		return audit.Write(ctx, tx, key)
	})
}

// New is a new app's settings, as a person gives them.
type New struct {
	Name      string `json:"name"`
	Slug      string `json:"slug"`
	GitRepo   string `json:"git_repo"`
	GitBranch string `json:"git_branch"`
	Framework string `json:"framework"`
	Port      int    `json:"port"`
	CPUMillis int    `json:"cpu_millis"`
	MemoryMB  int    `json:"memory_mb"`
	// ConnectionID and Repo (owner/name at that provider) create the app
	// from a connected repository: its clone URL, default branch and
	// provider come from there, and its webhook is installed.
	ConnectionID int64  `json:"git_connection_id"`
	Repo         string `json:"repo"`
	// GitProvider of a repository given by URL (for its webhook).
	GitProvider  string `json:"git_provider"`
	AutoDeploy   bool   `json:"auto_deploy"`
	Previews     bool   `json:"previews"`
	ForkPreviews bool   `json:"fork_previews"`
	// Image deploys a prebuilt image (registry/name:tag or @digest)
	// instead of a repository, pulled with the optional registry login
	// (the password is write-only).
	Image            string `json:"image"`
	RegistryUsername string `json:"registry_username"`
	RegistryPassword string `json:"registry_password"`
	// Replicas is how many instances the app runs (0: 1).
	Replicas int `json:"replicas"`
}

// Defaults are a new app's settings a person does not give: framework
// detected, half a core, 256 MB, pushes deployed, pull requests previewed.
func Defaults() New {
	return New{Framework: "auto", CPUMillis: 500, MemoryMB: 256, AutoDeploy: true, Previews: true}
}

// Create checks app n (see New.Check) and makes it in team, within the
// team's plan; a taken slug is a conflict on the slug field.
func (s *Service) Create(ctx context.Context, teamID int64, n New, allowLocalGit bool, audit accounts.Hook[Created]) (Created, error) {
	if err := n.Check(allowLocalGit); err != nil {
		return Created{}, err
	}
	var id int64
	err := pgx.BeginFunc(ctx, s.Pool, func(tx pgx.Tx) error {
		if err := s.Plans.CheckCreateApp(ctx, tx, teamID, plans.Limits{CPUMillis: n.CPUMillis, MemoryMB: n.MemoryMB,
			Replicas: n.Replicas}); err != nil {
			return err
		}
		if err := tx.QueryRow(ctx, `INSERT INTO apps (team_id, slug, name, git_repo, git_branch, framework, port, cpu_millis, memory_mb,
			git_provider, git_connection_id, git_repo_name, auto_deploy, previews, fork_previews, source_image)
			VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16) RETURNING id`, teamID, n.Slug, n.Name, n.GitRepo, n.GitBranch, n.Framework,
			n.Port, n.CPUMillis, n.MemoryMB, n.GitProvider, nullable(n.ConnectionID), n.Repo, n.AutoDeploy, n.Previews, n.ForkPreviews, n.Image).Scan(&id); err != nil {
			return err
		}
		if err := deploys.SetRegistryCredentials(ctx, tx, s.Keyring, id, n.RegistryUsername, n.RegistryPassword); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, "UPDATE apps SET replicas = $2 WHERE id = $1", id, n.Replicas); err != nil {
			return err
		}
		return audit.Write(ctx, tx, Created{ID: id, New: n})
	})
	if err != nil {
		return Created{}, errs.Constraint(err, map[string]*errs.Error{
			"apps_slug_key": {Kind: errs.Conflict, Field: "slug", Msg: fmt.Sprintf("the slug %q is taken", n.Slug)}})
	}
	return Created{ID: id, New: n}, nil
}

// Created is a new app: its id and its checked settings.
type Created struct {
	ID int64
	New
}

func nullable(id int64) any {
	if id == 0 {
		return nil
	}
	return id
}

// Login is a new registry login of an image-sourced app (both "":
// none).
type Login struct {
	Username, Password string
}

// Change is a change of an app's settings: app holds the new settings,
// Instances the new instance settings (nil: unchanged), Login a new
// registry login (nil: unchanged).
type Change struct {
	App       deploys.App
	Instances *replicas.Settings
	Login     *Login
}

// Update saves c within the team's plan; changed instance settings start
// or stop instances at once.
func (s *Service) Update(ctx context.Context, c Change, audit accounts.Hook[Change]) error {
	app := c.App
	lim := plans.Limits{CPUMillis: app.CPUMillis, MemoryMB: app.MemoryMB, DiskMB: app.DiskMB, BandwidthKbit: app.BandwidthKbit}
	if c.Instances != nil {
		lim.Replicas = c.Instances.Replicas
	}
	return pgx.BeginFunc(ctx, s.Pool, func(tx pgx.Tx) error {
		if err := s.Plans.CheckScale(ctx, tx, app.TeamID, lim); err != nil {
			return err
		}
		if c.Instances != nil {
			c.Instances.VolumeGrace = s.VolumeGrace
			if _, err := replicas.Scale(ctx, tx, app.ID, *c.Instances); err != nil {
				return err
			}
		}
		if _, err := tx.Exec(ctx, `UPDATE apps SET cpu_millis = $2, memory_mb = $3, git_repo = $4, git_repo_name = $5, git_branch = $6,
			framework = $7, port = $8, health_path = $9, auto_deploy = $10, previews = $11, fork_previews = $12, root_dir = $13, dockerfile = $14,
			build_command = $15, start_command = $16, source_image = $17, updated_at = now() WHERE id = $1`,
			app.ID, app.CPUMillis, app.MemoryMB, app.GitRepo, app.RepoName, app.GitBranch, app.Framework, app.Port, app.HealthPath,
			app.AutoDeploy, app.Previews, app.ForkPreviews, app.RootDir, app.Dockerfile, app.BuildCommand, app.StartCommand, app.SourceImage); err != nil {
			return err
		}
		if c.Login != nil {
			if err := deploys.SetRegistryCredentials(ctx, tx, s.Keyring, app.ID, c.Login.Username, c.Login.Password); err != nil {
				return err
			}
		}
		return audit.Write(ctx, tx, c)
	})
}

// ScaleBySlug runs n instances of the app with slug (an operator's
// command), within its team's plan; surge and unavailable, when not nil,
// change how its rolling deploys move. It returns the settings and how
// many instances start now; the change is audited as app.scale by the
// operator.
func (s *Service) ScaleBySlug(ctx context.Context, slug string, n int, surge, unavailable *int) (replicas.Settings, int, error) {
	var started int
	set := replicas.Settings{Replicas: n, VolumeGrace: s.VolumeGrace}
	err := pgx.BeginFunc(ctx, s.Pool, func(tx pgx.Tx) error {
		var id, team int64
		if err := bySlug(ctx, tx, slug).Scan(&id, &team, &set.MaxSurge, &set.MaxUnavailable); err != nil {
			return noApp(slug, err)
		}
		if surge != nil {
			set.MaxSurge = *surge
		}
		if unavailable != nil {
			set.MaxUnavailable = *unavailable
		}
		if _, err := set.Check(); err != nil {
			return err
		}
		if err := s.Plans.CheckScale(ctx, tx, team, plans.Limits{Replicas: n}); err != nil {
			return err
		}
		var err error
		if started, err = replicas.Scale(ctx, tx, id, set); err != nil {
			return err
		}
		return operatorEntry(team, "app.scale", slug, map[string]any{"app_id": id, "replicas": set.Replicas,
			"max_surge": set.MaxSurge, "max_unavailable": set.MaxUnavailable}).Write(ctx, tx)
	})
	return set, started, err
}

// Restart restarts app's instances one at a time (see replicas.Restart)
// and returns how many restart.
func (s *Service) Restart(ctx context.Context, app deploys.App, audit accounts.Hook[int]) (int, error) {
	return accounts.Change(ctx, s.Pool, audit, func(tx pgx.Tx) (int, error) { return replicas.Restart(ctx, tx, app.ID) })
}

// RestartBySlug is Restart for the app with slug (an operator's command),
// audited as app.restart by the operator.
func (s *Service) RestartBySlug(ctx context.Context, slug string) (int, error) {
	var n int
	err := pgx.BeginFunc(ctx, s.Pool, func(tx pgx.Tx) error {
		var id, team int64
		var surge, unavailable int
		if err := bySlug(ctx, tx, slug).Scan(&id, &team, &surge, &unavailable); err != nil {
			return noApp(slug, err)
		}
		var err error
		if n, err = replicas.Restart(ctx, tx, id); err != nil {
			return err
		}
		return operatorEntry(team, "app.restart", slug, map[string]any{"app_id": id, "instances": n}).Write(ctx, tx)
	})
	return n, err
}

// operatorEntry is the audit record of a change an operator's command
// made: no person, "by": "operator command".
func operatorEntry(team int64, action, slug string, details map[string]any) accounts.Entry {
	details["by"] = "operator command"
	return accounts.Entry{TeamID: team, Action: action, Target: slug, Details: details}
}

// bySlug reads the id, team and rolling settings of the app with slug
// that is not being deleted.
func bySlug(ctx context.Context, tx pgx.Tx, slug string) pgx.Row {
	return tx.QueryRow(ctx, `SELECT id, team_id, max_surge, max_unavailable FROM apps WHERE slug = $1 AND deleting_at IS NULL`, slug)
}

// noApp names the slug of an app that is not there.
func noApp(slug string, err error) error {
	if errors.Is(err, pgx.ErrNoRows) {
		return fmt.Errorf("no app %q", slug)
	}
	return err
}

// SetGitToken stores an app-level deploy token (write-only, sealed) that
// clones the app's private repository instead of its connection's token.
func (s *Service) SetGitToken(ctx context.Context, appID int64, token string, audit accounts.Hook[int64]) error {
	token = strings.TrimSpace(token)
	if token == "" {
		return errs.Field("token", "paste the deploy token")
	}
	_, err := accounts.Change(ctx, s.Pool, audit, func(tx pgx.Tx) (int64, error) {
		if err := deploys.SetGitToken(ctx, tx, s.Keyring, appID, token); err != nil {
			return appID, errs.Field("token", err.Error())
		}
		return appID, nil
	})
	return err
}

// RemoveGitToken removes an app's deploy token.
func (s *Service) RemoveGitToken(ctx context.Context, appID int64, audit accounts.Hook[int64]) error {
	_, err := accounts.Change(ctx, s.Pool, audit, func(tx pgx.Tx) (int64, error) {
		return appID, deploys.SetGitToken(ctx, tx, s.Keyring, appID, "")
	})
	return err
}
