package deploys

import (
	"context"
	"errors"

	"github.com/jackc/pgx/v5"

	"github.com/wisehosting/wisehosting/internal/jobs"
	"github.com/wisehosting/wisehosting/internal/network"
	"github.com/wisehosting/wisehosting/internal/wsproto"
)

// Deleted tells what Delete did.
type Deleted struct {
	// Removed: the app never ran anywhere and its row is gone.
	Removed bool
	// JobIDs are the delete jobs enqueued (the app's and its previews').
	JobIDs []int64
}

// Delete removes an app, in tx. Its deployments in progress are
// cancelled. An app that never ran on a worker goes at once. Otherwise it
// leaves routing now (status stopped, deleting_at set, so it takes no more
// deploys) and a delete job per app (its previews included) removes the
// containers and images; the rows go when those jobs succeed
// (RemoveDeleted).
// Deleting an app that is already being deleted enqueues its delete job
// again if none is in progress (e.g. its worker was gone for good).
func Delete(ctx context.Context, tx pgx.Tx, app App, reason string) (Deleted, error) {
	var d Deleted
	apps := []App{app}
	rows, err := tx.Query(ctx, "SELECT "+appColumns+" FROM apps WHERE preview_of = $1 ORDER BY id FOR UPDATE", app.ID)
	if err != nil {
		return d, err
	}
	previews, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (App, error) { return scanApp(r) })
	if err != nil {
		return d, err
	}
	apps = append(apps, previews...)
	for _, a := range apps {
		ids, err := activeJobs(ctx, tx, a.ID, wsproto.JobDeploy, wsproto.JobRollback, wsproto.JobRestart, wsproto.JobStop)
		if err != nil {
			return d, err
		}
		for _, id := range ids {
			if _, err := cancelJob(ctx, tx, id, reason); err != nil && !errors.Is(err, jobs.ErrNotCancellable) {
				return d, err
			}
		}
	}
	var placed bool
	if err := tx.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM apps WHERE (id = $1 OR preview_of = $1) AND worker_id IS NOT NULL)
		OR EXISTS (SELECT 1 FROM jobs WHERE app_id IN (SELECT id FROM apps WHERE id = $1 OR preview_of = $1) AND state IN ('assigned', 'running'))`,
		app.ID).Scan(&placed); err != nil {
		return d, err
	}
	if !placed {
		_, err := tx.Exec(ctx, "DELETE FROM apps WHERE id = $1", app.ID)
		d.Removed = true
		return d, err
	}
	for _, a := range apps {
		if _, err := tx.Exec(ctx, `UPDATE apps SET status = 'stopped', deleting_at = COALESCE(deleting_at, now()), updated_at = now()
			WHERE id = $1`, a.ID); err != nil {
			return d, err
		}
		pending, err := activeJobs(ctx, tx, a.ID, wsproto.JobDelete)
		if err != nil {
			return d, err
		}
		if len(pending) > 0 {
			continue
		}
		id, err := jobs.Enqueue(ctx, tx, jobs.New{Kind: wsproto.JobDelete, AppID: a.ID,
			Payload: wsproto.DeployPayload{Slug: a.Slug}, Priority: 1})
		if err != nil {
			return d, err
		}
		d.JobIDs = append(d.JobIDs, id)
	}
	// Out of the routing tables at commit, before the workers act.
	return d, network.NotifyChanged(ctx, tx)
}

func activeJobs(ctx context.Context, tx pgx.Tx, appID int64, kinds ...string) ([]int64, error) {
	rows, err := tx.Query(ctx, `SELECT id FROM jobs WHERE app_id = $1 AND kind = ANY($2) AND state IN ('pending', 'assigned', 'running')
		ORDER BY id`, appID, kinds)
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, pgx.RowTo[int64])
}

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
	// The app's delete jobs for its other workers (see jobs.Enqueue) end
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
