package replicas

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"

	"github.com/wisehosting/wisehosting/internal/errs"
	"github.com/wisehosting/wisehosting/internal/jobs"
	"github.com/wisehosting/wisehosting/internal/network"
	"github.com/wisehosting/wisehosting/internal/wsproto"
)

// Restart restarts an app's instances one at a time, in tx: it queues
// the restart of the first instance whose worker is reachable, and each
// instance's success queues the next one (OnResult). When the app has more
// than one instance, each leaves routing before it stops and comes back
// once it answers its health check again, so the others serve meanwhile;
// a single instance is restarted in place (a short interruption). An
// instance on an offline worker is skipped. It returns how many instances
// will restart.
func Restart(ctx context.Context, tx pgx.Tx, appID int64) (int, error) {
	var status string
	var deleting bool
	err := tx.QueryRow(ctx, "SELECT status, deleting_at IS NOT NULL FROM apps WHERE id = $1 FOR UPDATE", appID).Scan(&status, &deleting)
	if errors.Is(err, pgx.ErrNoRows) {
		return 0, errs.NotFoundf("app not found")
	}
	if err != nil {
		return 0, err
	}
	if deleting {
		return 0, errs.Conflictf("the app is being deleted")
	}
	if status != "running" && status != "crashed" {
		return 0, errs.Conflictf("the app is %s: only a running app restarts (deploy it to start it)", status)
	}
	var busy bool
	if err := tx.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM jobs WHERE app_id = $1 AND kind = 'restart'
		AND state IN ('pending', 'assigned', 'running'))`, appID).Scan(&busy); err != nil {
		return 0, err
	}
	if busy {
		return 0, errs.Conflictf("a restart of the app is already in progress")
	}
	ins, err := restartable(ctx, tx, appID)
	if err != nil {
		return 0, err
	}
	if len(ins) == 0 {
		return 0, errs.Conflictf("no instance of the app runs on an online worker")
	}
	if err := restartJob(ctx, tx, appID, ins[0], len(ins) > 1); err != nil {
		return 0, err
	}
	return len(ins), restartLog(ctx, tx, appID, fmt.Sprintf("restarting %d instance(s) one at a time: instance %d on worker %s first",
		len(ins), ins[0].Slot+1, ins[0].Worker))
}

// restartable are the app's instances that a restart reaches: running
// ones on an online or draining worker, by slot.
func restartable(ctx context.Context, q Querier, appID int64) ([]Instance, error) {
	all, err := List(ctx, q, appID)
	if err != nil {
		return nil, err
	}
	var out []Instance
	for _, in := range all {
		if in.WorkerID != 0 && (in.WorkerStatus == "online" || in.WorkerStatus == "draining") && in.DeploymentID != 0 {
			out = append(out, in)
		}
	}
	return out, nil
}

// restartJob queues the restart of one instance; with drain, the instance
// leaves routing now (the worker waits before stopping it).
func restartJob(ctx context.Context, tx pgx.Tx, appID int64, in Instance, drain bool) error {
	slot := in.Slot
	if drain {
		if err := setRouted(ctx, tx, appID, slot, false); err != nil {
			return err
		}
	}
	_, err := jobs.Enqueue(ctx, tx, jobs.New{Kind: wsproto.JobRestart, AppID: appID, TimeoutS: 600,
		Payload: wsproto.RestartPayload{WorkerID: in.WorkerID, Slot: &slot, Drain: drain}})
	return err
}

// setRouted puts an instance back in routing or takes it out (as if it
// failed its health check: out while another instance is healthy).
func setRouted(ctx context.Context, tx pgx.Tx, appID int64, slot int, routed bool) error {
	var err error
	if slot == 0 {
		_, err = tx.Exec(ctx, `UPDATE apps SET unhealthy_since = CASE WHEN $2 THEN NULL ELSE COALESCE(unhealthy_since, now()) END
			WHERE id = $1`, appID, routed)
	} else {
		_, err = tx.Exec(ctx, `UPDATE app_instances SET status = CASE WHEN $3 THEN 'running' ELSE 'unhealthy' END, updated_at = now()
			WHERE app_id = $1 AND slot = $2 AND status IN ('running', 'unhealthy')`, appID, slot, routed)
	}
	if err != nil {
		return err
	}
	return network.NotifyChanged(ctx, tx)
}

// restartLog adds a line to the log of the app's current deployment (the
// one its first instance runs), where its restarts are told.
func restartLog(ctx context.Context, tx pgx.Tx, appID int64, line string) error {
	var dep int64
	err := tx.QueryRow(ctx, `SELECT d.id FROM apps a JOIN deployments d ON d.app_id = a.id AND d.status = 'succeeded' AND d.worker_id = a.worker_id
		WHERE a.id = $1 ORDER BY d.finished_at DESC NULLS LAST, d.id DESC LIMIT 1`, appID).Scan(&dep)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil
	}
	if err != nil {
		return err
	}
	return logLine(ctx, tx, dep, "restart: "+line)
}

// onRestart continues a restart when one instance's job ended: the
// instance is back in routing, and after a success the next instance (by
// slot, on a reachable worker) restarts; a failure stops the restart.
func onRestart(ctx context.Context, tx pgx.Tx, j jobs.Job, ok bool, errMsg string) error {
	var p wsproto.RestartPayload
	if json.Unmarshal(j.Payload, &p) != nil || p.Slot == nil || j.AppID == 0 {
		return nil // a restart of every instance on one worker
	}
	slot := *p.Slot
	if p.Drain {
		if err := setRouted(ctx, tx, j.AppID, slot, true); err != nil {
			return err
		}
	}
	if !ok {
		return restartLog(ctx, tx, j.AppID, fmt.Sprintf("instance %d failed to restart, the restart stops: %s", slot+1, errMsg))
	}
	ins, err := restartable(ctx, tx, j.AppID)
	if err != nil {
		return err
	}
	for _, in := range ins {
		if in.Slot > slot {
			if err := restartJob(ctx, tx, j.AppID, in, len(ins) > 1); err != nil {
				return err
			}
			return restartLog(ctx, tx, j.AppID, fmt.Sprintf("instance %d restarted; instance %d on worker %s next", slot+1, in.Slot+1, in.Worker))
		}
	}
	return restartLog(ctx, tx, j.AppID, fmt.Sprintf("instance %d restarted; every instance has restarted", slot+1))
}
