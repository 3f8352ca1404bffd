// Package volumes keeps apps' persistent volumes: named Podman volumes on
// the worker that runs the app, mounted into every container of the app
// (deploys, rollbacks, recreated containers, scheduled jobs) and kept when
// containers go. A volume's data lives on one worker, so an app with a
// volume runs one instance and is placed only on that worker. Deleting
// the app (or the volume) releases it: the data stays for a grace period
// and is then removed from its worker by a volume.remove job.
package volumes

import (
	"context"
	"errors"
	"fmt"
	"path"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/wisehosting/wisehosting/internal/errs"
	"github.com/wisehosting/wisehosting/internal/jobs"
	"github.com/wisehosting/wisehosting/internal/wsproto"
)

// Querier is a pool or a transaction.
type Querier interface {
	Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error)
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
}

// ErrNotFound means no such volume in the caller's app.
var ErrNotFound = errs.New(errs.NotFound, "not found")

// Limits on what an app may declare.
const (
	MaxPerApp = 8
	MaxSizeMB = 1 << 20 // 1 TiB
)

// Volume is one row.
type Volume struct {
	ID          int64      `json:"id"`
	AppID       int64      `json:"app_id,omitempty"`
	AppSlug     string     `json:"app_slug"`
	Name        string     `json:"name"`
	MountPath   string     `json:"mount_path"`
	SizeMB      int        `json:"size_mb"`
	WorkerID    int64      `json:"worker_id,omitempty"`
	UsedBytes   int64      `json:"used_bytes"`
	UsedAt      *time.Time `json:"used_at,omitempty"`
	CreatedAt   time.Time  `json:"created_at"`
	ReleasedAt  *time.Time `json:"released_at,omitempty"`
	RemoveAfter *time.Time `json:"remove_after,omitempty"`
	RemovedAt   *time.Time `json:"removed_at,omitempty"`
}

const columns = `id, COALESCE(app_id, 0), app_slug, name, mount_path, size_mb, COALESCE(worker_id, 0), used_bytes, used_at,
	created_at, released_at, remove_after, removed_at`

func scan(r pgx.Row) (Volume, error) {
	var v Volume
	err := r.Scan(&v.ID, &v.AppID, &v.AppSlug, &v.Name, &v.MountPath, &v.SizeMB, &v.WorkerID, &v.UsedBytes, &v.UsedAt,
		&v.CreatedAt, &v.ReleasedAt, &v.RemoveAfter, &v.RemovedAt)
	return v, err
}

func collect(rows pgx.Rows, err error) ([]Volume, error) {
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, func(r pgx.CollectableRow) (Volume, error) { return scan(r) })
}

// PodmanName is the name of volume id on its worker.
func PodmanName(id int64) string { return "wh-vol-" + strconv.FormatInt(id, 10) }

// IDFromPodmanName is PodmanName's inverse (false for other names).
func IDFromPodmanName(name string) (int64, bool) {
	s, ok := strings.CutPrefix(name, "wh-vol-")
	if !ok {
		return 0, false
	}
	id, err := strconv.ParseInt(s, 10, 64)
	return id, err == nil && id > 0 && strconv.FormatInt(id, 10) == s
}

var nameRe = regexp.MustCompile(`^[a-z0-9]([a-z0-9-]{0,30}[a-z0-9])?$`)

// reserved are paths a volume must not hide or replace.
var reserved = []string{"/", "/bin", "/dev", "/etc", "/lib", "/lib64", "/proc", "/sbin", "/sys", "/usr", "/run", "/tmp", "/var/run"}

// CheckMountPath validates a mount path: absolute, clean, printable,
// not a system directory.
func CheckMountPath(p string) error {
	if p == "" {
		return errs.Field("mount_path", "the mount path is required (e.g. /data)")
	}
	if len(p) > 200 {
		return errs.Field("mount_path", "the mount path is longer than 200 characters")
	}
	for _, r := range p {
		if r < 0x21 || r == 0x7f || r == ',' || r == ':' || r > 0x7e {
			return errs.Field("mount_path", "the mount path may hold only printable ASCII without spaces, commas or colons")
		}
	}
	if !strings.HasPrefix(p, "/") || path.Clean(p) != p {
		return errs.Field("mount_path", fmt.Sprintf("the mount path %q must be absolute and clean (e.g. /data)", p))
	}
	for _, r := range reserved {
		if p == r {
			return errs.Field("mount_path", fmt.Sprintf("%s is a system directory; mount the volume elsewhere (e.g. /data)", p))
		}
	}
	for _, r := range []string{"/proc/", "/sys/", "/dev/"} {
		if strings.HasPrefix(p, r) {
			return errs.Field("mount_path", fmt.Sprintf("%s is inside a system directory; mount the volume elsewhere (e.g. /data)", p))
		}
	}
	return nil
}

// New is a volume to declare.
type New struct {
	Name      string `json:"name"`
	MountPath string `json:"mount_path"`
	SizeMB    int    `json:"size_mb"`
}

// Check validates n.
func (n New) Check() error {
	if !nameRe.MatchString(n.Name) {
		return errs.Field("name", "the name must be 1 to 32 lowercase letters, digits or dashes, not starting or ending with a dash")
	}
	if err := CheckMountPath(n.MountPath); err != nil {
		return err
	}
	if n.SizeMB <= 0 || n.SizeMB > MaxSizeMB {
		return errs.Field("size_mb", fmt.Sprintf("size_mb must be between 1 and %d", MaxSizeMB))
	}
	return nil
}

// Create declares a volume of an app, in tx (the app's row is locked).
// It is mounted from the app's next deploy on. An app with a volume runs
// one instance: one with more replicas is refused.
func Create(ctx context.Context, tx pgx.Tx, teamID, appID int64, n New) (Volume, error) {
	if err := n.Check(); err != nil {
		return Volume{}, err
	}
	var slug string
	var replicas int
	err := tx.QueryRow(ctx, "SELECT slug, replicas FROM apps WHERE id = $1 AND team_id = $2 FOR UPDATE", appID, teamID).Scan(&slug, &replicas)
	if errors.Is(err, pgx.ErrNoRows) {
		return Volume{}, ErrNotFound
	}
	if err != nil {
		return Volume{}, err
	}
	if replicas > 1 {
		return Volume{}, errs.Conflictf("the app runs %d replicas; a volume's data lives on one worker, so an app with a volume runs one instance: scale it to 1 first", replicas)
	}
	var count int
	var clash string
	if err := tx.QueryRow(ctx, `SELECT count(*), COALESCE(max(CASE WHEN name = $2 THEN 'name' WHEN mount_path = $3 THEN 'mount_path' END), '')
		FROM volumes WHERE app_id = $1`, appID, n.Name, n.MountPath).Scan(&count, &clash); err != nil {
		return Volume{}, err
	}
	switch {
	case clash == "name":
		return Volume{}, errs.Field("name", fmt.Sprintf("the app already has a volume named %s", n.Name))
	case clash == "mount_path":
		return Volume{}, errs.Field("mount_path", fmt.Sprintf("the app already mounts a volume at %s", n.MountPath))
	case count >= MaxPerApp:
		return Volume{}, errs.Field("name", fmt.Sprintf("an app has at most %d volumes", MaxPerApp))
	}
	return scan(tx.QueryRow(ctx, `INSERT INTO volumes (team_id, app_id, app_slug, name, mount_path, size_mb, worker_id)
		VALUES ($1, $2, $3, $4, $5, $6, (SELECT v.worker_id FROM volumes v WHERE v.app_id = $2 AND v.worker_id IS NOT NULL LIMIT 1))
		RETURNING `+columns, teamID, appID, slug, n.Name, n.MountPath, n.SizeMB))
}

// List returns an app's volumes.
func List(ctx context.Context, q Querier, appID int64) ([]Volume, error) {
	return collect(q.Query(ctx, "SELECT "+columns+" FROM volumes WHERE app_id = $1 ORDER BY id", appID))
}

// ListTeam returns a team's volumes, the released ones (with their
// removal time) included until they are removed.
func ListTeam(ctx context.Context, q Querier, teamID int64) ([]Volume, error) {
	return collect(q.Query(ctx, "SELECT "+columns+" FROM volumes WHERE team_id = $1 AND removed_at IS NULL ORDER BY id", teamID))
}

// Release detaches volume id from its app (the team's), in tx: its data
// stays on the worker until grace has passed. The app stops mounting it
// from its next deploy on.
func Release(ctx context.Context, tx pgx.Tx, teamID, appID, id int64, grace time.Duration) (Volume, error) {
	v, err := scan(tx.QueryRow(ctx, `UPDATE volumes SET app_id = NULL, released_at = now(), remove_after = now() + $4::interval
		WHERE id = $1 AND team_id = $2 AND app_id = $3 RETURNING `+columns, id, teamID, appID, grace.String()))
	if errors.Is(err, pgx.ErrNoRows) {
		return v, ErrNotFound
	}
	return v, err
}

// ReleaseApp releases every volume of an app being deleted (its previews
// have none), in the deleting transaction.
func ReleaseApp(ctx context.Context, tx pgx.Tx, appID int64, grace time.Duration) error {
	_, err := tx.Exec(ctx, `UPDATE volumes SET app_id = NULL, released_at = now(), remove_after = now() + $2::interval
		WHERE app_id = $1`, appID, grace.String())
	return err
}

// Mounts are what a worker mounts for app: its volumes, by Podman name.
func Mounts(ctx context.Context, q Querier, appID int64) ([]wsproto.VolumeMount, error) {
	rows, err := q.Query(ctx, "SELECT id, mount_path, size_mb FROM volumes WHERE app_id = $1 ORDER BY id", appID)
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, func(r pgx.CollectableRow) (wsproto.VolumeMount, error) {
		var id int64
		var m wsproto.VolumeMount
		err := r.Scan(&id, &m.Path, &m.SizeMB)
		m.Name = PodmanName(id)
		return m, err
	})
}

// PinnedWorker is the worker holding an app's volume data (0: the app has
// no volume yet bound to a worker).
func PinnedWorker(ctx context.Context, q Querier, appID int64) (int64, error) {
	var w int64
	err := q.QueryRow(ctx, "SELECT COALESCE(max(worker_id), 0) FROM volumes WHERE app_id = $1", appID).Scan(&w)
	return w, err
}

// Bind records the worker that now holds an app's volumes (the first
// deploy that mounted them), in the transaction recording the deploy.
func Bind(ctx context.Context, tx pgx.Tx, appID, workerID int64) error {
	_, err := tx.Exec(ctx, "UPDATE volumes SET worker_id = $2 WHERE app_id = $1 AND worker_id IS NULL", appID, workerID)
	return err
}

// RecordUsage stores what a worker measured of its volumes.
func RecordUsage(ctx context.Context, q Querier, workerID int64, usage []wsproto.VolumeUsage) error {
	var ids, bytes []int64
	for _, u := range usage {
		if id, ok := IDFromPodmanName(u.Name); ok && u.Bytes >= 0 {
			ids, bytes = append(ids, id), append(bytes, u.Bytes)
		}
	}
	if len(ids) == 0 {
		return nil
	}
	_, err := q.Exec(ctx, `UPDATE volumes v SET used_bytes = u.bytes, used_at = now()
		FROM unnest($2::bigint[], $3::bigint[]) AS u(id, bytes) WHERE v.id = u.id AND v.worker_id = $1`, workerID, ids, bytes)
	return err
}

// Sweep removes released volumes whose grace period is over: those never
// bound to a worker at once, the others by a volume.remove job pinned to
// their worker (it waits while the worker is away). It returns how many
// volumes it handled. Concurrent sweeps skip each other's rows.
func Sweep(ctx context.Context, tx pgx.Tx) (int, error) {
	rows, err := tx.Query(ctx, `SELECT id, COALESCE(worker_id, 0) FROM volumes
		WHERE removed_at IS NULL AND remove_after <= now() AND app_id IS NULL
		ORDER BY id LIMIT 200 FOR UPDATE SKIP LOCKED`)
	if err != nil {
		return 0, err
	}
	byWorker := map[int64][]int64{}
	n := 0
	for rows.Next() {
		var id, w int64
		if err := rows.Scan(&id, &w); err != nil {
			rows.Close()
			return 0, err
		}
		byWorker[w] = append(byWorker[w], id)
		n++
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return 0, err
	}
	for w, ids := range byWorker {
		if w != 0 {
			names := make([]string, len(ids))
			for i, id := range ids {
				names[i] = PodmanName(id)
			}
			if _, err := jobs.Enqueue(ctx, tx, jobs.New{Kind: wsproto.JobVolumeRemove, PinWorker: w,
				Payload: wsproto.VolumeRemovePayload{Names: names}, TimeoutS: 300, MaxAttempts: 10}); err != nil {
				return 0, err
			}
		}
		if _, err := tx.Exec(ctx, "UPDATE volumes SET removed_at = now() WHERE id = ANY($1)", ids); err != nil {
			return 0, err
		}
	}
	return n, nil
}

// CheckReplicas refuses more than one instance of an app that has a
// volume (its data lives on one worker); scaling calls it in its
// transaction.
func CheckReplicas(ctx context.Context, q Querier, appID int64, replicas int) error {
	if replicas <= 1 {
		return nil
	}
	var n int
	if err := q.QueryRow(ctx, "SELECT count(*) FROM volumes WHERE app_id = $1", appID).Scan(&n); err != nil {
		return err
	}
	if n > 0 {
		return errs.Conflictf("the app has %d volume(s), whose data lives on one worker: it runs one instance (asked for %d replicas)", n, replicas)
	}
	return nil
}

// Listed is a volume with its team and worker, for the operator.
type Listed struct {
	Volume
	Team   string
	Worker string
}

// ListAll returns every volume not yet removed, across teams (the
// operator's `wisehosting volume list`); worker, when set, keeps the
// volumes of that worker (by name) only.
func ListAll(ctx context.Context, q Querier, worker string) ([]Listed, error) {
	rows, err := q.Query(ctx, `SELECT v.id, COALESCE(v.app_id, 0), v.app_slug, v.name, v.mount_path, v.size_mb, COALESCE(v.worker_id, 0),
			v.used_bytes, v.used_at, v.created_at, v.released_at, v.remove_after, v.removed_at, t.slug, COALESCE(w.name, '')
		FROM volumes v JOIN teams t ON t.id = v.team_id LEFT JOIN workers w ON w.id = v.worker_id
		WHERE v.removed_at IS NULL AND ($1 = '' OR w.name = $1) ORDER BY v.id`, worker)
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, func(r pgx.CollectableRow) (Listed, error) {
		var l Listed
		v := &l.Volume
		err := r.Scan(&v.ID, &v.AppID, &v.AppSlug, &v.Name, &v.MountPath, &v.SizeMB, &v.WorkerID, &v.UsedBytes, &v.UsedAt,
			&v.CreatedAt, &v.ReleasedAt, &v.RemoveAfter, &v.RemovedAt, &l.Team, &l.Worker)
		return l, err
	})
}
