package apps

import (
	"context"
	"slices"
	"strings"

	"github.com/wisehosting/wisehosting/internal/accounts"
	"github.com/wisehosting/wisehosting/internal/deploys"
	"github.com/wisehosting/wisehosting/internal/errs"
	"github.com/wisehosting/wisehosting/internal/frameworks"
	"github.com/wisehosting/wisehosting/internal/gitsource"
	"github.com/wisehosting/wisehosting/internal/imageref"
)

// Patch is a change of an app's settings as a person gives it; a nil
// field stays as it is.
type Patch struct {
	CPUMillis    *int    `json:"cpu_millis"`
	MemoryMB     *int    `json:"memory_mb"`
	Repo         *string `json:"repo"`
	GitRepo      *string `json:"git_repo"`
	GitBranch    *string `json:"git_branch"`
	Framework    *string `json:"framework"`
	Port         *int    `json:"port"`
	HealthPath   *string `json:"health_path"`
	AutoDeploy   *bool   `json:"auto_deploy"`
	Previews     *bool   `json:"previews"`
	ForkPreviews *bool   `json:"fork_previews"`
	RootDir      *string `json:"root_dir"`
	Dockerfile   *string `json:"dockerfile"`
	BuildCommand *string `json:"build_command"`
	StartCommand *string `json:"start_command"`
	// Image-sourced apps: a new image, or a new registry login (both
	// fields; both "" remove it).
	Image            *string `json:"image"`
	RegistryUsername *string `json:"registry_username"`
	RegistryPassword *string `json:"registry_password"`
	// Instances: scaling starts or stops instances at once, from the
	// current image.
	Replicas       *int `json:"replicas"`
	MaxSurge       *int `json:"max_surge"`
	MaxUnavailable *int `json:"max_unavailable"`
}

// Scaling is whether p changes the app's size or instances.
func (p Patch) Scaling() bool {
	return p.CPUMillis != nil || p.MemoryMB != nil || p.Replicas != nil || p.MaxSurge != nil || p.MaxUnavailable != nil
}

// Edit checks p against app and saves it (see Update): an errs.Field
// error names the first field at fault. A repository of the app's git
// connection is looked up at its provider, and a changed repository or
// branch of a connected app is checked there (Git); the provider's
// refusals are gitproviders errors. allowLocalGit admits local repository
// paths (development setups).
func (s *Service) Edit(ctx context.Context, app deploys.App, p Patch, allowLocalGit bool, audit accounts.Hook[Change]) (Change, error) {
	c, err := s.apply(ctx, app, p, allowLocalGit)
	if err != nil {
		return c, err
	}
	return c, s.Update(ctx, c, audit)
}

// apply is Edit's checks: the changed settings.
func (s *Service) apply(ctx context.Context, app deploys.App, p Patch, allowLocalGit bool) (Change, error) {
	if app.Deleting {
		return Change{}, errs.Conflictf("the app is being deleted")
	}
	old := app
	set := func(dst *int, v *int) {
		if v != nil {
			*dst = *v
		}
	}
	set(&app.CPUMillis, p.CPUMillis)
	set(&app.MemoryMB, p.MemoryMB)
	set(&app.Port, p.Port)
	c := Change{}
	if p.Replicas != nil || p.MaxSurge != nil || p.MaxUnavailable != nil {
		inst, err := s.Instances(ctx, app.ID)
		if err != nil {
			return c, err
		}
		set(&inst.Replicas, p.Replicas)
		set(&inst.MaxSurge, p.MaxSurge)
		set(&inst.MaxUnavailable, p.MaxUnavailable)
		if f, err := inst.Check(); err != nil {
			return c, errs.Field(f, err.Error())
		}
		c.Instances = &inst
	}
	if p.Port != nil && (app.Port < 0 || app.Port > 65535) {
		return c, errs.Field("port", "port must be between 0 (detect) and 65535")
	}
	if p.Framework != nil {
		if *p.Framework != "auto" && !slices.Contains(frameworks.All, *p.Framework) {
			return c, errs.Field("framework", "framework must be auto or one of "+strings.Join(frameworks.All, ", "))
		}
		app.Framework = *p.Framework
	}
	if p.HealthPath != nil {
		if hp := *p.HealthPath; !strings.HasPrefix(hp, "/") || len(hp) > 200 || strings.ContainsAny(hp, " \t\r\n?#") {
			return c, errs.Field("health_path", "the health path starts with / and has no spaces, ? or #")
		}
		app.HealthPath = *p.HealthPath
	}
	// Paths stay inside the checkout; commands are one line each.
	for _, f := range []struct {
		name  string
		dst   *string
		v     *string
		check func(string) error
	}{{"root_dir", &app.RootDir, p.RootDir, gitsource.CheckPath}, {"dockerfile", &app.Dockerfile, p.Dockerfile, gitsource.CheckPath},
		{"build_command", &app.BuildCommand, p.BuildCommand, frameworks.CheckCommand},
		{"start_command", &app.StartCommand, p.StartCommand, frameworks.CheckCommand}} {
		if f.v == nil {
			continue
		}
		if err := f.check(*f.v); err != nil {
			return c, errs.Field(f.name, err.Error())
		}
		*f.dst = *f.v
	}
	if p.GitBranch != nil {
		if err := gitsource.CheckBranch(*p.GitBranch); err != nil {
			return c, errs.Field("git_branch", err.Error())
		}
		app.GitBranch = *p.GitBranch
	}
	for _, b := range []struct {
		dst *bool
		v   *bool
	}{{&app.AutoDeploy, p.AutoDeploy}, {&app.Previews, p.Previews}, {&app.ForkPreviews, p.ForkPreviews}} {
		if b.v != nil {
			*b.dst = *b.v
		}
	}
	if (p.GitRepo != nil || p.Repo != nil) && app.SourceImage != "" {
		return c, errs.Field("git_repo", "this app deploys a prebuilt image: change its image instead")
	}
	if p.GitRepo != nil {
		if app.ConnectionID != 0 {
			return c, errs.Field("git_repo", "this app follows a connected repository: change repo instead")
		}
		if *p.GitRepo != "" {
			if err := gitsource.CheckURL(*p.GitRepo, allowLocalGit); err != nil {
				return c, errs.Field("git_repo", err.Error())
			}
		}
		app.GitRepo = *p.GitRepo
	}
	if p.Repo != nil {
		if app.ConnectionID == 0 {
			return c, errs.Field("repo", "this app has no git connection: change git_repo instead")
		}
		conn, err := s.Git.Get(ctx, app.TeamID, app.ConnectionID)
		if err != nil {
			return c, errs.Field("repo", "the app's git connection is gone: connect the provider again")
		}
		repo, err := s.Git.Repo(ctx, conn, *p.Repo)
		if err != nil {
			return c, err
		}
		// The provider's clone URL passes the same rules as a typed one.
		if err := gitsource.CheckURL(repo.CloneURL, allowLocalGit); err != nil {
			return c, errs.Field("repo", err.Error())
		}
		app.RepoName, app.GitRepo = repo.FullName, repo.CloneURL
	}
	if p.Image != nil {
		if app.SourceImage == "" {
			return c, errs.Field("image", "this app deploys a git repository; create an app to deploy a prebuilt image")
		}
		if err := imageref.Check(strings.TrimSpace(*p.Image)); err != nil {
			return c, errs.Field("image", err.Error())
		}
		app.SourceImage = strings.TrimSpace(*p.Image)
	}
	if p.RegistryUsername != nil || p.RegistryPassword != nil {
		if app.SourceImage == "" {
			return c, errs.Field("registry_username", "registry credentials go with a prebuilt image")
		}
		var l Login
		if p.RegistryUsername != nil {
			l.Username = *p.RegistryUsername
		}
		if p.RegistryPassword != nil {
			l.Password = *p.RegistryPassword
		}
		if f, err := imageref.CheckCredentials(l.Username, l.Password); err != nil {
			return c, errs.Field(f, err.Error())
		}
		c.Login = &l
	}
	if app.ConnectionID != 0 && (app.RepoName != old.RepoName || app.GitBranch != old.GitBranch) {
		conn, err := s.Git.Get(ctx, app.TeamID, app.ConnectionID)
		if err == nil {
			_, err = s.Git.Branches(ctx, conn, app.RepoName)
		}
		if err != nil {
			return c, err
		}
	}
	c.App = app
	return c, nil
}
