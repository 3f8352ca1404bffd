package replicas

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"

	"github.com/jackc/pgx/v5"

	"github.com/wisehosting/wisehosting/internal/deploys"
	"github.com/wisehosting/wisehosting/internal/jobs"
	"github.com/wisehosting/wisehosting/internal/network"
	"github.com/wisehosting/wisehosting/internal/volumes"
	"github.com/wisehosting/wisehosting/internal/wsproto"
)

// DesiredChannel is the NOTIFY channel asking the replica that holds a
// worker's connection to send that worker its desired state again (its
// set of instances changed); the payload is the worker id.
const DesiredChannel = "wisehosting_desired"

// NotifyDesired asks for a fresh desired state for each worker (on commit
// when q is a transaction).
func NotifyDesired(ctx context.Context, q jobs.Querier, workerIDs ...int64) error {
	seen := map[int64]bool{}
	for _, id := range workerIDs {
		if id == 0 || seen[id] {
			continue
		}
		seen[id] = true
		if _, err := q.Exec(ctx, "SELECT pg_notify($1, $2)", DesiredChannel, strconv.FormatInt(id, 10)); err != nil {
			return err
		}
	}
	return nil
}

// Instance is one running copy of an app.
type Instance struct {
	Slot         int    `json:"slot"`
	WorkerID     int64  `json:"worker_id,omitempty"`
	Worker       string `json:"worker,omitempty"`
	Zone         string `json:"zone,omitempty"`
	WorkerStatus string `json:"worker_status,omitempty"`
	DeploymentID int64  `json:"deployment_id,omitempty"`
	HostPort     int    `json:"host_port,omitempty"`
	// Status: running, crashed, failed (the instance), or the app's
	// status for slot 0 (created, building, …).
	Status string `json:"status"`
}

// Querier is what the package needs of a pool or transaction.
type Querier interface {
	jobs.Querier
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
}

// List returns an app's instances by slot: slot 0 from the app's row
// (when it is placed), then the others.
func List(ctx context.Context, q Querier, appID int64) ([]Instance, error) {
	rows, err := q.Query(ctx, `SELECT 0, a.worker_id, COALESCE(w.name, ''), COALESCE(w.zone, ''), COALESCE(w.status, ''),
			COALESCE((SELECT id FROM deployments WHERE app_id = a.id AND status = 'succeeded' AND image <> '' AND worker_id = a.worker_id
				ORDER BY finished_at DESC NULLS LAST, id DESC LIMIT 1), 0), a.host_port, a.status
		FROM apps a LEFT JOIN workers w ON w.id = a.worker_id WHERE a.id = $1 AND a.worker_id IS NOT NULL
		UNION ALL
		SELECT i.slot, i.worker_id, COALESCE(w.name, ''), COALESCE(w.zone, ''), COALESCE(w.status, ''),
			COALESCE(i.deployment_id, 0), i.host_port, i.status
		FROM app_instances i LEFT JOIN workers w ON w.id = i.worker_id WHERE i.app_id = $1
		ORDER BY 1`, appID)
	if err != nil {
		return nil, fmt.Errorf("listing instances: %w", err)
	}
	defer rows.Close()
	out := []Instance{}
	for rows.Next() {
		var in Instance
		var wid *int64
		if err := rows.Scan(&in.Slot, &wid, &in.Worker, &in.Zone, &in.WorkerStatus, &in.DeploymentID, &in.HostPort, &in.Status); err != nil {
			return nil, err
		}
		if wid != nil {
			in.WorkerID = *wid
		}
		out = append(out, in)
	}
	return out, rows.Err()
}

// slotPayload is the part of a deploy payload this package reads.
type slotPayload struct {
	Slot      int  `json:"slot"`
	Restore   bool `json:"restore"`
	Replace   bool `json:"replace"`
	StopFirst bool `json:"stop_first"`
	// FromWorker: the gone worker a replaced instance ran on.
	FromWorker int64 `json:"from_worker"`
}

// SlotOf returns the slot a deploy or rollback payload names (0 when
// none).
func SlotOf(payload json.RawMessage) int {
	var p slotPayload
	json.Unmarshal(payload, &p)
	return max(p.Slot, 0)
}

// appRoll is what a roll step reads of the app, under its row lock.
type appRoll struct {
	replicas, surge, unavailable int
	cpu, mem                     int
	worker                       int64
}

func lockApp(ctx context.Context, q Querier, appID int64) (appRoll, error) {
	var a appRoll
	var w *int64
	err := q.QueryRow(ctx, `SELECT replicas, max_surge, max_unavailable, cpu_millis, memory_mb, worker_id FROM apps WHERE id = $1 FOR UPDATE`,
		appID).Scan(&a.replicas, &a.surge, &a.unavailable, &a.cpu, &a.mem, &w)
	if w != nil {
		a.worker = *w
	}
	return a, err
}

// slotJob enqueues the job that puts slot on deployment dep: the
// deployment's first job's payload (no secrets are stored in it) with the
// deployment's image and commit, so no worker that has the image builds
// again.
func slotJob(ctx context.Context, q Querier, appID, dep int64, a appRoll, slot int, extra map[string]any) error {
	var kind string
	var payload map[string]any
	var raw []byte
	var image, commit string
	err := q.QueryRow(ctx, `SELECT j.kind, j.payload, d.image, d.commit_sha FROM deployments d
		JOIN jobs j ON j.deployment_id = d.id AND j.kind IN ('deploy', 'rollback')
		WHERE d.id = $1 AND d.app_id = $2 ORDER BY j.id LIMIT 1`, dep, appID).Scan(&kind, &raw, &image, &commit)
	if err != nil {
		return fmt.Errorf("reading deployment %d's job: %w", dep, err)
	}
	if err := json.Unmarshal(raw, &payload); err != nil {
		return fmt.Errorf("decoding deployment %d's job: %w", dep, err)
	}
	for _, k := range []string{"restore", "replace", "stop_first", "from_worker"} {
		delete(payload, k)
	}
	payload["slot"] = slot
	payload["cpu_millis"], payload["memory_mb"] = a.cpu, a.mem
	if image != "" {
		payload["image"] = image
	}
	if commit != "" {
		payload["commit"] = commit
	}
	for k, v := range extra {
		payload[k] = v
	}
	// The slot's own volumes (its copies of per-instance ones), on the
	// worker holding them once bound.
	mounts, err := volumes.Mounts(ctx, q, appID, slot)
	if err != nil {
		return err
	}
	payload["volumes"] = mounts
	pin, err := volumes.SlotWorker(ctx, q, appID, slot)
	if err != nil {
		return err
	}
	_, err = jobs.Enqueue(ctx, q, jobs.New{Kind: kind, AppID: appID, DeploymentID: dep, Payload: payload,
		CPUMillis: a.cpu, MemoryMB: a.mem, PinWorker: pin})
	return err
}

func logLine(ctx context.Context, q Querier, dep int64, line string) error {
	return deploys.AppendLog(ctx, q, dep, deploys.StreamSystem, line)
}

// activeSlots are the slots with a deploy or rollback job in flight, and
// how many of those stop their old container first.
func activeSlots(ctx context.Context, q Querier, appID int64) (map[int]bool, int, error) {
	rows, err := q.Query(ctx, `SELECT payload FROM jobs WHERE app_id = $1 AND kind IN ('deploy', 'rollback')
		AND state IN ('pending', 'assigned', 'running')`, appID)
	if err != nil {
		return nil, 0, err
	}
	defer rows.Close()
	out, stopFirst := map[int]bool{}, 0
	for rows.Next() {
		var raw []byte
		if err := rows.Scan(&raw); err != nil {
			return nil, 0, err
		}
		var p slotPayload
		json.Unmarshal(raw, &p)
		out[p.Slot] = true
		if p.StopFirst {
			stopFirst++
		}
	}
	return out, stopFirst, rows.Err()
}

// advance starts the next slot jobs of deployment dep, at most max_surge
// (+ max_unavailable) at once; it reports whether every slot runs dep.
func advance(ctx context.Context, q Querier, appID, dep int64, a appRoll) (bool, error) {
	// A newer deployment took over: its roll moves the slots, not this one.
	var newer bool
	if err := q.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM deployments WHERE app_id = $1 AND id > $2
		AND status NOT IN ('failed', 'cancelled', 'superseded'))`, appID, dep).Scan(&newer); err != nil || newer {
		return false, err
	}
	active, stopFirst, err := activeSlots(ctx, q, appID)
	if err != nil {
		return false, err
	}
	at := map[int]int64{}
	rows, err := q.Query(ctx, `SELECT slot, COALESCE(deployment_id, 0) FROM app_instances WHERE app_id = $1`, appID)
	if err != nil {
		return false, err
	}
	for rows.Next() {
		var s int
		var d int64
		if err := rows.Scan(&s, &d); err != nil {
			rows.Close()
			return false, err
		}
		at[s] = d
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return false, err
	}
	var todo []int
	for s := 1; s < a.replicas; s++ {
		if at[s] != dep && !active[s] {
			todo = append(todo, s)
		}
	}
	if len(todo) == 0 {
		return len(active) == 0, nil
	}
	inFlight := len(active)
	for _, s := range todo {
		if inFlight >= a.surge+a.unavailable {
			break
		}
		extra := map[string]any{}
		if inFlight-stopFirst >= a.surge {
			extra["stop_first"] = true
			stopFirst++
			// Out of routing now: its worker stops it before its successor
			// runs.
			if _, err := q.Exec(ctx, `UPDATE app_instances SET status = 'unhealthy', updated_at = now() WHERE app_id = $1 AND slot = $2`,
				appID, s); err != nil {
				return false, err
			}
			if err := network.NotifyChanged(ctx, q); err != nil {
				return false, err
			}
		}
		if err := slotJob(ctx, q, appID, dep, a, s, extra); err != nil {
			return false, err
		}
		inFlight++
	}
	return false, nil
}

// OnResult runs in the transaction that records a deploy or rollback
// job's result, after the app's row was updated for slot 0: it records a
// slot's instance, continues the deployment's roll, or stops it and
// brings the slots it moved back. hostPort is the port the worker
// reported.
func OnResult(ctx context.Context, tx pgx.Tx, j jobs.Job, workerID int64, ok bool, errMsg string, hostPort int) error {
	if j.AppID != 0 && ok && (j.Kind == wsproto.JobStop || j.Kind == wsproto.JobDelete) {
		// A stop job runs on the first instance's worker (a delete job on
		// every worker that ran an instance): the others drop the app's
		// instances from their desired state.
		rows, err := tx.Query(ctx, `SELECT DISTINCT worker_id FROM app_instances WHERE app_id = $1 AND worker_id IS NOT NULL
			UNION SELECT id FROM workers WHERE $2 AND status = 'online'`, j.AppID, j.Kind == wsproto.JobDelete)
		if err != nil {
			return err
		}
		ids, err := pgx.CollectRows(rows, pgx.RowTo[int64])
		if err != nil {
			return err
		}
		return NotifyDesired(ctx, tx, ids...)
	}
	if j.Kind == wsproto.JobRestart {
		return onRestart(ctx, tx, j, ok, errMsg)
	}
	if j.AppID == 0 || (j.Kind != wsproto.JobDeploy && j.Kind != wsproto.JobRollback) {
		return nil
	}
	var p slotPayload
	json.Unmarshal(j.Payload, &p)
	a, err := lockApp(ctx, tx, j.AppID)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil
	}
	if err != nil {
		return err
	}
	if !ok {
		if p.Restore || p.Replace || p.Slot == 0 && a.replicas <= 1 {
			return nil
		}
		if p.Slot == 0 {
			return nil // nothing moved yet: the job's failure is the deployment's
		}
		return stopRoll(ctx, tx, j.AppID, j.DeploymentID, a, fmt.Sprintf("instance %d failed: %s", p.Slot+1, errMsg))
	}
	if p.Replace && p.FromWorker != 0 && p.FromWorker != workerID {
		// The instance runs elsewhere now: should its former worker be
		// back, its container there is no longer desired.
		if err := NotifyDesired(ctx, tx, p.FromWorker); err != nil {
			return err
		}
		if p.Slot == 0 {
			var name string
			tx.QueryRow(ctx, "SELECT name FROM workers WHERE id = $1", workerID).Scan(&name)
			if err := logLine(ctx, tx, j.DeploymentID, fmt.Sprintf("instance 1 of %d runs on worker %s now (port %d)", a.replicas, name, hostPort)); err != nil {
				return err
			}
		}
	}
	if p.Slot > 0 {
		if p.Slot >= a.replicas {
			// Scaled down while it started: its container is not desired.
			return NotifyDesired(ctx, tx, workerID)
		}
		var old *int64
		tx.QueryRow(ctx, `SELECT worker_id FROM app_instances WHERE app_id = $1 AND slot = $2`, j.AppID, p.Slot).Scan(&old)
		if _, err := tx.Exec(ctx, `INSERT INTO app_instances (app_id, slot, worker_id, deployment_id, host_port, status)
			VALUES ($1, $2, $3, $4, $5, 'running')
			ON CONFLICT (app_id, slot) DO UPDATE SET worker_id = $3, deployment_id = $4, host_port = $5, status = 'running', updated_at = now()`,
			j.AppID, p.Slot, workerID, j.DeploymentID, hostPort); err != nil {
			return fmt.Errorf("recording instance %d: %w", p.Slot, err)
		}
		if err := deploys.InstanceRunning(ctx, tx, j.AppID); err != nil {
			return err
		}
		if old != nil && *old != workerID {
			if err := NotifyDesired(ctx, tx, *old); err != nil {
				return err
			}
		}
		if err := network.NotifyChanged(ctx, tx); err != nil {
			return err
		}
		var name string
		tx.QueryRow(ctx, "SELECT name FROM workers WHERE id = $1", workerID).Scan(&name)
		if err := logLine(ctx, tx, j.DeploymentID, fmt.Sprintf("instance %d of %d runs on worker %s (port %d)", p.Slot+1, a.replicas, name, hostPort)); err != nil {
			return err
		}
	}
	if p.Restore || p.Replace || a.replicas <= 1 {
		return nil
	}
	var status string
	if err := tx.QueryRow(ctx, "SELECT status FROM deployments WHERE id = $1", j.DeploymentID).Scan(&status); err != nil {
		return err
	}
	if status == "failed" {
		// The roll stopped while this slot was moving: it goes back too.
		return restoreSlots(ctx, tx, j.AppID, j.DeploymentID, a, []int{p.Slot})
	}
	done, err := advance(ctx, tx, j.AppID, j.DeploymentID, a)
	if err != nil {
		return fmt.Errorf("continuing the roll: %w", err)
	}
	if done {
		return logLine(ctx, tx, j.DeploymentID, fmt.Sprintf("all %d instances run this deployment", a.replicas))
	}
	return nil
}

// previous is the newest succeeded deployment of the app before dep.
func previous(ctx context.Context, q Querier, appID, dep int64) (int64, error) {
	var prev int64
	err := q.QueryRow(ctx, `SELECT id FROM deployments WHERE app_id = $1 AND id < $2 AND status = 'succeeded' AND image <> ''
		ORDER BY finished_at DESC NULLS LAST, id DESC LIMIT 1`, appID, dep).Scan(&prev)
	if errors.Is(err, pgx.ErrNoRows) {
		return 0, nil
	}
	return prev, err
}

// stopRoll fails deployment dep and cancels its queued slot jobs
// (deploys.FailRoll), then starts the previous deployment again on the
// slots dep reached.
func stopRoll(ctx context.Context, tx pgx.Tx, appID, dep int64, a appRoll, reason string) error {
	if err := deploys.FailRoll(ctx, tx, dep, reason); err != nil {
		return err
	}
	// Slot 0 moves first, so it runs dep whenever a later slot failed.
	slots := []int{0}
	rows, err := tx.Query(ctx, `SELECT slot FROM app_instances WHERE app_id = $1 AND deployment_id = $2 ORDER BY slot`, appID, dep)
	if err != nil {
		return err
	}
	more, err := pgx.CollectRows(rows, pgx.RowTo[int])
	if err != nil {
		return err
	}
	return restoreSlots(ctx, tx, appID, dep, a, append(slots, more...))
}

// restoreSlots puts slots back on the deployment before dep.
func restoreSlots(ctx context.Context, tx pgx.Tx, appID, dep int64, a appRoll, slots []int) error {
	prev, err := previous(ctx, tx, appID, dep)
	if err != nil || prev == 0 {
		if err == nil {
			err = logLine(ctx, tx, dep, "no earlier deployment to go back to: the instances it started keep running")
		}
		return err
	}
	for _, s := range slots {
		if err := slotJob(ctx, tx, appID, prev, a, s, map[string]any{"restore": true}); err != nil {
			return err
		}
		if err := logLine(ctx, tx, dep, fmt.Sprintf("instance %d goes back to deployment %d", s+1, prev)); err != nil {
			return err
		}
	}
	return nil
}
