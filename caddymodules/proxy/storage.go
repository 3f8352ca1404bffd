package proxy

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/caddyserver/certmagic"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/wisehosting/wisehosting/caddymodules/core"
	"github.com/wisehosting/wisehosting/internal/certstore"
	"github.com/wisehosting/wisehosting/internal/credentials"
	"github.com/wisehosting/wisehosting/internal/store"
)

func init() {
	caddy.RegisterModule(new(Storage))
}

// Storage is `caddy.storage.wisehosting`: certmagic storage in the control
// plane's Postgres (tables certmagic_data and certmagic_locks). The control
// plane uses it; proxies use `caddy.storage.wisehosting_cp`, which reaches
// the same storage through the control plane and holds no database
// credential.
type Storage struct {
	// Postgres URL of the control plane's database. Credential
	// `database_url` overrides it.
	DatabaseURL string `json:"database_url,omitempty"`
	// Replaces the URL's password. Credential `database_password`
	// overrides it.
	DatabasePassword string `json:"database_password,omitempty"`

	db     certstore.DB
	key    string
	holder string

	mu    sync.Mutex
	locks map[string]context.CancelFunc // extenders of held locks
}

// NewStorage is a Storage on an open pool (the control plane's own).
func NewStorage(pool *pgxpool.Pool) *Storage {
	s := &Storage{db: certstore.DB{Pool: pool}}
	s.init()
	return s
}

func (s *Storage) init() {
	b := make([]byte, 16)
	rand.Read(b)
	s.holder = hex.EncodeToString(b)
	s.locks = map[string]context.CancelFunc{}
}

// CaddyModule returns the Caddy module information.
func (*Storage) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{ID: "caddy.storage.wisehosting", New: func() caddy.Module { return new(Storage) }}
}

var storagePools = caddy.NewUsagePool()

type poolDestructor struct{ *pgxpool.Pool }

func (p poolDestructor) Destruct() error { p.Close(); return nil }

// Provision connects (sharing one pool per database across reloads).
func (s *Storage) Provision(ctx caddy.Context) error {
	repl := caddy.NewReplacer()
	s.DatabaseURL = repl.ReplaceKnown(s.DatabaseURL, "")
	s.DatabasePassword = repl.ReplaceKnown(s.DatabasePassword, "")
	if err := credentials.Apply(credentials.DatabaseURL, &s.DatabaseURL); err != nil {
		return err
	}
	if err := credentials.Apply(credentials.DatabasePassword, &s.DatabasePassword); err != nil {
		return err
	}
	if s.DatabaseURL == "" {
		return errors.New("caddy.storage.wisehosting: database_url is required (a proxy uses storage wisehosting_cp instead)")
	}
	s.key = s.DatabaseURL + "\x00" + s.DatabasePassword
	v, _, err := storagePools.LoadOrNew(s.key, func() (caddy.Destructor, error) {
		octx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
		defer cancel()
		p, err := store.Open(octx, s.DatabaseURL, store.Options{MaxConns: 4, Password: s.DatabasePassword, AppName: "wisehosting-certs"})
		if err != nil {
			return nil, err
		}
		return poolDestructor{p}, nil
	})
	if err != nil {
		return fmt.Errorf("caddy.storage.wisehosting: %w", err)
	}
	s.db = certstore.DB{Pool: v.(poolDestructor).Pool}
	s.init()
	return nil
}

// Cleanup releases the pool.
func (s *Storage) Cleanup() error {
	if s.key != "" {
		_, err := storagePools.Delete(s.key)
		return err
	}
	return nil
}

// CertMagicStorage implements caddy.StorageConverter.
func (s *Storage) CertMagicStorage() (certmagic.Storage, error) { return s, nil }

// Store implements certmagic.Storage.
func (s *Storage) Store(ctx context.Context, key string, value []byte) error {
	return s.db.Put(ctx, key, value)
}

// Load implements certmagic.Storage; a missing key is fs.ErrNotExist.
func (s *Storage) Load(ctx context.Context, key string) ([]byte, error) {
	v, _, err := s.db.Get(ctx, key)
	return v, err
}

// Delete implements certmagic.Storage: the key and, like a directory,
// everything below it.
func (s *Storage) Delete(ctx context.Context, key string) error { return s.db.Delete(ctx, key) }

// Exists implements certmagic.Storage.
func (s *Storage) Exists(ctx context.Context, key string) bool {
	_, err := s.db.Stat(ctx, key)
	return err == nil
}

// List implements certmagic.Storage.
func (s *Storage) List(ctx context.Context, prefix string, recursive bool) ([]string, error) {
	return s.db.List(ctx, prefix, recursive)
}

// Stat implements certmagic.Storage.
func (s *Storage) Stat(ctx context.Context, key string) (certmagic.KeyInfo, error) {
	ki, err := s.db.Stat(ctx, key)
	return certmagic.KeyInfo{Key: key, Modified: ki.Modified, Size: ki.Size, IsTerminal: ki.Terminal}, err
}

// lockTTL is how long a lock lives without its holder extending it: a
// process that dies holding one blocks the others for at most this long.
const lockTTL = 2 * time.Minute

// Lock implements certmagic.Locker: a row in certmagic_locks naming this
// storage as holder, taken over when lapsed, extended while held.
func (s *Storage) Lock(ctx context.Context, name string) error {
	for {
		ok, err := s.db.TryLock(ctx, name, s.holder, lockTTL)
		if err != nil {
			return err
		}
		if ok {
			break
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(time.Second):
		}
	}
	rctx, cancel := context.WithCancel(context.Background())
	s.mu.Lock()
	if old := s.locks[name]; old != nil {
		old()
	}
	s.locks[name] = cancel
	s.mu.Unlock()
	go func() {
		t := time.NewTicker(lockTTL / 4)
		defer t.Stop()
		for {
			select {
			case <-rctx.Done():
				return
			case <-t.C:
				s.db.TryLock(rctx, name, s.holder, lockTTL)
			}
		}
	}()
	return nil
}

// Unlock implements certmagic.Locker.
func (s *Storage) Unlock(ctx context.Context, name string) error {
	s.mu.Lock()
	if cancel := s.locks[name]; cancel != nil {
		cancel()
		delete(s.locks, name)
	}
	s.mu.Unlock()
	return s.db.Unlock(ctx, name, s.holder)
}

// UnmarshalCaddyfile reads `storage wisehosting [{ database_url …; database_password … }]`.
func (s *Storage) UnmarshalCaddyfile(d *caddyfile.Dispenser) error {
	return core.Options{App: "storage wisehosting",
		Strings: map[string]*string{"database_url": &s.DatabaseURL, "database_password": &s.DatabasePassword}}.Read(d)
}

// Interface guards.
var (
	_ caddy.StorageConverter = (*Storage)(nil)
	_ certmagic.Storage      = (*Storage)(nil)
	_ caddy.Provisioner      = (*Storage)(nil)
	_ caddy.CleanerUpper     = (*Storage)(nil)
	_ caddyfile.Unmarshaler  = (*Storage)(nil)
)
