package core

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"go.uber.org/zap"

	"github.com/wisehosting/wisehosting/internal/secrets"
	"github.com/wisehosting/wisehosting/internal/store"
	workerkeys "github.com/wisehosting/wisehosting/internal/workers"
)

// dbState is whether the shared pool's database is usable: reachable,
// migrated and its worker keys sealed. A control plane whose database is
// down at boot starts anyway (health answers 503) and becomes ready when
// the database is; a database that answers but cannot be migrated (a
// dirty or newer schema) still stops the start.
type dbState struct {
	ready chan struct{} // closed once usable

	mu     sync.Mutex
	reason string // why not ready, for health
}

func newDBState() *dbState {
	return &dbState{ready: make(chan struct{}), reason: "connecting to the database"}
}

func (s *dbState) isReady() bool {
	select {
	case <-s.ready:
		return true
	default:
		return false
	}
}

func (s *dbState) setReason(r string) {
	s.mu.Lock()
	s.reason = r
	s.mu.Unlock()
}

// unreachableError is a database that did not answer.
type unreachableError struct{ err error }

func (e *unreachableError) Error() string { return e.err.Error() }
func (e *unreachableError) Unwrap() error { return e.err }

// bringUp pings, migrates and seals the worker keys.
func bringUp(ctx context.Context, p *pgxpool.Pool, kr *secrets.Keyring, logger *zap.Logger) error {
	if err := store.Ping(ctx, p); err != nil {
		return &unreachableError{err}
	}
	if err := migrate(p, logger); err != nil {
		return err
	}
	n, err := workerkeys.SealKeys(ctx, p, kr)
	if err != nil {
		return err
	}
	if n > 0 {
		logger.Info("sealed worker keys (added before key sealing, or under a previous secret)", zap.Int("workers", n))
	}
	return nil
}

// Retry delays of the bring-up while the database is down.
const (
	retryFirst = time.Second
	retryMax   = 30 * time.Second
)

// retryBringUp tries bringUp with a growing delay until it succeeds or ctx
// ends; it reports whether it succeeded.
func retryBringUp(ctx context.Context, st *dbState, p *pgxpool.Pool, kr *secrets.Keyring, logger *zap.Logger) bool {
	delay := retryFirst
	for {
		select {
		case <-ctx.Done():
			return false
		case <-time.After(delay):
		}
		bctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
		err := bringUp(bctx, p, kr, logger)
		cancel()
		if err == nil {
			logger.Info("database ready")
			close(st.ready)
			return true
		}
		if ctx.Err() != nil {
			return false
		}
		var ue *unreachableError
		if errors.As(err, &ue) {
			st.setReason("database unreachable")
			logger.Warn("database unreachable; retrying", zap.Duration("in", min(2*delay, retryMax)), zap.Error(err))
		} else {
			st.setReason("database not migrated")
			logger.Error("preparing the database failed; retrying", zap.Duration("in", min(2*delay, retryMax)), zap.Error(err))
		}
		delay = min(2*delay, retryMax)
	}
}

// Ready reports whether the database is usable, and why not.
func (a *App) Ready() (bool, string) {
	if a.db == nil || a.db.isReady() {
		return true, ""
	}
	a.db.mu.Lock()
	defer a.db.mu.Unlock()
	return false, a.db.reason
}

// whenReady runs fn once the database is usable (at once when it is), on
// its own goroutine unless it is ready now, unless ctx ends first.
func (a *App) whenReady(ctx context.Context, fn func()) {
	if ok, _ := a.Ready(); ok {
		fn()
		return
	}
	a.startWG.Add(1)
	go func() {
		defer a.startWG.Done()
		select {
		case <-a.db.ready:
			fn()
		case <-ctx.Done():
		}
	}()
}
