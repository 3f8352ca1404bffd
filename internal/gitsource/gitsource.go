// Package gitsource holds the one set of rules for an app's git source:
// repository URL, branch and commit. The API applies them when a user saves
// a value, and the worker agent applies them again before git sees it, so
// nothing the API stores can turn into a git option or a local path on a
// worker.
package gitsource

import (
	"fmt"
	"net/url"
	"regexp"
	"strings"
)

var (
	branchRe = regexp.MustCompile(`^[A-Za-z0-9._/-]{1,200}$`)
	commitRe = regexp.MustCompile(`^[0-9a-f]{7,64}$`)
)

// CheckURL accepts https://host/path without credentials and, with
// allowLocal (single-host installs, tests), an absolute local path or a
// file:// URL. Everything else, ext::, ssh://, git://, http://, a leading
// dash (an option to git) or white space, is refused with a sentence the
// user can act on.
func CheckURL(raw string, allowLocal bool) error {
	if raw == "" {
		return fmt.Errorf("the repository URL is empty")
	}
	if strings.HasPrefix(raw, "-") || strings.ContainsAny(raw, " \t\r\n\x00") || len(raw) > 2048 {
		return fmt.Errorf("the repository URL %q must be an https:// URL without spaces", raw)
	}
	u, err := url.Parse(raw)
	switch {
	case err != nil:
		return fmt.Errorf("the repository URL %q is not a URL", raw)
	case u.Scheme == "https" && u.Host != "" && u.User == nil && !strings.HasPrefix(u.Host, "-"):
		return nil
	case allowLocal && (u.Scheme == "file" || (u.Scheme == "" && strings.HasPrefix(raw, "/"))):
		return nil
	case u.User != nil:
		return fmt.Errorf("the repository URL %q must not carry credentials: connect a git provider or use a token", raw)
	}
	return fmt.Errorf("the repository URL %q must be https://", raw)
}

// CheckBranch accepts a branch name git would accept as a ref that cannot
// be read as an option: letters, digits and . _ / - only, no leading dash
// or slash, no "..", "//", component starting with a dot, or ".lock" end.
func CheckBranch(b string) error {
	ok := branchRe.MatchString(b) && !strings.HasPrefix(b, "-") && !strings.HasPrefix(b, "/") &&
		!strings.HasSuffix(b, "/") && !strings.HasSuffix(b, ".lock") && !strings.HasSuffix(b, ".") &&
		!strings.Contains(b, "..") && !strings.Contains(b, "//") && !strings.Contains(b, "/.") && !strings.HasPrefix(b, ".")
	if !ok {
		return fmt.Errorf("the branch name %q is not valid: use letters, digits, '.', '_', '/' and '-' (not first)", b)
	}
	return nil
}

// CheckPath accepts a path inside a repository (a build's root directory,
// a Dockerfile): relative, letters, digits and . _ / - only, no ".."
// component, no leading dash or slash; "" means the repository's root.
func CheckPath(p string) error {
	if p == "" {
		return nil
	}
	ok := len(p) <= 200 && pathRe.MatchString(p) && !strings.HasPrefix(p, "-") && !strings.HasPrefix(p, "/") &&
		!strings.Contains(p, "//")
	for _, part := range strings.Split(p, "/") {
		ok = ok && part != ".." && part != "."
	}
	if !ok {
		return fmt.Errorf("the path %q is not valid: a relative path in the repository with letters, digits, '.', '_', '/' and '-', without ..", p)
	}
	return nil
}

var pathRe = regexp.MustCompile(`^[A-Za-z0-9._/-]+$`)

// CheckCommit accepts a hexadecimal commit id of 7 to 64 digits.
func CheckCommit(c string) error {
	if !commitRe.MatchString(c) {
		return fmt.Errorf("the commit %q is not a hexadecimal commit id", c)
	}
	return nil
}
