package store

import (
	"context"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// Exclusive runs fn in a transaction that holds the transaction-scoped
// advisory lock called name. When another session holds that lock, fn does
// not run and Exclusive returns false: work that one replica at a time must
// do (recovery, sweeps, the event relay) is skipped by the others rather
// than queued behind the one doing it. The lock ends with the transaction,
// so a replica that dies mid-run frees it at once.
func Exclusive(ctx context.Context, pool *pgxpool.Pool, name string, fn func(tx pgx.Tx) error) (ran bool, err error) {
	err = pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
		ran = false
		if err := tx.QueryRow(ctx, "SELECT pg_try_advisory_xact_lock(hashtext($1))", name).Scan(&ran); err != nil || !ran {
			return err
		}
		return fn(tx)
	})
	if err != nil {
		ran = false
	}
	return ran, err
}

// Periodic is background work that runs every Interval on one replica at a
// time (see Exclusive).
type Periodic struct {
	// Name is the advisory lock's name, e.g. "wisehosting.logs.sweep".
	Name     string
	Interval time.Duration
	// Now runs a first round as soon as Loop starts instead of after one
	// Interval.
	Now bool
	// Run is one round, in the locked transaction.
	Run func(ctx context.Context, tx pgx.Tx) error
	// OnError reports a failed round (not called once ctx has ended).
	OnError func(error)
}

// Loop runs rounds until ctx ends.
func (p Periodic) Loop(ctx context.Context, pool *pgxpool.Pool) {
	Every(ctx, p.Interval, p.Now, func(ctx context.Context) {
		_, err := Exclusive(ctx, pool, p.Name, func(tx pgx.Tx) error { return p.Run(ctx, tx) })
		if err != nil && ctx.Err() == nil && p.OnError != nil {
			p.OnError(err)
		}
	})
}

// Every calls fn every interval until ctx ends (first right away when now
// is set). A round that overruns delays the next one; rounds never overlap.
func Every(ctx context.Context, interval time.Duration, now bool, fn func(ctx context.Context)) {
	t := time.NewTicker(interval)
	defer t.Stop()
	if now && ctx.Err() == nil {
		fn(ctx)
	}
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			fn(ctx)
		}
	}
}
