//go:build remote && containers_image_openpgp

package runtime

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/containers/podman/v5/pkg/bindings/containers"
	"github.com/containers/podman/v5/pkg/bindings/volumes"
	entities "github.com/containers/podman/v5/pkg/domain/entities/types"
	"github.com/containers/podman/v5/pkg/specgen"
	spec "github.com/opencontainers/runtime-spec/specs-go"
	nettypes "go.podman.io/common/libnetwork/types"
	"go.uber.org/zap"
)

// LabelVolume marks the named volumes the agent manages (value: the
// agent's instance, as LabelManaged).
const LabelVolume = "io.wisehosting.volume"

// LabelTask marks the containers of scheduled runs (value: the agent's
// instance). They are not app containers: List does not return them.
const LabelTask = "io.wisehosting.task"

// Volume is a persistent volume to mount: Name is the control plane's
// (wh-vol-<id>, or wh-vol-<id>-<n> for an instance's own copy), Path the
// mount point in the container.
type Volume struct {
	Name   string
	Path   string
	SizeMB int
}

// VolumeName is the Podman name of a volume (separated per instance,
// like container names).
func (r *Runtime) VolumeName(name string) string {
	if r.cfg.Instance != "" {
		return "wh-" + r.cfg.Instance + "-" + strings.TrimPrefix(name, "wh-")
	}
	return name
}

// validVolumeName accepts the control plane's names only: wh-vol-<id>,
// and wh-vol-<id>-<n> for an instance's copy of a per-instance volume.
func validVolumeName(name string) bool {
	s, ok := strings.CutPrefix(name, "wh-vol-")
	if !ok {
		return false
	}
	id, n, copied := strings.Cut(s, "-")
	if id == "" || len(id) > 19 || copied && (n == "" || len(n) > 9) {
		return false
	}
	if _, err := strconv.ParseUint(id, 10, 63); err != nil {
		return false
	}
	if copied {
		if _, err := strconv.ParseUint(n, 10, 31); err != nil {
			return false
		}
	}
	return true
}

// EnsureVolume creates a named volume unless it exists. With quota
// enforcement (XFS prjquota on the storage) it gets a size limit.
func (r *Runtime) EnsureVolume(ctx context.Context, v Volume, quota bool) (string, error) {
	if !validVolumeName(v.Name) {
		return "", fmt.Errorf("invalid volume name %q", v.Name)
	}
	name := r.VolumeName(v.Name)
	if ok, err := volumes.Exists(r.connFor(ctx), name, nil); err != nil {
		return "", fmt.Errorf("checking volume %s: %w", v.Name, err)
	} else if ok {
		return name, nil
	}
	opts := entities.VolumeCreateOptions{Name: name, Labels: map[string]string{LabelVolume: r.managed()}}
	if quota && v.SizeMB > 0 {
		opts.Options = map[string]string{"o": "size=" + strconv.Itoa(v.SizeMB) + "m"}
	}
	if _, err := volumes.Create(r.connFor(ctx), opts, nil); err != nil {
		if ok, _ := volumes.Exists(r.connFor(ctx), name, nil); ok {
			return name, nil // created concurrently
		}
		return "", fmt.Errorf("creating volume %s: %w", v.Name, err)
	}
	r.cfg.Logger.Info("runtime: created volume", zap.String("volume", name), zap.Int("size_mb", v.SizeMB), zap.Bool("quota", quota))
	return name, nil
}

// mountVolumes creates the volumes of a container and returns its mounts.
func (r *Runtime) mountVolumes(ctx context.Context, vs []Volume, quota bool) ([]*specgen.NamedVolume, error) {
	var out []*specgen.NamedVolume
	for _, v := range vs {
		if !strings.HasPrefix(v.Path, "/") || filepath.Clean(v.Path) != v.Path || v.Path == "/" {
			return nil, fmt.Errorf("invalid mount path %q for volume %s", v.Path, v.Name)
		}
		name, err := r.EnsureVolume(ctx, v, quota)
		if err != nil {
			return nil, err
		}
		out = append(out, &specgen.NamedVolume{Name: name, Dest: v.Path, Options: []string{"rw", "nodev", "nosuid"}})
	}
	return out, nil
}

// RemoveVolume deletes a named volume and its data (ignoring one that is
// already gone). A volume still mounted by a container is refused.
func (r *Runtime) RemoveVolume(ctx context.Context, name string) error {
	if !validVolumeName(name) {
		return fmt.Errorf("invalid volume name %q", name)
	}
	full := r.VolumeName(name)
	ok, err := volumes.Exists(r.connFor(ctx), full, nil)
	if err != nil || !ok {
		return err
	}
	if err := volumes.Remove(r.connFor(ctx), full, nil); err != nil {
		return fmt.Errorf("removing volume %s: %w", name, err)
	}
	r.cfg.Logger.Info("runtime: removed volume", zap.String("volume", full))
	return nil
}

// VolumeExists reports whether the control plane's volume name exists here.
func (r *Runtime) VolumeExists(ctx context.Context, name string) (bool, error) {
	return volumes.Exists(r.connFor(ctx), r.VolumeName(name), nil)
}

// VolumeUsage measures the bytes each managed volume uses (by the control
// plane's names), walking its directory on the host.
func (r *Runtime) VolumeUsage(ctx context.Context) (map[string]int64, error) {
	list, err := volumes.List(r.connFor(ctx), &volumes.ListOptions{Filters: map[string][]string{"label": {LabelVolume + "=" + r.managed()}}})
	if err != nil {
		return nil, err
	}
	out := map[string]int64{}
	prefix := "wh-"
	if r.cfg.Instance != "" {
		prefix = "wh-" + r.cfg.Instance + "-"
	}
	for _, v := range list {
		rest, ok := strings.CutPrefix(v.Name, prefix)
		if !ok || v.Mountpoint == "" {
			continue
		}
		var n int64
		filepath.WalkDir(v.Mountpoint, func(_ string, d fs.DirEntry, err error) error {
			if err != nil || ctx.Err() != nil {
				return nil
			}
			if info, err := d.Info(); err == nil && info.Mode().IsRegular() {
				n += info.Size()
			}
			return nil
		})
		out["wh-"+rest] = n
	}
	return out, nil
}

// TaskSpec describes a scheduled run: a container from an app's image
// that runs Command to its end.
type TaskSpec struct {
	AppID     int64
	TeamID    int64
	RunID     int64
	Slug      string
	Image     string
	Command   []string
	Env       map[string]string
	CPUMillis int
	MemoryMB  int
	Volumes   []Volume
	DiskQuota bool
	Timeout   time.Duration
	// LogLines is how many of the last output lines to return.
	LogLines int
}

// TaskResult is how a run ended.
type TaskResult struct {
	ExitCode int
	Duration time.Duration
	Tail     []string
	TimedOut bool
}

// TaskName is the container name of a run.
func (r *Runtime) TaskName(slug string, runID int64) string {
	if r.cfg.Instance != "" {
		return fmt.Sprintf("wh-%s-%s-run-%d", r.cfg.Instance, slug, runID)
	}
	return fmt.Sprintf("wh-%s-run-%d", slug, runID)
}

// RunTask runs a scheduled command in a fresh container on the app's
// team network, waits for it to exit (killing it after the timeout or
// when ctx ends), and removes it after reading its last lines.
func (r *Runtime) RunTask(ctx context.Context, t TaskSpec) (TaskResult, error) {
	if t.Image == "" || len(t.Command) == 0 {
		return TaskResult{}, errors.New("a scheduled run needs an image and a command")
	}
	g := specgen.NewSpecGenerator(t.Image, false)
	g.Name = r.TaskName(t.Slug, t.RunID)
	g.Labels = map[string]string{
		LabelTask: r.managed(),
		LabelApp:  strconv.FormatInt(t.AppID, 10),
		LabelSlug: t.Slug,
	}
	env := map[string]string{}
	for k, v := range t.Env {
		env[k] = v
	}
	g.Env = env
	g.Entrypoint = t.Command
	yes := true
	g.Init = &yes
	g.NoNewPrivileges = &yes
	stop := uint(r.cfg.StopTimeout / time.Second)
	g.StopTimeout = &stop
	g.RestartPolicy = "no"
	g.NetNS = specgen.Namespace{NSMode: specgen.Bridge}
	netName := r.cfg.AppNetwork
	res := &spec.LinuxResources{}
	if t.MemoryMB > 0 {
		mem := int64(t.MemoryMB) << 20
		res.Memory = &spec.LinuxMemory{Limit: &mem, Swap: &mem}
	}
	if t.CPUMillis > 0 {
		period := uint64(100000)
		quota := int64(t.CPUMillis) * 100
		res.CPU = &spec.LinuxCPU{Period: &period, Quota: &quota}
	}
	res.Pids = &spec.LinuxPids{Limit: 4096}
	g.ResourceLimits = res
	var err error
	if g.Volumes, err = r.mountVolumes(ctx, t.Volumes, t.DiskQuota); err != nil {
		return TaskResult{}, err
	}
	// A leftover container of the same run (an earlier attempt) goes.
	force := true
	if ok, _ := containers.Exists(r.connFor(ctx), g.Name, nil); ok {
		containers.Remove(r.connFor(ctx), g.Name, &containers.RemoveOptions{Force: &force})
	}
	created, err := func() (string, error) {
		if t.TeamID != 0 {
			g.Labels[LabelTeam] = strconv.FormatInt(t.TeamID, 10)
			l := r.teamLock(t.TeamID)
			l.Lock()
			defer l.Unlock()
			if netName, err = r.ensureTeamNetwork(ctx, t.TeamID); err != nil {
				return "", err
			}
		}
		g.Networks = map[string]nettypes.PerNetworkOptions{netName: {}}
		c, err := containers.CreateWithSpec(r.connFor(ctx), g, nil)
		if err != nil {
			return "", fmt.Errorf("creating the run's container: %w", err)
		}
		return c.ID, nil
	}()
	if err != nil {
		return TaskResult{}, err
	}
	defer r.Remove(context.Background(), created)
	start := time.Now()
	if err := containers.Start(r.connFor(ctx), created, nil); err != nil {
		return TaskResult{}, fmt.Errorf("starting the run's container: %w", err)
	}
	wctx := ctx
	var cancel context.CancelFunc = func() {}
	if t.Timeout > 0 {
		wctx, cancel = context.WithTimeout(ctx, t.Timeout)
	}
	defer cancel()
	var res2 TaskResult
	code, werr := containers.Wait(r.connFor(wctx), created, new(containers.WaitOptions).WithConditions([]string{"exited", "stopped"}))
	if werr != nil {
		if wctx.Err() == nil {
			return TaskResult{}, fmt.Errorf("waiting for the run: %w", werr)
		}
		// Timed out or cancelled: stop it (SIGTERM, then SIGKILL).
		r.Stop(context.Background(), created)
		res2.TimedOut = errors.Is(wctx.Err(), context.DeadlineExceeded) && ctx.Err() == nil
		code = -1
		if c, err := r.Inspect(context.Background(), created); err == nil && c.State != "running" {
			code = int32(c.ExitCode)
		}
	}
	res2.ExitCode, res2.Duration = int(code), time.Since(start)
	if t.LogLines > 0 {
		res2.Tail, _ = r.Tail(context.Background(), created, t.LogLines)
	}
	if ctx.Err() != nil && !res2.TimedOut {
		return res2, fmt.Errorf("the run was cancelled: %w", ctx.Err())
	}
	return res2, nil
}

// RemoveTasks removes the containers of scheduled runs left behind (the
// agent stopped while they ran: their results were lost with it).
func (r *Runtime) RemoveTasks(ctx context.Context) error {
	all := true
	list, err := containers.List(r.connFor(ctx), &containers.ListOptions{All: &all,
		Filters: map[string][]string{"label": {LabelTask + "=" + r.managed()}}})
	if err != nil {
		return err
	}
	for _, c := range list {
		r.Remove(ctx, c.ID)
	}
	return nil
}
