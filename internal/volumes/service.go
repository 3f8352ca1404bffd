package volumes

import (
	"context"
	"errors"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/wisehosting/wisehosting/internal/accounts"
	"github.com/wisehosting/wisehosting/internal/errs"
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

// CreateBySlug is Create for the app of that slug (the operator's
// `wisehosting volume add`, which names apps by slug across teams),
// audited as volume.create by the operator.
func (s *Service) CreateBySlug(ctx context.Context, slug string, n New) (Volume, error) {
	var v Volume
	err := pgx.BeginFunc(ctx, s.Pool, func(tx pgx.Tx) error {
		var app, team int64
		err := tx.QueryRow(ctx, "SELECT id, team_id FROM apps WHERE slug = $1 AND deleting_at IS NULL", slug).Scan(&app, &team)
		if errors.Is(err, pgx.ErrNoRows) {
			return errs.Invalidf("no app %q", slug)
		}
		if err != nil {
			return err
		}
		if v, err = Create(ctx, tx, team, app, n); err != nil {
			return err
		}
		return accounts.Entry{TeamID: team, Action: "volume.create", Target: slug, Details: map[string]any{"volume_id": v.ID,
			"name": v.Name, "mount_path": v.MountPath, "size_mb": v.SizeMB, "by": "operator command"}}.Write(ctx, tx)
	})
	return v, err
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
