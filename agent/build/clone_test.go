package build

import (
	"context"
	"encoding/base64"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

func git(t *testing.T, dir string, args ...string) string {
	t.Helper()
	cmd := exec.Command("git", args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "GIT_AUTHOR_NAME=t", "GIT_AUTHOR_EMAIL=t@t", "GIT_COMMITTER_NAME=t", "GIT_COMMITTER_EMAIL=t@t", "GIT_CONFIG_GLOBAL=/dev/null")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("git %v: %v\n%s", args, err, out)
	}
	return strings.TrimSpace(string(out))
}

// origin makes a repository with two commits on main.
func origin(t *testing.T) (path, first, second string) {
	dir := t.TempDir()
	git(t, dir, "init", "--quiet", "-b", "main")
	os.WriteFile(filepath.Join(dir, "index.html"), []byte("v1"), 0o644)
	git(t, dir, "add", ".")
	git(t, dir, "commit", "--quiet", "-m", "one")
	first = git(t, dir, "rev-parse", "HEAD")
	os.WriteFile(filepath.Join(dir, "index.html"), []byte("v2"), 0o644)
	git(t, dir, "commit", "--quiet", "-am", "two")
	second = git(t, dir, "rev-parse", "HEAD")
	git(t, dir, "config", "uploadpack.allowAnySHA1InWant", "true")
	return dir, first, second
}

func TestCloneBranchAndCommit(t *testing.T) {
	repo, first, second := origin(t)
	local := Options{AllowLocal: true}
	dst := filepath.Join(t.TempDir(), "src")
	head, err := Clone(context.Background(), Source{URL: "file://" + repo, Branch: "main"}, dst, local)
	if err != nil || head != second {
		t.Fatalf("%s %v", head, err)
	}
	if b, _ := os.ReadFile(filepath.Join(dst, "index.html")); string(b) != "v2" {
		t.Fatalf("content %q", b)
	}
	dst2 := filepath.Join(t.TempDir(), "src")
	head, err = Clone(context.Background(), Source{URL: "file://" + repo, Branch: "main", Commit: first}, dst2, local)
	if err != nil || head != first {
		t.Fatalf("commit checkout: %s %v", head, err)
	}
	if b, _ := os.ReadFile(filepath.Join(dst2, "index.html")); string(b) != "v1" {
		t.Fatalf("content %q", b)
	}
	// A missing branch fails and leaves nothing behind.
	dst3 := filepath.Join(t.TempDir(), "src")
	if _, err := Clone(context.Background(), Source{URL: "file://" + repo, Branch: "nope"}, dst3, local); err == nil {
		t.Fatal("missing branch cloned")
	}
	if _, err := os.Stat(dst3); !os.IsNotExist(err) {
		t.Fatal("failed clone left a directory")
	}
}

// The agent applies the shared rules (internal/gitsource has the table)
// and its own on the token.
func TestValidateRefusesInjection(t *testing.T) {
	ok := Source{URL: "https://github.com/acme/site.git", Branch: "main"}
	if err := Validate(ok, Options{}); err != nil {
		t.Fatal(err)
	}
	for name, s := range map[string]Source{
		"option as url":    {URL: "--upload-pack=touch /tmp/pwned", Branch: "main"},
		"local w/o allow":  {URL: "/srv/repo", Branch: "main"},
		"option as branch": {URL: ok.URL, Branch: "--orphan"},
		"option commit":    {URL: ok.URL, Branch: "main", Commit: "--all"},
		"newline in token": {URL: ok.URL, Branch: "main", Token: "a\nb"},
	} {
		if err := Validate(s, Options{}); err == nil {
			t.Errorf("%s accepted", name)
		}
	}
}

// The token is never on the command line.
func TestTokenNotInArgv(t *testing.T) {
	s := Source{URL: "https://github.com/acme/private.git", Branch: "main", Commit: "0d1a26e67d8f5eaf1f6ba5c57fc3c7d91ac0fd1c", Token: "gho_supersecret"}
	for _, argv := range commands(s, "/tmp/x", "git") {
		if strings.Contains(strings.Join(argv, " "), "supersecret") {
			t.Fatalf("token in argv: %v", argv)
		}
	}
	env := strings.Join(gitEnv(s, "/tmp/h", Options{}), "\n")
	if !strings.Contains(env, "=Authorization: Basic ") || strings.Contains(env, "gho_supersecret") {
		t.Fatalf("token not passed as a header: %s", env)
	}
}

func FuzzValidate(f *testing.F) {
	f.Add("https://github.com/a/b.git", "main", "")
	f.Add("--upload-pack=x", "-b", "zz")
	f.Fuzz(func(t *testing.T, u, branch, commit string) {
		s := Source{URL: u, Branch: branch, Commit: commit}
		if Validate(s, Options{}) != nil {
			return
		}
		for _, argv := range commands(s, "/tmp/x", "git") {
			for _, a := range argv[1:] {
				if a == s.URL || a == s.Branch || a == s.Commit {
					if strings.HasPrefix(a, "-") {
						t.Fatalf("user value %q could be read as an option", a)
					}
				}
			}
		}
	})
}

// The token goes with the provider's user name (GitLab's OAuth tokens
// need "oauth2"); a user name that could split the Basic pair is refused.
func TestCloneUser(t *testing.T) {
	s := Source{URL: "https://gitlab.example.com/a/b.git", Branch: "main", Token: "glo_tok", User: "oauth2"}
	env := strings.Join(gitEnv(s, "/tmp/h", Options{}), "\n")
	if !strings.Contains(env, "Authorization: Basic "+base64.StdEncoding.EncodeToString([]byte("oauth2:glo_tok"))) {
		t.Fatalf("user name not used: %s", env)
	}
	s.User = ""
	if env := strings.Join(gitEnv(s, "/tmp/h", Options{}), "\n"); !strings.Contains(env, base64.StdEncoding.EncodeToString([]byte("x-access-token:glo_tok"))) {
		t.Fatalf("default user name: %s", env)
	}
	s.User = "a:b"
	if Validate(s, Options{}) == nil {
		t.Fatal("a user name with a colon was accepted")
	}
}
