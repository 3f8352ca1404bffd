package volumes

import (
	"context"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/wisehosting/wisehosting/internal/accounts"
)

// Service is apps' volumes as their team manages them: each change writes
// its audit record in its transaction.
type Service struct {
	Pool *pgxpool.Pool
	// Grace is how long a released volume keeps its data.
	Grace time.Duration
}

// List lists an app's volumes (never nil).
func (s *Service) List(ctx context.Context, appID int64) ([]Volume, error) {
	return nonNil(List(ctx, s.Pool, appID))
}

// ListTeam lists a team's volumes, released ones until they are removed
// (never nil).
func (s *Service) ListTeam(ctx context.Context, teamID int64) ([]Volume, error) {
	return nonNil(ListTeam(ctx, s.Pool, teamID))
}

// Create makes volume n of an app of team.
func (s *Service) Create(ctx context.Context, teamID, appID int64, n New, audit accounts.Hook[Volume]) (Volume, error) {
	return accounts.Change(ctx, s.Pool, audit, func(tx pgx.Tx) (Volume, error) { return Create(ctx, tx, teamID, appID, n) })
}

// Release detaches volume id from its app; its data is removed after the
// grace period.
func (s *Service) Release(ctx context.Context, teamID, appID, id int64, audit accounts.Hook[Volume]) (Volume, error) {
	return accounts.Change(ctx, s.Pool, audit, func(tx pgx.Tx) (Volume, error) { return Release(ctx, tx, teamID, appID, id, s.Grace) })
}

func nonNil(list []Volume, err error) ([]Volume, error) {
	if list == nil {
		list = []Volume{}
	}
	return list, err
}
