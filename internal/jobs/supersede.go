package jobs

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5"

	"github.com/wisehosting/wisehosting/internal/wsproto"
)

// Supersede ends the older deploys of an app that a new deployment
// (byDeployment, whose job is byJob) makes pointless, in tx: queued deploy
// jobs end at once and a deploy still cloning or building on a worker is
// asked to stop. Their deployments end 'superseded' (not failed: no
// failure event), see CancelDeployment. A deploy already starting its
// container finishes (the new one follows it: one job per app at a time).
// Callers hold the app's row lock, so concurrent triggers of one app
// supersede one another in order. It returns the superseded jobs.
func Supersede(ctx context.Context, tx pgx.Tx, appID, byDeployment, byJob int64) ([]int64, error) {
	rows, err := tx.Query(ctx, `UPDATE jobs j SET superseded_by = $2
		FROM (SELECT j.id FROM jobs j LEFT JOIN deployments d ON d.id = j.deployment_id
			WHERE j.app_id = $1 AND j.kind = $4 AND j.id < $3 AND j.superseded_by IS NULL
				AND (j.state = 'pending' OR (j.state IN ('assigned', 'running') AND d.status IN ('queued', 'building')))
			ORDER BY j.id FOR UPDATE OF j) old
		WHERE j.id = old.id RETURNING j.id`, appID, byDeployment, byJob, wsproto.JobDeploy)
	if err != nil {
		return nil, err
	}
	ids, err := pgx.CollectRows(rows, pgx.RowTo[int64])
	if err != nil {
		return nil, err
	}
	for _, id := range ids {
		if _, err := Cancel(ctx, tx, id, fmt.Sprintf("superseded by deployment %d", byDeployment)); err != nil {
			return nil, fmt.Errorf("superseding job %d: %w", id, err)
		}
	}
	return ids, nil
}
