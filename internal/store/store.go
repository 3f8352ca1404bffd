// Package store owns the control plane's Postgres plumbing: the pool, the
// schema migrations, the process's one LISTEN connection (Listener, shared
// by every consumer of notifications) and single-replica work (Exclusive,
// Periodic: a transaction holding a named advisory lock, skipped by the
// replicas that do not get it). Feature packages keep their SQL next to
// their logic but get their pool from here.
package store

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
)

// Options tune the pool.
type Options struct {
	// MaxConns caps the pool; 0 means pgx's default (max(4, NumCPU)).
	MaxConns int32
	// Password, when set, replaces the DSN's password (systemd credential).
	Password string
	// AppName is reported to Postgres as application_name.
	AppName string
}

// Open parses dsn, connects, and pings once so a bad DSN fails at start
// with a clear message rather than on the first request.
func Open(ctx context.Context, dsn string, opt Options) (*pgxpool.Pool, error) {
	pool, err := NewPool(dsn, opt)
	if err != nil {
		return nil, err
	}
	if err := Ping(ctx, pool); err != nil {
		pool.Close()
		return nil, err
	}
	return pool, nil
}

// Ping checks that the pool's database answers, within 10 seconds.
func Ping(ctx context.Context, pool *pgxpool.Pool) error {
	pctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := pool.Ping(pctx); err != nil {
		c := pool.Config().ConnConfig
		return fmt.Errorf("connecting to database %s@%s:%d/%s: %w", c.User, c.Host, c.Port, c.Database, err)
	}
	return nil
}

// NewPool parses dsn and makes its pool without connecting: connections
// are opened on first use, so a pool can exist while the database is down.
func NewPool(dsn string, opt Options) (*pgxpool.Pool, error) {
	if dsn == "" {
		return nil, errors.New("no database URL configured")
	}
	cfg, err := pgxpool.ParseConfig(dsn)
	if err != nil {
		return nil, fmt.Errorf("parsing database URL: %w", err)
	}
	if opt.Password != "" {
		cfg.ConnConfig.Password = opt.Password
	}
	if opt.MaxConns > 0 {
		cfg.MaxConns = opt.MaxConns
	}
	if opt.AppName == "" {
		opt.AppName = "wisehosting"
	}
	if cfg.ConnConfig.RuntimeParams == nil {
		cfg.ConnConfig.RuntimeParams = map[string]string{}
	}
	cfg.ConnConfig.RuntimeParams["application_name"] = opt.AppName
	cfg.HealthCheckPeriod = 15 * time.Second
	pool, err := pgxpool.NewWithConfig(context.Background(), cfg)
	if err != nil {
		return nil, fmt.Errorf("creating database pool: %w", err)
	}
	return pool, nil
}

// Execer is satisfied by pgx.Tx, *pgx.Conn and *pgxpool.Pool: functions
// that take one run inside their caller's transaction when given one.
type Execer interface {
	Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error)
}
