// Package gitfake is a loopback stand-in for GitHub (GitHub Enterprise
// layout: the REST API under /api/v3, OAuth under /login/oauth) and, under
// /api/v1, for Gitea/Forgejo/Codeberg, whose API has the same shapes for
// these calls. It speaks their real JSON for the calls the platform makes — user,
// repositories, branches, contents, hooks, commit statuses, OAuth code
// exchange — and a real git smart-HTTP server over TLS (`git
// http-backend` behind net/http/cgi) serving private repositories that
// need a valid token. Tests drive it like a person at GitHub would: push
// commits, open and close pull requests (the fake then delivers the
// webhook, signed with the secret it was given), revoke a token, delete a
// repository, refuse hooks or rate-limit.
package gitfake

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"net/http"
	"net/http/cgi"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/wisehosting/wisehosting/internal/gitproviders"
)

// Hook is a webhook the platform created on a repository.
type Hook struct {
	ID     int64
	URL    string
	Secret string
	Events []string
}

// Status is a commit status the platform posted.
type Status struct {
	Repo, SHA, State, TargetURL, Description, Context string
}

// repo is one private repository.
type repo struct {
	owner, name string
	hooks       []Hook
	deleted     bool
	public      bool
}

// Server is the fake.
type Server struct {
	t testing.TB
	// API is the web root (OAuth base_url); the REST API is API + "/api/v3".
	API string
	// Git is the https root of the git server; CAFile trusts its certificate.
	Git    string
	CAFile string
	dir    string

	mu         sync.Mutex
	tokens     map[string]string // token → login
	codes      map[string]string // OAuth code → token
	refresh    map[string]string // refresh token → login
	expiresIn  int
	repos      map[string]*repo // owner/name
	statuses   []Status
	nextHook   int64
	refuseHook bool
	rateLimit  time.Duration
	requests   []string
	// Delivered counts webhook deliveries and their answers.
	Delivered []int
}

// Start runs the fake on loopback until the test ends.
func Start(t testing.TB) *Server {
	t.Helper()
	s := &Server{t: t, dir: t.TempDir(), tokens: map[string]string{}, codes: map[string]string{}, refresh: map[string]string{}, repos: map[string]*repo{}, nextHook: 1000}
	api := httptest.NewServer(http.HandlerFunc(s.serveAPI))
	t.Cleanup(api.Close)
	s.API = api.URL
	backend, err := gitHTTPBackend()
	if err != nil {
		t.Fatal(err)
	}
	gitSrv := httptest.NewUnstartedServer(s.gitHandler(backend))
	gitSrv.StartTLS()
	t.Cleanup(gitSrv.Close)
	s.Git = gitSrv.URL
	s.CAFile = filepath.Join(s.dir, "git-ca.pem")
	cert := gitSrv.TLS.Certificates[0]
	var pemBytes []byte
	for _, der := range cert.Certificate {
		pemBytes = append(pemBytes, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})...)
	}
	if err := os.WriteFile(s.CAFile, pemBytes, 0o644); err != nil {
		t.Fatal(err)
	}
	return s
}

func gitHTTPBackend() (string, error) {
	out, err := exec.Command("git", "--exec-path").Output()
	if err != nil {
		return "", fmt.Errorf("git --exec-path: %w", err)
	}
	p := filepath.Join(strings.TrimSpace(string(out)), "git-http-backend")
	if _, err := os.Stat(p); err != nil {
		return "", fmt.Errorf("git-http-backend not found (install git): %w", err)
	}
	return p, nil
}

// AddToken makes token valid for login.
func (s *Server) AddToken(token, login string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.tokens[token] = login
}

// RevokeToken makes token invalid (the user revoked it at GitHub).
func (s *Server) RevokeToken(token string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.tokens, token)
}

// AddCode makes an OAuth authorization code that exchanges for token.
func (s *Server) AddCode(code, token string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.codes[code] = token
}

// ExpiringTokens makes the OAuth endpoint issue access tokens that expire
// after seconds, with a refresh token (GitHub's expiring user tokens).
func (s *Server) ExpiringTokens(seconds int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.expiresIn = seconds
}

// RefuseHooks makes hook creation answer 404 as GitHub does for a token
// without admin rights on the repository.
func (s *Server) RefuseHooks(on bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.refuseHook = on
}

// RateLimit answers every API call 429 with Retry-After d (0 stops).
func (s *Server) RateLimit(d time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.rateLimit = d
}

// DeleteRepo removes a repository (its API answers 404 from now on).
func (s *Server) DeleteRepo(full string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if r := s.repos[full]; r != nil {
		r.deleted = true
	}
}

// Hooks returns the hooks of a repository.
func (s *Server) Hooks(full string) []Hook {
	s.mu.Lock()
	defer s.mu.Unlock()
	if r := s.repos[full]; r != nil {
		return append([]Hook(nil), r.hooks...)
	}
	return nil
}

// Statuses returns every commit status posted so far.
func (s *Server) Statuses() []Status {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Status(nil), s.statuses...)
}

// CloneURL is the https clone URL of a repository.
func (s *Server) CloneURL(full string) string { return s.Git + "/" + full + ".git" }

func (s *Server) bare(full string) string { return filepath.Join(s.dir, "git", full+".git") }

// CreatePublicRepo makes an empty repository anyone may clone.
func (s *Server) CreatePublicRepo(full string) {
	s.CreateRepo(full)
	s.mu.Lock()
	s.repos[full].public = true
	s.mu.Unlock()
}

// CreateRepo makes an empty private repository owner/name.
func (s *Server) CreateRepo(full string) {
	s.t.Helper()
	owner, name, _ := strings.Cut(full, "/")
	if err := os.MkdirAll(filepath.Dir(s.bare(full)), 0o755); err != nil {
		s.t.Fatal(err)
	}
	s.git("", "init", "-q", "--bare", "-b", "main", s.bare(full))
	s.git(s.bare(full), "config", "http.receivepack", "false")
	s.mu.Lock()
	s.repos[full] = &repo{owner: owner, name: name}
	s.mu.Unlock()
}

// Commit writes files on branch of repository full (a new commit on top
// of the branch, or the first one) and returns its sha. It changes the
// repository as a push would, without delivering anything.
func (s *Server) Commit(full, branch string, files map[string]string, msg string) string {
	s.t.Helper()
	work := filepath.Join(s.dir, "work", strings.ReplaceAll(full, "/", "_"), branch)
	if _, err := os.Stat(work); err != nil {
		os.MkdirAll(work, 0o755)
		s.git(work, "init", "-q", "-b", branch)
		s.git(work, "remote", "add", "origin", s.bare(full))
		if _, err := s.try(work, "fetch", "-q", "origin", branch); err == nil {
			s.git(work, "reset", "-q", "--hard", "FETCH_HEAD")
		} else if _, err := s.try(work, "fetch", "-q", "origin", "main"); err == nil {
			s.git(work, "reset", "-q", "--hard", "FETCH_HEAD")
		}
	}
	for name, body := range files {
		p := filepath.Join(work, name)
		os.MkdirAll(filepath.Dir(p), 0o755)
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			s.t.Fatal(err)
		}
	}
	s.git(work, "add", "-A")
	s.git(work, "commit", "-q", "-m", msg)
	s.git(work, "push", "-q", "origin", "HEAD:refs/heads/"+branch)
	return s.git(work, "rev-parse", "HEAD")
}

func (s *Server) try(dir string, args ...string) (string, error) {
	if dir != "" {
		args = append([]string{"-C", dir}, args...)
	}
	cmd := exec.Command("git", append([]string{"-c", "user.email=dev@example.test", "-c", "user.name=dev"}, args...)...)
	cmd.Env = append(os.Environ(), "GIT_CONFIG_GLOBAL=/dev/null", "GIT_CONFIG_NOSYSTEM=1")
	out, err := cmd.CombinedOutput()
	return strings.TrimSpace(string(out)), err
}

func (s *Server) git(dir string, args ...string) string {
	s.t.Helper()
	out, err := s.try(dir, args...)
	if err != nil {
		s.t.Fatalf("git %v: %v: %s", args, err, out)
	}
	return out
}

// gitHandler serves git smart HTTP for repositories that exist, to a
// client with a valid token (HTTP Basic, any user name, the token as
// password; or a Bearer header).
func (s *Server) gitHandler(backend string) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		full, _, _ := strings.Cut(strings.TrimPrefix(r.URL.Path, "/"), ".git/")
		s.mu.Lock()
		rp := s.repos[full]
		s.mu.Unlock()
		if _, ok := s.login(r); !ok && (rp == nil || !rp.public) {
			w.Header().Set("WWW-Authenticate", `Basic realm="GitHub"`)
			http.Error(w, "authentication required", http.StatusUnauthorized)
			return
		}
		if rp == nil || rp.deleted {
			http.Error(w, "Repository not found.", http.StatusNotFound)
			return
		}
		h := &cgi.Handler{Path: backend, Root: "/", Dir: s.dir,
			Env: []string{"GIT_PROJECT_ROOT=" + filepath.Join(s.dir, "git"), "GIT_HTTP_EXPORT_ALL=1",
				"GIT_CONFIG_GLOBAL=/dev/null", "GIT_CONFIG_NOSYSTEM=1"}}
		h.ServeHTTP(w, r)
	})
}

// login authenticates a request by its token.
func (s *Server) login(r *http.Request) (string, bool) {
	var tok string
	h := r.Header.Get("Authorization")
	if t, ok := strings.CutPrefix(h, "Bearer "); ok {
		tok = t
	} else if t, ok := strings.CutPrefix(h, "token "); ok {
		tok = t
	} else if _, p, ok := r.BasicAuth(); ok {
		tok = p
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	login, ok := s.tokens[tok]
	return login, ok && tok != ""
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(code)
	json.NewEncoder(w).Encode(v)
}

func ghError(w http.ResponseWriter, code int, msg string) {
	writeJSON(w, code, map[string]string{"message": msg, "documentation_url": "https://docs.github.com/rest"})
}

func (s *Server) repoJSON(r *repo) map[string]any {
	full := r.owner + "/" + r.name
	return map[string]any{"id": len(full), "name": r.name, "full_name": full, "private": true,
		"owner":     map[string]any{"login": r.owner},
		"clone_url": s.CloneURL(full), "default_branch": "main", "html_url": s.API + "/" + full}
}

// Requests lists the API calls received ("METHOD path").
func (s *Server) Requests() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.requests...)
}

func (s *Server) serveAPI(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	s.requests = append(s.requests, r.Method+" "+r.URL.Path)
	rl := s.rateLimit
	s.mu.Unlock()
	if r.URL.Path == "/login/oauth/access_token" && r.Method == http.MethodPost {
		s.exchange(w, r)
		return
	}
	// GitHub Enterprise's REST root, and Gitea/Forgejo's (same shapes for
	// every call made here).
	path, ok := strings.CutPrefix(r.URL.Path, "/api/v3")
	if !ok {
		if path, ok = strings.CutPrefix(r.URL.Path, "/api/v1"); !ok {
			http.NotFound(w, r)
			return
		}
	}
	if rl > 0 {
		w.Header().Set("Retry-After", strconv.Itoa(int(rl.Seconds())))
		ghError(w, http.StatusTooManyRequests, "API rate limit exceeded")
		return
	}
	login, ok := s.login(r)
	if !ok {
		ghError(w, http.StatusUnauthorized, "Bad credentials")
		return
	}
	seg := strings.Split(strings.Trim(path, "/"), "/")
	switch {
	case path == "/user" && r.Method == http.MethodGet:
		writeJSON(w, 200, map[string]any{"login": login, "id": 1, "type": "User"})
	case path == "/user/repos" && r.Method == http.MethodGet:
		s.listRepos(w, r, login)
	case len(seg) >= 4 && seg[0] == "repos":
		s.serveRepo(w, r, seg[1]+"/"+seg[2], seg[3:])
	default:
		ghError(w, http.StatusNotFound, "Not Found")
	}
}

func (s *Server) listRepos(w http.ResponseWriter, r *http.Request, login string) {
	per, _ := strconv.Atoi(r.URL.Query().Get("per_page"))
	page, _ := strconv.Atoi(r.URL.Query().Get("page"))
	if per <= 0 {
		per = 30
	}
	if page <= 0 {
		page = 1
	}
	s.mu.Lock()
	var all []map[string]any
	var names []string
	for full, rp := range s.repos {
		if !rp.deleted && rp.owner == login {
			names = append(names, full)
		}
	}
	sortStrings(names)
	for _, n := range names {
		all = append(all, s.repoJSON(s.repos[n]))
	}
	s.mu.Unlock()
	out := []map[string]any{}
	if from := (page - 1) * per; from < len(all) {
		out = all[from:min(from+per, len(all))]
	}
	writeJSON(w, 200, out)
}

func sortStrings(a []string) {
	for i := 1; i < len(a); i++ {
		for j := i; j > 0 && a[j] < a[j-1]; j-- {
			a[j], a[j-1] = a[j-1], a[j]
		}
	}
}

func (s *Server) serveRepo(w http.ResponseWriter, r *http.Request, full string, rest []string) {
	s.mu.Lock()
	rp := s.repos[full]
	refuse := s.refuseHook
	s.mu.Unlock()
	if rp == nil || rp.deleted {
		ghError(w, http.StatusNotFound, "Not Found")
		return
	}
	switch {
	case rest[0] == "branches" && r.Method == http.MethodGet:
		out := []map[string]any{}
		if page := r.URL.Query().Get("page"); page == "" || page == "1" {
			refs, _ := s.try(s.bare(full), "for-each-ref", "--format=%(refname:short) %(objectname)", "refs/heads")
			for _, line := range strings.Split(refs, "\n") {
				if name, sha, ok := strings.Cut(line, " "); ok {
					out = append(out, map[string]any{"name": name, "commit": map[string]any{"sha": sha, "url": ""}, "protected": false})
				}
			}
		}
		writeJSON(w, 200, out)
	case rest[0] == "contents" && r.Method == http.MethodGet:
		ref := r.URL.Query().Get("ref")
		if ref == "" {
			ref = "main"
		}
		if len(rest) == 1 {
			out := []map[string]any{}
			list, err := s.try(s.bare(full), "ls-tree", "--name-only", ref)
			if err != nil {
				ghError(w, http.StatusNotFound, "No commit found for the ref "+ref)
				return
			}
			for _, name := range strings.Split(list, "\n") {
				if name != "" {
					out = append(out, map[string]any{"name": name, "path": name, "type": "file"})
				}
			}
			writeJSON(w, 200, out)
			return
		}
		file := strings.Join(rest[1:], "/")
		body, err := s.try(s.bare(full), "show", ref+":"+file)
		if err != nil {
			ghError(w, http.StatusNotFound, "Not Found")
			return
		}
		writeJSON(w, 200, map[string]any{"name": file, "path": file, "type": "file", "encoding": "base64",
			"content": base64.StdEncoding.EncodeToString([]byte(body))})
	case rest[0] == "hooks" && r.Method == http.MethodPost && len(rest) == 1:
		if refuse {
			ghError(w, http.StatusNotFound, "Not Found") // GitHub hides repos a token cannot administer
			return
		}
		var in struct {
			Name   string   `json:"name"`
			Events []string `json:"events"`
			Config struct {
				URL    string `json:"url"`
				Secret string `json:"secret"`
			} `json:"config"`
		}
		if err := json.NewDecoder(r.Body).Decode(&in); err != nil || in.Config.URL == "" {
			ghError(w, http.StatusUnprocessableEntity, "Validation Failed")
			return
		}
		s.mu.Lock()
		s.nextHook++
		h := Hook{ID: s.nextHook, URL: in.Config.URL, Secret: in.Config.Secret, Events: in.Events}
		rp.hooks = append(rp.hooks, h)
		s.mu.Unlock()
		writeJSON(w, 201, map[string]any{"type": "Repository", "id": h.ID, "name": "web", "active": true, "events": h.Events,
			"config": map[string]any{"url": h.URL, "content_type": "json", "insecure_ssl": "0"}})
	case rest[0] == "hooks" && r.Method == http.MethodDelete && len(rest) == 2:
		id, _ := strconv.ParseInt(rest[1], 10, 64)
		s.mu.Lock()
		defer s.mu.Unlock()
		for i, h := range rp.hooks {
			if h.ID == id {
				rp.hooks = append(rp.hooks[:i], rp.hooks[i+1:]...)
				w.WriteHeader(http.StatusNoContent)
				return
			}
		}
		ghError(w, http.StatusNotFound, "Not Found")
	case rest[0] == "statuses" && r.Method == http.MethodPost && len(rest) == 2:
		var in struct {
			State, TargetURL, Description, Context string
		}
		var raw map[string]string
		if err := json.NewDecoder(r.Body).Decode(&raw); err != nil {
			ghError(w, http.StatusUnprocessableEntity, "Validation Failed")
			return
		}
		in.State, in.TargetURL, in.Description, in.Context = raw["state"], raw["target_url"], raw["description"], raw["context"]
		switch in.State {
		case "pending", "success", "failure", "error":
		default:
			ghError(w, http.StatusUnprocessableEntity, "Validation Failed")
			return
		}
		s.mu.Lock()
		s.statuses = append(s.statuses, Status{Repo: full, SHA: rest[1], State: in.State, TargetURL: in.TargetURL, Description: in.Description, Context: in.Context})
		s.mu.Unlock()
		writeJSON(w, 201, map[string]any{"id": len(s.statuses), "state": in.State, "target_url": in.TargetURL, "context": in.Context})
	default:
		ghError(w, http.StatusNotFound, "Not Found")
	}
}

// exchange is GitHub's OAuth token endpoint: an authorization code, or
// (expiring tokens) a refresh token, which is spent and replaced; the old
// access token stops working.
func (s *Server) exchange(w http.ResponseWriter, r *http.Request) {
	r.ParseForm()
	s.mu.Lock()
	defer s.mu.Unlock()
	var tok string
	switch r.Form.Get("grant_type") {
	case "refresh_token":
		login, ok := s.refresh[r.Form.Get("refresh_token")]
		delete(s.refresh, r.Form.Get("refresh_token"))
		if !ok {
			writeJSON(w, 200, map[string]string{"error": "bad_refresh_token", "error_description": "The refresh token passed is incorrect or expired."})
			return
		}
		for t, l := range s.tokens {
			if l == login {
				delete(s.tokens, t)
			}
		}
		s.nextHook++
		tok = "ghu_refreshed_" + strconv.FormatInt(s.nextHook, 10)
		s.tokens[tok] = login
	default:
		var ok bool
		tok, ok = s.codes[r.Form.Get("code")]
		delete(s.codes, r.Form.Get("code"))
		if !ok {
			writeJSON(w, 200, map[string]string{"error": "bad_verification_code", "error_description": "The code passed is incorrect or expired."})
			return
		}
	}
	out := map[string]any{"access_token": tok, "token_type": "bearer", "scope": "repo,admin:repo_hook,read:user"}
	if s.expiresIn > 0 {
		s.nextHook++
		rt := "ghr_" + strconv.FormatInt(s.nextHook, 10)
		s.refresh[rt] = s.tokens[tok]
		out["expires_in"], out["refresh_token"] = s.expiresIn, rt
	}
	writeJSON(w, 200, out)
}

// Deliver sends event (push, pull_request) with payload to every hook of
// repo, signed with the hook's secret as GitHub signs it, and returns the
// answers' status codes and bodies.
func (s *Server) Deliver(full, event string, payload map[string]any) ([]int, []string) {
	s.t.Helper()
	s.mu.Lock()
	rp := s.repos[full]
	var hooks []Hook
	if rp != nil {
		hooks = append(hooks, rp.hooks...)
		payload["repository"] = s.repoJSON(rp)
	}
	s.nextHook++
	delivery := "delivery-" + strconv.FormatInt(s.nextHook, 10)
	s.mu.Unlock()
	body, _ := json.Marshal(payload)
	var codes []int
	var bodies []string
	for _, h := range hooks {
		req, _ := http.NewRequest(http.MethodPost, h.URL, bytes.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("User-Agent", "GitHub-Hookshot/fake")
		provider := gitproviders.GitHub
		if strings.Contains(h.URL, "/hooks/codeberg/") {
			// A Gitea hook (created through /api/v1): Gitea's headers.
			provider = gitproviders.Codeberg
			req.Header.Set("X-Gitea-Event", event)
			req.Header.Set("X-Gitea-Delivery", delivery)
		} else {
			req.Header.Set("X-GitHub-Event", event)
			req.Header.Set("X-GitHub-Delivery", delivery)
		}
		k, v := gitproviders.Sign(provider, []byte(h.Secret), body)
		req.Header.Set(k, v)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			s.t.Fatalf("delivering %s to %s: %v", event, h.URL, err)
		}
		var b bytes.Buffer
		b.ReadFrom(resp.Body)
		resp.Body.Close()
		codes = append(codes, resp.StatusCode)
		bodies = append(bodies, b.String())
	}
	s.mu.Lock()
	s.Delivered = append(s.Delivered, codes...)
	s.mu.Unlock()
	return codes, bodies
}

// Push delivers a push of branch at sha.
func (s *Server) Push(full, branch, sha string) ([]int, []string) {
	return s.Deliver(full, "push", map[string]any{"ref": "refs/heads/" + branch, "after": sha, "deleted": false,
		"head_commit": map[string]any{"id": sha, "message": "update"}})
}

// PullRequest delivers a pull_request event (opened, synchronize, closed)
// whose head is branch at sha in the same repository, or in fork (owner/name) when not "".
func (s *Server) PullRequest(full string, number int, action, branch, sha, fork string) ([]int, []string) {
	headRepo := full
	if fork != "" {
		headRepo = fork
	}
	head := map[string]any{"ref": branch, "sha": sha, "repo": map[string]any{"full_name": headRepo, "clone_url": s.CloneURL(headRepo)}}
	return s.Deliver(full, "pull_request", map[string]any{"action": action, "number": number,
		"pull_request": map[string]any{"number": number, "title": "Change " + strconv.Itoa(number), "state": "open", "head": head,
			"base": map[string]any{"ref": "main", "repo": map[string]any{"full_name": full}}}})
}
