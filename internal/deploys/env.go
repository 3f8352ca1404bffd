package deploys

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"strconv"
	"strings"

	"github.com/jackc/pgx/v5"

	"github.com/wisehosting/wisehosting/internal/errs"
	"github.com/wisehosting/wisehosting/internal/gitproviders"
	"github.com/wisehosting/wisehosting/internal/jobs"
	"github.com/wisehosting/wisehosting/internal/secrets"
)

// AppAD is the associated data binding an app's encrypted values (env vars,
// git token) to that app's row: a ciphertext copied into another app's row
// does not decrypt.
func AppAD(appID int64) []byte { return []byte("app:" + strconv.FormatInt(appID, 10)) }

var envKeyRe = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]{0,255}$`)

// MaxEnvValue bounds one variable's value.
const MaxEnvValue = 32 << 10

// SetEnv stores (encrypted) or replaces one variable of an app.
func SetEnv(ctx context.Context, q jobs.Querier, kr *secrets.Keyring, appID int64, key, value string) error {
	if !envKeyRe.MatchString(key) {
		return errs.Field("key", fmt.Sprintf("invalid variable name %q: a variable name is letters, digits and _, not starting with a digit", key))
	}
	if len(value) > MaxEnvValue {
		return errs.Field("value", fmt.Sprintf("the value of %s is larger than %d bytes", key, MaxEnvValue))
	}
	ct, err := kr.EncryptString(secrets.PurposeEnvVars, value, AppAD(appID))
	if err != nil {
		return err
	}
	_, err = q.Exec(ctx, `INSERT INTO env_vars (app_id, key, value_enc) VALUES ($1, $2, $3)
		ON CONFLICT (app_id, key) DO UPDATE SET value_enc = EXCLUDED.value_enc, updated_at = now()`, appID, key, ct)
	return err
}

// LoadEnv decrypts every variable of an app. Preview apps use their parent
// app's variables, except previews of a fork's pull request, which get none.
func LoadEnv(ctx context.Context, q interface {
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
}, kr *secrets.Keyring, appID int64) (map[string]string, error) {
	rows, err := q.Query(ctx, `SELECT e.app_id, e.key, e.value_enc FROM env_vars e
		WHERE e.app_id = (SELECT COALESCE(preview_of, id) FROM apps WHERE id = $1 AND NOT from_fork)`, appID)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	env := map[string]string{}
	for rows.Next() {
		var owner int64
		var k, ct string
		if err := rows.Scan(&owner, &k, &ct); err != nil {
			return nil, err
		}
		v, err := kr.DecryptString(secrets.PurposeEnvVars, ct, AppAD(owner))
		if err != nil {
			return nil, fmt.Errorf("decrypting %s of app %d: %w", k, owner, err)
		}
		env[k] = v
	}
	return env, rows.Err()
}

// ConnectionAD binds a git connection's sealed tokens to its row.
func ConnectionAD(connID int64) []byte {
	return []byte("git-connection:" + strconv.FormatInt(connID, 10))
}

// GitToken decrypts the token an app's repository is cloned with ("" when
// it has none): the app's own deploy token, else the token of the git
// connection it was created from. Previews use their parent's; a fork's
// preview gets none.
func GitToken(ctx context.Context, q jobs.Querier, kr *secrets.Keyring, appID int64) (string, error) {
	_, tok, err := GitCredentials(ctx, q, kr, appID)
	return tok, err
}

// GitCredentials is GitToken with the user name the app's provider
// expects with it over HTTP Basic.
func GitCredentials(ctx context.Context, q jobs.Querier, kr *secrets.Keyring, appID int64) (user, token string, err error) {
	var owner, conn int64
	var provider string
	var enc, connEnc *string
	err = q.QueryRow(ctx, `SELECT a.id, a.git_provider, a.git_token_enc, COALESCE(c.id, 0), c.token_enc FROM apps a
		LEFT JOIN git_connections c ON c.id = a.git_connection_id AND c.team_id = a.team_id
		WHERE a.id = (SELECT COALESCE(preview_of, id) FROM apps WHERE id = $1 AND NOT from_fork)`, appID).Scan(&owner, &provider, &enc, &conn, &connEnc)
	if errors.Is(err, pgx.ErrNoRows) {
		return "", "", nil
	}
	if err != nil {
		return "", "", err
	}
	user = gitproviders.CloneUser(provider)
	switch {
	case enc != nil && *enc != "":
		token, err = kr.DecryptString(secrets.PurposeGitTokens, *enc, AppAD(owner))
	case connEnc != nil && *connEnc != "":
		token, err = kr.DecryptString(secrets.PurposeGitTokens, *connEnc, ConnectionAD(conn))
	}
	if token == "" {
		user = ""
	}
	return user, token, err
}

// SetGitToken stores an app's repository token, encrypted ("" removes it).
func SetGitToken(ctx context.Context, q jobs.Querier, kr *secrets.Keyring, appID int64, token string) error {
	if token == "" {
		_, err := q.Exec(ctx, "UPDATE apps SET git_token_enc = NULL WHERE id = $1", appID)
		return err
	}
	if len(token) > 4096 || strings.ContainsAny(token, " \t\r\n\x00") {
		return errors.New("a git token is at most 4096 characters, without spaces or line breaks")
	}
	ct, err := kr.EncryptString(secrets.PurposeGitTokens, token, AppAD(appID))
	if err != nil {
		return err
	}
	_, err = q.Exec(ctx, "UPDATE apps SET git_token_enc = $2 WHERE id = $1", appID, ct)
	return err
}

// registryAD binds an app's sealed registry password to its row.
func registryAD(appID int64) []byte {
	return []byte("registry:" + strconv.FormatInt(appID, 10))
}

// RegistryCredentials decrypts the registry login of an image-sourced app
// ("" when it has none). Previews have no image source.
func RegistryCredentials(ctx context.Context, q jobs.Querier, kr *secrets.Keyring, appID int64) (user, password string, err error) {
	var enc *string
	err = q.QueryRow(ctx, `SELECT registry_username, registry_password_enc FROM apps WHERE id = $1`, appID).Scan(&user, &enc)
	if errors.Is(err, pgx.ErrNoRows) {
		return "", "", nil
	}
	if err != nil || enc == nil || *enc == "" {
		return user, "", err
	}
	password, err = kr.DecryptString(secrets.PurposeRegistry, *enc, registryAD(appID))
	if err != nil {
		return "", "", fmt.Errorf("decrypting the registry password of app %d: %w", appID, err)
	}
	return user, password, nil
}

// SetRegistryCredentials stores an app's registry login, the password
// sealed (both "" remove it). Callers check them with
// imageref.CheckCredentials.
func SetRegistryCredentials(ctx context.Context, q jobs.Querier, kr *secrets.Keyring, appID int64, user, password string) error {
	if user == "" && password == "" {
		_, err := q.Exec(ctx, "UPDATE apps SET registry_username = '', registry_password_enc = NULL WHERE id = $1", appID)
		return err
	}
	ct, err := kr.EncryptString(secrets.PurposeRegistry, password, registryAD(appID))
	if err != nil {
		return err
	}
	_, err = q.Exec(ctx, "UPDATE apps SET registry_username = $2, registry_password_enc = $3 WHERE id = $1", appID, user, ct)
	return err
}
