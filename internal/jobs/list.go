package jobs

import (
	"context"
	"slices"
	"strings"

	"github.com/jackc/pgx/v5"

	"github.com/wisehosting/wisehosting/internal/errs"
)

// States are the states of a job.
var States = []string{"pending", "assigned", "running", "succeeded", "failed", "cancelled"}

// MaxList is the most jobs List returns.
const MaxList = 1000

// List returns the newest jobs first, across all teams (for the
// platform's operator): those in state, or all when it is "", at most
// limit (1 to MaxList).
func List(ctx context.Context, q interface {
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
}, state string, limit int) ([]Job, error) {
	if state != "" && !slices.Contains(States, state) {
		return nil, errs.Field("state", "state must be one of "+strings.Join(States, ", "))
	}
	if limit < 1 || limit > MaxList {
		return nil, errs.Field("limit", "limit must be between 1 and 1000")
	}
	rows, err := q.Query(ctx, `SELECT `+jobColumns+` FROM jobs WHERE ($1 = '' OR state = $1) ORDER BY id DESC LIMIT $2`, state, limit)
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, func(row pgx.CollectableRow) (Job, error) { return scanJob(row) })
}
