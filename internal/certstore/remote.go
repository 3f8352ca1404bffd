package certstore

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"sync"
	"sync/atomic"
	"time"

	"github.com/caddyserver/certmagic"
	"go.uber.org/zap"
)

// Remote is a proxy's certmagic storage: the control plane's storage API
// (Client) as the source of truth, with every value it reads or writes
// kept in the local Cache. While the control plane or its database is
// unreachable, reads are answered from the cache (for Offline after each
// failure, without asking again), so the certificates the proxy had stay
// served, also across restarts; writes and locks fail until it is back.
type Remote struct {
	client  *Client
	cache   Cache
	ttl     time.Duration
	logger  *zap.Logger
	holder  string
	offline atomic.Int64 // unix nanos until which reads skip the network

	mu   sync.Mutex
	held map[string]context.CancelFunc
}

// Offline is how long reads go straight to the cache after the control
// plane failed to answer.
const Offline = 5 * time.Second

// NewRemote returns the storage. lockTTL is how long a lock outlives its
// holder (a proxy that dies holding one); the holder extends it every
// third of that.
func NewRemote(c *Client, cache Cache, lockTTL time.Duration, logger *zap.Logger) *Remote {
	b := make([]byte, 16)
	rand.Read(b)
	if logger == nil {
		logger = zap.NewNop()
	}
	return &Remote{client: c, cache: cache, ttl: lockTTL, logger: logger, holder: hex.EncodeToString(b), held: map[string]context.CancelFunc{}}
}

// errOffline stands for the answer not asked while offline.
var errOffline = fmt.Errorf("%w: recently unreachable", ErrUnavailable)

func (r *Remote) online() bool { return time.Now().UnixNano() >= r.offline.Load() }

// fallback reports whether err allows answering from the cache, and notes
// the outage.
func (r *Remote) fallback(err error) bool {
	if !errors.Is(err, ErrUnavailable) {
		return false
	}
	if r.online() { // an outage starts (an ongoing one is not extended by reads)
		r.logger.Warn("certificate storage: control plane unreachable, answering from the local copy", zap.Error(err))
		r.offline.Store(time.Now().Add(Offline).UnixNano())
	}
	return true
}

func checkKey(key string) error {
	if err := CheckKey(key); err != nil {
		return fmt.Errorf("storage key %q: %w", key, err)
	}
	return nil
}

// Store implements certmagic.Storage.
func (r *Remote) Store(ctx context.Context, key string, value []byte) error {
	if err := checkKey(key); err != nil {
		return err
	}
	if err := r.client.Put(ctx, key, value); err != nil {
		r.fallback(err)
		return err
	}
	if err := r.cache.Put(key, value, time.Now()); err != nil {
		r.logger.Warn("certificate storage: writing the local copy", zap.String("key", key), zap.Error(err))
	}
	return nil
}

// Load implements certmagic.Storage.
func (r *Remote) Load(ctx context.Context, key string) ([]byte, error) {
	if err := checkKey(key); err != nil {
		return nil, err
	}
	if r.online() {
		v, mod, err := r.client.Get(ctx, key)
		switch {
		case err == nil:
			if err := r.cache.Put(key, v, mod); err != nil {
				r.logger.Warn("certificate storage: writing the local copy", zap.String("key", key), zap.Error(err))
			}
			return v, nil
		case errors.Is(err, fs.ErrNotExist):
			r.cache.Delete(key)
			return nil, fs.ErrNotExist
		case !r.fallback(err):
			return nil, err
		}
	}
	v, err := r.cache.Get(key)
	if err != nil {
		return nil, fs.ErrNotExist
	}
	return v, nil
}

// Delete implements certmagic.Storage.
func (r *Remote) Delete(ctx context.Context, key string) error {
	if CheckKey(key) != nil && CheckPrefix(key) != nil {
		return checkKey(key)
	}
	if err := r.client.Delete(ctx, key); err != nil {
		r.fallback(err)
		return err
	}
	r.cache.Delete(key)
	return nil
}

// Exists implements certmagic.Storage.
func (r *Remote) Exists(ctx context.Context, key string) bool {
	_, err := r.Stat(ctx, key)
	return err == nil
}

// Stat implements certmagic.Storage.
func (r *Remote) Stat(ctx context.Context, key string) (certmagic.KeyInfo, error) {
	if CheckKey(key) != nil && CheckPrefix(key) != nil {
		return certmagic.KeyInfo{}, checkKey(key)
	}
	var ki KeyInfo
	err := errOffline
	if r.online() {
		ki, err = r.client.Stat(ctx, key)
	}
	if err != nil {
		if !r.fallback(err) {
			return certmagic.KeyInfo{}, err
		}
		if ki, err = r.cache.Stat(key); err != nil {
			return certmagic.KeyInfo{}, err
		}
	}
	return certmagic.KeyInfo{Key: key, Modified: ki.Modified, Size: ki.Size, IsTerminal: ki.Terminal}, nil
}

// List implements certmagic.Storage (certmagic lists one level at a time;
// a recursive listing walks the levels).
func (r *Remote) List(ctx context.Context, prefix string, recursive bool) ([]string, error) {
	if err := CheckPrefix(prefix); err != nil {
		return nil, fmt.Errorf("storage prefix %q: %w", prefix, err)
	}
	var keys []string
	err := errOffline
	if r.online() {
		keys, err = r.client.List(ctx, prefix)
	}
	if err != nil {
		if !r.fallback(err) {
			return nil, err
		}
		return r.cache.List(prefix, recursive)
	}
	if !recursive {
		return keys, nil
	}
	var out []string
	for _, k := range keys {
		if CheckKey(k) == nil {
			if ki, err := r.client.Stat(ctx, k); err == nil && ki.Terminal {
				out = append(out, k)
				continue
			}
		}
		sub, err := r.List(ctx, k, true)
		if err != nil && !errors.Is(err, fs.ErrNotExist) {
			return nil, err
		}
		out = append(out, sub...)
	}
	return out, nil
}

// Lock implements certmagic.Locker: it asks the control plane every
// second until the lock is free or lapsed, then extends it until Unlock.
func (r *Remote) Lock(ctx context.Context, name string) error {
	for {
		ok, err := r.TryLock(ctx, name)
		if err != nil || ok {
			return err
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(time.Second):
		}
	}
}

// TryLock implements certmagic.TryLocker.
func (r *Remote) TryLock(ctx context.Context, name string) (bool, error) {
	if err := CheckLockName(name); err != nil {
		return false, err
	}
	ok, err := r.client.TryLock(ctx, name, r.holder, r.ttl)
	if err != nil || !ok {
		return false, err
	}
	rctx, cancel := context.WithCancel(context.Background())
	r.mu.Lock()
	if old := r.held[name]; old != nil {
		old()
	}
	r.held[name] = cancel
	r.mu.Unlock()
	go r.extend(rctx, name)
	return true, nil
}

func (r *Remote) extend(ctx context.Context, name string) {
	t := time.NewTicker(r.ttl / 3)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			ok, err := r.client.TryLock(ctx, name, r.holder, r.ttl)
			if ctx.Err() != nil {
				return
			}
			if err != nil {
				r.logger.Warn("certificate storage: extending a lock", zap.String("lock", name), zap.Error(err))
			} else if !ok {
				r.logger.Error("certificate storage: lock lapsed and taken by another proxy", zap.String("lock", name))
				return
			}
		}
	}
}

// Unlock implements certmagic.Locker.
func (r *Remote) Unlock(ctx context.Context, name string) error {
	r.mu.Lock()
	if cancel := r.held[name]; cancel != nil {
		cancel()
		delete(r.held, name)
	}
	r.mu.Unlock()
	return r.client.Unlock(ctx, name, r.holder)
}

// Abandon stops extending every held lock without releasing it, as a
// process that dies would (tests).
func (r *Remote) Abandon() {
	r.mu.Lock()
	defer r.mu.Unlock()
	for n, cancel := range r.held {
		cancel()
		delete(r.held, n)
	}
}

// Interface guards.
var (
	_ certmagic.Storage   = (*Remote)(nil)
	_ certmagic.TryLocker = (*Remote)(nil)
)
