package gitproviders

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/wisehosting/wisehosting/internal/httpx"
)

// fakeProvider answers with each provider's real JSON shapes and records
// the webhooks created on it.
type fakeProvider struct {
	provider string
	token    string
	mu       sync.Mutex
	hooks    map[string]map[string]any
	srv      *httptest.Server
}

var noRetry = httpx.WithRetry(httpx.RetryConfig{MaxAttempts: 1})

func newFake(t *testing.T, provider string) *fakeProvider {
	f := &fakeProvider{provider: provider, token: "tok-" + provider, hooks: map[string]map[string]any{}}
	f.srv = httptest.NewServer(http.HandlerFunc(f.serve))
	t.Cleanup(f.srv.Close)
	return f
}

func (f *fakeProvider) serve(w http.ResponseWriter, r *http.Request) {
	_, want := AuthHeader(f.provider, f.token)
	if r.Header.Get("Authorization") != want {
		w.WriteHeader(http.StatusUnauthorized)
		io.WriteString(w, `{"message":"Bad credentials"}`)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	p, q := r.URL.EscapedPath(), r.URL.Query()
	switch {
	// Repository listings, two pages where the API paginates.
	case f.provider == GitHub && p == "/user/repos":
		if q.Get("page") == "1" {
			repos := make([]map[string]any, 100)
			for i := range repos {
				repos[i] = map[string]any{"id": i, "full_name": fmt.Sprintf("octo/r%d", i), "private": i%2 == 0,
					"clone_url": fmt.Sprintf("https://github.com/octo/r%d.git", i), "default_branch": "main"}
			}
			json.NewEncoder(w).Encode(repos)
			return
		}
		io.WriteString(w, `[{"id":1296269,"full_name":"octocat/Hello-World","private":false,"clone_url":"https://github.com/octocat/Hello-World.git","default_branch":"master"}]`)
	case f.provider == GitHub && p == "/user/orgs":
		io.WriteString(w, `[{"login":"github","id":1,"url":"https://api.github.com/orgs/github"}]`)
	case f.provider == GitHub && p == "/repos/octocat/Hello-World/branches":
		io.WriteString(w, `[{"name":"master","commit":{"sha":"c5b97d5ae6c19d5c5df71a34c7fbeeda2479ccbc","url":"x"},"protected":true}]`)
	case f.provider == GitLab && p == "/projects":
		io.WriteString(w, `[{"id":4,"path_with_namespace":"diaspora/diaspora-client","http_url_to_repo":"https://gitlab.example.com/diaspora/diaspora-client.git","default_branch":"main","visibility":"private"}]`)
	case f.provider == GitLab && p == "/projects/diaspora%2Fdiaspora-client/repository/branches":
		io.WriteString(w, `[{"name":"main","merged":false,"protected":true,"commit":{"id":"7b5c3cc8be40ee161ae89a06bba6229da1032a0c","short_id":"7b5c3cc"}}]`)
	case f.provider == Bitbucket && p == "/repositories":
		next := ""
		if q.Get("page") == "" {
			next = `,"next":"` + "https://api.bitbucket.org/2.0/repositories?role=member&pagelen=100&page=2" + `"`
		}
		fmt.Fprintf(w, `{"pagelen":100,"values":[{"full_name":"team/repo%s","is_private":true,"mainbranch":{"name":"main","type":"branch"},"links":{"clone":[{"name":"https","href":"https://bitbucket.org/team/repo.git"},{"name":"ssh","href":"git@bitbucket.org:team/repo.git"}]}}]%s}`, q.Get("page"), next)
	case f.provider == Bitbucket && p == "/repositories/team/repo/refs/branches":
		io.WriteString(w, `{"values":[{"name":"main","type":"branch","target":{"hash":"709d658dc5b6d6afcd46049c2f332ee3f515a67d","type":"commit"}}],"pagelen":100}`)
	case f.provider == Codeberg && p == "/user/repos":
		io.WriteString(w, `[{"id":140,"full_name":"forgejo/website","private":false,"clone_url":"https://codeberg.org/forgejo/website.git","default_branch":"main"}]`)
	case f.provider == Codeberg && p == "/repos/forgejo/website/branches":
		io.WriteString(w, `[{"name":"main","commit":{"id":"bffeb74224043ba2feb48d137756c8a9331c449a","message":"x"}}]`)

	// Who the token belongs to.
	case p == "/user" && (f.provider == GitHub || f.provider == Codeberg):
		io.WriteString(w, `{"login":"octocat","id":1}`)
	case p == "/user":
		io.WriteString(w, `{"username":"octocat","id":1}`)

	// Root files and package.json, in each provider's shape.
	case (f.provider == GitHub || f.provider == Codeberg) && strings.HasSuffix(p, "/contents") && q.Get("ref") == "main":
		io.WriteString(w, `[{"name":"package.json","path":"package.json","type":"file"},{"name":"src","path":"src","type":"dir"}]`)
	case (f.provider == GitHub || f.provider == Codeberg) && strings.HasSuffix(p, "/contents/package.json") && q.Get("ref") == "main":
		io.WriteString(w, `{"name":"package.json","type":"file","encoding":"base64","content":"eyJkZXBlbmRlbmNpZXMiOnsi\nbmV4dCI6IjE1In19\n"}`)
	case f.provider == GitLab && strings.HasSuffix(p, "/repository/tree") && q.Get("ref") == "main":
		io.WriteString(w, `[{"id":"a","name":"package.json","type":"blob","path":"package.json"},{"id":"b","name":"src","type":"tree","path":"src"}]`)
	case f.provider == GitLab && strings.HasSuffix(p, "/repository/files/package.json") && q.Get("ref") == "main":
		io.WriteString(w, `{"file_name":"package.json","encoding":"base64","content":"eyJkZXBlbmRlbmNpZXMiOnsibmV4dCI6IjE1In19"}`)
	case f.provider == Bitbucket && p == "/repositories/team/repo/src/main/":
		io.WriteString(w, `{"values":[{"path":"package.json","type":"commit_file"},{"path":"src","type":"commit_directory"}],"pagelen":100}`)
	case f.provider == Bitbucket && p == "/repositories/team/repo/src/main/package.json":
		io.WriteString(w, `{"dependencies":{"next":"15"}}`)

	// Commit statuses: the body is kept for the test.
	case r.Method == http.MethodPost && (strings.Contains(p, "/statuses/")):
		var in map[string]any
		json.NewDecoder(r.Body).Decode(&in)
		f.mu.Lock()
		f.hooks["status "+p] = in
		f.mu.Unlock()
		w.WriteHeader(http.StatusCreated)
		io.WriteString(w, `{}`)

	// Webhooks.
	case r.Method == http.MethodPost && strings.HasSuffix(p, "/hooks"):
		var in map[string]any
		json.NewDecoder(r.Body).Decode(&in)
		f.mu.Lock()
		id := fmt.Sprint(len(f.hooks) + 7)
		if f.provider == Bitbucket {
			id = "{0e8e2a49-" + id + "}"
		}
		f.hooks[id] = in
		f.mu.Unlock()
		w.WriteHeader(http.StatusCreated)
		if f.provider == Bitbucket {
			json.NewEncoder(w).Encode(map[string]any{"uuid": id, "url": in["url"], "active": true})
		} else {
			var n int
			fmt.Sscan(id, &n)
			json.NewEncoder(w).Encode(map[string]any{"id": n, "active": true})
		}
	case r.Method == http.MethodDelete && strings.Contains(p, "/hooks/"):
		id := p[strings.LastIndex(p, "/")+1:]
		if f.provider == Bitbucket {
			id = strings.NewReplacer("%7B", "{", "%7D", "}").Replace(id)
		}
		f.mu.Lock()
		_, ok := f.hooks[id]
		delete(f.hooks, id)
		f.mu.Unlock()
		if !ok {
			w.WriteHeader(http.StatusNotFound)
			io.WriteString(w, `{"message":"Not Found"}`)
			return
		}
		w.WriteHeader(http.StatusNoContent)
	default:
		w.WriteHeader(http.StatusNotFound)
		io.WriteString(w, `{"message":"Not Found"}`)
	}
}

func TestProviderAdapters(t *testing.T) {
	cases := []struct {
		provider, repo, firstRepo, branch, commit string
		repos                                     int
	}{
		{GitHub, "octocat/Hello-World", "octo/r0", "master", "c5b97d5ae6c19d5c5df71a34c7fbeeda2479ccbc", 101},
		{GitLab, "diaspora/diaspora-client", "diaspora/diaspora-client", "main", "7b5c3cc8be40ee161ae89a06bba6229da1032a0c", 1},
		{Bitbucket, "team/repo", "team/repo", "main", "709d658dc5b6d6afcd46049c2f332ee3f515a67d", 2},
		{Codeberg, "forgejo/website", "forgejo/website", "main", "bffeb74224043ba2feb48d137756c8a9331c449a", 1},
	}
	for _, c := range cases {
		t.Run(c.provider, func(t *testing.T) {
			f := newFake(t, c.provider)
			cl, err := NewClient(c.provider, f.srv.URL, f.token, noRetry)
			if err != nil {
				t.Fatal(err)
			}
			ctx := context.Background()
			repos, err := cl.Repos(ctx, "")
			if err != nil {
				t.Fatal(err)
			}
			if len(repos) != c.repos || repos[0].FullName != c.firstRepo || repos[0].CloneURL == "" {
				t.Fatalf("repos: %d %+v", len(repos), repos[0])
			}
			branches, err := cl.Branches(ctx, c.repo)
			if err != nil {
				t.Fatal(err)
			}
			if len(branches) != 1 || branches[0].Name != c.branch || branches[0].Commit != c.commit {
				t.Fatalf("branches: %+v", branches)
			}
			hook, err := cl.CreateHook(ctx, c.repo, HookSpec{URL: "https://cp.example.com/v1/hooks/" + c.provider + "/1", Secret: "hook-secret"})
			if err != nil {
				t.Fatal(err)
			}
			f.mu.Lock()
			created := f.hooks[hook.ID]
			f.mu.Unlock()
			if created == nil {
				t.Fatalf("hook %q not created on the provider", hook.ID)
			}
			// The secret reaches the provider in its own field.
			raw, _ := json.Marshal(created)
			if !strings.Contains(string(raw), "hook-secret") || !strings.Contains(string(raw), "/v1/hooks/"+c.provider+"/1") {
				t.Fatalf("hook body %s", raw)
			}
			if err := cl.DeleteHook(ctx, c.repo, hook); err != nil {
				t.Fatal(err)
			}
			if err := cl.DeleteHook(ctx, c.repo, hook); httpx.StatusOf(err) != 404 {
				t.Fatalf("deleting twice: %v", err)
			}
			// A bad token is an error, not an empty list.
			bad, _ := NewClient(c.provider, f.srv.URL, "nope", noRetry)
			if _, err := bad.Repos(ctx, ""); err == nil {
				t.Fatal("bad token listed repos")
			}
		})
	}
}

func TestRepoNamesAreValidated(t *testing.T) {
	f := newFake(t, GitHub)
	cl, _ := NewClient(GitHub, f.srv.URL, f.token, noRetry)
	for _, repo := range []string{"", "noslash", "../../admin", "/abs/path", "a/b?x=1", "a/b#f", "a/%2e%2e"} {
		if _, err := cl.Branches(context.Background(), repo); err == nil || httpx.StatusOf(err) != 0 {
			t.Errorf("%q reached the provider: %v", repo, err)
		}
	}
	if _, err := cl.Repos(context.Background(), "evil/../org"); err == nil {
		t.Error("org with a slash accepted")
	}
}

func TestGitHubOrgs(t *testing.T) {
	f := newFake(t, GitHub)
	cl, _ := NewClient(GitHub, f.srv.URL, f.token, noRetry)
	orgs, err := cl.Orgs(context.Background())
	if err != nil || len(orgs) != 1 || orgs[0] != "github" {
		t.Fatalf("%v %v", orgs, err)
	}
}

func TestRevokeGitHubGrant(t *testing.T) {
	var got struct {
		user, pass, token string
	}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodDelete || r.URL.Path != "/applications/Iv1.abc/grant" {
			w.WriteHeader(404)
			return
		}
		got.user, got.pass, _ = r.BasicAuth()
		var body map[string]string
		json.NewDecoder(r.Body).Decode(&body)
		got.token = body["access_token"]
		w.WriteHeader(http.StatusNoContent)
	}))
	defer srv.Close()
	if err := RevokeGitHubGrant(context.Background(), srv.URL, "Iv1.abc", "app-secret", "gho_user", noRetry); err != nil {
		t.Fatal(err)
	}
	if got.user != "Iv1.abc" || got.pass != "app-secret" || got.token != "gho_user" {
		t.Fatalf("%+v", got)
	}
	if err := RevokeGitHubGrant(context.Background(), srv.URL, "../x", "s", "t", noRetry); err == nil {
		t.Fatal("client id with a path accepted")
	}
}

// Each adapter reads who the token is, the root files and package.json,
// and posts a commit status, in its provider's own shapes.
func TestAdapterFilesAndStatuses(t *testing.T) {
	cases := []struct{ provider, repo, statusPath, stateKey, state string }{
		{GitHub, "octocat/Hello-World", "/repos/octocat/Hello-World/statuses/c5b97d5", "state", "success"},
		{GitLab, "diaspora/diaspora-client", "/projects/diaspora%2Fdiaspora-client/statuses/c5b97d5", "state", "success"},
		{Bitbucket, "team/repo", "/repositories/team/repo/commit/c5b97d5/statuses/build", "state", "SUCCESSFUL"},
		{Codeberg, "forgejo/website", "/repos/forgejo/website/statuses/c5b97d5", "state", "success"},
	}
	for _, c := range cases {
		t.Run(c.provider, func(t *testing.T) {
			f := newFake(t, c.provider)
			cl, _ := NewClient(c.provider, f.srv.URL, f.token, noRetry)
			ctx := context.Background()
			if u, err := cl.User(ctx); err != nil || u != "octocat" {
				t.Fatalf("user: %q %v", u, err)
			}
			files, err := cl.TopFiles(ctx, c.repo, "main")
			if err != nil || len(files) != 1 || files[0] != "package.json" {
				t.Fatalf("files: %v %v", files, err)
			}
			pkg, err := cl.PackageJSON(ctx, c.repo, "main")
			if err != nil || !strings.Contains(string(pkg), `"next"`) {
				t.Fatalf("package.json: %q %v", pkg, err)
			}
			if pkg, err := cl.PackageJSON(ctx, c.repo, "other"); err != nil || pkg != nil {
				t.Fatalf("absent package.json: %q %v", pkg, err)
			}
			if err := cl.SetStatus(ctx, c.repo, "c5b97d5", Status{State: StatusSuccess, URL: "https://site.apps.example", Description: "Deployed"}); err != nil {
				t.Fatal(err)
			}
			f.mu.Lock()
			got := f.hooks["status "+c.statusPath]
			f.mu.Unlock()
			if got == nil || got[c.stateKey] != c.state || !strings.Contains(fmt.Sprint(got), "https://site.apps.example") {
				t.Fatalf("status body at %s: %v", c.statusPath, got)
			}
			if err := cl.SetStatus(ctx, c.repo, "not-a-sha;", Status{State: StatusSuccess}); err == nil {
				t.Fatal("a malformed commit reached the provider")
			}
		})
	}
}

// Provider failures become sentences with the right status for the user.
func TestExplain(t *testing.T) {
	for _, c := range []struct {
		err  error
		code int
		want string
	}{
		{&httpx.APIError{Status: 401}, 422, "refused the token"},
		{&httpx.APIError{Status: 404}, 422, "deleted or renamed"},
		{&httpx.APIError{Status: 403}, 422, "lacks the permission"},
		{&httpx.APIError{Status: 429, RetryAfter: 42 * time.Second}, 429, "try again in 42 seconds"},
		{&httpx.APIError{Status: 503}, 502, "try again later"},
	} {
		var pe *Error
		if err := Explain(GitHub, "listing repositories", c.err); !errors.As(err, &pe) || pe.Status != c.code || !strings.Contains(pe.Msg, c.want) {
			t.Errorf("%v → %v", c.err, err)
		}
	}
}
