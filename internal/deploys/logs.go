package deploys

import (
	"context"

	"github.com/jackc/pgx/v5/pgconn"
)

// Log streams of a deployment.
const (
	StreamBuild  = "build"  // the worker's clone and build output
	StreamSystem = "system" // what the control plane did with the deployment
)

// Execer is a transaction or a pool.
type Execer interface {
	Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error)
}

// AppendLog adds lines to a deployment's log, in q's transaction.
func AppendLog(ctx context.Context, q Execer, deploymentID int64, stream string, lines ...string) error {
	if deploymentID == 0 || len(lines) == 0 {
		return nil
	}
	_, err := q.Exec(ctx, `INSERT INTO deployment_logs (deployment_id, stream, line) SELECT $1, $2, l FROM unnest($3::text[]) AS l`,
		deploymentID, stream, lines)
	return err
}

// AppendWorkerBuildLog adds build lines a worker sent for a deployment,
// kept only while that worker runs the deployment's job (a worker cannot
// write into another deployment's log, nor into one it no longer runs).
func AppendWorkerBuildLog(ctx context.Context, q Execer, workerID, deploymentID int64, lines []string) error {
	_, err := q.Exec(ctx, `INSERT INTO deployment_logs (deployment_id, stream, line)
		SELECT $1, 'build', l FROM unnest($3::text[]) AS l
		WHERE EXISTS (SELECT 1 FROM jobs j WHERE j.deployment_id = $1 AND j.worker_id = $2 AND j.state IN ('assigned', 'running'))`,
		deploymentID, workerID, lines)
	return err
}
