package deploys

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/wisehosting/wisehosting/internal/secrets"
	"github.com/wisehosting/wisehosting/internal/wsproto"
)

// Pool is what Desired and ApplyAppState need of a pool or transaction.
type Pool interface {
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
	Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error)
}

// Desired is the full set of apps a worker should run: every app placed on
// it that is not stopped, at its newest successful deployment that has an
// image. Env holds the decrypted variables (sent only over the worker's
// authenticated channel).
func Desired(ctx context.Context, q Pool, kr *secrets.Keyring, workerID int64) (wsproto.DesiredState, error) {
	rows, err := q.Query(ctx, `SELECT a.id, a.slug, d.id, d.image, a.port, a.host_port, a.cpu_millis, a.memory_mb
		FROM apps a
		JOIN LATERAL (SELECT id, image FROM deployments
			WHERE app_id = a.id AND status = 'succeeded' AND image <> '' AND worker_id = a.worker_id
			ORDER BY finished_at DESC NULLS LAST, id DESC LIMIT 1) d ON true
		WHERE a.worker_id = $1 AND a.status IN ('running', 'crashed', 'building', 'deploying', 'failed')
		ORDER BY a.id`, workerID)
	if err != nil {
		return wsproto.DesiredState{}, fmt.Errorf("loading desired state: %w", err)
	}
	ds := wsproto.DesiredState{Apps: []wsproto.DesiredApp{}}
	for rows.Next() {
		var a wsproto.DesiredApp
		if err := rows.Scan(&a.AppID, &a.Slug, &a.DeploymentID, &a.Image, &a.Port, &a.HostPort, &a.CPUMillis, &a.MemoryMB); err != nil {
			rows.Close()
			return ds, err
		}
		ds.Apps = append(ds.Apps, a)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return ds, err
	}
	for i := range ds.Apps {
		env, err := LoadEnv(ctx, q, kr, ds.Apps[i].AppID)
		if err != nil {
			return ds, err
		}
		ds.Apps[i].Env = env
	}
	return ds, nil
}

// AppStateResult says what ApplyAppState changed.
type AppStateResult struct {
	StatusChanged bool
	PortChanged   bool
}

// ErrNotOnWorker means a worker reported an app that is not placed on it;
// the report is ignored.
var ErrNotOnWorker = errors.New("the app is not placed on this worker")

// ApplyAppState records what a worker observed about one of its apps:
// running (with its host port) or crashed / crashloop (status crashed,
// which the crash-loop alert watches), or stopped (it cannot be started:
// failed). A stopped app stays stopped, and an
// app in the middle of a deployment keeps the deployment's status.
func ApplyAppState(ctx context.Context, q Pool, workerID int64, st wsproto.AppState) (AppStateResult, error) {
	var res AppStateResult
	var status string
	switch st.State {
	case "running":
		status = "running"
	case "crashed", "crashloop":
		status = "crashed"
	case "stopped":
		status = "failed" // the worker cannot start it (e.g. its image is gone)
	default:
		return res, fmt.Errorf("unknown app state %q", st.State)
	}
	if st.HostPort < 0 || st.HostPort > 65535 {
		return res, fmt.Errorf("invalid host port %d", st.HostPort)
	}
	var oldStatus string
	var oldPort int
	err := q.QueryRow(ctx, `WITH old AS (SELECT id, status, host_port FROM apps WHERE id = $1 AND worker_id = $2 FOR UPDATE)
		UPDATE apps a SET
			status = CASE WHEN old.status IN ('running', 'crashed') THEN $3 ELSE old.status END,
			host_port = CASE WHEN $4 > 0 AND old.status IN ('running', 'crashed') THEN $4 ELSE old.host_port END,
			updated_at = now()
		FROM old WHERE a.id = old.id
		RETURNING old.status, old.host_port, a.status, a.host_port`, st.AppID, workerID, status, st.HostPort).
		Scan(&oldStatus, &oldPort, &status, &st.HostPort)
	if errors.Is(err, pgx.ErrNoRows) {
		return res, ErrNotOnWorker
	}
	if err != nil {
		return res, err
	}
	res.StatusChanged, res.PortChanged = oldStatus != status, oldPort != st.HostPort
	return res, nil
}
