package volumes_test

import (
	"context"
	"errors"
	"path"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/wisehosting/wisehosting/internal/errs"
	"github.com/wisehosting/wisehosting/internal/pgtest"
	"github.com/wisehosting/wisehosting/internal/volumes"
	"github.com/wisehosting/wisehosting/internal/wsproto"
)

func TestCheckMountPath(t *testing.T) {
	t.Parallel()
	for _, ok := range []string{"/data", "/var/lib/app", "/srv/uploads-1"} {
		if err := volumes.CheckMountPath(ok); err != nil {
			t.Errorf("%q: %v", ok, err)
		}
	}
	for _, bad := range []string{"", "data", "/", "/etc", "/data/", "/data/../etc", "/a b", "/a,b", "/a:b", "/proc/x", "/dev/shm", "/usr", "/dätä", "/x\n"} {
		if e, ok := errs.As(volumes.CheckMountPath(bad)); !ok || e.Kind != errs.Invalid || e.Field != "mount_path" {
			t.Errorf("%q: %v", bad, e)
		}
	}
}

// FuzzCheckMountPath: an accepted path is absolute, clean, printable
// ASCII without separators Podman reads, and no system directory.
func FuzzCheckMountPath(f *testing.F) {
	for _, s := range []string{"/data", "/", "/etc/x", "/a/../b", "/a b", "/x:y,z"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, p string) {
		if volumes.CheckMountPath(p) != nil {
			return
		}
		if !strings.HasPrefix(p, "/") || path.Clean(p) != p || p == "/" || p == "/etc" || strings.ContainsAny(p, " ,:\x00\n") {
			t.Fatalf("accepted %q", p)
		}
		for _, r := range p {
			if r < 0x21 || r > 0x7e {
				t.Fatalf("accepted %q", p)
			}
		}
	})
}

func TestPodmanName(t *testing.T) {
	t.Parallel()
	if id, ok := volumes.IDFromPodmanName(volumes.PodmanName(42)); !ok || id != 42 {
		t.Fatal(id, ok)
	}
	for _, bad := range []string{"wh-vol-", "wh-vol-0", "wh-vol-01", "wh-vol--1", "other-1", "wh-vol-1x"} {
		if _, ok := volumes.IDFromPodmanName(bad); ok {
			t.Errorf("%q accepted", bad)
		}
	}
}

// Declaring, binding, releasing and sweeping: a volume of an app with
// replicas is refused; the first deploy binds it to the worker; releasing
// detaches it with a removal time; past it, one removal job pinned to the
// worker; another team's app reaches nothing.
func TestLifecycle(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db := pgtest.New(t)
	p := db.Pool
	var team, other, worker, app int64
	p.QueryRow(ctx, "INSERT INTO teams (name, slug) VALUES ('t', 't') RETURNING id").Scan(&team)
	p.QueryRow(ctx, "INSERT INTO teams (name, slug) VALUES ('o', 'o') RETURNING id").Scan(&other)
	p.QueryRow(ctx, "INSERT INTO workers (name, api_key_hash) VALUES ('w', 'k') RETURNING id").Scan(&worker)
	p.QueryRow(ctx, "INSERT INTO apps (team_id, slug, name, replicas) VALUES ($1, 'db', 'DB', 2) RETURNING id", team).Scan(&app)
	create := func(teamID int64, n volumes.New) (v volumes.Volume, err error) {
		err = pgx.BeginFunc(ctx, p, func(tx pgx.Tx) error {
			v, err = volumes.Create(ctx, tx, teamID, app, n)
			return err
		})
		return v, err
	}
	if _, err := create(team, volumes.New{Name: "data", MountPath: "/data", SizeMB: 10}); !errs.Is(err, errs.Conflict) {
		t.Fatalf("with 2 replicas: %v", err)
	}
	// The sentences fit the API, the dashboard and the command line alike.
	if e, ok := errs.As(volumes.New{Name: "data", MountPath: "/data", SizeMB: 0}.Check()); !ok || e.Field != "size_mb" ||
		e.Msg != "the size must be between 1 and 1048576 MB" {
		t.Fatalf("size 0: %v", e)
	}
	p.Exec(ctx, "UPDATE apps SET replicas = 1")
	if _, err := create(other, volumes.New{Name: "data", MountPath: "/data", SizeMB: 10}); !errors.Is(err, volumes.ErrNotFound) {
		t.Fatalf("another team: %v", err)
	}
	v, err := create(team, volumes.New{Name: "data", MountPath: "/data", SizeMB: 10})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := create(team, volumes.New{Name: "logs", MountPath: "/data", SizeMB: 10}); err == nil || !strings.Contains(err.Error(), "already mounts") {
		t.Fatalf("same path: %v", err)
	}
	if err := volumes.CheckReplicas(ctx, p, app, 3); !errs.Is(err, errs.Conflict) {
		t.Fatalf("scaling an app with a volume to 3: %v", err)
	}
	if err := volumes.CheckReplicas(ctx, p, app, 1); err != nil {
		t.Fatalf("one instance: %v", err)
	}
	if w, _ := volumes.PinnedWorker(ctx, p, app); w != 0 {
		t.Fatalf("pinned before any deploy: %d", w)
	}
	pgx.BeginFunc(ctx, p, func(tx pgx.Tx) error { return volumes.Bind(ctx, tx, app, 0, worker) })
	if w, _ := volumes.PinnedWorker(ctx, p, app); w != worker {
		t.Fatalf("pinned to %d, want %d", w, worker)
	}
	m, _ := volumes.Mounts(ctx, p, app, 0)
	if len(m) != 1 || m[0] != (wsproto.VolumeMount{Name: volumes.PodmanName(v.ID), Path: "/data", SizeMB: 10}) {
		t.Fatalf("mounts: %+v", m)
	}
	if all, err := volumes.ListAll(ctx, p, "w"); err != nil || len(all) != 1 || all[0].Team != "t" || all[0].Worker != "w" {
		t.Fatalf("operator list: %+v %v", all, err)
	}
	p.Exec(ctx, "INSERT INTO workers (name, api_key_hash) VALUES ('elsewhere', 'k2')")
	if all, err := volumes.ListAll(ctx, p, "elsewhere"); err != nil || len(all) != 0 {
		t.Fatalf("another worker's list: %+v %v", all, err)
	}
	if _, err := volumes.ListAll(ctx, p, "nowhere"); !errs.Is(err, errs.NotFound) || err.Error() != `no worker named "nowhere"` {
		t.Fatalf("an unknown worker's list: %v", err)
	}
	volumes.RecordUsage(ctx, p, worker, []wsproto.VolumeUsage{{Name: volumes.PodmanName(v.ID), Bytes: 4096}, {Name: "junk", Bytes: 1}})
	var r volumes.Volume
	err = pgx.BeginFunc(ctx, p, func(tx pgx.Tx) error {
		if _, err := volumes.Release(ctx, tx, other, app, v.ID, time.Hour); !errors.Is(err, volumes.ErrNotFound) {
			t.Errorf("another team releases: %v", err)
		}
		var err error
		r, err = volumes.Release(ctx, tx, team, app, v.ID, time.Hour)
		return err
	})
	if err != nil || r.RemoveAfter == nil || time.Until(*r.RemoveAfter) < 59*time.Minute || r.AppID != 0 || r.UsedBytes != 4096 {
		t.Fatalf("released: %+v %v", r, err)
	}
	if m, _ := volumes.Mounts(ctx, p, app, 0); len(m) != 0 {
		t.Fatalf("a released volume is still mounted: %+v", m)
	}
	sweep := func() int {
		var n int
		if err := pgx.BeginFunc(ctx, p, func(tx pgx.Tx) (err error) { n, err = volumes.Sweep(ctx, tx); return err }); err != nil {
			t.Fatal(err)
		}
		return n
	}
	if n := sweep(); n != 0 {
		t.Fatalf("swept %d within the grace period", n)
	}
	p.Exec(ctx, "UPDATE volumes SET remove_after = now() - interval '1 second'")
	if n := sweep(); n != 1 {
		t.Fatalf("swept %d, want 1", n)
	}
	if n := sweep(); n != 0 {
		t.Fatalf("swept again: %d", n)
	}
	var kind string
	var pin int64
	var names string
	p.QueryRow(ctx, "SELECT kind, pin_worker_id, payload->>'names' FROM jobs").Scan(&kind, &pin, &names)
	if kind != wsproto.JobVolumeRemove || pin != worker || !strings.Contains(names, volumes.PodmanName(v.ID)) {
		t.Fatalf("removal job: %s %d %s", kind, pin, names)
	}
	if all, err := volumes.ListAll(ctx, p, ""); err != nil || len(all) != 0 {
		t.Fatalf("removed volume listed for the operator: %+v %v", all, err)
	}
	if list, _ := volumes.ListTeam(ctx, p, team); len(list) != 0 {
		t.Fatalf("removed volume still listed: %+v", list)
	}
}

func TestParsePodmanName(t *testing.T) {
	t.Parallel()
	if id, n, ok := volumes.ParsePodmanName(volumes.InstancePodmanName(42, 3)); !ok || id != 42 || n != 3 {
		t.Fatal(id, n, ok)
	}
	if id, n, ok := volumes.ParsePodmanName(volumes.PodmanName(7)); !ok || id != 7 || n != -1 {
		t.Fatal(id, n, ok)
	}
	for _, bad := range []string{"wh-vol-", "wh-vol-0-1", "wh-vol-1-", "wh-vol-1-01", "wh-vol-1--1", "wh-vol-1-2-3", "wh-vol-1-x", "other-1-2"} {
		if _, _, ok := volumes.ParsePodmanName(bad); ok {
			t.Errorf("%q accepted", bad)
		}
	}
}

// A per-instance volume: one copy per slot of a 2-replica app (no limit
// on replicas), each slot pinned to the worker its first deploy bound it
// to; use is metered per copy and summed; scaling down releases the
// removed slot's copy with the grace period, scaling up gives the slot a
// fresh copy under a new name; the sweep removes the released copy on its
// worker; releasing the volume releases every copy, and the app's list
// keeps showing it with its removal time.
func TestPerInstance(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db := pgtest.New(t)
	p := db.Pool
	var team, w1, w2, app int64
	p.QueryRow(ctx, "INSERT INTO teams (name, slug) VALUES ('t', 't') RETURNING id").Scan(&team)
	p.QueryRow(ctx, "INSERT INTO workers (name, api_key_hash) VALUES ('w1', 'k1') RETURNING id").Scan(&w1)
	p.QueryRow(ctx, "INSERT INTO workers (name, api_key_hash) VALUES ('w2', 'k2') RETURNING id").Scan(&w2)
	p.QueryRow(ctx, "INSERT INTO apps (team_id, slug, name, replicas) VALUES ($1, 'web', 'Web', 2) RETURNING id", team).Scan(&app)
	tx := func(f func(tx pgx.Tx) error) {
		t.Helper()
		if err := pgx.BeginFunc(ctx, p, f); err != nil {
			t.Fatal(err)
		}
	}
	var v volumes.Volume
	tx(func(tx pgx.Tx) (err error) {
		v, err = volumes.Create(ctx, tx, team, app, volumes.New{Name: "cache", MountPath: "/cache", SizeMB: 10, PerInstance: true})
		return err
	})
	if !v.PerInstance || len(v.Instances) != 2 || v.Instances[0].Slot != 0 || v.Instances[1].Slot != 1 ||
		v.Instances[1].PodmanName != volumes.InstancePodmanName(v.ID, 1) {
		t.Fatalf("created: %+v", v)
	}
	if err := volumes.CheckReplicas(ctx, p, app, 5); err != nil {
		t.Fatalf("per-instance volumes limit replicas: %v", err)
	}
	mounts := func(slot int) []string {
		t.Helper()
		m, err := volumes.Mounts(ctx, p, app, slot)
		if err != nil {
			t.Fatal(err)
		}
		var out []string
		for _, x := range m {
			if x.Path != "/cache" || x.SizeMB != 10 {
				t.Fatalf("mount %+v", x)
			}
			out = append(out, x.Name)
		}
		return out
	}
	if m0, m1, run := mounts(0), mounts(1), mounts(-1); len(m0) != 1 || m0[0] != volumes.InstancePodmanName(v.ID, 0) ||
		len(m1) != 1 || m1[0] != volumes.InstancePodmanName(v.ID, 1) || len(run) != 0 {
		t.Fatalf("mounts: slot 0 %v, slot 1 %v, a scheduled run %v", m0, m1, run)
	}
	tx(func(tx pgx.Tx) error { return volumes.Bind(ctx, tx, app, 0, w1) })
	tx(func(tx pgx.Tx) error { return volumes.Bind(ctx, tx, app, 1, w2) })
	tx(func(tx pgx.Tx) error { return volumes.Bind(ctx, tx, app, 1, w1) }) // bound once: no move
	slotWorker := func(slot int) int64 {
		w, err := volumes.SlotWorker(ctx, p, app, slot)
		if err != nil {
			t.Fatal(err)
		}
		return w
	}
	if slotWorker(0) != w1 || slotWorker(1) != w2 {
		t.Fatalf("slots pinned to %d and %d, want %d and %d", slotWorker(0), slotWorker(1), w1, w2)
	}
	if w, _ := volumes.PinnedWorker(ctx, p, app); w != w1 {
		t.Fatalf("first instance pinned to %d", w)
	}
	// A shared volume on a 2-replica app is still refused.
	err := pgx.BeginFunc(ctx, p, func(tx pgx.Tx) error {
		_, err := volumes.Create(ctx, tx, team, app, volumes.New{Name: "data", MountPath: "/data", SizeMB: 10})
		return err
	})
	if !errs.Is(err, errs.Conflict) || !strings.Contains(err.Error(), "per instance") {
		t.Fatalf("shared volume on 2 replicas: %v", err)
	}

	// Use: each worker reports its copy; a worker's report of another's
	// copy is ignored.
	volumes.RecordUsage(ctx, p, w1, []wsproto.VolumeUsage{{Name: volumes.InstancePodmanName(v.ID, 0), Bytes: 1000},
		{Name: volumes.InstancePodmanName(v.ID, 1), Bytes: 999999}})
	volumes.RecordUsage(ctx, p, w2, []wsproto.VolumeUsage{{Name: volumes.InstancePodmanName(v.ID, 1), Bytes: 500}})
	used := func() int64 {
		t.Helper()
		m, err := volumes.UsedBytes(ctx, p, []int64{app})
		if err != nil {
			t.Fatal(err)
		}
		return m[app]
	}
	if u := used(); u != 1500 {
		t.Fatalf("the app's volumes use %d bytes, want 1500", u)
	}
	if l, _ := volumes.List(ctx, p, app); len(l) != 1 || l[0].UsedBytes != 1500 || l[0].Instances[1].UsedBytes != 500 {
		t.Fatalf("list: %+v", l)
	}

	// Scale to 1: slot 1's copy is released with the grace period.
	tx(func(tx pgx.Tx) error { return volumes.Scale(ctx, tx, app, 2, 1, time.Hour) })
	l, _ := volumes.List(ctx, p, app)
	if len(l) != 1 || len(l[0].Instances) != 2 || l[0].Instances[1].Slot != 1 || l[0].Instances[1].RemoveAfter == nil ||
		time.Until(*l[0].Instances[1].RemoveAfter) < 59*time.Minute || l[0].Instances[0].ReleasedAt != nil {
		t.Fatalf("after scaling to 1: %+v", l)
	}
	if m := mounts(1); len(m) != 0 {
		t.Fatalf("a released copy is still mounted: %v", m)
	}
	// Scale to 2 again: a fresh copy under a new name, not yet bound.
	tx(func(tx pgx.Tx) error { return volumes.Scale(ctx, tx, app, 1, 2, time.Hour) })
	if m := mounts(1); len(m) != 1 || m[0] != volumes.InstancePodmanName(v.ID, 2) {
		t.Fatalf("slot 1 after scaling up mounts %v, want a fresh copy", m)
	}
	if slotWorker(1) != 0 {
		t.Fatalf("the fresh copy is pinned to %d", slotWorker(1))
	}
	if u := used(); u != 1500 {
		t.Fatalf("the released copy's data is still on disk: %d bytes used, want 1500", u)
	}

	// Past the grace period the released copy is removed on its worker.
	sweep := func() int {
		var n int
		tx(func(tx pgx.Tx) (err error) { n, err = volumes.Sweep(ctx, tx); return err })
		return n
	}
	if n := sweep(); n != 0 {
		t.Fatalf("swept %d within the grace period", n)
	}
	p.Exec(ctx, "UPDATE volume_instances SET remove_after = now() - interval '1 second' WHERE released_at IS NOT NULL")
	if n := sweep(); n != 1 {
		t.Fatalf("swept %d, want 1", n)
	}
	var pin int64
	var names string
	p.QueryRow(ctx, "SELECT pin_worker_id, payload->>'names' FROM jobs WHERE kind = $1", wsproto.JobVolumeRemove).Scan(&pin, &names)
	if pin != w2 || names != `["`+volumes.InstancePodmanName(v.ID, 1)+`"]` {
		t.Fatalf("removal job on %d for %s", pin, names)
	}
	if u := used(); u != 1000 {
		t.Fatalf("after the removal the app's volumes use %d bytes, want 1000", u)
	}
	if all, _ := volumes.ListAll(ctx, p, ""); len(all) != 2 || all[0].PodmanName != volumes.InstancePodmanName(v.ID, 0) ||
		all[0].Worker != "w1" || all[1].PodmanName != volumes.InstancePodmanName(v.ID, 2) || all[1].Slot != 1 {
		t.Fatalf("operator list: %+v", all)
	}

	// Releasing the volume releases every copy; the app still lists it,
	// with its removal time, until it is removed.
	var r volumes.Volume
	tx(func(tx pgx.Tx) (err error) { r, err = volumes.Release(ctx, tx, team, app, v.ID, time.Hour); return err })
	if r.RemoveAfter == nil || len(r.Instances) != 2 || r.Instances[0].RemoveAfter == nil || !r.Instances[0].RemoveAfter.Equal(*r.RemoveAfter) {
		t.Fatalf("released: %+v", r)
	}
	if m := mounts(0); len(m) != 0 {
		t.Fatalf("mounted after release: %v", m)
	}
	if l, _ := volumes.List(ctx, p, app); len(l) != 1 || l[0].ReleasedAt == nil || l[0].RemoveAfter == nil || l[0].AppID != 0 {
		t.Fatalf("the app's list after the release: %+v", l)
	}
	if err := volumes.CheckReplicas(ctx, p, app, 3); err != nil {
		t.Fatal(err)
	}
	p.Exec(ctx, "UPDATE volumes SET remove_after = now() - interval '1 second'")
	p.Exec(ctx, "UPDATE volume_instances SET remove_after = now() - interval '1 second'")
	if n := sweep(); n != 3 {
		t.Fatalf("swept %d, want the volume and its 2 copies", n)
	}
	if l, _ := volumes.List(ctx, p, app); len(l) != 0 {
		t.Fatalf("removed volume still listed: %+v", l)
	}
}

// Deleting an app releases its per-instance volumes' copies too.
func TestReleaseAppCopies(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db := pgtest.New(t)
	p := db.Pool
	var team, app int64
	p.QueryRow(ctx, "INSERT INTO teams (name, slug) VALUES ('t', 't') RETURNING id").Scan(&team)
	p.QueryRow(ctx, "INSERT INTO apps (team_id, slug, name, replicas) VALUES ($1, 'web', 'Web', 3) RETURNING id", team).Scan(&app)
	err := pgx.BeginFunc(ctx, p, func(tx pgx.Tx) error {
		if _, err := volumes.Create(ctx, tx, team, app, volumes.New{Name: "cache", MountPath: "/cache", SizeMB: 10, PerInstance: true}); err != nil {
			return err
		}
		return volumes.ReleaseApp(ctx, tx, app, 2*time.Hour)
	})
	if err != nil {
		t.Fatal(err)
	}
	list, err := volumes.ListTeam(ctx, p, team)
	if err != nil || len(list) != 1 || len(list[0].Instances) != 3 {
		t.Fatalf("%+v %v", list, err)
	}
	for _, in := range list[0].Instances {
		if in.RemoveAfter == nil || time.Until(*in.RemoveAfter) < 119*time.Minute {
			t.Fatalf("copy %+v", in)
		}
	}
}

// `wisehosting volume add` declares a volume by the app's slug and writes
// the API's audit record, by the operator's command.
func TestCreateBySlugAudited(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db := pgtest.New(t)
	var team, app int64
	db.Pool.QueryRow(ctx, "INSERT INTO teams (name, slug) VALUES ('t', 't') RETURNING id").Scan(&team)
	db.Pool.QueryRow(ctx, "INSERT INTO apps (team_id, slug, name) VALUES ($1, 'web', 'Web') RETURNING id", team).Scan(&app)
	s := &volumes.Service{Pool: db.Pool}
	if _, err := s.CreateBySlug(ctx, "nope", volumes.New{Name: "data", MountPath: "/data", SizeMB: 10}); err == nil || err.Error() != `no app "nope"` {
		t.Fatalf("unknown app: %v", err)
	}
	v, err := s.CreateBySlug(ctx, "web", volumes.New{Name: "data", MountPath: "/data", SizeMB: 10})
	if err != nil || v.AppID != app {
		t.Fatalf("create: %+v %v", v, err)
	}
	var action, target, by string
	var noUser bool
	var id int64
	if err := db.Pool.QueryRow(ctx, `SELECT action, target, user_id IS NULL, details->>'by', (details->>'volume_id')::bigint
		FROM audit_events WHERE team_id = $1`, team).Scan(&action, &target, &noUser, &by, &id); err != nil {
		t.Fatal(err)
	}
	if action != "volume.create" || target != "web" || !noUser || by != "operator command" || id != v.ID {
		t.Fatalf("audit record: %s %s no user %v by %q volume %d", action, target, noUser, by, id)
	}
}
