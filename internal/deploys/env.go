package deploys

import (
	"context"
	"fmt"
	"regexp"
	"strconv"

	"github.com/jackc/pgx/v5"

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
		return fmt.Errorf("invalid variable name %q: letters, digits and _, not starting with a digit", key)
	}
	if len(value) > MaxEnvValue {
		return fmt.Errorf("value of %s is larger than %d bytes", key, MaxEnvValue)
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
// app's variables.
func LoadEnv(ctx context.Context, q interface {
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
}, kr *secrets.Keyring, appID int64) (map[string]string, error) {
	rows, err := q.Query(ctx, `SELECT e.app_id, e.key, e.value_enc FROM env_vars e
		WHERE e.app_id = (SELECT COALESCE(preview_of, id) FROM apps WHERE id = $1)`, appID)
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

// GitToken decrypts an app's repository token ("" when it has none).
func GitToken(ctx context.Context, q jobs.Querier, kr *secrets.Keyring, appID int64) (string, error) {
	var owner int64
	var enc *string
	err := q.QueryRow(ctx, `SELECT id, git_token_enc FROM apps WHERE id = (SELECT COALESCE(preview_of, id) FROM apps WHERE id = $1)`, appID).Scan(&owner, &enc)
	if err != nil || enc == nil || *enc == "" {
		return "", err
	}
	return kr.DecryptString(secrets.PurposeGitTokens, *enc, AppAD(owner))
}

// SetGitToken stores an app's repository token, encrypted.
func SetGitToken(ctx context.Context, q jobs.Querier, kr *secrets.Keyring, appID int64, token string) error {
	ct, err := kr.EncryptString(secrets.PurposeGitTokens, token, AppAD(appID))
	if err != nil {
		return err
	}
	_, err = q.Exec(ctx, "UPDATE apps SET git_token_enc = $2 WHERE id = $1", appID, ct)
	return err
}
