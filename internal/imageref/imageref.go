// Package imageref holds the one rule for a prebuilt image an app deploys:
// a fully qualified reference, registry/name:tag or registry/name@digest.
// The API applies it when a user saves a value and the worker agent again
// before Podman sees it.
package imageref

import (
	"fmt"
	"strings"

	"github.com/distribution/reference"
)

// Check accepts a fully qualified image reference with a tag or a digest:
// "registry.example.com/team/app:1.2", "ghcr.io/o/app@sha256:<64 hex>",
// "127.0.0.1:5000/app:v1". A short name ("nginx", "library/nginx:1")
// would depend on the worker's search registries and is refused, as is
// "localhost/…" (the worker's own images live there), anything without
// a tag or digest (":latest" must be said), white space, a leading dash
// and anything over 512 characters.
func Check(ref string) error {
	if ref == "" {
		return fmt.Errorf("the image is empty: give registry/name:tag or registry/name@sha256:digest")
	}
	if len(ref) > 512 || strings.HasPrefix(ref, "-") || strings.ContainsFunc(ref, func(r rune) bool { return r <= ' ' || r >= 0x7f }) {
		return fmt.Errorf("the image %q is not valid: registry/name:tag or registry/name@sha256:digest, without spaces", ref)
	}
	named, err := reference.ParseNamed(ref)
	if err != nil {
		if short, err2 := reference.ParseNormalizedNamed(ref); err2 == nil {
			return fmt.Errorf("the image %q must name its registry, for example %q", ref, short.String())
		}
		return fmt.Errorf("the image %q is not valid: registry/name:tag or registry/name@sha256:digest (%v)", ref, err)
	}
	domain := reference.Domain(named)
	if domain == "localhost" {
		return fmt.Errorf("the image %q must name a registry other than the worker's local images", ref)
	}
	_, tagged := named.(reference.Tagged)
	_, digested := named.(reference.Digested)
	if !tagged && !digested {
		return fmt.Errorf("the image %q has no tag or digest: add :tag (for example :latest) or @sha256:digest", ref)
	}
	return nil
}

// CheckCredentials accepts an optional registry login: both or neither,
// a user name of at most 256 printable characters without spaces, a
// password of at most 4096 characters without line breaks.
func CheckCredentials(user, password string) (field string, err error) {
	switch {
	case user == "" && password == "":
		return "", nil
	case user == "" || len(user) > 256 || strings.ContainsFunc(user, func(r rune) bool { return r <= ' ' || r == 0x7f }):
		return "registry_username", fmt.Errorf("the registry user name is required with a password: at most 256 characters, without spaces")
	case password == "" || len(password) > 4096 || strings.ContainsAny(password, "\r\n\x00"):
		return "registry_password", fmt.Errorf("the registry password is required with a user name: at most 4096 characters, on one line")
	}
	return "", nil
}
