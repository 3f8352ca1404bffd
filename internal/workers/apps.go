package workers

import (
	"context"

	"github.com/jackc/pgx/v5"
)

// AppsOn returns which of apps run on the worker: the app's first instance
// or another one is placed there, or, with deploying, a job of the app is
// assigned to it or running there (a new container writes before its
// job's result records the app on the worker). What a worker reports about
// an app (log lines, stats) is taken only for these, so one worker cannot
// write into another's apps.
func AppsOn(ctx context.Context, q interface {
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
}, workerID int64, apps []int64, deploying bool) (map[int64]bool, error) {
	rows, err := q.Query(ctx, `SELECT id FROM apps WHERE id = ANY($1) AND (worker_id = $2
		OR EXISTS (SELECT 1 FROM app_instances i WHERE i.app_id = apps.id AND i.worker_id = $2)
		OR $3 AND EXISTS (SELECT 1 FROM jobs j WHERE j.app_id = apps.id AND j.worker_id = $2 AND j.state IN ('assigned', 'running')))`,
		apps, workerID, deploying)
	if err != nil {
		return nil, err
	}
	ids, err := pgx.CollectRows(rows, pgx.RowTo[int64])
	if err != nil {
		return nil, err
	}
	on := make(map[int64]bool, len(ids))
	for _, id := range ids {
		on[id] = true
	}
	return on, nil
}
