package deploys

import (
	"context"

	"github.com/wisehosting/wisehosting/internal/jobs"
	"github.com/wisehosting/wisehosting/internal/plans"
)

// PlanPolicy makes the plan registry decide, in the transaction that
// would deploy: previews only on plans that include them, and a deploy
// (push, manual, rollback, preview) only while the app's limits fit its
// team's plan, so a downgraded team scales down before it deploys again.
// Refusals are errs.Forbidden errors.
func PlanPolicy(reg *plans.Registry) Policy {
	return Policy{
		Previews: func(ctx context.Context, q jobs.Querier, teamID int64) error { return reg.CheckPreview(ctx, q, teamID) },
		Deploy: func(ctx context.Context, q jobs.Querier, app App) error {
			return reg.CheckDeploy(ctx, q, app.TeamID, plans.Limits{CPUMillis: app.CPUMillis, MemoryMB: app.MemoryMB,
				DiskMB: app.DiskMB, BandwidthKbit: app.BandwidthKbit})
		},
	}
}
