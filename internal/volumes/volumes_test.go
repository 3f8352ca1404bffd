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
	pgx.BeginFunc(ctx, p, func(tx pgx.Tx) error { return volumes.Bind(ctx, tx, app, worker) })
	if w, _ := volumes.PinnedWorker(ctx, p, app); w != worker {
		t.Fatalf("pinned to %d, want %d", w, worker)
	}
	m, _ := volumes.Mounts(ctx, p, app)
	if len(m) != 1 || m[0] != (wsproto.VolumeMount{Name: volumes.PodmanName(v.ID), Path: "/data", SizeMB: 10}) {
		t.Fatalf("mounts: %+v", m)
	}
	if all, err := volumes.ListAll(ctx, p, "w"); err != nil || len(all) != 1 || all[0].Team != "t" || all[0].Worker != "w" {
		t.Fatalf("operator list: %+v %v", all, err)
	}
	if all, _ := volumes.ListAll(ctx, p, "elsewhere"); len(all) != 0 {
		t.Fatalf("another worker's list: %+v", all)
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
	if m, _ := volumes.Mounts(ctx, p, app); len(m) != 0 {
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
