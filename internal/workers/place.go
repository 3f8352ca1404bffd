package workers

import (
	"context"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/wisehosting/wisehosting/internal/events"
	"github.com/wisehosting/wisehosting/internal/network"
)

// Place changes a worker's zone and/or mesh address (nil: keep), as the
// operator does, and in the same transaction tells every replica that
// routing changed and records the route.changed event: the change and its
// consequences commit together or not at all.
func Place(ctx context.Context, pool *pgxpool.Pool, name string, zone, wgIP *string) (Worker, error) {
	var w Worker
	err := pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
		var err error
		if w, err = SetPlacement(ctx, tx, name, zone, wgIP); err != nil {
			return err
		}
		if err := network.NotifyChanged(ctx, tx); err != nil {
			return err
		}
		return events.Emit(ctx, tx, events.Event{Kind: events.RouteChanged, Data: map[string]any{"worker": name}})
	})
	return w, err
}
