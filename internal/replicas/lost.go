package replicas

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/wisehosting/wisehosting/internal/deploys"
	"github.com/wisehosting/wisehosting/internal/jobs"
	"github.com/wisehosting/wisehosting/internal/network"
	"github.com/wisehosting/wisehosting/internal/volumes"
	"github.com/wisehosting/wisehosting/internal/wsproto"
)

// DefaultGrace is how long a worker stays offline, by default, before its
// instances start elsewhere (the offline_grace of wisehosting_scheduler).
const DefaultGrace = time.Minute

// goneCTE defines gone(id, name): the workers whose work is taken
// elsewhere or forgotten. A revoked worker is gone at once (the operator
// said so); an offline one, or a draining one that stopped sending
// heartbeats, once it has been offline for $1 (the grace period, counted
// from when recovery found it silent: see markOffline) and has not been
// heard from meanwhile. An agent that restarts quickly moves nothing, and
// neither does an outage of the control plane itself.
const goneCTE = `gone AS (SELECT id, name FROM workers WHERE status = 'revoked'
	OR (status IN ('offline', 'draining') AND offline_at < now() - $1::interval
		AND COALESCE(last_seen, '-infinity') < now() - $1::interval))`

// markOffline records when each worker was found offline (the scheduler
// marks silent workers offline in the same transaction just before; a
// draining worker keeps its status, so its silence is read here), and
// forgets it for the workers heard from again.
func markOffline(ctx context.Context, tx pgx.Tx, heartbeat time.Duration) error {
	_, err := tx.Exec(ctx, `UPDATE workers SET offline_at = CASE WHEN status = 'online'
			OR (status = 'draining' AND last_seen >= now() - $1::interval) THEN NULL ELSE now() END
		WHERE (offline_at IS NULL AND (status = 'offline'
				OR (status = 'draining' AND COALESCE(last_seen, '-infinity') < now() - $1::interval)))
			OR (offline_at IS NOT NULL AND (status = 'online' OR (status = 'draining' AND last_seen >= now() - $1::interval)))`,
		heartbeat.String())
	return err
}

// Lost is what Recover did in one pass.
type Lost struct {
	// Replaced: instances whose start on another worker was queued.
	Replaced int
	// Forgotten: stop, delete and restart jobs given up because their
	// worker is gone.
	Forgotten int
}

// Recover deals with the workers that are gone (see goneCTE; heartbeat
// is the silence after which a worker is offline, grace how long it then
// stays offline before it is gone): their instances start on other
// workers (Replace) and the jobs waiting for them are given up (Forget). It
// runs in the scheduler's recovery transaction, under its lock, after
// silent workers were marked offline, so one control-plane replica at a
// time does it.
func Recover(ctx context.Context, tx pgx.Tx, heartbeat, grace time.Duration) (Lost, error) {
	var l Lost
	if err := markOffline(ctx, tx, heartbeat); err != nil {
		return l, fmt.Errorf("recording offline workers: %w", err)
	}
	var err error
	if l.Replaced, err = Replace(ctx, tx, grace); err != nil {
		return l, fmt.Errorf("re-placing instances: %w", err)
	}
	if l.Forgotten, err = Forget(ctx, tx, grace); err != nil {
		return l, fmt.Errorf("giving up jobs of gone workers: %w", err)
	}
	return l, nil
}

// Replace starts again elsewhere the instances whose worker is gone: each
// gets its slot's job at the deployment it ran, from the same image (a
// worker that lacks it builds the same commit or pulls the same image);
// the scheduler places it on another worker with room, spreading the
// app's instances as for any placement, or keeps it queued until one has.
// Routing moves to the new instance when its job succeeds (for the first
// instance, the app's row moves to the new worker); meanwhile the app is
// served by its other instances, and the gone worker's instances are out
// of routing while another one is healthy. An app with a volume is not
// moved: its data lives on its worker, so it waits for that worker; so
// does an instance whose copy of a per-instance volume is there (the
// app's other instances move). It returns how many it queued.
func Replace(ctx context.Context, tx pgx.Tx, grace time.Duration) (int, error) {
	rows, err := tx.Query(ctx, `WITH `+goneCTE+`
		SELECT a.id, 0, COALESCE((SELECT id FROM deployments WHERE app_id = a.id AND status = 'succeeded' AND image <> '' AND worker_id = a.worker_id
			ORDER BY finished_at DESC NULLS LAST, id DESC LIMIT 1), 0), a.worker_id
		FROM apps a WHERE a.worker_id IN (SELECT id FROM gone) AND a.status IN ('running', 'crashed') AND a.deleting_at IS NULL
			AND NOT EXISTS (SELECT 1 FROM volumes v WHERE v.app_id = a.id AND v.worker_id IS NOT NULL)
		UNION ALL
		SELECT i.app_id, i.slot, COALESCE(i.deployment_id, 0), COALESCE(i.worker_id, 0) FROM app_instances i JOIN apps a ON a.id = i.app_id
		WHERE (i.worker_id IS NULL OR i.worker_id IN (SELECT id FROM gone)) AND a.status NOT IN ('stopped') AND a.deleting_at IS NULL
			AND i.slot < a.replicas`, grace.String())
	if err != nil {
		return 0, err
	}
	type lost struct {
		app, dep, worker int64
		slot             int
	}
	var all []lost
	for rows.Next() {
		var l lost
		if err := rows.Scan(&l.app, &l.slot, &l.dep, &l.worker); err != nil {
			rows.Close()
			return 0, err
		}
		if l.dep != 0 {
			all = append(all, l)
		}
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return 0, err
	}
	n := 0
	for _, l := range all {
		a, err := lockApp(ctx, tx, l.app)
		if err != nil {
			return n, err
		}
		active, _, err := activeSlots(ctx, tx, l.app)
		if err != nil {
			return n, err
		}
		if active[l.slot] {
			continue
		}
		// A slot whose volume data (its copy of a per-instance volume) is
		// on the gone worker waits for that worker.
		pin, err := volumes.SlotWorker(ctx, tx, l.app, l.slot)
		if err != nil {
			return n, err
		}
		if pin != 0 {
			continue
		}
		// A start elsewhere that just failed is tried again a minute later,
		// not on every recovery pass.
		var failedLately bool
		if err := tx.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM jobs WHERE app_id = $1 AND kind IN ('deploy', 'rollback')
			AND state = 'failed' AND payload->>'replace' = 'true' AND COALESCE((payload->>'slot')::int, 0) = $2
			AND finished_at > now() - interval '1 minute')`, l.app, l.slot).Scan(&failedLately); err != nil {
			return n, err
		}
		if failedLately {
			continue
		}
		extra := map[string]any{"replace": true}
		if l.worker != 0 {
			// Told to forget the instance once it runs elsewhere, should it
			// be back by then.
			extra["from_worker"] = l.worker
		}
		if err := slotJob(ctx, tx, l.app, l.dep, a, l.slot, extra); err != nil {
			return n, err
		}
		var name string
		tx.QueryRow(ctx, "SELECT name FROM workers WHERE id = $1", l.worker).Scan(&name)
		if err := logLine(ctx, tx, l.dep, fmt.Sprintf("instance %d's worker %s is gone: starting it on another worker", l.slot+1, name)); err != nil {
			return n, err
		}
		n++
	}
	return n, nil
}

// Forget gives up the stop, delete and restart jobs that wait for a gone
// worker: what ran there is forgotten (the operator cleans that host, or
// the worker, should it come back, removes the containers no longer in
// its desired state). A stop or delete job counts as done, so the app is
// stopped, or its deletion completes once its other workers are done; a
// restart job is cancelled. It returns how many jobs it gave up.
func Forget(ctx context.Context, tx pgx.Tx, grace time.Duration) (int, error) {
	rows, err := tx.Query(ctx, `WITH `+goneCTE+`
		SELECT j.id, j.kind, g.name FROM jobs j JOIN apps a ON a.id = j.app_id
		JOIN gone g ON g.id = CASE WHEN j.payload->>'worker_id' ~ '^[1-9][0-9]{0,17}$' THEN (j.payload->>'worker_id')::bigint ELSE a.worker_id END
		WHERE j.state = 'pending' AND j.kind IN ('stop', 'delete', 'restart')
		ORDER BY j.id FOR UPDATE OF j SKIP LOCKED`, grace.String())
	if err != nil {
		return 0, err
	}
	type waiting struct {
		id           int64
		kind, worker string
	}
	list, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (waiting, error) {
		var w waiting
		err := r.Scan(&w.id, &w.kind, &w.worker)
		return w, err
	})
	if err != nil {
		return 0, err
	}
	var out []jobs.Job
	for _, w := range list {
		state, reason := "succeeded", "what ran there is forgotten (its containers are left on that host)"
		if w.kind == wsproto.JobRestart {
			state, reason = "cancelled", "its instances were not restarted"
		}
		j, ok, err := jobs.GiveUp(ctx, tx, w.id, state, "worker "+w.worker+" is gone: "+reason)
		if err != nil {
			return 0, err
		}
		if ok {
			out = append(out, j)
		}
	}
	for _, g := range out {
		switch g.Kind {
		case wsproto.JobStop:
			if err := deploys.Stopped(ctx, tx, g.AppID); err != nil {
				return 0, err
			}
		case wsproto.JobDelete:
			if err := deploys.RemoveDeleted(ctx, tx, g.AppID); err != nil {
				return 0, err
			}
		case wsproto.JobRestart:
			// An instance that left routing for its restart comes back
			// (its worker's next report, or its move, tells the truth).
			var p wsproto.RestartPayload
			if json.Unmarshal(g.Payload, &p) == nil && p.Slot != nil && p.Drain {
				if err := setRouted(ctx, tx, g.AppID, *p.Slot, true); err != nil {
					return 0, err
				}
			}
		}
	}
	if len(out) > 0 {
		if err := network.NotifyChanged(ctx, tx); err != nil {
			return 0, err
		}
	}
	return len(out), nil
}
