package gitsource

import (
	"strings"
	"testing"
)

// Values the API once stored and a worker would have handed to git: each
// must be refused by the rules both sides share.
func TestRefusesInjection(t *testing.T) {
	for _, u := range []string{
		"/etc", "/srv/repo", "file:///srv/repo", // local paths without allowLocal
		"https://x --upload-pack=y", "--upload-pack=touch /tmp/pwned", "-c", "ext::sh -c touch% /tmp/pwned",
		"ssh://git@github.com/acme/site.git", "git://github.com/acme/site.git", "http://github.com/acme/site.git",
		"https://user:pw@github.com/acme/site.git", "https://github.com/a\n", "https://github.com/a\x00",
		"https:///nohost", "https://-oProxyCommand=x/a", "", "git@github.com:acme/site.git",
	} {
		if err := CheckURL(u, false); err == nil {
			t.Errorf("URL %q accepted", u)
		}
	}
	for _, b := range []string{
		"", "--orphan", "-b", "a..b", "a b", "main;rm -rf /", "main\nx", "/main", "main/", "a//b",
		"x.lock", ".hidden", "a/.b", "main.", "a@{1}", "a~1", "a^", "a:b", "a*", "a?", "a[b", `a\b`,
		strings.Repeat("a", 201),
	} {
		if err := CheckBranch(b); err == nil {
			t.Errorf("branch %q accepted", b)
		}
	}
	for _, c := range []string{"HEAD~1", "--all", "abc", "ABCDEF0", strings.Repeat("a", 65)} {
		if err := CheckCommit(c); err == nil {
			t.Errorf("commit %q accepted", c)
		}
	}
}

func TestAccepts(t *testing.T) {
	for _, u := range []string{"https://github.com/acme/site.git", "https://git.example:8443/a/b", "https://gitlab.com/g/sub/p"} {
		if err := CheckURL(u, false); err != nil {
			t.Errorf("%q: %v", u, err)
		}
	}
	for _, u := range []string{"/srv/repo", "file:///srv/repo"} {
		if err := CheckURL(u, true); err != nil {
			t.Errorf("%q with local allowed: %v", u, err)
		}
	}
	for _, b := range []string{"main", "feature/x-1", "release-1.2", "v1.0_rc"} {
		if err := CheckBranch(b); err != nil {
			t.Errorf("%q: %v", b, err)
		}
	}
	if err := CheckCommit("0d1a26e67d8f5eaf1f6ba5c57fc3c7d91ac0fd1c"); err != nil {
		t.Error(err)
	}
}

// Whatever passes can never be read by git as an option nor reach the
// shell-like ext:: transport.
func FuzzCheck(f *testing.F) {
	f.Add("https://github.com/a/b.git", "main")
	f.Add("https://x --upload-pack=y", "-b")
	f.Fuzz(func(t *testing.T, u, b string) {
		if CheckURL(u, false) == nil {
			if !strings.HasPrefix(u, "https://") || strings.ContainsAny(u, " \n\x00") {
				t.Fatalf("URL %q accepted", u)
			}
		}
		if CheckBranch(b) == nil && (strings.HasPrefix(b, "-") || strings.ContainsAny(b, " ;\n\x00@{~^:")) {
			t.Fatalf("branch %q accepted", b)
		}
	})
}

// Paths inside a repository (root directory, Dockerfile) stay relative
// and inside it.
func TestCheckPath(t *testing.T) {
	for _, ok := range []string{"", "web", "apps/web", "docker/Dockerfile.prod", "a_b-c.d"} {
		if err := CheckPath(ok); err != nil {
			t.Errorf("%q refused: %v", ok, err)
		}
	}
	for _, bad := range []string{"..", "../x", "a/../../b", "/etc", "-x", "a//b", "./a", "a b", "a\nb", "a;b", strings.Repeat("a", 201)} {
		if CheckPath(bad) == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}
