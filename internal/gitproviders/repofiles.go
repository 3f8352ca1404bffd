package gitproviders

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/wisehosting/wisehosting/internal/httpx"
)

// Status is a deployment's state as shown on a commit at the provider.
type Status struct {
	State       string // pending, success, failure
	URL         string // where the deployment (or preview) is served
	Description string
}

// Commit status states.
const (
	StatusPending = "pending"
	StatusSuccess = "success"
	StatusFailure = "failure"
)

// statusContext names WiseHosting's status among a commit's checks.
const statusContext = "wisehosting/deploy"

func validRef(ref string) error {
	if ref == "" || len(ref) > 200 || strings.HasPrefix(ref, "-") || strings.Contains(ref, "..") ||
		strings.ContainsAny(ref, "?#%\\ \t\r\n:~^*[") {
		return fmt.Errorf("invalid branch or commit %q", ref)
	}
	return nil
}

func validSHA(sha string) error {
	if len(sha) < 7 || len(sha) > 64 || strings.Trim(sha, "0123456789abcdef") != "" {
		return fmt.Errorf("invalid commit %q", sha)
	}
	return nil
}

// notFound turns a 404 answer into (nil, nil): an absent file.
func notFound(b []byte, err error) ([]byte, error) {
	if httpx.StatusOf(err) == http.StatusNotFound {
		return nil, nil
	}
	return b, err
}

// ghContent is a file or directory entry of GitHub's and Gitea's contents
// API.
type ghContent struct {
	Name     string `json:"name"`
	Type     string `json:"type"`
	Content  string `json:"content"`
	Encoding string `json:"encoding"`
}

func ghTopFiles(ctx context.Context, r Requester, repo, ref string) ([]string, error) {
	if err := validRepo(repo); err != nil {
		return nil, err
	}
	if err := validRef(ref); err != nil {
		return nil, err
	}
	var entries []ghContent
	if err := r.Do(ctx, http.MethodGet, "/repos/"+repo+"/contents?ref="+url.QueryEscape(ref), nil, &entries); err != nil {
		return nil, err
	}
	var out []string
	for _, e := range entries {
		if e.Type == "file" {
			out = append(out, e.Name)
		}
	}
	return out, nil
}

func ghPackageJSON(ctx context.Context, r Requester, repo, ref string) ([]byte, error) {
	if err := validRepo(repo); err != nil {
		return nil, err
	}
	if err := validRef(ref); err != nil {
		return nil, err
	}
	var c ghContent
	if err := r.Do(ctx, http.MethodGet, "/repos/"+repo+"/contents/package.json?ref="+url.QueryEscape(ref), nil, &c); err != nil {
		return notFound(nil, err)
	}
	return decodeContent(c.Content, c.Encoding)
}

func decodeContent(content, encoding string) ([]byte, error) {
	if encoding != "base64" {
		return nil, fmt.Errorf("unexpected file encoding %q", encoding)
	}
	return base64.StdEncoding.DecodeString(strings.ReplaceAll(content, "\n", ""))
}

func ghLogin(ctx context.Context, r Requester) (string, error) {
	var u struct {
		Login string `json:"login"`
	}
	if err := r.Do(ctx, http.MethodGet, "/user", nil, &u); err != nil {
		return "", err
	}
	if u.Login == "" {
		return "", errors.New("the provider's answer has no login")
	}
	return u.Login, nil
}

// ghSetStatus posts a commit status (GitHub and Gitea share the API).
func ghSetStatus(ctx context.Context, r Requester, repo, sha string, st Status) error {
	if err := validRepo(repo); err != nil {
		return err
	}
	if err := validSHA(sha); err != nil {
		return err
	}
	in := map[string]string{"state": st.State, "target_url": st.URL, "description": truncateDesc(st.Description), "context": statusContext}
	return r.Do(ctx, http.MethodPost, "/repos/"+repo+"/statuses/"+sha, in, nil)
}

// truncateDesc keeps a status description within GitHub's 140 characters.
func truncateDesc(s string) string {
	if r := []rune(s); len(r) > 140 {
		return string(r[:139]) + "…"
	}
	return s
}

func (g *github) User(ctx context.Context) (string, error) { return ghLogin(ctx, g.r) }
func (g *github) TopFiles(ctx context.Context, repo, ref string) ([]string, error) {
	return ghTopFiles(ctx, g.r, repo, ref)
}
func (g *github) PackageJSON(ctx context.Context, repo, ref string) ([]byte, error) {
	return ghPackageJSON(ctx, g.r, repo, ref)
}
func (g *github) SetStatus(ctx context.Context, repo, sha string, st Status) error {
	return ghSetStatus(ctx, g.r, repo, sha, st)
}

func (g *gitea) User(ctx context.Context) (string, error) { return ghLogin(ctx, g.r) }
func (g *gitea) TopFiles(ctx context.Context, repo, ref string) ([]string, error) {
	return ghTopFiles(ctx, g.r, repo, ref)
}
func (g *gitea) PackageJSON(ctx context.Context, repo, ref string) ([]byte, error) {
	return ghPackageJSON(ctx, g.r, repo, ref)
}
func (g *gitea) SetStatus(ctx context.Context, repo, sha string, st Status) error {
	return ghSetStatus(ctx, g.r, repo, sha, st)
}

// --- GitLab ---

func (g *gitlab) User(ctx context.Context) (string, error) {
	var u struct {
		Username string `json:"username"`
	}
	if err := g.r.Do(ctx, http.MethodGet, "/user", nil, &u); err != nil {
		return "", err
	}
	if u.Username == "" {
		return "", errors.New("the provider's answer has no username")
	}
	return u.Username, nil
}

func (g *gitlab) TopFiles(ctx context.Context, repo, ref string) ([]string, error) {
	if err := validRepo(repo); err != nil {
		return nil, err
	}
	if err := validRef(ref); err != nil {
		return nil, err
	}
	var entries []struct {
		Name string `json:"name"`
		Type string `json:"type"`
	}
	if err := g.r.Do(ctx, http.MethodGet, "/projects/"+glProject(repo)+"/repository/tree?per_page=100&ref="+url.QueryEscape(ref), nil, &entries); err != nil {
		return nil, err
	}
	var out []string
	for _, e := range entries {
		if e.Type == "blob" {
			out = append(out, e.Name)
		}
	}
	return out, nil
}

func (g *gitlab) PackageJSON(ctx context.Context, repo, ref string) ([]byte, error) {
	if err := validRepo(repo); err != nil {
		return nil, err
	}
	if err := validRef(ref); err != nil {
		return nil, err
	}
	var f struct {
		Content  string `json:"content"`
		Encoding string `json:"encoding"`
	}
	if err := g.r.Do(ctx, http.MethodGet, "/projects/"+glProject(repo)+"/repository/files/package.json?ref="+url.QueryEscape(ref), nil, &f); err != nil {
		return notFound(nil, err)
	}
	return decodeContent(f.Content, f.Encoding)
}

func (g *gitlab) SetStatus(ctx context.Context, repo, sha string, st Status) error {
	if err := validRepo(repo); err != nil {
		return err
	}
	if err := validSHA(sha); err != nil {
		return err
	}
	state := map[string]string{StatusPending: "running", StatusSuccess: "success", StatusFailure: "failed"}[st.State]
	in := map[string]string{"state": state, "target_url": st.URL, "description": truncateDesc(st.Description), "name": statusContext}
	return g.r.Do(ctx, http.MethodPost, "/projects/"+glProject(repo)+"/statuses/"+sha, in, nil)
}

// --- Bitbucket ---

func (b *bitbucket) User(ctx context.Context) (string, error) {
	var u struct {
		Username string `json:"username"`
	}
	if err := b.r.Do(ctx, http.MethodGet, "/user", nil, &u); err != nil {
		return "", err
	}
	if u.Username == "" {
		return "", errors.New("the provider's answer has no username")
	}
	return u.Username, nil
}

func (b *bitbucket) TopFiles(ctx context.Context, repo, ref string) ([]string, error) {
	if err := validRepo(repo); err != nil {
		return nil, err
	}
	if err := validRef(ref); err != nil {
		return nil, err
	}
	var p bbPage[struct {
		Path string `json:"path"`
		Type string `json:"type"`
	}]
	if err := b.r.Do(ctx, http.MethodGet, "/repositories/"+repo+"/src/"+url.PathEscape(ref)+"/?pagelen=100", nil, &p); err != nil {
		return nil, err
	}
	var out []string
	for _, v := range p.Values {
		if v.Type == "commit_file" {
			out = append(out, v.Path)
		}
	}
	return out, nil
}

// PackageJSON: Bitbucket's src endpoint answers the raw file, which for a
// package.json is the JSON document itself.
func (b *bitbucket) PackageJSON(ctx context.Context, repo, ref string) ([]byte, error) {
	if err := validRepo(repo); err != nil {
		return nil, err
	}
	if err := validRef(ref); err != nil {
		return nil, err
	}
	var raw json.RawMessage
	if err := b.r.Do(ctx, http.MethodGet, "/repositories/"+repo+"/src/"+url.PathEscape(ref)+"/package.json", nil, &raw); err != nil {
		return notFound(nil, err)
	}
	return raw, nil
}

func (b *bitbucket) SetStatus(ctx context.Context, repo, sha string, st Status) error {
	if err := validRepo(repo); err != nil {
		return err
	}
	if err := validSHA(sha); err != nil {
		return err
	}
	state := map[string]string{StatusPending: "INPROGRESS", StatusSuccess: "SUCCESSFUL", StatusFailure: "FAILED"}[st.State]
	in := map[string]string{"key": statusContext, "state": state, "url": st.URL, "name": "WiseHosting", "description": truncateDesc(st.Description)}
	return b.r.Do(ctx, http.MethodPost, "/repositories/"+repo+"/commit/"+sha+"/statuses/build", in, nil)
}

// Error is a provider failure told in words for the person who caused the
// call. Status is the HTTP status to answer with; RetryAfter is set when
// the provider rate-limits.
type Error struct {
	Status     int
	RetryAfter time.Duration
	Msg        string
}

func (e *Error) Error() string { return e.Msg }

// Explain turns an error of a provider call into an *Error whose message
// names the provider and what to do; other errors (bad input) are returned
// as they are. what says what was being done ("listing repositories").
func Explain(provider, what string, err error) error {
	if err == nil {
		return nil
	}
	name := DisplayName(provider)
	var ae *httpx.APIError
	if !errors.As(err, &ae) {
		if errors.Is(err, context.DeadlineExceeded) || strings.Contains(err.Error(), "giving up") ||
			strings.Contains(err.Error(), "dial") || errors.Is(err, httpx.ErrBlockedAddress) {
			return &Error{Status: http.StatusBadGateway, Msg: fmt.Sprintf("%s did not answer while %s; try again later", name, what)}
		}
		return err
	}
	switch {
	case ae.Status == http.StatusUnauthorized:
		return &Error{Status: http.StatusUnprocessableEntity, Msg: fmt.Sprintf("%s refused the token while %s: it is wrong, expired or revoked. Connect %s again.", name, what, name)}
	case ae.Status == http.StatusTooManyRequests || (ae.Status == http.StatusForbidden && ae.RetryAfter > 0):
		ra := ae.RetryAfter
		if ra <= 0 {
			ra = time.Minute
		}
		return &Error{Status: http.StatusTooManyRequests, RetryAfter: ra,
			Msg: fmt.Sprintf("%s is rate-limiting this connection; try again in %d seconds", name, int(ra.Round(time.Second).Seconds()))}
	case ae.Status == http.StatusForbidden:
		return &Error{Status: http.StatusUnprocessableEntity, Msg: fmt.Sprintf("%s refused %s: the token lacks the permission for it", name, what)}
	case ae.Status == http.StatusNotFound:
		return &Error{Status: http.StatusUnprocessableEntity, Msg: fmt.Sprintf("%s answered not found while %s: the repository was deleted or renamed, or this connection cannot see it", name, what)}
	case ae.Status == http.StatusUnprocessableEntity:
		return &Error{Status: http.StatusUnprocessableEntity, Msg: fmt.Sprintf("%s refused %s (%d)", name, what, ae.Status)}
	case ae.Status >= 500:
		return &Error{Status: http.StatusBadGateway, Msg: fmt.Sprintf("%s failed while %s (%d); try again later", name, what, ae.Status)}
	}
	return &Error{Status: http.StatusBadGateway, Msg: fmt.Sprintf("%s answered %d while %s", name, ae.Status, what)}
}

// CloneUser is the HTTP Basic user name a provider expects with a token
// over git's smart HTTP: GitHub and Gitea take any, GitLab's OAuth tokens
// need "oauth2", Bitbucket's "x-token-auth".
func CloneUser(provider string) string {
	switch provider {
	case GitLab:
		return "oauth2"
	case Bitbucket:
		return "x-token-auth"
	}
	return "x-access-token"
}

// DisplayName is the provider's name for people.
func DisplayName(provider string) string {
	switch provider {
	case GitHub:
		return "GitHub"
	case GitLab:
		return "GitLab"
	case Bitbucket:
		return "Bitbucket"
	case Codeberg:
		return "Codeberg/Gitea"
	}
	return provider
}
