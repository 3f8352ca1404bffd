// Package credentials reads secrets handed over by systemd
// (LoadCredential=/SetCredentialEncrypted=), which appear as files in
// $CREDENTIALS_DIRECTORY. A credential, when present, wins over the value in
// the config file, so secrets need not live in a Caddyfile or JSON config.
package credentials

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
)

// Well-known credential names.
const (
	APIServerSecret  = "api_server_secret"
	PreviousSecrets  = "api_server_previous_secrets" // one per line
	DatabaseURL      = "database_url"
	DatabasePassword = "database_password"
	ProxyToken       = "proxy_token"
	InternalToken    = "internal_token"
	WorkerAPIKey     = "worker_api_key"
)

// OAuthClientSecret names the credential of an OAuth provider's client
// secret in the dashboard's `oauth <provider>` block, e.g.
// github_oauth_client_secret.
func OAuthClientSecret(provider string) string { return provider + "_oauth_client_secret" }

// Dir returns the systemd credentials directory, or "" when none is set.
func Dir() string { return os.Getenv("CREDENTIALS_DIRECTORY") }

// Lookup returns the credential name and true if the file exists. Trailing
// newlines are trimmed (editors and `echo` add them). Names must be plain
// file names.
func Lookup(name string) (string, bool, error) {
	dir := Dir()
	if dir == "" {
		return "", false, nil
	}
	if name == "" || strings.ContainsAny(name, `/\`) || name == "." || name == ".." {
		return "", false, fmt.Errorf("invalid credential name %q", name)
	}
	b, err := os.ReadFile(filepath.Join(dir, name))
	if errors.Is(err, fs.ErrNotExist) {
		return "", false, nil
	}
	if err != nil {
		return "", false, fmt.Errorf("reading credential %s: %w", name, err)
	}
	return strings.TrimRight(string(b), "\r\n"), true, nil
}

// Apply sets *dst to the credential's value when the credential exists.
func Apply(name string, dst *string) error {
	v, ok, err := Lookup(name)
	if err != nil {
		return err
	}
	if ok {
		*dst = v
	}
	return nil
}
