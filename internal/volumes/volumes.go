// Package volumes keeps apps' persistent volumes: named Podman volumes on
// the worker that runs the app, mounted into every container of the app
// (deploys, rollbacks, recreated containers, scheduled jobs) and kept when
// containers go. A volume's data lives on one worker, so an app with a
// (shared) volume runs one instance and is placed only on that worker.
// Deleting the app (or the volume) releases it: the data stays for a
// grace period and is then removed from its worker by a volume.remove job.
//
// # Per-instance volumes
//
// A volume declared per instance has one copy per instance slot of the
// app (internal/replicas numbers instances by slot: 0 is the app's row,
// 1 and up are app_instances rows). Copy n of volume id is the Podman
// volume wh-vol-<id>-<n>; a volume's first copies have n = slot, and n is
// never reused, so a slot that comes back after a scale-down gets a fresh
// copy while the released one keeps its data until its removal time.
// Each copy is bound to the worker of its slot's first deploy, and the
// slot is placed only there from then on; an app whose volumes are all
// per instance runs as many replicas as its plan allows. Scaling below a
// slot releases its copies with the same grace period as a deleted app.
// Scheduled runs are not instances: they mount the shared volumes only.
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
var ErrNotFound = errs.New(errs.NotFound, "the app has no such volume")

// Limits on what an app may declare.
const (
	MaxPerApp = 8
	MaxSizeMB = 1 << 20 // 1 TiB
)

// DefaultGrace is how long released data is kept when the caller names no
// grace period (the wisehosting app's volume_grace default).
const DefaultGrace = 7 * 24 * time.Hour

// Volume is one row.
type Volume struct {
	ID          int64      `json:"id"`
	AppID       int64      `json:"app_id,omitempty"`
	AppSlug     string     `json:"app_slug"`
	Name        string     `json:"name"`
	MountPath   string     `json:"mount_path"`
	SizeMB      int        `json:"size_mb"`
	PerInstance bool       `json:"per_instance"`
	WorkerID    int64      `json:"worker_id,omitempty"`
	UsedBytes   int64      `json:"used_bytes"`
	UsedAt      *time.Time `json:"used_at,omitempty"`
	CreatedAt   time.Time  `json:"created_at"`
	ReleasedAt  *time.Time `json:"released_at,omitempty"`
	RemoveAfter *time.Time `json:"remove_after,omitempty"`
	RemovedAt   *time.Time `json:"removed_at,omitempty"`
	// Instances are the copies of a per-instance volume not yet removed:
	// one per slot, and the released ones until their removal time.
	Instances []Instance `json:"instances,omitempty"`
}

// Instance is one instance slot's copy of a per-instance volume.
type Instance struct {
	N           int        `json:"n"`
	Slot        int        `json:"slot"`
	PodmanName  string     `json:"podman_name"`
	WorkerID    int64      `json:"worker_id,omitempty"`
	UsedBytes   int64      `json:"used_bytes"`
	UsedAt      *time.Time `json:"used_at,omitempty"`
	CreatedAt   time.Time  `json:"created_at"`
	ReleasedAt  *time.Time `json:"released_at,omitempty"`
	RemoveAfter *time.Time `json:"remove_after,omitempty"`
}

const columns = `id, COALESCE(app_id, 0), app_slug, name, mount_path, size_mb, per_instance, COALESCE(worker_id, 0), used_bytes, used_at,
	created_at, released_at, remove_after, removed_at`

func scan(r pgx.Row) (Volume, error) {
	var v Volume
	err := r.Scan(&v.ID, &v.AppID, &v.AppSlug, &v.Name, &v.MountPath, &v.SizeMB, &v.PerInstance, &v.WorkerID, &v.UsedBytes, &v.UsedAt,
		&v.CreatedAt, &v.ReleasedAt, &v.RemoveAfter, &v.RemovedAt)
	return v, err
}

func collect(rows pgx.Rows, err error) ([]Volume, error) {
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, func(r pgx.CollectableRow) (Volume, error) { return scan(r) })
}

// withInstances fills the copies of the per-instance volumes in list.
func withInstances(ctx context.Context, q Querier, list []Volume) ([]Volume, error) {
	var ids []int64
	at := map[int64]int{}
	for i, v := range list {
		if v.PerInstance {
			ids = append(ids, v.ID)
			at[v.ID] = i
		}
	}
	if len(ids) == 0 {
		return list, nil
	}
	rows, err := q.Query(ctx, `SELECT volume_id, n, slot, COALESCE(worker_id, 0), used_bytes, used_at, created_at, released_at, remove_after
		FROM volume_instances WHERE volume_id = ANY($1) AND removed_at IS NULL ORDER BY volume_id, released_at NULLS FIRST, slot, n`, ids)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	for rows.Next() {
		var id int64
		var in Instance
		if err := rows.Scan(&id, &in.N, &in.Slot, &in.WorkerID, &in.UsedBytes, &in.UsedAt, &in.CreatedAt, &in.ReleasedAt, &in.RemoveAfter); err != nil {
			return nil, err
		}
		in.PodmanName = InstancePodmanName(id, in.N)
		list[at[id]].Instances = append(list[at[id]].Instances, in)
	}
	return list, rows.Err()
}

// PodmanName is the name of (shared) volume id on its worker.
func PodmanName(id int64) string { return "wh-vol-" + strconv.FormatInt(id, 10) }

// InstancePodmanName is the name of copy n of per-instance volume id.
func InstancePodmanName(id int64, n int) string { return PodmanName(id) + "-" + strconv.Itoa(n) }

// IDFromPodmanName is PodmanName's inverse (false for other names).
func IDFromPodmanName(name string) (int64, bool) {
	s, ok := strings.CutPrefix(name, "wh-vol-")
	if !ok {
		return 0, false
	}
	return positive(s)
}

// ParsePodmanName reads PodmanName (n = -1) and InstancePodmanName names.
func ParsePodmanName(name string) (id int64, n int, ok bool) {
	s, ok := strings.CutPrefix(name, "wh-vol-")
	if !ok {
		return 0, 0, false
	}
	head, tail, copied := strings.Cut(s, "-")
	if id, ok = positive(head); !ok {
		return 0, 0, false
	}
	if !copied {
		return id, -1, true
	}
	c, err := strconv.Atoi(tail)
	if err != nil || c < 0 || strconv.Itoa(c) != tail {
		return 0, 0, false
	}
	return id, c, true
}

func positive(s string) (int64, bool) {
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
	// PerInstance gives each instance of the app its own copy.
	PerInstance bool `json:"per_instance"`
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
		return errs.Field("size_mb", fmt.Sprintf("the size must be between 1 and %d MB", MaxSizeMB))
	}
	return nil
}

// slotWorker is the worker that instance slot of an app is pinned to by
// its volumes (0: none bound yet): a shared volume's, or its slot's copy
// of a per-instance volume.
const slotWorker = `(SELECT max(w) FROM (
		SELECT sv.worker_id AS w FROM volumes sv WHERE sv.app_id = $1 AND NOT sv.per_instance
		UNION ALL
		SELECT si.worker_id FROM volume_instances si JOIN volumes sv ON sv.id = si.volume_id
		WHERE sv.app_id = $1 AND si.slot = $2 AND si.released_at IS NULL) pins)`

// Create declares a volume of an app, in tx (the app's row is locked).
// It is mounted from the app's next deploy on. A shared volume is
// refused on an app with more than one replica; a per-instance one gets
// a copy for each of the app's slots at once.
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
	if replicas > 1 && !n.PerInstance {
		return Volume{}, errs.Conflictf("the app runs %d replicas; a shared volume's data lives on one worker, so an app with one runs one instance: scale it to 1 first, or declare the volume per instance (each instance then gets its own copy)", replicas)
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
	v, err := scan(tx.QueryRow(ctx, `INSERT INTO volumes (team_id, app_id, app_slug, name, mount_path, size_mb, per_instance, worker_id)
		VALUES ($3, $1, $4, $5, $6, $7, $8, CASE WHEN $8 THEN NULL ELSE `+slotWorker+` END)
		RETURNING `+columns, appID, 0, teamID, slug, n.Name, n.MountPath, n.SizeMB, n.PerInstance))
	if err != nil || !v.PerInstance {
		return v, err
	}
	if err := addCopies(ctx, tx, appID, v.ID, 0, replicas); err != nil {
		return v, err
	}
	list, err := withInstances(ctx, tx, []Volume{v})
	if err != nil {
		return v, err
	}
	return list[0], nil
}

// addCopies gives slots from..to-1 of an app a copy of its per-instance
// volumes (of volume id only, when not 0) where they have none: copy n is
// the slot unless that number was used before, else the volume's next.
func addCopies(ctx context.Context, q Querier, appID, id int64, from, to int) error {
	for slot := from; slot < to; slot++ {
		if _, err := q.Exec(ctx, `INSERT INTO volume_instances (volume_id, n, slot, worker_id)
			SELECT v.id, CASE WHEN EXISTS (SELECT 1 FROM volume_instances x WHERE x.volume_id = v.id AND x.n = $2) THEN
					(SELECT max(x.n) + 1 FROM volume_instances x WHERE x.volume_id = v.id) ELSE $2 END, $2, `+slotWorker+`
			FROM volumes v WHERE v.app_id = $1 AND v.per_instance AND ($3 = 0 OR v.id = $3)
				AND NOT EXISTS (SELECT 1 FROM volume_instances x WHERE x.volume_id = v.id AND x.slot = $2 AND x.released_at IS NULL)`,
			appID, slot, id); err != nil {
			return fmt.Errorf("adding instance %d's volume copies: %w", slot, err)
		}
	}
	return nil
}

// Scale follows an app's instance count from replicas old to replicas
// now, in the scaling transaction (the app's row is locked): the copies
// of per-instance volumes of the slots removed are released (their data
// stays for grace, DefaultGrace when 0), the slots added get fresh ones.
func Scale(ctx context.Context, tx pgx.Tx, appID int64, old, now int, grace time.Duration) error {
	if grace <= 0 {
		grace = DefaultGrace
	}
	if now < old {
		_, err := tx.Exec(ctx, `UPDATE volume_instances i SET released_at = now(), remove_after = now() + $3::interval
			FROM volumes v WHERE v.id = i.volume_id AND v.app_id = $1 AND i.slot >= $2 AND i.released_at IS NULL`,
			appID, now, grace.String())
		return err
	}
	return addCopies(ctx, tx, appID, 0, old, now)
}

// List returns an app's volumes, then those released from it whose data
// is not removed yet (with their removal time).
func List(ctx context.Context, q Querier, appID int64) ([]Volume, error) {
	list, err := collect(q.Query(ctx, "SELECT "+columns+` FROM volumes
		WHERE app_id = $1 OR (former_app_id = $1 AND app_id IS NULL AND removed_at IS NULL) ORDER BY released_at NULLS FIRST, id`, appID))
	if err != nil {
		return nil, err
	}
	return withInstances(ctx, q, list)
}

// ListTeam returns a team's volumes, the released ones (with their
// removal time) included until they are removed.
func ListTeam(ctx context.Context, q Querier, teamID int64) ([]Volume, error) {
	list, err := collect(q.Query(ctx, "SELECT "+columns+" FROM volumes WHERE team_id = $1 AND removed_at IS NULL ORDER BY id", teamID))
	if err != nil {
		return nil, err
	}
	return withInstances(ctx, q, list)
}

// Release detaches volume id from its app (the team's), in tx: its data
// (every copy of a per-instance volume) stays on the worker until grace
// has passed. The app stops mounting it from its next deploy on.
func Release(ctx context.Context, tx pgx.Tx, teamID, appID, id int64, grace time.Duration) (Volume, error) {
	v, err := scan(tx.QueryRow(ctx, `UPDATE volumes SET app_id = NULL, former_app_id = app_id, released_at = now(), remove_after = now() + $4::interval
		WHERE id = $1 AND team_id = $2 AND app_id = $3 RETURNING `+columns, id, teamID, appID, grace.String()))
	if errors.Is(err, pgx.ErrNoRows) {
		return v, ErrNotFound
	}
	if err != nil || !v.PerInstance {
		return v, err
	}
	if _, err := tx.Exec(ctx, `UPDATE volume_instances SET released_at = $2, remove_after = $3 WHERE volume_id = $1 AND released_at IS NULL`,
		v.ID, v.ReleasedAt, v.RemoveAfter); err != nil {
		return v, err
	}
	list, err := withInstances(ctx, tx, []Volume{v})
	if err != nil {
		return v, err
	}
	return list[0], nil
}

// ReleaseApp releases every volume of an app being deleted (its previews
// have none), in the deleting transaction.
func ReleaseApp(ctx context.Context, tx pgx.Tx, appID int64, grace time.Duration) error {
	if _, err := tx.Exec(ctx, `UPDATE volume_instances i SET released_at = now(), remove_after = now() + $2::interval
		FROM volumes v WHERE v.id = i.volume_id AND v.app_id = $1 AND i.released_at IS NULL`, appID, grace.String()); err != nil {
		return err
	}
	_, err := tx.Exec(ctx, `UPDATE volumes SET app_id = NULL, former_app_id = app_id, released_at = now(), remove_after = now() + $2::interval
		WHERE app_id = $1`, appID, grace.String())
	return err
}

// Mounts are what a worker mounts for instance slot of app, by Podman
// name: its shared volumes and the slot's copies of its per-instance
// ones. A slot below 0 is a scheduled run: the shared volumes only.
func Mounts(ctx context.Context, q Querier, appID int64, slot int) ([]wsproto.VolumeMount, error) {
	rows, err := q.Query(ctx, `SELECT id, -1, mount_path, size_mb FROM volumes WHERE app_id = $1 AND NOT per_instance
		UNION ALL
		SELECT v.id, i.n, v.mount_path, v.size_mb FROM volume_instances i JOIN volumes v ON v.id = i.volume_id
		WHERE v.app_id = $1 AND v.per_instance AND i.slot = $2 AND i.released_at IS NULL
		ORDER BY 1`, appID, slot)
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, func(r pgx.CollectableRow) (wsproto.VolumeMount, error) {
		var id int64
		var n int
		var m wsproto.VolumeMount
		err := r.Scan(&id, &n, &m.Path, &m.SizeMB)
		m.Name = PodmanName(id)
		if n >= 0 {
			m.Name = InstancePodmanName(id, n)
		}
		return m, err
	})
}

// SlotWorker is the worker holding the volume data of instance slot of an
// app, where that slot must run (0: none of its volumes is bound yet).
func SlotWorker(ctx context.Context, q Querier, appID int64, slot int) (int64, error) {
	var w int64
	err := q.QueryRow(ctx, "SELECT COALESCE("+slotWorker+", 0)", appID, slot).Scan(&w)
	return w, err
}

// PinnedWorker is the worker holding the volume data of an app's first
// instance (slot 0), SlotWorker's for that slot.
func PinnedWorker(ctx context.Context, q Querier, appID int64) (int64, error) {
	return SlotWorker(ctx, q, appID, 0)
}

// Bind records the worker that now holds the volumes of instance slot of
// an app (the first deploy of the slot that mounted them), in the
// transaction recording the deploy.
func Bind(ctx context.Context, tx pgx.Tx, appID int64, slot int, workerID int64) error {
	if slot == 0 {
		if _, err := tx.Exec(ctx, "UPDATE volumes SET worker_id = $2 WHERE app_id = $1 AND NOT per_instance AND worker_id IS NULL", appID, workerID); err != nil {
			return err
		}
	}
	_, err := tx.Exec(ctx, `UPDATE volume_instances i SET worker_id = $3 FROM volumes v
		WHERE v.id = i.volume_id AND v.app_id = $1 AND i.slot = $2 AND i.released_at IS NULL AND i.worker_id IS NULL`, appID, slot, workerID)
	return err
}

// RecordUsage stores what a worker measured of its volumes; a
// per-instance volume's use is the sum of its copies still on disk.
func RecordUsage(ctx context.Context, q Querier, workerID int64, usage []wsproto.VolumeUsage) error {
	var ids, bytes, cids, cbytes []int64
	var cns []int32
	for _, u := range usage {
		id, n, ok := ParsePodmanName(u.Name)
		switch {
		case !ok || u.Bytes < 0:
		case n < 0:
			ids, bytes = append(ids, id), append(bytes, u.Bytes)
		default:
			cids, cns, cbytes = append(cids, id), append(cns, int32(n)), append(cbytes, u.Bytes)
		}
	}
	if len(ids) > 0 {
		if _, err := q.Exec(ctx, `UPDATE volumes v SET used_bytes = u.bytes, used_at = now()
			FROM unnest($2::bigint[], $3::bigint[]) AS u(id, bytes) WHERE v.id = u.id AND v.worker_id = $1 AND NOT v.per_instance`,
			workerID, ids, bytes); err != nil {
			return err
		}
	}
	if len(cids) == 0 {
		return nil
	}
	if _, err := q.Exec(ctx, `UPDATE volume_instances i SET used_bytes = u.bytes, used_at = now()
		FROM unnest($2::bigint[], $3::int[], $4::bigint[]) AS u(id, n, bytes) WHERE i.volume_id = u.id AND i.n = u.n AND i.worker_id = $1`,
		workerID, cids, cns, cbytes); err != nil {
		return err
	}
	return sumCopies(ctx, q, cids)
}

// sumCopies sets per-instance volumes' use to their copies' still on disk.
func sumCopies(ctx context.Context, q Querier, ids []int64) error {
	_, err := q.Exec(ctx, `UPDATE volumes v SET used_bytes = s.bytes, used_at = s.at
		FROM (SELECT volume_id, COALESCE(sum(used_bytes) FILTER (WHERE removed_at IS NULL), 0) AS bytes, max(used_at) AS at
			FROM volume_instances WHERE volume_id = ANY($1) GROUP BY volume_id) s
		WHERE v.id = s.volume_id`, ids)
	return err
}

// UsedBytes is the disk used by the volumes of each app in ids: its
// shared volumes and every copy of its per-instance ones still on disk
// (released copies until their data is removed).
func UsedBytes(ctx context.Context, q Querier, ids []int64) (map[int64]int64, error) {
	rows, err := q.Query(ctx, `SELECT v.app_id, sum(CASE WHEN v.per_instance THEN
			(SELECT COALESCE(sum(i.used_bytes), 0) FROM volume_instances i WHERE i.volume_id = v.id AND i.removed_at IS NULL)
			ELSE v.used_bytes END)::bigint
		FROM volumes v WHERE v.app_id = ANY($1) GROUP BY v.app_id`, ids)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := map[int64]int64{}
	for rows.Next() {
		var app, n int64
		if err := rows.Scan(&app, &n); err != nil {
			return nil, err
		}
		out[app] = n
	}
	return out, rows.Err()
}

// Sweep removes released volumes and released copies of per-instance
// volumes whose grace period is over: those never bound to a worker at
// once, the others by a volume.remove job pinned to their worker (it waits
// while the worker is away). It returns how many it handled. Concurrent
// sweeps skip each other's rows.
func Sweep(ctx context.Context, tx pgx.Tx) (int, error) {
	type gone struct {
		id     int64
		n      int
		worker int64
	}
	var all []gone
	read := func(sql string) error {
		rows, err := tx.Query(ctx, sql)
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			var g gone
			if err := rows.Scan(&g.id, &g.n, &g.worker); err != nil {
				return err
			}
			all = append(all, g)
		}
		return rows.Err()
	}
	if err := read(`SELECT id, -1, COALESCE(worker_id, 0) FROM volumes
		WHERE removed_at IS NULL AND remove_after <= now() AND app_id IS NULL
		ORDER BY id LIMIT 200 FOR UPDATE SKIP LOCKED`); err != nil {
		return 0, err
	}
	if err := read(`SELECT volume_id, n, COALESCE(worker_id, 0) FROM volume_instances
		WHERE removed_at IS NULL AND remove_after <= now()
		ORDER BY volume_id, n LIMIT 200 FOR UPDATE SKIP LOCKED`); err != nil {
		return 0, err
	}
	byWorker := map[int64][]string{}
	var ids, cids []int64
	var cns []int32
	for _, g := range all {
		if g.n < 0 {
			ids = append(ids, g.id)
			if g.worker != 0 {
				byWorker[g.worker] = append(byWorker[g.worker], PodmanName(g.id))
			}
			continue
		}
		cids, cns = append(cids, g.id), append(cns, int32(g.n))
		if g.worker != 0 {
			byWorker[g.worker] = append(byWorker[g.worker], InstancePodmanName(g.id, g.n))
		}
	}
	for w, names := range byWorker {
		if _, err := jobs.Enqueue(ctx, tx, jobs.New{Kind: wsproto.JobVolumeRemove, PinWorker: w,
			Payload: wsproto.VolumeRemovePayload{Names: names}, TimeoutS: 300, MaxAttempts: 10}); err != nil {
			return 0, err
		}
	}
	if len(ids) > 0 {
		if _, err := tx.Exec(ctx, "UPDATE volumes SET removed_at = now() WHERE id = ANY($1)", ids); err != nil {
			return 0, err
		}
	}
	if len(cids) > 0 {
		if _, err := tx.Exec(ctx, `UPDATE volume_instances i SET removed_at = now() FROM unnest($1::bigint[], $2::int[]) AS g(id, n)
			WHERE i.volume_id = g.id AND i.n = g.n`, cids, cns); err != nil {
			return 0, err
		}
		if err := sumCopies(ctx, tx, cids); err != nil {
			return 0, err
		}
	}
	return len(all), nil
}

// CheckReplicas refuses more than one instance of an app that has a
// shared volume (its data lives on one worker); scaling calls it in its
// transaction. Per-instance volumes do not limit replicas.
func CheckReplicas(ctx context.Context, q Querier, appID int64, replicas int) error {
	if replicas <= 1 {
		return nil
	}
	var n int
	if err := q.QueryRow(ctx, "SELECT count(*) FROM volumes WHERE app_id = $1 AND NOT per_instance", appID).Scan(&n); err != nil {
		return err
	}
	if n > 0 {
		return errs.Conflictf("the app has %d shared volume(s), whose data lives on one worker: it runs one instance (asked for %d replicas); a volume declared per instance does not limit replicas", n, replicas)
	}
	return nil
}

// Listed is a volume, or one copy of a per-instance volume, with its team
// and worker, for the operator.
type Listed struct {
	Volume
	// PodmanName is the name on the worker (a copy's, for a per-instance
	// volume); Slot the copy's instance slot (-1: a shared volume).
	PodmanName string
	Slot       int
	Team       string
	Worker     string
}

// ListAll returns every volume and copy not yet removed, across teams
// (the operator's `wisehosting volume list`); worker, when set, keeps
// those of that worker (by name) only, and an unknown name is NotFound. A copy carries its own worker,
// use and release times.
func ListAll(ctx context.Context, q Querier, worker string) ([]Listed, error) {
	if worker != "" {
		var known bool
		if err := q.QueryRow(ctx, "SELECT EXISTS (SELECT 1 FROM workers WHERE name = $1)", worker).Scan(&known); err != nil {
			return nil, err
		}
		if !known {
			return nil, errs.NotFoundf("no worker named %q", worker)
		}
	}
	rows, err := q.Query(ctx, `SELECT * FROM (
			SELECT v.id, -1 AS n, -1 AS slot, COALESCE(v.app_id, 0), v.app_slug, v.name, v.mount_path, v.size_mb, v.per_instance,
				COALESCE(v.worker_id, 0), v.used_bytes, v.used_at, v.created_at, v.released_at, v.remove_after, v.removed_at, t.slug, COALESCE(w.name, '')
			FROM volumes v JOIN teams t ON t.id = v.team_id LEFT JOIN workers w ON w.id = v.worker_id
			WHERE v.removed_at IS NULL AND NOT v.per_instance AND ($1 = '' OR w.name = $1)
			UNION ALL
			SELECT v.id, i.n, i.slot, COALESCE(v.app_id, 0), v.app_slug, v.name, v.mount_path, v.size_mb, true,
				COALESCE(i.worker_id, 0), i.used_bytes, i.used_at, i.created_at, i.released_at, i.remove_after, i.removed_at, t.slug, COALESCE(w.name, '')
			FROM volume_instances i JOIN volumes v ON v.id = i.volume_id JOIN teams t ON t.id = v.team_id LEFT JOIN workers w ON w.id = i.worker_id
			WHERE i.removed_at IS NULL AND ($1 = '' OR w.name = $1)) l
		ORDER BY 1, 2`, worker)
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, func(r pgx.CollectableRow) (Listed, error) {
		var l Listed
		var n int
		v := &l.Volume
		err := r.Scan(&v.ID, &n, &l.Slot, &v.AppID, &v.AppSlug, &v.Name, &v.MountPath, &v.SizeMB, &v.PerInstance, &v.WorkerID, &v.UsedBytes, &v.UsedAt,
			&v.CreatedAt, &v.ReleasedAt, &v.RemoveAfter, &v.RemovedAt, &l.Team, &l.Worker)
		l.PodmanName = PodmanName(v.ID)
		if n >= 0 {
			l.PodmanName = InstancePodmanName(v.ID, n)
		}
		return l, err
	})
}
