package ratelimit

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
)

// Failures counts failed attempts per key in Postgres (table
// auth_failures), so every control plane replica enforces one limit.
//
// A key is blocked while it has Limit failures within Window. With Backoff
// set, a block also ends Backoff after the key's last failure: one more
// attempt is then judged, and a failure blocks again for Backoff. Only
// failures are counted; Reset forgets a key (after a success).
type Failures struct {
	Pool    *pgxpool.Pool
	Limit   int
	Window  time.Duration
	Backoff time.Duration
}

// Blocked reports whether key may not try now.
func (f *Failures) Blocked(ctx context.Context, key string) (bool, error) {
	var blocked bool
	err := f.Pool.QueryRow(ctx, `SELECT count(*) >= $2 AND ($4::interval = '0s' OR max(at) > now() - $4::interval)
		FROM auth_failures WHERE key = $1 AND at > now() - $3::interval`,
		key, f.Limit, f.Window.String(), f.Backoff.String()).Scan(&blocked)
	if err != nil {
		return false, fmt.Errorf("reading failed attempts: %w", err)
	}
	return blocked, nil
}

// Record counts a failure for key and forgets the key's failures older
// than Window (and, now and then, everyone's older than a day).
func (f *Failures) Record(ctx context.Context, key string) error {
	_, err := f.Pool.Exec(ctx, `WITH ins AS (INSERT INTO auth_failures (key) VALUES ($1))
		DELETE FROM auth_failures WHERE (key = $1 AND at < now() - $2::interval)
			OR (random() < 0.01 AND at < now() - interval '1 day')`, key, f.Window.String())
	if err != nil {
		return fmt.Errorf("recording a failed attempt: %w", err)
	}
	return nil
}

// Reset forgets key's failures.
func (f *Failures) Reset(ctx context.Context, key string) error {
	_, err := f.Pool.Exec(ctx, "DELETE FROM auth_failures WHERE key = $1", key)
	return err
}
