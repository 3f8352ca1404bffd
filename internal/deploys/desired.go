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
	rows, err := q.Query(ctx, `SELECT a.id, a.slug, a.team_id, d.id, d.image, a.port, a.host_port, a.cpu_millis, a.memory_mb, a.start_command
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
		if err := rows.Scan(&a.AppID, &a.Slug, &a.TeamID, &a.DeploymentID, &a.Image, &a.Port, &a.HostPort, &a.CPUMillis, &a.MemoryMB, &a.StartCommand); err != nil {
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
	// Adopted is a deployment the worker runs that the control plane had
	// not recorded as live (its result was lost); it is now succeeded.
	Adopted int64
}

// ErrNotOnWorker means a worker reported an app that is not placed on it;
// the report is ignored.
var ErrNotOnWorker = errors.New("the app is not placed on this worker")

// ApplyAppState records what a worker observed about one of its apps:
// running (with its host port) or crashed / crashloop (status crashed,
// which the crash-loop alert watches), or stopped (it cannot be started:
// failed). A stopped app stays stopped, and an app in the middle of a
// deployment keeps the deployment's status.
//
// The worker is the truth about containers: the host port of a running
// report always becomes the app's (routing follows it), and a running
// deployment newer than the app's newest succeeded one is adopted: it is
// marked succeeded (its result was lost, or the job was given up on while
// the worker could not be heard).
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
	var current int64
	err := q.QueryRow(ctx, `SELECT a.status, a.host_port, COALESCE((SELECT max(id) FROM deployments
			WHERE app_id = a.id AND status = 'succeeded' AND image <> ''), 0)
		FROM apps a WHERE a.id = $1 AND a.worker_id = $2 FOR UPDATE`, st.AppID, workerID).Scan(&oldStatus, &oldPort, &current)
	if errors.Is(err, pgx.ErrNoRows) {
		return res, ErrNotOnWorker
	}
	if err != nil {
		return res, err
	}
	newStatus, newPort := oldStatus, oldPort
	if oldStatus == "running" || oldStatus == "crashed" {
		newStatus = status
	}
	if st.State == "running" && st.HostPort > 0 && oldStatus != "stopped" {
		newPort = st.HostPort
	} else if st.HostPort > 0 && (oldStatus == "running" || oldStatus == "crashed") {
		newPort = st.HostPort
	}
	if st.State == "running" && st.DeploymentID > current && st.Image != "" {
		tag, err := q.Exec(ctx, `UPDATE deployments SET status = 'succeeded', error = '', worker_id = $3, image = $4,
				finished_at = COALESCE(finished_at, now())
			WHERE id = $1 AND app_id = $2`, st.DeploymentID, st.AppID, workerID, st.Image)
		if err != nil {
			return res, err
		}
		if tag.RowsAffected() == 1 {
			res.Adopted = st.DeploymentID
			if _, err := q.Exec(ctx, `INSERT INTO deployment_logs (deployment_id, stream, line) VALUES ($1, 'system', $2)`,
				st.DeploymentID, "deployment succeeded: the worker reports it running (its result had not been recorded)"); err != nil {
				return res, err
			}
			if oldStatus != "stopped" {
				newStatus = "running"
			}
		}
	}
	if _, err := q.Exec(ctx, `UPDATE apps SET status = $2, host_port = $3, updated_at = now() WHERE id = $1`,
		st.AppID, newStatus, newPort); err != nil {
		return res, err
	}
	res.StatusChanged, res.PortChanged = oldStatus != newStatus, oldPort != newPort
	return res, nil
}
