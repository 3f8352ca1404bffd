package cron

import (
	"context"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/wisehosting/wisehosting/internal/accounts"
)

// Service is apps' scheduled jobs as their team manages them: each change
// writes its audit record in its transaction.
type Service struct {
	Pool *pgxpool.Pool
}

// List lists an app's scheduled jobs (never nil).
func (s *Service) List(ctx context.Context, appID int64) ([]Job, error) {
	list, err := List(ctx, s.Pool, appID)
	if list == nil {
		list = []Job{}
	}
	return list, err
}

// Get reads scheduled job id of an app.
func (s *Service) Get(ctx context.Context, appID, id int64) (Job, error) {
	return Get(ctx, s.Pool, appID, id)
}

// Runs lists the newest runs of scheduled job id of an app (never nil).
func (s *Service) Runs(ctx context.Context, appID, id int64, limit int) ([]Run, error) {
	if _, err := Get(ctx, s.Pool, appID, id); err != nil {
		return nil, err
	}
	runs, err := Runs(ctx, s.Pool, appID, id, limit)
	if runs == nil {
		runs = []Run{}
	}
	return runs, err
}

// Create makes a scheduled job of an app.
func (s *Service) Create(ctx context.Context, appID int64, spec Spec, audit accounts.Hook[Job]) (Job, error) {
	return accounts.Change(ctx, s.Pool, audit, func(tx pgx.Tx) (Job, error) { return Create(ctx, tx, appID, spec) })
}

// Update changes scheduled job id of an app.
func (s *Service) Update(ctx context.Context, appID, id int64, spec Spec, audit accounts.Hook[Job]) (Job, error) {
	return accounts.Change(ctx, s.Pool, audit, func(tx pgx.Tx) (Job, error) { return Update(ctx, tx, appID, id, spec) })
}

// Delete removes scheduled job id of an app.
func (s *Service) Delete(ctx context.Context, appID, id int64, audit accounts.Hook[int64]) error {
	_, err := accounts.Change(ctx, s.Pool, audit, func(tx pgx.Tx) (int64, error) { return id, Delete(ctx, tx, appID, id) })
	return err
}

// RunNow starts a run of scheduled job id now, outside its schedule.
func (s *Service) RunNow(ctx context.Context, appID, id int64, audit accounts.Hook[Run]) (Run, error) {
	return accounts.Change(ctx, s.Pool, audit, func(tx pgx.Tx) (Run, error) { return RunNow(ctx, tx, appID, id) })
}
