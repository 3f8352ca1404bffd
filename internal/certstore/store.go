// Package certstore is the certificate storage shared by the control plane
// and the proxies: certmagic's key/value files and named locks kept in the
// control plane's Postgres (tables certmagic_data and certmagic_locks).
// The control plane uses it directly; proxies reach it through the control
// plane's storage API (Client), with a local copy of what they read
// (Cache) so that they keep serving their certificates while the control
// plane or its database is down. Only certificate keys pass (CheckKey).
package certstore

import (
	"context"
	"errors"
	"io/fs"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// KeyInfo describes a key: a file (Terminal) or a directory.
type KeyInfo struct {
	Key      string    `json:"key"`
	Modified time.Time `json:"modified"`
	Size     int64     `json:"size"`
	Terminal bool      `json:"terminal"`
}

// DB is the Postgres side.
type DB struct{ Pool *pgxpool.Pool }

// likePrefix is the LIKE pattern of everything below directory p.
func likePrefix(p string) string {
	p = strings.TrimSuffix(p, "/")
	r := strings.NewReplacer(`\`, `\\`, `%`, `\%`, `_`, `\_`)
	return r.Replace(p) + "/%"
}

// Put stores value at key.
func (d DB) Put(ctx context.Context, key string, value []byte) error {
	_, err := d.Pool.Exec(ctx, `INSERT INTO certmagic_data (key, value, modified_at) VALUES ($1, $2, now())
		ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value, modified_at = now()`, key, value)
	return err
}

// Get returns the value at key, fs.ErrNotExist when there is none.
func (d DB) Get(ctx context.Context, key string) ([]byte, time.Time, error) {
	var v []byte
	var mod time.Time
	err := d.Pool.QueryRow(ctx, "SELECT value, modified_at FROM certmagic_data WHERE key = $1", key).Scan(&v, &mod)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, mod, fs.ErrNotExist
	}
	return v, mod, err
}

// Delete removes key and, like a directory, everything below it. A
// missing key is not an error.
func (d DB) Delete(ctx context.Context, key string) error {
	_, err := d.Pool.Exec(ctx, `DELETE FROM certmagic_data WHERE key = $1 OR key LIKE $2`, key, likePrefix(key))
	return err
}

// Stat describes key as a file or a directory; fs.ErrNotExist when it is
// neither.
func (d DB) Stat(ctx context.Context, key string) (KeyInfo, error) {
	ki := KeyInfo{Key: key}
	err := d.Pool.QueryRow(ctx, "SELECT modified_at, length(value) FROM certmagic_data WHERE key = $1", key).Scan(&ki.Modified, &ki.Size)
	if err == nil {
		ki.Terminal = true
		return ki, nil
	}
	if !errors.Is(err, pgx.ErrNoRows) {
		return ki, err
	}
	var dir bool
	if err := d.Pool.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM certmagic_data WHERE key LIKE $1)`, likePrefix(key)).Scan(&dir); err != nil {
		return ki, err
	}
	if !dir {
		return ki, fs.ErrNotExist
	}
	return ki, nil
}

// List returns the keys below prefix: all of them when recursive, else
// its direct children (files and directories). fs.ErrNotExist when none.
func (d DB) List(ctx context.Context, prefix string, recursive bool) ([]string, error) {
	rows, err := d.Pool.Query(ctx, `SELECT key FROM certmagic_data WHERE key LIKE $1 ORDER BY key`, likePrefix(prefix))
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
	return Children(prefix, keys), nil
}

// Children reduces keys below prefix to prefix's direct children, in order.
func Children(prefix string, keys []string) []string {
	base := strings.TrimSuffix(prefix, "/") + "/"
	seen := map[string]bool{}
	var out []string
	for _, k := range keys {
		rest, ok := strings.CutPrefix(k, base)
		if !ok {
			continue
		}
		child := base + strings.SplitN(rest, "/", 2)[0]
		if !seen[child] {
			seen[child] = true
			out = append(out, child)
		}
	}
	return out
}

// TryLock takes lock name for holder for ttl, or extends it when holder
// already has it. A lock whose holder stopped extending it lapses after
// its ttl and goes to the next taker. It reports whether holder has the
// lock.
func (d DB) TryLock(ctx context.Context, name, holder string, ttl time.Duration) (bool, error) {
	tag, err := d.Pool.Exec(ctx, `INSERT INTO certmagic_locks (key, holder, expires_at) VALUES ($1, $2, now() + $3 * interval '1 millisecond')
		ON CONFLICT (key) DO UPDATE SET holder = EXCLUDED.holder, expires_at = EXCLUDED.expires_at
		WHERE certmagic_locks.expires_at < now() OR certmagic_locks.holder = EXCLUDED.holder`,
		name, holder, ttl.Milliseconds())
	if err != nil {
		return false, err
	}
	return tag.RowsAffected() == 1, nil
}

// Unlock releases holder's lock name (another holder's is left alone).
func (d DB) Unlock(ctx context.Context, name, holder string) error {
	_, err := d.Pool.Exec(ctx, "DELETE FROM certmagic_locks WHERE key = $1 AND holder = $2", name, holder)
	return err
}
