package proxy

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"strings"
	"sync"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/caddyserver/certmagic"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/wisehosting/wisehosting/internal/credentials"
	"github.com/wisehosting/wisehosting/internal/store"
)

func init() {
	caddy.RegisterModule(new(Storage))
}

// Storage is `caddy.storage.wisehosting`: certmagic storage in the control
// plane's Postgres (tables certmagic_data and certmagic_locks), so several
// proxies share certificates, ACME accounts and locks: a certificate is
// issued once, not once per proxy.
type Storage struct {
	// Postgres URL of the control plane's database (over the mesh).
	// Credential `database_url` overrides it.
	DatabaseURL string `json:"database_url,omitempty"`
	// Replaces the URL's password. Credential `database_password`
	// overrides it.
	DatabasePassword string `json:"database_password,omitempty"`

	pool *pgxpool.Pool
	key  string

	mu    sync.Mutex
	locks map[string]context.CancelFunc // refreshers of held locks
}

// NewStorage is a Storage on an open pool (the control plane's own).
func NewStorage(pool *pgxpool.Pool) *Storage {
	return &Storage{pool: pool, locks: map[string]context.CancelFunc{}}
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
		return errors.New("caddy.storage.wisehosting: database_url is required")
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
	s.pool = v.(poolDestructor).Pool
	s.locks = map[string]context.CancelFunc{}
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
	_, err := s.pool.Exec(ctx, `INSERT INTO certmagic_data (key, value, modified_at) VALUES ($1, $2, now())
		ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value, modified_at = now()`, key, value)
	return err
}

// Load implements certmagic.Storage; a missing key is fs.ErrNotExist.
func (s *Storage) Load(ctx context.Context, key string) ([]byte, error) {
	var v []byte
	err := s.pool.QueryRow(ctx, "SELECT value FROM certmagic_data WHERE key = $1", key).Scan(&v)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, fs.ErrNotExist
	}
	return v, err
}

func likePrefix(p string) string {
	p = strings.TrimSuffix(p, "/")
	r := strings.NewReplacer(`\`, `\\`, `%`, `\%`, `_`, `\_`)
	return r.Replace(p) + "/%"
}

// Delete implements certmagic.Storage: the key and, like a directory,
// everything below it.
func (s *Storage) Delete(ctx context.Context, key string) error {
	tag, err := s.pool.Exec(ctx, `DELETE FROM certmagic_data WHERE key = $1 OR key LIKE $2`, key, likePrefix(key))
	if err == nil && tag.RowsAffected() == 0 {
		return fs.ErrNotExist
	}
	return err
}

// Exists implements certmagic.Storage.
func (s *Storage) Exists(ctx context.Context, key string) bool {
	var ok bool
	s.pool.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM certmagic_data WHERE key = $1 OR key LIKE $2)`, key, likePrefix(key)).Scan(&ok)
	return ok
}

// List implements certmagic.Storage.
func (s *Storage) List(ctx context.Context, prefix string, recursive bool) ([]string, error) {
	rows, err := s.pool.Query(ctx, `SELECT key FROM certmagic_data WHERE key LIKE $1 ORDER BY key`, likePrefix(prefix))
	if err != nil {
		return nil, err
	}
	keys, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return nil, err
	}
	if len(keys) == 0 {
		return nil, fs.ErrNotExist
	}
	if recursive {
		return keys, nil
	}
	base := strings.TrimSuffix(prefix, "/") + "/"
	seen := map[string]bool{}
	var out []string
	for _, k := range keys {
		child := base + strings.SplitN(strings.TrimPrefix(k, base), "/", 2)[0]
		if !seen[child] {
			seen[child] = true
			out = append(out, child)
		}
	}
	return out, nil
}

// Stat implements certmagic.Storage.
func (s *Storage) Stat(ctx context.Context, key string) (certmagic.KeyInfo, error) {
	var ki certmagic.KeyInfo
	var size int64
	err := s.pool.QueryRow(ctx, "SELECT modified_at, length(value) FROM certmagic_data WHERE key = $1", key).Scan(&ki.Modified, &size)
	if errors.Is(err, pgx.ErrNoRows) {
		if s.Exists(ctx, key) {
			return certmagic.KeyInfo{Key: key, IsTerminal: false}, nil
		}
		return ki, fs.ErrNotExist
	}
	ki.Key, ki.Size, ki.IsTerminal = key, size, true
	return ki, err
}

// lockTTL is how long a lock lives without its holder refreshing it: a
// proxy that dies holding one blocks the others for at most this long.
const lockTTL = 2 * time.Minute

// Lock implements certmagic.Locker: a row in certmagic_locks, taken over
// when expired, refreshed while held.
func (s *Storage) Lock(ctx context.Context, name string) error {
	for {
		tag, err := s.pool.Exec(ctx, `INSERT INTO certmagic_locks (key, expires_at) VALUES ($1, now() + $2::interval)
			ON CONFLICT (key) DO UPDATE SET expires_at = EXCLUDED.expires_at WHERE certmagic_locks.expires_at < now()`,
			name, lockTTL.String())
		if err != nil {
			return err
		}
		if tag.RowsAffected() == 1 {
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
				s.pool.Exec(rctx, "UPDATE certmagic_locks SET expires_at = now() + $2::interval WHERE key = $1", name, lockTTL.String())
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
	_, err := s.pool.Exec(ctx, "DELETE FROM certmagic_locks WHERE key = $1", name)
	return err
}

// UnmarshalCaddyfile reads `storage wisehosting [{ database_url …; database_password … }]`.
func (s *Storage) UnmarshalCaddyfile(d *caddyfile.Dispenser) error {
	d.Next()
	if d.NextArg() {
		return d.ArgErr()
	}
	for d.NextBlock(0) {
		key := d.Val()
		var val string
		if !d.AllArgs(&val) {
			return d.ArgErr()
		}
		switch key {
		case "database_url":
			s.DatabaseURL = val
		case "database_password":
			s.DatabasePassword = val
		default:
			return d.Errf("unrecognized storage wisehosting option %q", key)
		}
	}
	return nil
}

// Interface guards.
var (
	_ caddy.StorageConverter = (*Storage)(nil)
	_ certmagic.Storage      = (*Storage)(nil)
	_ caddy.Provisioner      = (*Storage)(nil)
	_ caddy.CleanerUpper     = (*Storage)(nil)
	_ caddyfile.Unmarshaler  = (*Storage)(nil)
)
