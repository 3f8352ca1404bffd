package apps

import (
	"context"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/wisehosting/wisehosting/internal/deploys"
	"github.com/wisehosting/wisehosting/internal/replicas"
)

// View is an app as its team reads it.
type View struct {
	ID        int64  `json:"id"`
	TeamID    int64  `json:"team_id"`
	Slug      string `json:"slug"`
	Name      string `json:"name"`
	GitRepo   string `json:"git_repo"`
	GitBranch string `json:"git_branch"`
	Framework string `json:"framework"`
	Port      int    `json:"port"`
	CPUMillis int    `json:"cpu_millis"`
	MemoryMB  int    `json:"memory_mb"`
	Status    string `json:"status"`
	// URL is https://<slug>.<subdomain_base>; URLs adds the verified
	// custom domains.
	URL          string     `json:"url,omitempty"`
	URLs         []string   `json:"urls"`
	LastDeployAt *time.Time `json:"last_deploy_at"`

	GitProvider     string `json:"git_provider"`
	GitConnectionID int64  `json:"git_connection_id,omitempty"`
	Repo            string `json:"repo,omitempty"`
	HealthPath      string `json:"health_path"`
	AutoDeploy      bool   `json:"auto_deploy"`
	Previews        bool   `json:"previews"`
	ForkPreviews    bool   `json:"fork_previews"`
	HookInstalled   bool   `json:"hook_installed"`
	HasGitToken     bool   `json:"has_git_token"`
	PreviewOf       int64  `json:"preview_of,omitempty"`
	RootDir         string `json:"root_dir"`
	// Image-sourced apps: the image and the registry user; the password
	// is never returned (HasRegistryPassword says whether there is one).
	Image               string `json:"image"`
	RegistryUsername    string `json:"registry_username"`
	HasRegistryPassword bool   `json:"has_registry_password"`
	Dockerfile          string `json:"dockerfile"`
	BuildCommand        string `json:"build_command"`
	StartCommand        string `json:"start_command"`
	// Replicas is how many instances the app runs; a rolling deploy
	// starts at most MaxSurge new ones at a time and stops at most
	// MaxUnavailable old ones before their successor runs. Instances
	// lists where each runs.
	Replicas       int                 `json:"replicas"`
	MaxSurge       int                 `json:"max_surge"`
	MaxUnavailable int                 `json:"max_unavailable"`
	Instances      []replicas.Instance `json:"instances"`
	// Overview: worker, live deployment, newest deployment.
	deploys.Overview
}

// View reads app id.
func (s *Service) View(ctx context.Context, id int64) (View, error) {
	var a View
	var domains []string
	err := s.Pool.QueryRow(ctx, `SELECT id, team_id, slug, name, git_repo, git_branch, framework, port, cpu_millis, memory_mb,
		CASE WHEN deleting_at IS NOT NULL THEN 'deleting' ELSE status END, git_provider, COALESCE(git_connection_id, 0), git_repo_name,
		health_path, auto_deploy, previews, fork_previews, hook_id <> '', git_token_enc IS NOT NULL, COALESCE(preview_of, 0),
		root_dir, dockerfile, build_command, start_command, source_image, registry_username, registry_password_enc IS NOT NULL,
		replicas, max_surge, max_unavailable,
		(SELECT max(created_at) FROM deployments WHERE app_id = apps.id),
		ARRAY(SELECT hostname FROM domains WHERE app_id = apps.id AND verified_at IS NOT NULL ORDER BY hostname)
		FROM apps WHERE id = $1`, id).Scan(&a.ID, &a.TeamID, &a.Slug, &a.Name, &a.GitRepo, &a.GitBranch, &a.Framework, &a.Port, &a.CPUMillis, &a.MemoryMB, &a.Status,
		&a.GitProvider, &a.GitConnectionID, &a.Repo, &a.HealthPath, &a.AutoDeploy, &a.Previews, &a.ForkPreviews, &a.HookInstalled, &a.HasGitToken, &a.PreviewOf,
		&a.RootDir, &a.Dockerfile, &a.BuildCommand, &a.StartCommand, &a.Image, &a.RegistryUsername, &a.HasRegistryPassword,
		&a.Replicas, &a.MaxSurge, &a.MaxUnavailable, &a.LastDeployAt, &domains)
	if err != nil {
		return a, err
	}
	if a.Instances, err = replicas.List(ctx, s.Pool, id); err != nil {
		return a, err
	}
	if a.Overview, err = deploys.AppOverview(ctx, s.Pool, a.ID); err != nil {
		return a, err
	}
	if s.URL != nil {
		a.URL = s.URL(a.Slug)
	}
	a.URLs = []string{}
	if a.URL != "" {
		a.URLs = append(a.URLs, a.URL)
	}
	for _, d := range domains {
		a.URLs = append(a.URLs, "https://"+d)
	}
	return a, nil
}

// List reads the team's apps by name (never nil).
func (s *Service) List(ctx context.Context, teamID int64) ([]View, error) {
	rows, err := s.Pool.Query(ctx, "SELECT id FROM apps WHERE team_id = $1 ORDER BY name, id", teamID)
	if err != nil {
		return nil, err
	}
	ids, err := pgx.CollectRows(rows, pgx.RowTo[int64])
	if err != nil {
		return nil, err
	}
	out := []View{}
	for _, id := range ids {
		v, err := s.View(ctx, id)
		if err != nil {
			return nil, err
		}
		out = append(out, v)
	}
	return out, nil
}

// Deployment is one of an app's deployments as its team reads it.
type Deployment struct {
	ID         int64  `json:"id"`
	Status     string `json:"status"`
	Commit     string `json:"commit"`
	Message    string `json:"message"`
	Trigger    string `json:"trigger"`
	Image      string `json:"image"`
	Error      string `json:"error,omitempty"`
	RollbackOf *int64 `json:"rollback_of,omitempty"`
	By         string `json:"by"`
	// Live marks the deployment that serves the app now.
	Live       bool       `json:"live"`
	CreatedAt  time.Time  `json:"created_at"`
	FinishedAt *time.Time `json:"finished_at,omitempty"`
}

// Deployments reads an app's newest 50 deployments, newest first (never
// nil).
func (s *Service) Deployments(ctx context.Context, appID int64) ([]Deployment, error) {
	ov, err := deploys.AppOverview(ctx, s.Pool, appID)
	if err != nil {
		return nil, err
	}
	rows, err := s.Pool.Query(ctx, `SELECT d.id, d.status, d.commit_sha, d.commit_message, d.trigger, d.image, d.error, d.rollback_of,
			COALESCE(NULLIF(u.name, ''), u.email, ''), d.created_at, d.finished_at
		FROM deployments d LEFT JOIN users u ON u.id = d.created_by WHERE d.app_id = $1 ORDER BY d.id DESC LIMIT 50`, appID)
	if err != nil {
		return nil, err
	}
	out, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (Deployment, error) {
		var d Deployment
		err := row.Scan(&d.ID, &d.Status, &d.Commit, &d.Message, &d.Trigger, &d.Image, &d.Error, &d.RollbackOf, &d.By, &d.CreatedAt, &d.FinishedAt)
		d.Live = d.ID == ov.LiveDeploymentID
		return d, err
	})
	if out == nil {
		out = []Deployment{}
	}
	return out, err
}

// LogLine is a line of a deployment's log.
type LogLine struct {
	ID     int64     `json:"id"`
	Stream string    `json:"stream"`
	Line   string    `json:"line"`
	TS     time.Time `json:"ts"`
}

// Log reads deployment dep of app: its status and up to 2000 log lines
// after line id after (never nil).
func (s *Service) Log(ctx context.Context, appID, dep, after int64) (string, []LogLine, error) {
	var status string
	if err := s.Pool.QueryRow(ctx, "SELECT status FROM deployments WHERE id = $1 AND app_id = $2", dep, appID).Scan(&status); err != nil {
		return "", nil, err
	}
	rows, err := s.Pool.Query(ctx, `SELECT id, stream, line, ts FROM deployment_logs WHERE deployment_id = $1 AND id > $2 ORDER BY id LIMIT 2000`,
		dep, after)
	if err != nil {
		return "", nil, err
	}
	out, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (LogLine, error) {
		var l LogLine
		err := row.Scan(&l.ID, &l.Stream, &l.Line, &l.TS)
		return l, err
	})
	if out == nil {
		out = []LogLine{}
	}
	return status, out, err
}
