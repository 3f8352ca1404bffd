package deploys

import (
	"context"
	"errors"
	"fmt"
	"strconv"

	"github.com/jackc/pgx/v5"

	"github.com/wisehosting/wisehosting/internal/auth"
	"github.com/wisehosting/wisehosting/internal/jobs"
	"github.com/wisehosting/wisehosting/internal/secrets"
)

// ErrNoHookSecret means the app has no webhook secret yet.
var ErrNoHookSecret = errors.New("app has no webhook secret")

func hookAD(appID int64) []byte { return []byte("app:" + strconv.FormatInt(appID, 10)) }

// HookSecret returns the app's inbound webhook secret, creating and storing
// (encrypted) a new one when it has none.
func HookSecret(ctx context.Context, q jobs.Querier, kr *secrets.Keyring, appID int64, create bool) (string, error) {
	var enc *string
	if err := q.QueryRow(ctx, "SELECT webhook_secret_enc FROM apps WHERE id = $1", appID).Scan(&enc); err != nil {
		if errors.Is(err, pgx.ErrNoRows) {
			return "", ErrNotFound
		}
		return "", err
	}
	if enc != nil && *enc != "" {
		s, err := kr.DecryptString(secrets.PurposeGitHooks, *enc, hookAD(appID))
		if err != nil {
			return "", fmt.Errorf("decrypting webhook secret: %w", err)
		}
		return s, nil
	}
	if !create {
		return "", ErrNoHookSecret
	}
	s := auth.RandomToken(32)
	ct, err := kr.EncryptString(secrets.PurposeGitHooks, s, hookAD(appID))
	if err != nil {
		return "", err
	}
	// Another request may have created one meanwhile: keep the first.
	tag, err := q.Exec(ctx, "UPDATE apps SET webhook_secret_enc = $2 WHERE id = $1 AND webhook_secret_enc IS NULL", appID, ct)
	if err != nil {
		return "", err
	}
	if tag.RowsAffected() == 0 {
		return HookSecret(ctx, q, kr, appID, false)
	}
	return s, nil
}

// RotateHookSecret replaces the app's webhook secret with a fresh one and
// returns it: deliveries signed with the old one are refused from now on.
func RotateHookSecret(ctx context.Context, q jobs.Querier, kr *secrets.Keyring, appID int64) (string, error) {
	s := auth.RandomToken(32)
	ct, err := kr.EncryptString(secrets.PurposeGitHooks, s, hookAD(appID))
	if err != nil {
		return "", err
	}
	tag, err := q.Exec(ctx, "UPDATE apps SET webhook_secret_enc = $2 WHERE id = $1", appID, ct)
	if err != nil {
		return "", err
	}
	if tag.RowsAffected() == 0 {
		return "", ErrNotFound
	}
	return s, nil
}
