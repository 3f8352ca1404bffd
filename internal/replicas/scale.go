package replicas

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/wisehosting/wisehosting/internal/jobs"
	"github.com/wisehosting/wisehosting/internal/network"
	"github.com/wisehosting/wisehosting/internal/volumes"
	"github.com/wisehosting/wisehosting/internal/wsproto"
)

// Settings are an app's instance count and rolling-deploy bounds.
type Settings struct {
	Replicas       int `json:"replicas"`
	MaxSurge       int `json:"max_surge"`
	MaxUnavailable int `json:"max_unavailable"`
	// VolumeGrace is how long the copies of per-instance volumes of the
	// slots a scale-down removes keep their data (volumes.DefaultGrace
	// when 0).
	VolumeGrace time.Duration `json:"-"`
}

// Check validates settings; the message is for the user. The plan's
// bound on replicas is checked by the caller (plans.Registry).
func (s Settings) Check() (field string, err error) {
	switch {
	case s.Replicas < 1:
		return "replicas", errors.New("an app runs at least 1 instance (stop it to run none)")
	case s.MaxSurge < 1:
		return "max_surge", errors.New("max_surge is at least 1: a rolling deploy starts at least one new instance at a time")
	case s.MaxUnavailable < 0:
		return "max_unavailable", errors.New("max_unavailable must not be negative")
	case s.MaxUnavailable >= s.Replicas && s.Replicas > 1:
		return "max_unavailable", fmt.Errorf("max_unavailable must be below replicas (%d): at least one instance keeps serving", s.Replicas)
	}
	return "", nil
}

// Scale sets an app's settings in tx. More instances start at once from
// the app's current deployment (its image, no rebuild on workers that
// have it), with fresh copies of the app's per-instance volumes; fewer
// ones leave routing at once and their containers stop after the drain
// delay, their volume copies released (kept for s.VolumeGrace). It
// returns the number of instances started.
func Scale(ctx context.Context, tx pgx.Tx, appID int64, s Settings) (int, error) {
	a, err := lockApp(ctx, tx, appID)
	if err != nil {
		return 0, err
	}
	// A shared volume's data lives on one worker: such an app runs one
	// instance. Per-instance volumes follow the slots.
	if err := volumes.CheckReplicas(ctx, tx, appID, s.Replicas); err != nil {
		return 0, err
	}
	if err := volumes.Scale(ctx, tx, appID, a.replicas, s.Replicas, s.VolumeGrace); err != nil {
		return 0, err
	}
	if _, err := tx.Exec(ctx, `UPDATE apps SET replicas = $2, max_surge = $3, max_unavailable = $4, updated_at = now() WHERE id = $1`,
		appID, s.Replicas, s.MaxSurge, s.MaxUnavailable); err != nil {
		return 0, err
	}
	old := a.replicas
	a.replicas, a.surge, a.unavailable = s.Replicas, s.MaxSurge, s.MaxUnavailable
	if s.Replicas < old {
		rows, err := tx.Query(ctx, `DELETE FROM app_instances WHERE app_id = $1 AND slot >= $2 RETURNING COALESCE(worker_id, 0)`, appID, s.Replicas)
		if err != nil {
			return 0, err
		}
		gone, err := pgx.CollectRows(rows, pgx.RowTo[int64])
		if err != nil {
			return 0, err
		}
		if _, err := jobs.CancelQueuedSlots(ctx, tx, appID, []string{wsproto.JobDeploy, wsproto.JobRollback}, s.Replicas,
			"the app was scaled down"); err != nil {
			return 0, err
		}
		if err := NotifyDesired(ctx, tx, gone...); err != nil {
			return 0, err
		}
		return 0, network.NotifyChanged(ctx, tx)
	}
	if s.Replicas == old {
		return 0, nil
	}
	// The app's current deployment: slot 0's.
	var dep int64
	err = tx.QueryRow(ctx, `SELECT d.id FROM apps a JOIN deployments d ON d.app_id = a.id AND d.status = 'succeeded' AND d.image <> ''
			AND d.worker_id = a.worker_id
		WHERE a.id = $1 AND a.status IN ('running', 'crashed') ORDER BY d.finished_at DESC NULLS LAST, d.id DESC LIMIT 1`, appID).Scan(&dep)
	if errors.Is(err, pgx.ErrNoRows) {
		return 0, nil // not deployed yet: its first deployment starts them all
	}
	if err != nil {
		return 0, err
	}
	active, _, err := activeSlots(ctx, tx, appID)
	if err != nil {
		return 0, err
	}
	n := 0
	for slot := old; slot < s.Replicas; slot++ {
		if active[slot] {
			continue
		}
		if err := slotJob(ctx, tx, appID, dep, a, slot, map[string]any{"replace": true}); err != nil {
			return n, err
		}
		if err := logLine(ctx, tx, dep, fmt.Sprintf("scaled to %d instances: starting instance %d", s.Replicas, slot+1)); err != nil {
			return n, err
		}
		n++
	}
	return n, nil
}
