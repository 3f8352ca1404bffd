package gitproviders

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"

	"github.com/wisehosting/wisehosting/internal/httpx"
)

// Repo is a repository the user can deploy.
type Repo struct {
	FullName      string `json:"full_name"` // owner/name (GitLab: group/subgroup/name)
	CloneURL      string `json:"clone_url"`
	DefaultBranch string `json:"default_branch"`
	Private       bool   `json:"private"`
}

// Branch is a branch of a repository.
type Branch struct {
	Name   string `json:"name"`
	Commit string `json:"commit"`
}

// Hook identifies a webhook created on a repository.
type Hook struct {
	ID string `json:"id"`
}

// HookSpec describes the push webhook to create.
type HookSpec struct {
	URL    string // https://cp.example.com/v1/hooks/<provider>/<app id>
	Secret string
}

// Client is one provider's API, authenticated as one user.
type Client interface {
	// Repos lists the repositories the user can access (org is optional:
	// only that organisation's).
	Repos(ctx context.Context, org string) ([]Repo, error)
	Orgs(ctx context.Context) ([]string, error)
	Branches(ctx context.Context, repo string) ([]Branch, error)
	CreateHook(ctx context.Context, repo string, spec HookSpec) (Hook, error)
	DeleteHook(ctx context.Context, repo string, hook Hook) error
	// User returns the login the token belongs to (checks the token).
	User(ctx context.Context) (string, error)
	// TopFiles lists the names of the files at the root of repo at ref.
	TopFiles(ctx context.Context, repo, ref string) ([]string, error)
	// PackageJSON returns repo's package.json at ref (nil when absent).
	PackageJSON(ctx context.Context, repo, ref string) ([]byte, error)
	// SetStatus reports a deployment's state on commit sha (GitHub and
	// Gitea commit status, GitLab commit status, Bitbucket build status).
	SetStatus(ctx context.Context, repo, sha string, st Status) error
}

// Requester performs one JSON API call: it sends in (if non-nil) as JSON
// and decodes the response into out (if non-nil). A non-2xx answer is an
// *httpx.APIError. internal/httpx's APIClient is the implementation.
type Requester interface {
	Do(ctx context.Context, method, path string, in, out any) error
}

// NewClient returns provider's Client for one user's OAuth token, calling
// baseURL ("" for the provider's public API) through the shared retrying
// client.
func NewClient(provider, baseURL, token string, opts ...httpx.Option) (Client, error) {
	if baseURL == "" {
		baseURL = DefaultBaseURL[provider]
	}
	k, v := AuthHeader(provider, token)
	auth := httpx.WithAuth(func(r *http.Request) error {
		r.Header.Set(k, v)
		if provider == GitHub {
			r.Header.Set("Accept", "application/vnd.github+json")
			r.Header.Set("X-GitHub-Api-Version", "2022-11-28")
		}
		return nil
	})
	return New(provider, httpx.New(append([]httpx.Option{httpx.WithPrefix(baseURL), auth}, opts...)...))
}

// DefaultBaseURL is each provider's public API root.
var DefaultBaseURL = map[string]string{
	GitHub:    "https://api.github.com",
	GitLab:    "https://gitlab.com/api/v4",
	Bitbucket: "https://api.bitbucket.org/2.0",
	Codeberg:  "https://codeberg.org/api/v1",
}

// AuthHeader returns the header a provider expects for an OAuth access
// token.
func AuthHeader(provider, token string) (string, string) {
	if provider == Codeberg {
		return "Authorization", "token " + token
	}
	return "Authorization", "Bearer " + token
}

// New returns the Client of provider that sends its calls through r.
func New(provider string, r Requester) (Client, error) {
	switch provider {
	case GitHub:
		return &github{r: r}, nil
	case GitLab:
		return &gitlab{r: r}, nil
	case Bitbucket:
		return &bitbucket{r: r}, nil
	case Codeberg:
		return &gitea{r: r}, nil
	}
	return nil, fmt.Errorf("unknown git provider %q", provider)
}

// validRepo guards the path segments built from a user's repo name.
func validRepo(repo string) error {
	if repo == "" || len(repo) > 300 || strings.Contains(repo, "..") || strings.HasPrefix(repo, "/") ||
		strings.ContainsAny(repo, "?#%\\ \t\r\n") || !strings.Contains(repo, "/") {
		return fmt.Errorf("invalid repository name %q (want owner/name)", repo)
	}
	return nil
}

func validSegment(s string) error {
	if s == "" || len(s) > 200 || strings.ContainsAny(s, "/?#%\\ \t\r\n") || s == "." || s == ".." {
		return fmt.Errorf("invalid name %q", s)
	}
	return nil
}

// maxPages bounds pagination against a provider that never stops.
const maxPages = 50

// pages fetches path page by page (page-number APIs: GitHub, GitLab,
// Gitea) until a page is shorter than size. sizeParam names the page-size
// query parameter.
func pages[T any](ctx context.Context, r Requester, path, sizeParam string, size int) ([]T, error) {
	sep := "?"
	if strings.Contains(path, "?") {
		sep = "&"
	}
	var out []T
	for page := 1; page <= maxPages; page++ {
		var batch []T
		if err := r.Do(ctx, http.MethodGet, fmt.Sprintf("%s%s%s=%d&page=%d", path, sep, sizeParam, size, page), nil, &batch); err != nil {
			return nil, err
		}
		out = append(out, batch...)
		if len(batch) < size {
			break
		}
	}
	return out, nil
}

// ghBranch is a branch as GitHub and Gitea list it (commit id under sha or id).
type ghBranch struct {
	Name   string `json:"name"`
	Commit struct {
		SHA string `json:"sha"`
		ID  string `json:"id"`
	} `json:"commit"`
}

func branchesOf(bs []ghBranch) []Branch {
	out := make([]Branch, len(bs))
	for i, b := range bs {
		out[i] = Branch{Name: b.Name, Commit: b.Commit.SHA}
		if out[i].Commit == "" {
			out[i].Commit = b.Commit.ID
		}
	}
	return out
}

func reposOf(rs []ghRepo) []Repo {
	out := make([]Repo, len(rs))
	for i, r := range rs {
		out[i] = Repo(r)
	}
	return out
}

// --- GitHub (REST v3) -------------------------------------------------------

type github struct{ r Requester }

type ghRepo struct {
	FullName      string `json:"full_name"`
	CloneURL      string `json:"clone_url"`
	DefaultBranch string `json:"default_branch"`
	Private       bool   `json:"private"`
}

func (g *github) Repos(ctx context.Context, org string) ([]Repo, error) {
	path := "/user/repos?affiliation=owner,collaborator,organization_member&sort=pushed"
	if org != "" {
		if err := validSegment(org); err != nil {
			return nil, err
		}
		path = "/orgs/" + url.PathEscape(org) + "/repos?sort=pushed"
	}
	rs, err := pages[ghRepo](ctx, g.r, path, "per_page", 100)
	return reposOf(rs), err
}

func (g *github) Orgs(ctx context.Context) ([]string, error) {
	var orgs []struct {
		Login string `json:"login"`
	}
	if err := g.r.Do(ctx, http.MethodGet, "/user/orgs?per_page=100", nil, &orgs); err != nil {
		return nil, err
	}
	out := make([]string, len(orgs))
	for i, o := range orgs {
		out[i] = o.Login
	}
	return out, nil
}

func (g *github) Branches(ctx context.Context, repo string) ([]Branch, error) {
	if err := validRepo(repo); err != nil {
		return nil, err
	}
	bs, err := pages[ghBranch](ctx, g.r, "/repos/"+repo+"/branches", "per_page", 100)
	return branchesOf(bs), err
}

func (g *github) CreateHook(ctx context.Context, repo string, spec HookSpec) (Hook, error) {
	if err := validRepo(repo); err != nil {
		return Hook{}, err
	}
	in := map[string]any{
		"name": "web", "active": true, "events": []string{"push", "pull_request"},
		"config": map[string]string{"url": spec.URL, "content_type": "json", "secret": spec.Secret, "insecure_ssl": "0"},
	}
	var out struct {
		ID int64 `json:"id"`
	}
	if err := g.r.Do(ctx, http.MethodPost, "/repos/"+repo+"/hooks", in, &out); err != nil {
		return Hook{}, err
	}
	return Hook{ID: strconv.FormatInt(out.ID, 10)}, nil
}

func (g *github) DeleteHook(ctx context.Context, repo string, h Hook) error {
	if err := validRepo(repo); err != nil {
		return err
	}
	if err := validSegment(h.ID); err != nil {
		return err
	}
	return g.r.Do(ctx, http.MethodDelete, "/repos/"+repo+"/hooks/"+h.ID, nil, nil)
}

// --- GitLab (REST v4) -------------------------------------------------------

type gitlab struct{ r Requester }

func (g *gitlab) Repos(ctx context.Context, group string) ([]Repo, error) {
	path := "/projects?membership=true&order_by=last_activity_at&simple=true"
	if group != "" {
		if err := validSegment(group); err != nil {
			return nil, err
		}
		path = "/groups/" + url.PathEscape(group) + "/projects?include_subgroups=true&simple=true"
	}
	var out []Repo
	for page := 1; page <= maxPages; page++ {
		var batch []struct {
			PathWithNamespace string `json:"path_with_namespace"`
			HTTPURLToRepo     string `json:"http_url_to_repo"`
			DefaultBranch     string `json:"default_branch"`
			Visibility        string `json:"visibility"`
		}
		if err := g.r.Do(ctx, http.MethodGet, path+"&per_page=100&page="+strconv.Itoa(page), nil, &batch); err != nil {
			return nil, err
		}
		for _, p := range batch {
			out = append(out, Repo{FullName: p.PathWithNamespace, CloneURL: p.HTTPURLToRepo, DefaultBranch: p.DefaultBranch, Private: p.Visibility != "public"})
		}
		if len(batch) < 100 {
			break
		}
	}
	return out, nil
}

func (g *gitlab) Orgs(ctx context.Context) ([]string, error) {
	var groups []struct {
		FullPath string `json:"full_path"`
	}
	if err := g.r.Do(ctx, http.MethodGet, "/groups?min_access_level=30&per_page=100", nil, &groups); err != nil {
		return nil, err
	}
	out := make([]string, len(groups))
	for i, gr := range groups {
		out[i] = gr.FullPath
	}
	return out, nil
}

// GitLab addresses a project by its URL-encoded full path.
func glProject(repo string) string { return url.PathEscape(repo) }

func (g *gitlab) Branches(ctx context.Context, repo string) ([]Branch, error) {
	if err := validRepo(repo); err != nil {
		return nil, err
	}
	var out []Branch
	for page := 1; page <= maxPages; page++ {
		var batch []struct {
			Name   string `json:"name"`
			Commit struct {
				ID string `json:"id"`
			} `json:"commit"`
		}
		if err := g.r.Do(ctx, http.MethodGet, "/projects/"+glProject(repo)+"/repository/branches?per_page=100&page="+strconv.Itoa(page), nil, &batch); err != nil {
			return nil, err
		}
		for _, b := range batch {
			out = append(out, Branch{Name: b.Name, Commit: b.Commit.ID})
		}
		if len(batch) < 100 {
			break
		}
	}
	return out, nil
}

func (g *gitlab) CreateHook(ctx context.Context, repo string, spec HookSpec) (Hook, error) {
	if err := validRepo(repo); err != nil {
		return Hook{}, err
	}
	in := map[string]any{"url": spec.URL, "token": spec.Secret, "push_events": true,
		"merge_requests_events": true, "enable_ssl_verification": true}
	var out struct {
		ID int64 `json:"id"`
	}
	if err := g.r.Do(ctx, http.MethodPost, "/projects/"+glProject(repo)+"/hooks", in, &out); err != nil {
		return Hook{}, err
	}
	return Hook{ID: strconv.FormatInt(out.ID, 10)}, nil
}

func (g *gitlab) DeleteHook(ctx context.Context, repo string, h Hook) error {
	if err := validRepo(repo); err != nil {
		return err
	}
	if err := validSegment(h.ID); err != nil {
		return err
	}
	return g.r.Do(ctx, http.MethodDelete, "/projects/"+glProject(repo)+"/hooks/"+h.ID, nil, nil)
}

// --- Bitbucket Cloud (2.0) --------------------------------------------------

type bitbucket struct{ r Requester }

type bbPage[T any] struct {
	Values []T    `json:"values"`
	Next   string `json:"next"`
}

// nextPath turns Bitbucket's absolute "next" URL into a path on the same
// API, refusing to follow it anywhere else.
func nextPath(next string) (string, bool) {
	u, err := url.Parse(next)
	if err != nil || next == "" {
		return "", false
	}
	p := strings.TrimPrefix(u.Path, "/2.0")
	if u.RawQuery != "" {
		p += "?" + u.RawQuery
	}
	return p, true
}

func (b *bitbucket) Repos(ctx context.Context, workspace string) ([]Repo, error) {
	path := "/repositories?role=member&pagelen=100&sort=-updated_on"
	if workspace != "" {
		if err := validSegment(workspace); err != nil {
			return nil, err
		}
		path = "/repositories/" + url.PathEscape(workspace) + "?pagelen=100&sort=-updated_on"
	}
	var out []Repo
	for page := 0; page < maxPages; page++ {
		var p bbPage[struct {
			FullName   string `json:"full_name"`
			IsPrivate  bool   `json:"is_private"`
			Mainbranch *struct {
				Name string `json:"name"`
			} `json:"mainbranch"`
			Links struct {
				Clone []struct {
					Name string `json:"name"`
					Href string `json:"href"`
				} `json:"clone"`
			} `json:"links"`
		}]
		if err := b.r.Do(ctx, http.MethodGet, path, nil, &p); err != nil {
			return nil, err
		}
		for _, v := range p.Values {
			r := Repo{FullName: v.FullName, Private: v.IsPrivate}
			if v.Mainbranch != nil {
				r.DefaultBranch = v.Mainbranch.Name
			}
			for _, c := range v.Links.Clone {
				if c.Name == "https" {
					r.CloneURL = c.Href
				}
			}
			out = append(out, r)
		}
		var ok bool
		if path, ok = nextPath(p.Next); !ok {
			break
		}
	}
	return out, nil
}

func (b *bitbucket) Orgs(ctx context.Context) ([]string, error) {
	var p bbPage[struct {
		Workspace struct {
			Slug string `json:"slug"`
		} `json:"workspace"`
	}]
	if err := b.r.Do(ctx, http.MethodGet, "/user/permissions/workspaces?pagelen=100", nil, &p); err != nil {
		return nil, err
	}
	out := make([]string, len(p.Values))
	for i, v := range p.Values {
		out[i] = v.Workspace.Slug
	}
	return out, nil
}

func (b *bitbucket) Branches(ctx context.Context, repo string) ([]Branch, error) {
	if err := validRepo(repo); err != nil {
		return nil, err
	}
	path := "/repositories/" + repo + "/refs/branches?pagelen=100"
	var out []Branch
	for page := 0; page < maxPages; page++ {
		var p bbPage[struct {
			Name   string `json:"name"`
			Target struct {
				Hash string `json:"hash"`
			} `json:"target"`
		}]
		if err := b.r.Do(ctx, http.MethodGet, path, nil, &p); err != nil {
			return nil, err
		}
		for _, v := range p.Values {
			out = append(out, Branch{Name: v.Name, Commit: v.Target.Hash})
		}
		var ok bool
		if path, ok = nextPath(p.Next); !ok {
			break
		}
	}
	return out, nil
}

func (b *bitbucket) CreateHook(ctx context.Context, repo string, spec HookSpec) (Hook, error) {
	if err := validRepo(repo); err != nil {
		return Hook{}, err
	}
	in := map[string]any{"description": "WiseHosting deploys", "url": spec.URL, "active": true, "secret": spec.Secret,
		"events": []string{"repo:push", "pullrequest:created", "pullrequest:updated", "pullrequest:fulfilled", "pullrequest:rejected"}}
	var out struct {
		UUID string `json:"uuid"`
	}
	if err := b.r.Do(ctx, http.MethodPost, "/repositories/"+repo+"/hooks", in, &out); err != nil {
		return Hook{}, err
	}
	return Hook{ID: out.UUID}, nil
}

func (b *bitbucket) DeleteHook(ctx context.Context, repo string, h Hook) error {
	if err := validRepo(repo); err != nil {
		return err
	}
	if err := validSegment(h.ID); err != nil {
		return err
	}
	return b.r.Do(ctx, http.MethodDelete, "/repositories/"+repo+"/hooks/"+url.PathEscape(h.ID), nil, nil)
}

// --- Codeberg / Gitea / Forgejo (v1) ----------------------------------------

type gitea struct{ r Requester }

func (g *gitea) Repos(ctx context.Context, org string) ([]Repo, error) {
	path := "/user/repos?"
	if org != "" {
		if err := validSegment(org); err != nil {
			return nil, err
		}
		path = "/orgs/" + url.PathEscape(org) + "/repos?"
	}
	rs, err := pages[ghRepo](ctx, g.r, strings.TrimSuffix(path, "?"), "limit", 50)
	return reposOf(rs), err
}

func (g *gitea) Orgs(ctx context.Context) ([]string, error) {
	var orgs []struct {
		Username string `json:"username"`
	}
	if err := g.r.Do(ctx, http.MethodGet, "/user/orgs?limit=50", nil, &orgs); err != nil {
		return nil, err
	}
	out := make([]string, len(orgs))
	for i, o := range orgs {
		out[i] = o.Username
	}
	return out, nil
}

func (g *gitea) Branches(ctx context.Context, repo string) ([]Branch, error) {
	if err := validRepo(repo); err != nil {
		return nil, err
	}
	bs, err := pages[ghBranch](ctx, g.r, "/repos/"+repo+"/branches", "limit", 50)
	return branchesOf(bs), err
}

func (g *gitea) CreateHook(ctx context.Context, repo string, spec HookSpec) (Hook, error) {
	if err := validRepo(repo); err != nil {
		return Hook{}, err
	}
	in := map[string]any{"type": "gitea", "active": true, "events": []string{"push", "pull_request"},
		"config": map[string]string{"url": spec.URL, "content_type": "json", "secret": spec.Secret}}
	var out struct {
		ID int64 `json:"id"`
	}
	if err := g.r.Do(ctx, http.MethodPost, "/repos/"+repo+"/hooks", in, &out); err != nil {
		return Hook{}, err
	}
	return Hook{ID: strconv.FormatInt(out.ID, 10)}, nil
}

func (g *gitea) DeleteHook(ctx context.Context, repo string, h Hook) error {
	if err := validRepo(repo); err != nil {
		return err
	}
	if err := validSegment(h.ID); err != nil {
		return err
	}
	return g.r.Do(ctx, http.MethodDelete, "/repos/"+repo+"/hooks/"+h.ID, nil, nil)
}

// RevokeGitHubGrant revokes the OAuth grant behind token (the user
// disconnects GitHub): DELETE /applications/{client_id}/grant, authenticated
// as the OAuth app. baseURL "" means api.github.com.
func RevokeGitHubGrant(ctx context.Context, baseURL, clientID, clientSecret, token string, opts ...httpx.Option) error {
	if baseURL == "" {
		baseURL = DefaultBaseURL[GitHub]
	}
	if err := validSegment(clientID); err != nil {
		return err
	}
	auth := httpx.WithAuth(func(r *http.Request) error {
		r.SetBasicAuth(clientID, clientSecret)
		r.Header.Set("Accept", "application/vnd.github+json")
		return nil
	})
	c := httpx.New(append([]httpx.Option{httpx.WithPrefix(baseURL), auth}, opts...)...)
	return c.Do(ctx, http.MethodDelete, "/applications/"+url.PathEscape(clientID)+"/grant", map[string]string{"access_token": token}, nil)
}

// RevokeGitLabToken revokes an OAuth access token at a GitLab instance
// (POST /oauth/revoke, RFC 7009). webURL "" means gitlab.com.
func RevokeGitLabToken(ctx context.Context, webURL, clientID, clientSecret, token string, opts ...httpx.Option) error {
	if webURL == "" {
		webURL = "https://gitlab.com"
	}
	c := httpx.New(append([]httpx.Option{httpx.WithPrefix(webURL)}, opts...)...)
	return c.Do(ctx, http.MethodPost, "/oauth/revoke", map[string]string{"client_id": clientID, "client_secret": clientSecret, "token": token}, nil)
}
