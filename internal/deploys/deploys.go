// Package deploys owns the deployment lifecycle, read top to bottom in
// lifecycle.go: it turns causes (a push, a pull request, a click, a
// rollback) into a deployments row and the job that performs it, written in
// one transaction so neither exists without the other (Trigger); and it is
// the only writer of deployments, their logs (AppendLog) and the app's
// status as jobs move: the job queue (internal/jobs) calls the hooks
// Lifecycle.Kinds returns in the transactions that place, progress, end or
// requeue a deploy, rollback, stop, restart or delete job. It also owns
// cancellation (Cancel), superseding, the operator's Requeue, app deletion
// (Delete), the desired state sent to workers (Desired) and what their app
// state reports change (ReportAppState).
package deploys

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"strconv"

	"github.com/jackc/pgx/v5"

	"github.com/wisehosting/wisehosting/internal/errs"
	"github.com/wisehosting/wisehosting/internal/jobs"
	"github.com/wisehosting/wisehosting/internal/volumes"
	"github.com/wisehosting/wisehosting/internal/wsproto"
)

// App is the part of an apps row a deployment needs.
type App struct {
	ID            int64
	TeamID        int64
	Slug          string
	Name          string
	GitRepo       string
	GitBranch     string
	GitProvider   string
	Framework     string
	Port          int
	CPUMillis     int
	MemoryMB      int
	DiskMB        int
	BandwidthKbit int
	HealthPath    string
	PreviewOf     int64
	PRNumber      int
	Status        string
	// Deleting: the app is being removed and takes no deploys.
	Deleting bool
	// ConnectionID is the git connection the app was created from (0:
	// none); RepoName the repository's name there, HookID the webhook
	// created on it ("" when the user installs it by hand).
	ConnectionID int64
	RepoName     string
	HookID       string
	// AutoDeploy: pushes to GitBranch deploy. Previews: pull requests get
	// preview apps; ForkPreviews: also those from forks.
	AutoDeploy   bool
	Previews     bool
	ForkPreviews bool
	// FromFork: a preview of a fork's pull request, built without the
	// parent app's variables and tokens.
	FromFork bool
	// RootDir and Dockerfile: where the build starts in the repository
	// and which Dockerfile it uses ("": detect).
	RootDir    string
	Dockerfile string
	// BuildCommand and StartCommand override the framework's build step
	// and the image's command ("": keep them).
	BuildCommand string
	StartCommand string
	// SourceImage, when set, is the prebuilt image the app deploys
	// (pulled by the worker) instead of building a repository.
	SourceImage string
}

const appColumns = `id, team_id, slug, name, git_repo, git_branch, git_provider, framework, port, cpu_millis,
	memory_mb, disk_mb, bandwidth_kbit, health_path, COALESCE(preview_of, 0), COALESCE(pr_number, 0), status,
	deleting_at IS NOT NULL, COALESCE(git_connection_id, 0), git_repo_name, hook_id, auto_deploy, previews,
	fork_previews, from_fork, root_dir, dockerfile, build_command, start_command, source_image`

func scanApp(row pgx.Row) (App, error) {
	var a App
	err := row.Scan(&a.ID, &a.TeamID, &a.Slug, &a.Name, &a.GitRepo, &a.GitBranch, &a.GitProvider, &a.Framework,
		&a.Port, &a.CPUMillis, &a.MemoryMB, &a.DiskMB, &a.BandwidthKbit, &a.HealthPath, &a.PreviewOf, &a.PRNumber, &a.Status, &a.Deleting,
		&a.ConnectionID, &a.RepoName, &a.HookID, &a.AutoDeploy, &a.Previews, &a.ForkPreviews, &a.FromFork,
		&a.RootDir, &a.Dockerfile, &a.BuildCommand, &a.StartCommand, &a.SourceImage)
	return a, err
}

// ErrNotFound means no such app (or not in the caller's team).
var ErrNotFound = errors.New("app not found")

// LoadApp reads an app by id. Callers acting for a user must check the
// team themselves or use LoadTeamApp.
func LoadApp(ctx context.Context, q jobs.Querier, id int64) (App, error) {
	a, err := scanApp(q.QueryRow(ctx, "SELECT "+appColumns+" FROM apps WHERE id = $1", id))
	if errors.Is(err, pgx.ErrNoRows) {
		return a, ErrNotFound
	}
	return a, err
}

// LoadTeamApp reads an app only if it belongs to teamID.
func LoadTeamApp(ctx context.Context, q jobs.Querier, teamID, id int64) (App, error) {
	a, err := scanApp(q.QueryRow(ctx, "SELECT "+appColumns+" FROM apps WHERE id = $1 AND team_id = $2", id, teamID))
	if errors.Is(err, pgx.ErrNoRows) {
		return a, ErrNotFound
	}
	return a, err
}

// Spec describes one deployment to create.
type Spec struct {
	Commit  string
	Message string
	Trigger string // push, pull_request, manual, rollback, api
	UserID  int64  // 0 for automatic triggers
	// RollbackOf reuses that deployment's image without building.
	RollbackOf int64
	// Policy, when set, may refuse the deploy (its error is returned).
	Policy DeployPolicy
}

// Created reports the rows a Trigger wrote.
type Created struct {
	DeploymentID int64
	JobID        int64
}

func nullable(id int64) any {
	if id == 0 {
		return nil
	}
	return id
}

// Trigger creates a queued deployment of app and enqueues its job, in tx.
// A deploy supersedes the app's older deploys that are queued or still
// building (supersede): a burst of pushes builds the newest only.
func Trigger(ctx context.Context, tx pgx.Tx, app App, s Spec) (Created, error) {
	var c Created
	if app.Deleting {
		return c, errs.Forbiddenf("the app %s is being deleted", app.Slug)
	}
	if s.Policy != nil {
		// A refusal is an errs.Forbidden error (e.g. the app's limits
		// exceed its team's plan); its message is for the user.
		if err := s.Policy(ctx, tx, app); err != nil {
			return c, err
		}
	}
	payload := wsproto.DeployPayload{
		Slug: app.Slug, TeamID: app.TeamID, GitURL: app.GitRepo, Branch: app.GitBranch, Commit: s.Commit, Framework: app.Framework,
		Port: app.Port, CPUMillis: app.CPUMillis, MemoryMB: app.MemoryMB, DiskMB: app.DiskMB,
		BandwidthKbit: app.BandwidthKbit, HealthPath: app.HealthPath, RootDir: app.RootDir, Dockerfile: app.Dockerfile,
		BuildCommand: app.BuildCommand, StartCommand: app.StartCommand, Pull: app.SourceImage,
	}
	kind := wsproto.JobDeploy
	if s.RollbackOf != 0 {
		var image, commit, status string
		err := tx.QueryRow(ctx, "SELECT image, commit_sha, status FROM deployments WHERE id = $1 AND app_id = $2",
			s.RollbackOf, app.ID).Scan(&image, &commit, &status)
		if errors.Is(err, pgx.ErrNoRows) {
			return c, errs.Invalidf("deployment %d of app %s not found", s.RollbackOf, app.Slug)
		}
		if err != nil {
			return c, err
		}
		if status != "succeeded" || image == "" {
			return c, errs.Invalidf("deployment %d did not succeed, so there is no image to roll back to", s.RollbackOf)
		}
		// A prebuilt image's rollback is the worker's copy of it, never
		// the tag's current content in the registry.
		kind, payload.Image, payload.Pull, s.Commit = wsproto.JobRollback, image, "", commit
		payload.Commit = commit
	}
	if s.Trigger == "" {
		s.Trigger = "manual"
	}
	// The app's volumes (the first instance's copies of per-instance ones)
	// are mounted on every deploy and rollback; their data lives on one
	// worker, where the deploy must then run.
	mounts, err := volumes.Mounts(ctx, tx, app.ID, 0)
	if err != nil {
		return c, err
	}
	payload.Volumes = mounts
	pin, err := volumes.PinnedWorker(ctx, tx, app.ID)
	if err != nil {
		return c, err
	}
	// Triggers of one app take turns, so a newer deploy always sees and
	// supersedes the older queued ones.
	if _, err := tx.Exec(ctx, "SELECT 1 FROM apps WHERE id = $1 FOR UPDATE", app.ID); err != nil {
		return c, err
	}
	err = tx.QueryRow(ctx, `INSERT INTO deployments (app_id, commit_sha, commit_message, trigger, rollback_of, created_by, image)
		VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING id`,
		app.ID, s.Commit, truncate(s.Message, 500), s.Trigger, nullable(s.RollbackOf), nullable(s.UserID), payload.Image).Scan(&c.DeploymentID)
	if err != nil {
		return c, fmt.Errorf("creating deployment: %w", err)
	}
	if app.FromFork {
		if err := AppendLog(ctx, tx, c.DeploymentID, StreamBuild, ForkBanner); err != nil {
			return c, err
		}
	}
	c.JobID, err = jobs.Enqueue(ctx, tx, jobs.New{
		Kind: kind, AppID: app.ID, DeploymentID: c.DeploymentID, Payload: payload,
		CPUMillis: app.CPUMillis, MemoryMB: app.MemoryMB, PinWorker: pin,
	})
	if err != nil {
		return c, err
	}
	if kind == wsproto.JobDeploy {
		if _, err := supersede(ctx, tx, app.ID, c.DeploymentID, c.JobID); err != nil {
			return c, err
		}
	}
	_, err = tx.Exec(ctx, "UPDATE apps SET status = CASE WHEN status IN ('created', 'failed', 'stopped') THEN 'building' ELSE status END, updated_at = now() WHERE id = $1", app.ID)
	return c, err
}

// ForkBanner opens the log of every deployment of a fork's pull request.
const ForkBanner = "This preview builds a pull request from a fork: it runs without the app's environment variables and without its git token."

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	r := []rune(s)
	if len(r) > n {
		r = r[:n]
	}
	return string(r)
}

var slugRe = regexp.MustCompile(`^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$`)

// PreviewSlug is the slug of the preview app of pull request n:
// `<slug>-pr-<n>`, shortened so the label stays within 63 characters.
func PreviewSlug(slug string, n int) string {
	suffix := "-pr-" + strconv.Itoa(n)
	if len(slug)+len(suffix) > 63 {
		slug = slug[:63-len(suffix)]
	}
	for len(slug) > 0 && slug[len(slug)-1] == '-' {
		slug = slug[:len(slug)-1]
	}
	return slug + suffix
}

// ValidSlug reports whether s can be a DNS label and an app slug.
func ValidSlug(s string) bool { return slugRe.MatchString(s) }
