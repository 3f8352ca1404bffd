package deploys

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/wisehosting/wisehosting/internal/events"
	"github.com/wisehosting/wisehosting/internal/network"
	"github.com/wisehosting/wisehosting/internal/wsproto"
)

// ReportAppState records, in one transaction, what a worker reports about
// one of its apps' containers (ApplyAppState) and what follows from it: a
// deployment adopted (deployment.finished with adopted), the app's status
// change (app.status_changed, also for every report that is not
// "running"), and routing when a port, a status or the live deployment
// changed. A report about an app not placed on the worker is
// ErrNotOnWorker and changes nothing.
func ReportAppState(ctx context.Context, pool *pgxpool.Pool, workerID int64, st wsproto.AppState) (AppStateResult, error) {
	var res AppStateResult
	err := pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
		var err error
		if res, err = ApplyAppState(ctx, tx, workerID, st); err != nil {
			return err
		}
		if res.Adopted != 0 {
			if err := events.Emit(ctx, tx, events.Event{Kind: events.DeploymentFinished, AppID: st.AppID,
				Data: map[string]any{"deployment_id": res.Adopted, "adopted": true}}); err != nil {
				return err
			}
		}
		if res.StatusChanged || st.State != "running" {
			if err := events.Emit(ctx, tx, events.Event{Kind: events.AppStatusChanged, AppID: st.AppID,
				Data: map[string]any{"state": st.State, "restarts": st.Restarts, "message": st.Message, "worker_id": workerID}}); err != nil {
				return err
			}
		}
		if res.PortChanged || res.StatusChanged || res.Adopted != 0 || res.InstanceAdopted != 0 {
			return network.NotifyChanged(ctx, tx)
		}
		return nil
	})
	return res, err
}

// AppStateResult says what ApplyAppState changed.
type AppStateResult struct {
	StatusChanged bool
	PortChanged   bool
	// Adopted is a deployment the worker runs that the control plane had
	// not recorded as live (its result was lost); it is now succeeded.
	Adopted int64
	// InstanceAdopted is a deployment an instance beyond the first runs
	// that the control plane had not recorded for it; the instance now
	// runs it (the deployment's status is its first instance's).
	InstanceAdopted int64
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
//
// The worker is the truth about its containers, so a "running" report
// about a newer deployment is adopted, whatever status the control plane
// recorded for it (a job given up on while the worker could not be heard
// failed a deployment that went live), with two exceptions where the
// report cannot be about the slot's live container: a deployment of
// another app or one never built (no image: no instance can run it), and
// a report made while a job of that slot is still in progress (a roll's
// next step, or a slot going back to the previous deployment after a
// failed roll): that job's result records what the slot runs.
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
		tag, err := q.Exec(ctx, `UPDATE app_instances SET deployment_id = $3 WHERE app_id = $1 AND slot = $2
			AND EXISTS (SELECT 1 FROM deployments WHERE id = $3 AND app_id = $1 AND image <> '')
			AND NOT EXISTS (SELECT 1 FROM jobs WHERE app_id = $1 AND kind IN ('deploy', 'rollback')
				AND state IN ('pending', 'assigned', 'running') AND COALESCE((payload->>'slot')::int, 0) = $2)`,
			st.AppID, st.Slot, st.DeploymentID)
		if err != nil {
			return res, err
		}
		if tag.RowsAffected() == 1 {
			res.InstanceAdopted = st.DeploymentID
			if err := AppendLog(ctx, q, st.DeploymentID, StreamSystem, fmt.Sprintf(
				"instance %d runs this deployment: its worker reports it running (its result had not been recorded)", st.Slot+1)); err != nil {
				return res, err
			}
		}
	}
	if _, err := q.Exec(ctx, `UPDATE app_instances SET status = $3, host_port = $4, updated_at = now() WHERE app_id = $1 AND slot = $2`,
		st.AppID, st.Slot, status, newPort); err != nil {
		return res, err
	}
	res.StatusChanged, res.PortChanged = oldStatus != status, oldPort != newPort
	return res, nil
}
