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
	"os"
	"os/exec"
	"strings"

	"github.com/wisehosting/wisehosting/internal/gitsource"
)

// Source says what to fetch.
type Source struct {
	URL    string // https://host/owner/repo(.git)
	Branch string
	Commit string // optional: exact commit to check out
	Token  string // optional: OAuth token of a private repository
	// User goes with Token over HTTP Basic (default "x-access-token").
	User string
}

// Options of Clone.
type Options struct {
	// AllowLocal accepts local paths and file:// URLs (tests, local
	// deployments); production agents refuse them.
	AllowLocal bool
	// Git is the git binary (default "git").
	Git string
	// CAFile is a PEM bundle git trusts for https (http.sslCAInfo), for a
	// self-hosted git server with a private CA. Empty: the system's.
	CAFile string
}

// Validate checks a source before any git command sees it, with the same
// rules the API applied when the app was saved (internal/gitsource).
func Validate(s Source, o Options) error {
	if err := gitsource.CheckURL(s.URL, o.AllowLocal); err != nil {
		return err
	}
	if err := gitsource.CheckBranch(s.Branch); err != nil {
		return err
	}
	if s.Commit != "" {
		if err := gitsource.CheckCommit(s.Commit); err != nil {
			return err
		}
	}
	if strings.ContainsAny(s.Token, "\r\n\x00") {
		return errors.New("invalid repository token")
	}
	if len(s.User) > 100 || strings.ContainsAny(s.User, ":\r\n\x00") {
		return errors.New("invalid repository user name")
	}
	return nil
}

// gitEnv isolates git from the host's configuration and hands it the
// token as an Authorization header (through GIT_CONFIG_*, not argv).
//
// Transports: https only (file too with AllowLocal), and no HTTP
// redirects at all: a redirect could lead from https to plain http (where
// the token would travel in clear) or to an address inside the worker's
// network (the mesh, the cloud metadata service), which git cannot check.
// A repository that moved must be saved with its new URL.
func gitEnv(s Source, home string, o Options) []string {
	env := []string{
		"PATH=" + os.Getenv("PATH"), "HOME=" + home, "GIT_TERMINAL_PROMPT=0", "GIT_CONFIG_NOSYSTEM=1",
		"GIT_CONFIG_GLOBAL=/dev/null", "LC_ALL=C",
	}
	kv := [][2]string{
		{"protocol.allow", "never"}, {"protocol.https.allow", "always"},
		{"http.followRedirects", "false"}, {"core.hooksPath", "/dev/null"},
	}
	if o.AllowLocal {
		kv = append(kv, [2]string{"protocol.file.allow", "always"})
	}
	if o.CAFile != "" {
		kv = append(kv, [2]string{"http.sslCAInfo", o.CAFile})
	}
	if s.Token != "" {
		user := s.User
		if user == "" {
			user = "x-access-token"
		}
		basic := base64.StdEncoding.EncodeToString([]byte(user + ":" + s.Token))
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
	env := gitEnv(s, home, o)
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
