// Package workers is the control plane's record of worker hosts: adding one
// (its raw API key is shown once and never stored), authenticating it, its
// placement (zone and mesh address, set by the operator), capacity and
// liveness, and the short-lived JWTs it connects with.
//
// Two values derived from a raw key are kept: api_key_hash, a one-way
// lookup value (LookupHash) that registration finds the worker by, and
// mac_key_sealed, the worker key that signs protocol frames
// (wsproto.KeyFromAPIKey), encrypted under the master secret. A read-only
// copy of the table therefore yields neither the raw key nor anything that
// signs a frame.
package workers

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"errors"
	"fmt"
	"net/netip"
	"regexp"
	"strconv"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/wisehosting/wisehosting/internal/auth"
	"github.com/wisehosting/wisehosting/internal/errs"
	"github.com/wisehosting/wisehosting/internal/jobs"
	"github.com/wisehosting/wisehosting/internal/network"
	"github.com/wisehosting/wisehosting/internal/secrets"
	"github.com/wisehosting/wisehosting/internal/wsproto"
)

// KeyPrefix starts every raw worker API key, so a leaked key is recognisable
// by secret scanners.
const KeyPrefix = "whk_"

// Worker is a row of the workers table.
type Worker struct {
	ID        int64      `json:"id"`
	Name      string     `json:"name"`
	KeyHash   []byte     `json:"-"` // LookupHash of the worker key
	SealedKey string     `json:"-"` // the worker key, sealed (see Key)
	WGIP      string     `json:"wg_ip,omitempty"`
	Zone      string     `json:"zone,omitempty"`
	Status    string     `json:"status"`
	CPUMillis int        `json:"cpu_millis"`
	MemoryMB  int        `json:"memory_mb"`
	DiskMB    int        `json:"disk_mb"`
	MaxJobs   int        `json:"max_jobs"`
	DiskQuota string     `json:"disk_quota"`
	Version   string     `json:"agent_version,omitempty"`
	LastSeen  *time.Time `json:"last_seen,omitempty"`
	RevokedAt *time.Time `json:"revoked_at,omitempty"`
	CreatedAt time.Time  `json:"created_at"`
}

// Revoked reports whether the worker may no longer connect.
func (w Worker) Revoked() bool { return w.Status == "revoked" || w.RevokedAt != nil }

const columns = `id, name, api_key_hash, COALESCE(mac_key_sealed, ''), COALESCE(host(wg_ip), ''), zone, status, cpu_millis, memory_mb, disk_mb,
	max_jobs, disk_quota, agent_version, last_seen, revoked_at, created_at`

func scan(row pgx.Row) (Worker, error) {
	var w Worker
	err := row.Scan(&w.ID, &w.Name, &w.KeyHash, &w.SealedKey, &w.WGIP, &w.Zone, &w.Status, &w.CPUMillis, &w.MemoryMB, &w.DiskMB,
		&w.MaxJobs, &w.DiskQuota, &w.Version, &w.LastSeen, &w.RevokedAt, &w.CreatedAt)
	if errors.Is(err, pgx.ErrNoRows) {
		return w, ErrNotFound
	}
	return w, err
}

// ErrNotFound means no such worker; errors for a worker looked up by name
// wrap it with a sentence naming the worker.
var ErrNotFound = errs.New(errs.NotFound, "worker not found")

// notFound is an ErrNotFound that names the worker.
func notFound(name, why string) error {
	return &errs.Error{Kind: errs.NotFound, Msg: fmt.Sprintf("no worker named %q%s", name, why), Err: ErrNotFound}
}

// byName reads the worker row of a statement that selects a worker by
// name; why ends the sentence when it matches none.
func byName(row pgx.Row, name, why string) (Worker, error) {
	w, err := scan(row)
	if errors.Is(err, ErrNotFound) {
		return w, notFound(name, why)
	}
	return w, err
}

var nameRe = regexp.MustCompile(`^[a-z0-9]([a-z0-9.-]{0,61}[a-z0-9])?$`)

// ErrExists means a worker of that name exists (the Conflict error that
// names it wraps it).
var ErrExists = errors.New("worker exists")

// ErrInvalid marks a problem with operator input: the Invalid error that
// says what is wrong wraps it.
var ErrInvalid = errors.New("invalid worker settings")

// invalid is an Invalid error about field, wrapping ErrInvalid.
func invalid(field, format string, a ...any) error {
	return &errs.Error{Kind: errs.Invalid, Field: field, Msg: ErrInvalid.Error() + ": " + fmt.Sprintf(format, a...), Err: ErrInvalid}
}

// LookupHash is the value registration finds a worker by: a one-way
// derivation of the worker key that is not the key itself. Migration 0012
// computes the same bytes in SQL for workers added before it.
func LookupHash(k wsproto.Key) []byte {
	h := sha256.New()
	h.Write([]byte("wisehosting/worker-lookup/v1\x00"))
	h.Write(k[:])
	return h.Sum(nil)
}

func keyAD(id int64) []byte { return []byte("worker/" + strconv.FormatInt(id, 10)) }

// Key opens the worker key that signs this worker's frames. It is sealed
// for the worker's row, so a sealed key copied onto another row fails.
func (w Worker) Key(kr *secrets.Keyring) (wsproto.Key, error) {
	if w.SealedKey == "" {
		return wsproto.Key{}, fmt.Errorf("worker %d has no sealed key: start the control plane once to seal keys of workers added before this version", w.ID)
	}
	b, err := kr.Decrypt(secrets.PurposeWorkerKeys, w.SealedKey, keyAD(w.ID))
	if err != nil {
		return wsproto.Key{}, fmt.Errorf("opening the key of worker %d: %w", w.ID, err)
	}
	return wsproto.KeyFromBytes(b)
}

// CheckZone validates a zone an operator gives: empty (none) or a host name.
func CheckZone(zone string) error {
	if zone == "" {
		return nil
	}
	if err := network.CheckHostname(zone); err != nil {
		return invalid("zone", "zone: %v", err)
	}
	return nil
}

// parseMeshIP validates a mesh address: empty (none) or an IP literal.
func parseMeshIP(wgIP string) (any, error) {
	if wgIP == "" {
		return nil, nil
	}
	a, err := netip.ParseAddr(wgIP)
	if err != nil || a.Zone() != "" {
		return nil, invalid("wg_ip", "mesh IP %q is not an IP address", wgIP)
	}
	return a.Unmap().String(), nil
}

// Add creates a worker and returns its raw API key, which is not stored.
// zone and wgIP (either may be empty) are the operator's: the worker
// cannot change them.
func Add(ctx context.Context, q jobs.Querier, kr *secrets.Keyring, name, zone, wgIP string) (Worker, string, error) {
	if !nameRe.MatchString(name) {
		return Worker{}, "", invalid("name", "name %q: use lowercase letters, digits, dots and dashes", name)
	}
	if err := CheckZone(zone); err != nil {
		return Worker{}, "", err
	}
	ip, err := parseMeshIP(wgIP)
	if err != nil {
		return Worker{}, "", err
	}
	raw := KeyPrefix + auth.RandomToken(32)
	k := wsproto.KeyFromAPIKey(raw)
	// The id comes first: the sealed key is bound to its row.
	var id int64
	if err := q.QueryRow(ctx, "SELECT nextval(pg_get_serial_sequence('workers', 'id'))").Scan(&id); err != nil {
		return Worker{}, "", fmt.Errorf("adding worker %s: %w", name, err)
	}
	sealed, err := kr.Encrypt(secrets.PurposeWorkerKeys, k[:], keyAD(id))
	if err != nil {
		return Worker{}, "", err
	}
	w, err := scan(q.QueryRow(ctx, `INSERT INTO workers (id, name, api_key_hash, mac_key_sealed, zone, wg_ip) VALUES ($1, $2, $3, $4, $5, $6) RETURNING `+columns,
		id, name, LookupHash(k), sealed, zone, ip))
	if pe, ok := errors.AsType[*pgconn.PgError](err); ok && pe.ConstraintName == "workers_name_key" {
		return w, "", &errs.Error{Kind: errs.Conflict, Field: "name", Msg: fmt.Sprintf("a worker named %s already exists", name), Err: ErrExists}
	}
	if err != nil {
		return w, "", fmt.Errorf("adding worker %s: %w", name, err)
	}
	return w, raw, nil
}

// SetPlacement changes a worker's zone and/or mesh address (nil: keep).
func SetPlacement(ctx context.Context, q jobs.Querier, name string, zone, wgIP *string) (Worker, error) {
	var z, ip any
	if zone != nil {
		if err := CheckZone(*zone); err != nil {
			return Worker{}, err
		}
		z = *zone
	}
	setIP := wgIP != nil
	if setIP {
		var err error
		if ip, err = parseMeshIP(*wgIP); err != nil {
			return Worker{}, err
		}
	}
	return byName(q.QueryRow(ctx, `UPDATE workers SET zone = COALESCE($2, zone), wg_ip = CASE WHEN $3 THEN $4::inet ELSE wg_ip END
		WHERE name = $1 AND status <> 'revoked' RETURNING `+columns, name, z, setIP, ip), name, " (or it is revoked)")
}

// SealKeys seals the worker keys migration 0012 set aside for workers
// added before it (erasing the plain copies), and re-seals keys sealed
// under a previous master secret with the current one, so a rotation
// completes once every replica runs with the new secret. The control plane
// runs it on start; it returns how many keys it (re)sealed.
func SealKeys(ctx context.Context, q interface {
	jobs.Querier
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
}, kr *secrets.Keyring) (int, error) {
	rows, err := q.Query(ctx, "SELECT id, mac_key_plain, COALESCE(mac_key_sealed, '') FROM workers WHERE mac_key_plain IS NOT NULL OR mac_key_sealed IS NOT NULL")
	if err != nil {
		return 0, fmt.Errorf("reading worker keys: %w", err)
	}
	type entry struct {
		id     int64
		plain  []byte
		sealed string
	}
	var todo []entry
	for rows.Next() {
		var e entry
		if err := rows.Scan(&e.id, &e.plain, &e.sealed); err != nil {
			rows.Close()
			return 0, err
		}
		if e.plain != nil || kr.NeedsRotation(e.sealed) {
			todo = append(todo, e)
		}
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return 0, err
	}
	n := 0
	for _, e := range todo {
		key := e.plain
		if key == nil {
			if key, err = kr.Decrypt(secrets.PurposeWorkerKeys, e.sealed, keyAD(e.id)); err != nil {
				continue // sealed by a secret this keyring lacks: Key reports it on use
			}
		}
		sealed, err := kr.Encrypt(secrets.PurposeWorkerKeys, key, keyAD(e.id))
		if err != nil {
			return n, err
		}
		if _, err := q.Exec(ctx, "UPDATE workers SET mac_key_sealed = $2, mac_key_plain = NULL WHERE id = $1", e.id, sealed); err != nil {
			return n, fmt.Errorf("sealing the key of worker %d: %w", e.id, err)
		}
		n++
	}
	return n, nil
}

// Get reads a worker by id.
func Get(ctx context.Context, q jobs.Querier, id int64) (Worker, error) {
	return scan(q.QueryRow(ctx, "SELECT "+columns+" FROM workers WHERE id = $1", id))
}

// Authenticate finds the worker whose raw key is raw. The lookup is by
// LookupHash (unique index); the final comparison is constant-time.
func Authenticate(ctx context.Context, q jobs.Querier, raw string) (Worker, error) {
	if len(raw) < 16 || len(raw) > 200 {
		return Worker{}, ErrNotFound
	}
	hash := LookupHash(wsproto.KeyFromAPIKey(raw))
	w, err := scan(q.QueryRow(ctx, "SELECT "+columns+" FROM workers WHERE api_key_hash = $1", hash))
	if err != nil {
		return w, err
	}
	if subtle.ConstantTimeCompare(w.KeyHash, hash) != 1 {
		return Worker{}, ErrNotFound
	}
	return w, nil
}

// List returns every worker, by name.
func List(ctx context.Context, q interface {
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
}) ([]Worker, error) {
	rows, err := q.Query(ctx, "SELECT "+columns+" FROM workers ORDER BY name")
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []Worker
	for rows.Next() {
		w, err := scan(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, w)
	}
	return out, rows.Err()
}

// SetDraining stops (true) or resumes (false) placing new jobs on a
// worker. A draining worker stays connected and its apps keep running.
// Resuming changes only a draining worker.
func SetDraining(ctx context.Context, q jobs.Querier, name string, draining bool) (Worker, error) {
	if draining {
		return byName(q.QueryRow(ctx, `UPDATE workers SET status = 'draining' WHERE name = $1 AND status IN ('online', 'offline', 'draining') RETURNING `+columns, name),
			name, " (or it is revoked)")
	}
	// A worker that has not been heard from lately resumes as offline (the
	// scheduler's heartbeat check would mark it so anyway).
	return byName(q.QueryRow(ctx, `UPDATE workers SET status = CASE WHEN status <> 'draining' THEN status
			WHEN last_seen > now() - interval '2 minutes' THEN 'online' ELSE 'offline' END
		WHERE name = $1 AND status <> 'revoked' RETURNING `+columns, name), name, " (or it is revoked)")
}

// Revoke stops a worker from registering, refreshing or connecting.
func Revoke(ctx context.Context, q jobs.Querier, name string) (Worker, error) {
	return byName(q.QueryRow(ctx, `UPDATE workers SET status = 'revoked', revoked_at = now() WHERE name = $1 RETURNING `+columns, name), name, "")
}

// Connected records a worker's connection and the capacity it reported in
// its hello. The hello's zone and mesh address are not used: placement is
// the operator's (see Disagreement).
func Connected(ctx context.Context, q jobs.Querier, id int64, h *wsproto.Hello) error {
	if h == nil {
		// A drained worker stays draining across reconnects.
		_, err := q.Exec(ctx, `UPDATE workers SET status = CASE WHEN status = 'draining' THEN status ELSE 'online' END, last_seen = now(),
			offline_at = NULL WHERE id = $1 AND status <> 'revoked'`, id)
		return err
	}
	_, err := q.Exec(ctx, `UPDATE workers SET status = CASE WHEN status = 'draining' THEN status ELSE 'online' END,
		last_seen = now(), offline_at = NULL, cpu_millis = $2, memory_mb = $3, disk_mb = $4, disk_quota = $5,
		max_jobs = CASE WHEN $6 > 0 THEN $6 ELSE max_jobs END, agent_version = $7
		WHERE id = $1 AND status <> 'revoked'`,
		id, max(h.CPUMillis, 0), max(h.MemoryMB, 0), max(h.DiskMB, 0), h.DiskQuota, h.MaxJobs, h.Version)
	return err
}

// Disagreement describes how a hello's zone and mesh address differ from
// the operator's values ("" when they agree or the hello names none).
func Disagreement(w Worker, h *wsproto.Hello) string {
	var out string
	if h.Zone != "" && h.Zone != w.Zone {
		out = fmt.Sprintf("zone %q (operator set %q)", h.Zone, w.Zone)
	}
	if h.WGIP != "" {
		a, err := netip.ParseAddr(h.WGIP)
		if err != nil || a.Unmap().String() != w.WGIP {
			if out != "" {
				out += ", "
			}
			out += fmt.Sprintf("mesh IP %q (operator set %q)", h.WGIP, w.WGIP)
		}
	}
	return out
}

// Seen refreshes a worker's heartbeat.
func Seen(ctx context.Context, q jobs.Querier, id int64) error {
	_, err := q.Exec(ctx, "UPDATE workers SET last_seen = now() WHERE id = $1", id)
	return err
}

// RecordImagesBytes stores the disk a worker's app images use (from its
// stats).
func RecordImagesBytes(ctx context.Context, q jobs.Querier, id, n int64) error {
	if n < 0 {
		return fmt.Errorf("invalid image disk use %d", n)
	}
	_, err := q.Exec(ctx, "UPDATE workers SET images_bytes = $2 WHERE id = $1", id, n)
	return err
}

// Online counts the workers that take new deploys (connected, not
// draining, not revoked).
func Online(ctx context.Context, q jobs.Querier) (int, error) {
	var n int
	err := q.QueryRow(ctx, `SELECT count(*) FROM workers WHERE status = 'online'`).Scan(&n)
	return n, err
}
