package jobs

import (
	"context"
	"errors"

	"github.com/jackc/pgx/v5"
)

// RemoveDeleted removes the row of an app being deleted (or of a preview)
// once none of its delete jobs is active any more, in tx: a delete job
// succeeded, or one was given up because its worker is gone.
//
// Preview apps and apps being deleted go once their containers are gone,
// but not while previews of theirs still wait for their own delete job
// (the row's cascade would drop that job); a preview's removal lets a
// parent being deleted go. The results of an app's and its previews'
// delete jobs are applied one at a time, under the lock of the app's row,
// so the last one always sees the others.
func RemoveDeleted(ctx context.Context, tx pgx.Tx, appID int64) error {
	var parent int64
	err := tx.QueryRow(ctx, "SELECT COALESCE(preview_of, 0) FROM apps WHERE id = $1", appID).Scan(&parent)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil
	}
	if err != nil {
		return err
	}
	root := appID
	if parent != 0 {
		root = parent
	}
	if _, err := tx.Exec(ctx, "SELECT 1 FROM apps WHERE id = $1 FOR UPDATE", root); err != nil {
		return err
	}
	// The app's delete jobs for its other workers (see Enqueue) end
	// before its row goes.
	if _, err := tx.Exec(ctx, `DELETE FROM apps a WHERE id = $1 AND (preview_of IS NOT NULL OR deleting_at IS NOT NULL)
		AND NOT EXISTS (SELECT 1 FROM apps p WHERE p.preview_of = a.id)
		AND NOT EXISTS (SELECT 1 FROM jobs WHERE app_id = a.id AND kind = 'delete' AND state IN ('pending', 'assigned', 'running'))`,
		appID); err != nil || parent == 0 {
		return err
	}
	_, err = tx.Exec(ctx, `DELETE FROM apps a WHERE id = $1 AND deleting_at IS NOT NULL
		AND NOT EXISTS (SELECT 1 FROM apps p WHERE p.preview_of = a.id)
		AND NOT EXISTS (SELECT 1 FROM jobs WHERE app_id = a.id AND kind = 'delete' AND state IN ('pending', 'assigned', 'running'))`, parent)
	return err
}
