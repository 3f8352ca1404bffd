package gitconn

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"

	"github.com/jackc/pgx/v5"

	"github.com/wisehosting/wisehosting/internal/deploys"
	"github.com/wisehosting/wisehosting/internal/errs"
	"github.com/wisehosting/wisehosting/internal/frameworks"
	"github.com/wisehosting/wisehosting/internal/gitproviders"
	"github.com/wisehosting/wisehosting/internal/httpx"
)

// RepoPage is one page of a connection's repositories.
type RepoPage struct {
	Repos   []gitproviders.Repo `json:"repos"`
	Total   int                 `json:"total"`
	Page    int                 `json:"page"`
	PerPage int                 `json:"per_page"`
}

// Repos lists the repositories the connection sees whose name contains
// query (case-insensitive), page by page (1-based).
func (s *Service) Repos(ctx context.Context, c Connection, query string, page, perPage int) (RepoPage, error) {
	if perPage <= 0 || perPage > 100 {
		perPage = 30
	}
	if page <= 0 {
		page = 1
	}
	cl, err := s.Client(ctx, c)
	if err != nil {
		return RepoPage{}, err
	}
	all, err := cl.Repos(ctx, "")
	if err != nil {
		return RepoPage{}, gitproviders.Explain(c.Provider, "listing repositories", err)
	}
	q := strings.ToLower(strings.TrimSpace(query))
	var match []gitproviders.Repo
	for _, r := range all {
		if q == "" || strings.Contains(strings.ToLower(r.FullName), q) {
			match = append(match, r)
		}
	}
	out := RepoPage{Total: len(match), Page: page, PerPage: perPage, Repos: []gitproviders.Repo{}}
	if from := (page - 1) * perPage; from < len(match) {
		out.Repos = match[from:min(from+perPage, len(match))]
	}
	return out, nil
}

// Repo finds one repository by its full name.
func (s *Service) Repo(ctx context.Context, c Connection, fullName string) (gitproviders.Repo, error) {
	cl, err := s.Client(ctx, c)
	if err != nil {
		return gitproviders.Repo{}, err
	}
	all, err := cl.Repos(ctx, "")
	if err != nil {
		return gitproviders.Repo{}, gitproviders.Explain(c.Provider, "listing repositories", err)
	}
	i := slices.IndexFunc(all, func(r gitproviders.Repo) bool { return strings.EqualFold(r.FullName, fullName) })
	if i < 0 {
		return gitproviders.Repo{}, errs.Field("repo", fmt.Sprintf("%s has no repository %q that this connection can see (deleted, renamed or no access)",
			gitproviders.DisplayName(c.Provider), fullName))
	}
	return all[i], nil
}

// Branches lists a repository's branches.
func (s *Service) Branches(ctx context.Context, c Connection, repo string) ([]gitproviders.Branch, error) {
	cl, err := s.Client(ctx, c)
	if err != nil {
		return nil, err
	}
	bs, err := cl.Branches(ctx, repo)
	if err != nil {
		return nil, fieldErr("repo", gitproviders.Explain(c.Provider, "listing branches", err))
	}
	if bs == nil {
		bs = []gitproviders.Branch{}
	}
	return bs, nil
}

// Detect names the framework of repo at ref by reading its files through
// the provider's API ("" and a reason when nothing is recognised).
func (s *Service) Detect(ctx context.Context, c Connection, repo, ref string) (string, error) {
	cl, err := s.Client(ctx, c)
	if err != nil {
		return "", err
	}
	files, err := cl.TopFiles(ctx, repo, ref)
	if err != nil {
		return "", fieldErr("repo", gitproviders.Explain(c.Provider, "reading the repository's files", err))
	}
	fw, err := frameworks.Guess(func(n string) bool { return slices.Contains(files, n) }, func() ([]byte, error) {
		b, err := cl.PackageJSON(ctx, repo, ref)
		return b, gitproviders.Explain(c.Provider, "reading package.json", err)
	})
	if errors.Is(err, frameworks.ErrUnknown) {
		return "", errs.Field("framework", err.Error())
	}
	return fw, err
}

// HookURL is where a provider delivers an app's events.
func HookURL(publicURL, provider string, appID int64) string {
	return strings.TrimRight(publicURL, "/") + "/v1/hooks/" + provider + "/" + strconv.FormatInt(appID, 10)
}

// Hook is the state of an app's webhook after an install or rotation.
type Hook struct {
	URL      string `json:"url"`
	Provider string `json:"provider"`
	// Installed: the platform created the hook at the provider.
	Installed bool `json:"installed"`
	// Secret is shown once, only when the user must install the hook.
	Secret string `json:"secret,omitempty"`
	// Reason says why the hook could not be installed automatically.
	Reason string `json:"reason,omitempty"`
	// Steps tell how to add the hook at the provider by hand.
	Steps []string `json:"steps,omitempty"`
}

// Steps are the provider's settings page instructions for a manual hook.
func Steps(provider, url string) []string {
	switch provider {
	case gitproviders.GitHub:
		return []string{"Open the repository's Settings → Webhooks → Add webhook.", "Payload URL: " + url,
			"Content type: application/json; Secret: the secret shown here.", "Events: Pushes and Pull requests; Active; Add webhook."}
	case gitproviders.GitLab:
		return []string{"Open the project's Settings → Webhooks → Add new webhook.", "URL: " + url,
			"Secret token: the secret shown here.", "Triggers: Push events and Merge request events; SSL verification on; Add webhook."}
	case gitproviders.Bitbucket:
		return []string{"Open the repository's Repository settings → Webhooks → Add webhook.", "URL: " + url,
			"Secret: the secret shown here.", "Triggers: Repository push, Pull request created, updated, merged and declined; Save."}
	case gitproviders.Codeberg:
		return []string{"Open the repository's Settings → Webhooks → Add webhook → Gitea (or Forgejo).", "Target URL: " + url,
			"POST content type: application/json; Secret: the secret shown here.", "Trigger on: Push events and Pull request events; Add webhook."}
	}
	return []string{"Add a webhook for push and pull request events to " + url + " with the secret shown here."}
}

// InstallHook gives app a fresh webhook secret and, when the app has a
// connection, (re)creates its webhook at the provider with it. When the
// provider refuses (no permission, rate limit), the result carries the
// secret, once, and the steps to add the hook by hand. Deliveries signed
// with an earlier secret are refused from now on.
func (s *Service) InstallHook(ctx context.Context, app deploys.App, publicURL string) (Hook, error) {
	provider := app.GitProvider
	h := Hook{URL: HookURL(publicURL, provider, app.ID), Provider: provider}
	secret, err := deploys.RotateHookSecret(ctx, s.Pool, s.Keyring, app.ID)
	if err != nil {
		return h, err
	}
	manual := func(reason string) (Hook, error) {
		if _, err := s.Pool.Exec(ctx, "UPDATE apps SET hook_id = '' WHERE id = $1", app.ID); err != nil {
			return h, err
		}
		h.Secret, h.Reason, h.Steps = secret, reason, Steps(provider, h.URL)
		return h, nil
	}
	if app.ConnectionID == 0 || app.RepoName == "" {
		return manual("the app is not linked to a git connection")
	}
	c, err := s.Get(ctx, app.TeamID, app.ConnectionID)
	if err != nil {
		return manual("the app's git connection is gone")
	}
	cl, err := s.Client(ctx, c)
	if err != nil {
		return manual(err.Error())
	}
	if app.HookID != "" {
		if err := cl.DeleteHook(ctx, app.RepoName, gitproviders.Hook{ID: app.HookID}); err != nil && httpx.StatusOf(err) != http.StatusNotFound {
			return manual(gitproviders.Explain(c.Provider, "removing the previous webhook", err).Error())
		}
	}
	hook, err := cl.CreateHook(ctx, app.RepoName, gitproviders.HookSpec{URL: h.URL, Secret: secret})
	if err != nil {
		return manual(gitproviders.Explain(c.Provider, "creating the webhook", err).Error())
	}
	if _, err := s.Pool.Exec(ctx, "UPDATE apps SET hook_id = $2 WHERE id = $1", app.ID, hook.ID); err != nil {
		return h, err
	}
	h.Installed = true
	return h, nil
}

// RemoveHook deletes app's webhook at the provider (a hook already gone
// counts as removed).
func (s *Service) RemoveHook(ctx context.Context, app deploys.App) error {
	if app.HookID == "" || app.ConnectionID == 0 {
		return nil
	}
	c, err := s.Get(ctx, app.TeamID, app.ConnectionID)
	if err != nil {
		return nil // the connection (and its hooks) went first
	}
	cl, err := s.Client(ctx, c)
	if err != nil {
		return err
	}
	if err := cl.DeleteHook(ctx, app.RepoName, gitproviders.Hook{ID: app.HookID}); err != nil && httpx.StatusOf(err) != http.StatusNotFound {
		return gitproviders.Explain(c.Provider, "removing the webhook", err)
	}
	_, err = s.Pool.Exec(ctx, "UPDATE apps SET hook_id = '' WHERE id = $1", app.ID)
	return err
}

// ReportDeployment posts a deployment's state as a commit status on its
// repository (for a preview: on the pull request's head commit, in the
// parent app's repository), linking to StatusURL of the deployment's app.
// Apps without a connection are skipped.
func (s *Service) ReportDeployment(ctx context.Context, deploymentID int64, state string) error {
	var appID int64
	var commit string
	if err := s.Pool.QueryRow(ctx, "SELECT app_id, commit_sha FROM deployments WHERE id = $1", deploymentID).Scan(&appID, &commit); err != nil {
		if errors.Is(err, pgx.ErrNoRows) {
			return nil
		}
		return err
	}
	if commit == "" {
		return nil
	}
	app, err := deploys.LoadApp(ctx, s.Pool, appID)
	if err != nil {
		return nil
	}
	owner := app
	if app.PreviewOf != 0 {
		if owner, err = deploys.LoadApp(ctx, s.Pool, app.PreviewOf); err != nil {
			return nil
		}
	}
	if owner.ConnectionID == 0 || owner.RepoName == "" {
		return nil
	}
	c, err := s.Get(ctx, owner.TeamID, owner.ConnectionID)
	if err != nil {
		return nil
	}
	cl, err := s.Client(ctx, c)
	if err != nil {
		return err
	}
	url := ""
	if s.StatusURL != nil {
		url = s.StatusURL(app.Slug)
	}
	desc := map[string]string{gitproviders.StatusPending: "Deploying " + app.Slug,
		gitproviders.StatusSuccess: "Deployed: " + url, gitproviders.StatusFailure: "Deployment failed"}[state]
	return cl.SetStatus(ctx, owner.RepoName, commit, gitproviders.Status{State: state, URL: url, Description: desc})
}
