package deploys

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/wisehosting/wisehosting/internal/secrets"
	"github.com/wisehosting/wisehosting/internal/volumes"
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
	// The app's first instance is its row; the others are app_instances
	// rows (internal/replicas).
	rows, err := q.Query(ctx, `SELECT a.id, 0, a.slug, a.team_id, d.id, d.image, a.port, a.host_port, a.cpu_millis, a.memory_mb, a.start_command, a.health_path
		FROM apps a
		JOIN LATERAL (SELECT id, image FROM deployments
			WHERE app_id = a.id AND status = 'succeeded' AND image <> '' AND worker_id = a.worker_id
			ORDER BY finished_at DESC NULLS LAST, id DESC LIMIT 1) d ON true
		WHERE a.worker_id = $1 AND a.status IN ('running', 'crashed', 'building', 'deploying', 'failed')
		UNION ALL
		SELECT a.id, i.slot, a.slug, a.team_id, d.id, d.image, a.port, i.host_port, a.cpu_millis, a.memory_mb, a.start_command, a.health_path
		FROM app_instances i JOIN apps a ON a.id = i.app_id JOIN deployments d ON d.id = i.deployment_id AND d.image <> ''
		WHERE i.worker_id = $1 AND i.slot < a.replicas AND a.status IN ('running', 'crashed', 'building', 'deploying', 'failed')
		ORDER BY 1, 2`, workerID)
	if err != nil {
		return wsproto.DesiredState{}, fmt.Errorf("loading desired state: %w", err)
	}
	ds := wsproto.DesiredState{Apps: []wsproto.DesiredApp{}}
	for rows.Next() {
		var a wsproto.DesiredApp
		if err := rows.Scan(&a.AppID, &a.Slot, &a.Slug, &a.TeamID, &a.DeploymentID, &a.Image, &a.Port, &a.HostPort, &a.CPUMillis, &a.MemoryMB, &a.StartCommand, &a.HealthPath); err != nil {
			rows.Close()
			return ds, err
		}
		ds.Apps = append(ds.Apps, a)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return ds, err
	}
	envs := map[int64]map[string]string{}
	for i := range ds.Apps {
		env, ok := envs[ds.Apps[i].AppID]
		if !ok {
			var err error
			if env, err = LoadEnv(ctx, q, kr, ds.Apps[i].AppID); err != nil {
				return ds, err
			}
			envs[ds.Apps[i].AppID] = env
		}
		ds.Apps[i].Env = env
		if ds.Apps[i].Volumes, err = volumes.Mounts(ctx, q, ds.Apps[i].AppID, ds.Apps[i].Slot); err != nil {
			return ds, err
		}
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
	case "unhealthy":
		status = "running" // still up; out of routing while another instance is healthy
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
	if st.Slot < 0 {
		return res, fmt.Errorf("invalid instance slot %d", st.Slot)
	}
	if st.Slot > 0 {
		return applyInstanceState(ctx, q, workerID, st, status)
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
	if st.DeploymentID != 0 && st.DeploymentID < current {
		// About a deployment older than the app's newest success: a
		// container the worker keeps while it retires, or a report sent
		// before the newer result was recorded. The app's port and status
		// are the newer deployment's.
		return res, nil
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
			if err := AppendLog(ctx, q, st.DeploymentID, StreamSystem,
				"deployment succeeded: the worker reports it running (its result had not been recorded)"); err != nil {
				return res, err
			}
			if oldStatus != "stopped" {
				newStatus = "running"
			}
		}
	}
	var wasUnhealthy, isUnhealthy bool
	if err := q.QueryRow(ctx, `WITH old AS (SELECT unhealthy_since IS NOT NULL AS was FROM apps WHERE id = $1)
		UPDATE apps SET status = $2, host_port = $3, updated_at = now(),
			unhealthy_since = CASE WHEN $4 THEN COALESCE(unhealthy_since, now()) ELSE NULL END
		WHERE id = $1 RETURNING (SELECT was FROM old), unhealthy_since IS NOT NULL`,
		st.AppID, newStatus, newPort, st.State == "unhealthy").Scan(&wasUnhealthy, &isUnhealthy); err != nil {
		return res, err
	}
	res.StatusChanged, res.PortChanged = oldStatus != newStatus || wasUnhealthy != isUnhealthy, oldPort != newPort
	return res, nil
}

// applyInstanceState records a worker's report on an instance beyond the
// app's first: its status and host port, and a newer deployment it runs.
// A report about an older deployment than the instance's changes nothing.
func applyInstanceState(ctx context.Context, q Pool, workerID int64, st wsproto.AppState, status string) (AppStateResult, error) {
	var res AppStateResult
	if st.State == "unhealthy" {
		status = "unhealthy"
	}
	var oldStatus string
	var oldPort int
	var dep int64
	err := q.QueryRow(ctx, `SELECT status, host_port, COALESCE(deployment_id, 0) FROM app_instances
		WHERE app_id = $1 AND slot = $2 AND worker_id = $3 FOR UPDATE`, st.AppID, st.Slot, workerID).Scan(&oldStatus, &oldPort, &dep)
	if errors.Is(err, pgx.ErrNoRows) {
		return res, ErrNotOnWorker
	}
	if err != nil {
		return res, err
	}
	if st.DeploymentID != 0 && st.DeploymentID < dep {
		// About a deployment older than the one the instance runs: the
		// container the worker keeps while it retires, or a report sent
		// before the slot's newer result was recorded. The instance's port
		// and status are the newer deployment's. (Not the app's newest
		// success: during a roll a slot still runs the older deployment
		// legitimately until its own job moves it.)
		return res, nil
	}
	newPort := oldPort
	if st.HostPort > 0 {
		newPort = st.HostPort
	}
	if st.State == "running" && st.DeploymentID > dep && st.Image != "" {
		// A newer deployment the worker put live (its result was lost).
		if _, err := q.Exec(ctx, `UPDATE app_instances SET deployment_id = $3 WHERE app_id = $1 AND slot = $2
			AND EXISTS (SELECT 1 FROM deployments WHERE id = $3 AND app_id = $1)`, st.AppID, st.Slot, st.DeploymentID); err != nil {
			return res, err
		}
	}
	if _, err := q.Exec(ctx, `UPDATE app_instances SET status = $3, host_port = $4, updated_at = now() WHERE app_id = $1 AND slot = $2`,
		st.AppID, st.Slot, status, newPort); err != nil {
		return res, err
	}
	res.StatusChanged, res.PortChanged = oldStatus != status, oldPort != newPort
	return res, nil
}
