// Package build fetches an app's source for the worker agent: git runs as
// an argv subprocess (never through a shell), every user-given value is
// validated first, and a private repository's token travels in the
// environment as an HTTP header, never on a command line other users of
// the host can read.
package build

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"net/url"
	"os"
	"os/exec"
	"regexp"
	"strings"
)

// Source says what to fetch.
type Source struct {
	URL    string // https://host/owner/repo(.git)
	Branch string
	Commit string // optional: exact commit to check out
	Token  string // optional: OAuth token of a private repository
}

// Options of Clone.
type Options struct {
	// AllowLocal accepts local paths and file:// URLs (tests, local
	// deployments); production agents refuse them.
	AllowLocal bool
	// Git is the git binary (default "git").
	Git string
}

var (
	refRe    = regexp.MustCompile(`^[A-Za-z0-9._/-]{1,200}$`)
	commitRe = regexp.MustCompile(`^[0-9a-f]{7,64}$`)
)

// Validate checks a source before any git command sees it.
func Validate(s Source, o Options) error {
	if s.URL == "" || strings.HasPrefix(s.URL, "-") || strings.ContainsAny(s.URL, " \t\r\n\x00") {
		return fmt.Errorf("invalid repository URL %q", s.URL)
	}
	u, err := url.Parse(s.URL)
	switch {
	case err != nil:
		return fmt.Errorf("invalid repository URL %q: %v", s.URL, err)
	case u.Scheme == "https" && u.Host != "" && u.User == nil:
	case o.AllowLocal && (u.Scheme == "file" || (u.Scheme == "" && strings.HasPrefix(s.URL, "/"))):
	default:
		// ext::, ssh://, git://, http:// and credentials in the URL are refused.
		return fmt.Errorf("repository URL %q must be https:// without credentials", s.URL)
	}
	b := s.Branch
	if b == "" || !refRe.MatchString(b) || strings.HasPrefix(b, "-") || strings.HasPrefix(b, "/") ||
		strings.Contains(b, "..") || strings.Contains(b, "//") || strings.HasSuffix(b, ".lock") || strings.HasSuffix(b, "/") {
		return fmt.Errorf("invalid branch name %q", b)
	}
	if s.Commit != "" && !commitRe.MatchString(s.Commit) {
		return fmt.Errorf("invalid commit %q", s.Commit)
	}
	if strings.ContainsAny(s.Token, "\r\n\x00") {
		return errors.New("invalid repository token")
	}
	return nil
}

// gitEnv isolates git from the host's configuration and hands it the
// token as an Authorization header (through GIT_CONFIG_*, not argv).
func gitEnv(s Source, home string) []string {
	env := []string{
		"PATH=" + os.Getenv("PATH"), "HOME=" + home, "GIT_TERMINAL_PROMPT=0", "GIT_CONFIG_NOSYSTEM=1",
		"GIT_CONFIG_GLOBAL=/dev/null", "LC_ALL=C",
	}
	kv := [][2]string{{"protocol.ext.allow", "never"}, {"core.hooksPath", "/dev/null"}}
	if s.Token != "" {
		basic := base64.StdEncoding.EncodeToString([]byte("x-access-token:" + s.Token))
		kv = append(kv, [2]string{"http.extraHeader", "Authorization: Basic " + basic})
	}
	env = append(env, fmt.Sprintf("GIT_CONFIG_COUNT=%d", len(kv)))
	for i, p := range kv {
		env = append(env, fmt.Sprintf("GIT_CONFIG_KEY_%d=%s", i, p[0]), fmt.Sprintf("GIT_CONFIG_VALUE_%d=%s", i, p[1]))
	}
	return env
}

// commands returns the argv lists Clone runs, in order.
func commands(s Source, dir, git string) [][]string {
	cmds := [][]string{{git, "clone", "--quiet", "--depth", "1", "--single-branch", "--branch", s.Branch, "--", s.URL, dir}}
	if s.Commit != "" {
		cmds = append(cmds,
			[]string{git, "-C", dir, "fetch", "--quiet", "--depth", "1", "origin", s.Commit},
			[]string{git, "-C", dir, "checkout", "--quiet", "--detach", s.Commit})
	}
	return cmds
}

// Clone fetches the source into dir (which must not exist) and returns the
// checked-out commit.
func Clone(ctx context.Context, s Source, dir string, o Options) (string, error) {
	if err := Validate(s, o); err != nil {
		return "", err
	}
	git := o.Git
	if git == "" {
		git = "git"
	}
	home, err := os.MkdirTemp("", "wh-git-home")
	if err != nil {
		return "", err
	}
	defer os.RemoveAll(home)
	env := gitEnv(s, home)
	run := func(argv []string) (string, error) {
		cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
		cmd.Env = env
		out, err := cmd.CombinedOutput()
		if err != nil {
			msg := strings.TrimSpace(string(out))
			if s.Token != "" {
				msg = strings.ReplaceAll(msg, s.Token, "***")
			}
			return "", fmt.Errorf("%s: %v: %s", strings.Join(argv[1:3], " "), err, msg)
		}
		return strings.TrimSpace(string(out)), nil
	}
	for _, argv := range commands(s, dir, git) {
		if _, err := run(argv); err != nil {
			os.RemoveAll(dir)
			return "", err
		}
	}
	return run([]string{git, "-C", dir, "rev-parse", "HEAD"})
}
