package jobs

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"

	"github.com/jackc/pgx/v5"

	"github.com/wisehosting/wisehosting/internal/plans"
	"github.com/wisehosting/wisehosting/internal/wsproto"
)

// pending is a claimed job waiting for a worker.
type pending struct {
	Job
	appWorker int64
	pinWorker int64        // jobs.pin_worker_id
	plan      string       // the app's team's plan
	app       plans.Limits // the app's row
}

// payloadLimits are the limits in a deploy payload (wsproto.DeployPayload).
type payloadLimits struct {
	CPUMillis     int `json:"cpu_millis"`
	MemoryMB      int `json:"memory_mb"`
	DiskMB        int `json:"disk_mb"`
	BandwidthKbit int `json:"bandwidth_kbit"`
}

// clampToPlans gives every deploy and rollback in batch the limits its
// app's team's plan allows, before it is placed: a limit above the plan's,
// or not set where the plan has one, becomes the plan's (plans.Effective)
// in the job's reservation, in the payload the worker enforces and in the
// app's row (which the desired state sent to a reconnecting worker and the
// reservation of running apps read), with a line in the deployment's log.
// The edges already refuse limits above the plan; this covers what
// changed since the job was enqueued (a downgrade, a requeued job) and
// limits left unset. A job of a team whose plan is not configured fails.
// It returns the jobs left to place.
func clampToPlans(ctx context.Context, tx pgx.Tx, reg *plans.Registry, batch []pending) ([]pending, error) {
	out := batch[:0]
	for _, p := range batch {
		if p.AppID == 0 || (p.Kind != wsproto.JobDeploy && p.Kind != wsproto.JobRollback) {
			out = append(out, p)
			continue
		}
		plan, ok := reg.Get(p.plan)
		if !ok {
			msg := fmt.Sprintf("the team is on plan %q, which is not configured (plans: %s)", p.plan, strings.Join(reg.Names(), ", "))
			if _, err := tx.Exec(ctx, `UPDATE jobs SET state = 'failed', error = $2, finished_at = now() WHERE id = $1`, p.ID, msg); err != nil {
				return nil, err
			}
			if p.DeploymentID != 0 {
				if err := FailDeployment(ctx, tx, p.DeploymentID, p.AppID, msg); err != nil {
					return nil, err
				}
			}
			continue
		}
		var pl payloadLimits
		if err := json.Unmarshal(p.Payload, &pl); err != nil {
			return nil, fmt.Errorf("job %d: decoding payload: %w", p.ID, err)
		}
		eff, lowered := plan.Effective(plans.Limits{CPUMillis: pl.CPUMillis, MemoryMB: pl.MemoryMB, DiskMB: pl.DiskMB, BandwidthKbit: pl.BandwidthKbit})
		if len(lowered) > 0 {
			if _, err := tx.Exec(ctx, `UPDATE jobs SET cpu_millis = $2, memory_mb = $3,
				payload = payload || jsonb_build_object('cpu_millis', $2::int, 'memory_mb', $3::int, 'disk_mb', $4::int, 'bandwidth_kbit', $5::int)
				WHERE id = $1`, p.ID, eff.CPUMillis, eff.MemoryMB, eff.DiskMB, eff.BandwidthKbit); err != nil {
				return nil, err
			}
			if p.DeploymentID != 0 {
				if _, err := tx.Exec(ctx, `INSERT INTO deployment_logs (deployment_id, stream, line) VALUES ($1, 'system', $2)`,
					p.DeploymentID, fmt.Sprintf("limits set to what plan %q allows: %s", p.plan, strings.Join(lowered, ", "))); err != nil {
					return nil, err
				}
			}
			p.CPUMillis, p.MemoryMB = eff.CPUMillis, eff.MemoryMB
		}
		// The app's row, which may differ from the payload (scaled since
		// the job was enqueued), gets the same treatment.
		if a, lowered := plan.Effective(p.app); len(lowered) > 0 {
			if _, err := tx.Exec(ctx, `UPDATE apps SET cpu_millis = $2, memory_mb = $3, disk_mb = $4, bandwidth_kbit = $5, updated_at = now()
				WHERE id = $1`, p.AppID, a.CPUMillis, a.MemoryMB, a.DiskMB, a.BandwidthKbit); err != nil {
				return nil, err
			}
		}
		out = append(out, p)
	}
	return out, nil
}
