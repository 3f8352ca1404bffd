//go:build remote && containers_image_openpgp

// Package runtime runs apps in Podman for the worker agent, through the
// Podman bindings against the local API socket. Builds run on a dedicated
// bridge network (never the host's), app containers get the app's CPU and
// memory limits, labels naming the app and deployment, and one published
// port on the worker's mesh address.
//
// Containers belong to Podman, not to the agent process: they keep
// running when the agent restarts, and the agent finds them again by their
// labels (List).
package runtime

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/containers/buildah/define"
	"github.com/containers/podman/v5/pkg/bindings"
	"github.com/containers/podman/v5/pkg/bindings/containers"
	"github.com/containers/podman/v5/pkg/bindings/images"
	"github.com/containers/podman/v5/pkg/bindings/network"
	"github.com/containers/podman/v5/pkg/bindings/system"
	entities "github.com/containers/podman/v5/pkg/domain/entities/types"
	"github.com/containers/podman/v5/pkg/specgen"
	spec "github.com/opencontainers/runtime-spec/specs-go"
	nettypes "go.podman.io/common/libnetwork/types"
	"go.uber.org/zap"
)

// Labels the runtime puts on every app container.
const (
	LabelApp        = "io.wisehosting.app"
	LabelDeployment = "io.wisehosting.deployment"
	LabelSlug       = "io.wisehosting.slug"
	LabelPort       = "io.wisehosting.port"
	LabelManaged    = "io.wisehosting.managed"
	// LabelSlot is the app's instance a container runs (absent: 0).
	LabelSlot = "io.wisehosting.slot"
)

// Config configures a Runtime.
type Config struct {
	// Socket is the Podman API address. Default:
	// unix:///run/podman/podman.sock.
	Socket string
	// BindIP is the address published ports bind to: the worker's mesh
	// address (never 0.0.0.0 in production). Default: 127.0.0.1.
	BindIP string
	// BuildNetwork is the bridge network builds run on. Default:
	// wisehosting-build.
	BuildNetwork string
	// AppNetwork is the bridge network of app containers that name no
	// team. Default: wisehosting-apps. Apps of a team join the team's own
	// network (TeamNetwork).
	AppNetwork string
	// Egress filters what app containers may connect to (see Egress).
	Egress Egress
	// PortMin and PortMax bound the host ports given to apps. Defaults:
	// 20000 and 29999. The range must not overlap the kernel's ephemeral
	// range (ip_local_port_range): New refuses one that does, since an
	// outgoing connection could take a port an app is about to bind.
	PortMin, PortMax int
	// StopTimeout is how long a container gets to exit after SIGTERM.
	// Default: 10s.
	StopTimeout time.Duration
	// Instance separates the containers of several agents sharing one
	// Podman service (tests; one agent per host in production). Default:
	// none.
	Instance string
	// Ports finds ports in use on the host (default: ss -Htln).
	Ports  func(ctx context.Context) (map[int]bool, error)
	Logger *zap.Logger
}

func (c *Config) defaults() {
	if c.Socket == "" {
		c.Socket = "unix:///run/podman/podman.sock"
	}
	if c.BindIP == "" {
		c.BindIP = "127.0.0.1"
	}
	if c.BuildNetwork == "" {
		c.BuildNetwork = "wisehosting-build"
	}
	if c.AppNetwork == "" {
		c.AppNetwork = "wisehosting-apps"
	}
	if c.PortMin == 0 {
		c.PortMin = 20000
	}
	if c.PortMax == 0 {
		c.PortMax = 29999
	}
	if c.StopTimeout == 0 {
		c.StopTimeout = 10 * time.Second
	}
	if c.Ports == nil {
		c.Ports = ListeningPorts
	}
	if c.Logger == nil {
		c.Logger = zap.NewNop()
	}
}

// Runtime talks to one Podman service.
type Runtime struct {
	cfg  Config
	conn context.Context

	egress *egressRules // nil: no filtering

	mu       sync.Mutex
	reserved map[int]time.Time // host ports handed out but maybe not yet bound
	teams    map[int64]*sync.Mutex
}

// New connects to Podman and creates the build and app networks when they
// are missing.
func New(ctx context.Context, cfg Config) (*Runtime, error) {
	cfg.defaults()
	if ip := net.ParseIP(cfg.BindIP); ip == nil || ip.IsUnspecified() {
		return nil, fmt.Errorf("bind address %q must be the worker's mesh IP (not a wildcard)", cfg.BindIP)
	}
	if cfg.PortMin < 1024 || cfg.PortMax > 65535 || cfg.PortMin > cfg.PortMax {
		return nil, fmt.Errorf("invalid host port range %d-%d", cfg.PortMin, cfg.PortMax)
	}
	if err := CheckPortRange(cfg.PortMin, cfg.PortMax, EphemeralRangeFile); err != nil {
		return nil, err
	}
	conn, err := bindings.NewConnection(ctx, cfg.Socket)
	if err != nil {
		return nil, fmt.Errorf("connecting to podman at %s: %w", cfg.Socket, err)
	}
	egress, err := parseEgress(cfg.Egress)
	if err != nil {
		return nil, err
	}
	r := &Runtime{cfg: cfg, conn: conn, reserved: map[int]time.Time{}, egress: egress}
	for _, n := range []string{cfg.BuildNetwork, cfg.AppNetwork} {
		if err := r.ensureNetwork(ctx, n); err != nil {
			return nil, err
		}
	}
	if err := r.restoreEgress(ctx); err != nil {
		return nil, err
	}
	// Containers of apps whose deploy named no team (queued before teams
	// got networks) share AppNetwork: they get the same egress rules.
	if err := r.applyEgress(ctx, cfg.AppNetwork); err != nil {
		return nil, err
	}
	return r, nil
}

// BindIP is the address app ports are published on.
func (r *Runtime) BindIP() string { return r.cfg.BindIP }

// Version is the Podman service's version.
func (r *Runtime) Version(ctx context.Context) (string, error) {
	v, err := system.Version(r.connFor(ctx), nil)
	if err != nil {
		return "", err
	}
	return v.Server.Version, nil
}

func (r *Runtime) ensureNetwork(ctx context.Context, name string) error {
	ok, err := network.Exists(r.connFor(ctx), name, nil)
	if err != nil {
		return fmt.Errorf("checking network %s: %w", name, err)
	}
	if ok {
		return nil
	}
	if _, err := network.Create(r.connFor(ctx), &nettypes.Network{Name: name, Driver: "bridge"}); err != nil {
		if ok, _ := network.Exists(r.connFor(ctx), name, nil); ok {
			return nil // created concurrently
		}
		return fmt.Errorf("creating network %s: %w", name, err)
	}
	r.cfg.Logger.Info("runtime: created network", zap.String("network", name))
	return nil
}

// BuildSpec says what to build.
type BuildSpec struct {
	// Dir is the build context (the checked-out repository).
	Dir string
	// Containerfile is a path relative to Dir (OwnFile) or the generated
	// content of a preset.
	Containerfile string
	OwnFile       bool
	// Tag names the image, e.g. localhost/wisehosting/<slug>:<deployment>.
	Tag    string
	Labels map[string]string
}

// Build builds an image on the build network, writing the build's output
// to out as it happens, and returns the image's name. Cancelling ctx
// aborts the build.
func (r *Runtime) Build(ctx context.Context, b BuildSpec, out io.Writer) (string, error) {
	if b.Tag == "" || b.Dir == "" {
		return "", errors.New("build needs a context directory and a tag")
	}
	file := b.Containerfile
	if !b.OwnFile {
		// A preset: written beside the context, outside the repository's
		// own files (a repository cannot override it with a symlink).
		f, err := os.CreateTemp("", "wh-containerfile-*")
		if err != nil {
			return "", err
		}
		defer os.Remove(f.Name())
		if _, err := f.WriteString(b.Containerfile); err != nil {
			f.Close()
			return "", err
		}
		f.Close()
		file = f.Name()
	} else {
		clean := filepath.Clean(b.Containerfile)
		if filepath.IsAbs(clean) || strings.HasPrefix(clean, "..") {
			return "", fmt.Errorf("containerfile %q must be inside the repository", b.Containerfile)
		}
		p := filepath.Join(b.Dir, clean)
		st, err := os.Lstat(p)
		if err != nil || !st.Mode().IsRegular() {
			return "", fmt.Errorf("containerfile %q is not a regular file in the repository", b.Containerfile)
		}
		file = p
	}
	if out == nil {
		out = io.Discard
	}
	opts := entities.BuildOptions{}
	opts.ContextDirectory = b.Dir
	opts.Output = b.Tag
	opts.Out, opts.Err, opts.ReportWriter = out, out, out
	labels := map[string]string{LabelManaged: r.managed()}
	for k, v := range b.Labels {
		labels[k] = v
	}
	opts.Labels = labelList(labels)
	opts.PullPolicy = define.PullIfMissing
	opts.Layers = true // the layer cache makes redeploys of unchanged dependencies fast
	opts.RemoveIntermediateCtrs = true
	opts.ForceRmIntermediateCtrs = true
	opts.ConfigureNetwork = define.NetworkEnabled
	opts.NamespaceOptions = define.NamespaceOptions{{Name: "network", Path: r.cfg.BuildNetwork}}
	opts.CommonBuildOpts = &define.CommonBuildOptions{}
	rep, err := images.Build(r.connFor(ctx), []string{file}, opts)
	if err != nil {
		if ctx.Err() != nil {
			return "", fmt.Errorf("build cancelled: %w", ctx.Err())
		}
		return "", fmt.Errorf("build failed: %w", err)
	}
	if rep == nil || rep.ID == "" {
		return "", errors.New("build produced no image")
	}
	return b.Tag, nil
}

func labelList(m map[string]string) []string {
	out := make([]string, 0, len(m))
	for k, v := range m {
		out = append(out, k+"="+v)
	}
	sort.Strings(out)
	return out
}

// ImageExists reports whether an image is present locally.
func (r *Runtime) ImageExists(ctx context.Context, name string) (bool, error) {
	return images.Exists(r.connFor(ctx), name, nil)
}

// RemoveImage deletes a local image (ignoring one still in use), keeping
// its untagged parents (the build cache, see RemoveImageID).
func (r *Runtime) RemoveImage(ctx context.Context, name string) error {
	_, errs := images.Remove(r.connFor(ctx), []string{name}, new(images.RemoveOptions).WithNoPrune(true))
	if len(errs) > 0 {
		return errs[0]
	}
	return nil
}

// RunSpec describes an app container.
type RunSpec struct {
	AppID int64
	// TeamID picks the container's network: one bridge network per team
	// (0: the shared AppNetwork, for apps of a control plane that does
	// not send it).
	TeamID       int64
	DeploymentID int64
	// Slot is the app's instance (0: the first); a worker may run several
	// instances of one app.
	Slot      int
	Slug      string
	Image     string
	Port      int // the port the app listens on inside the container
	HostPort  int // 0: pick a free one
	CPUMillis int
	MemoryMB  int
	DiskMB    int
	Env       map[string]string
	// Command, when set, replaces the image's entrypoint and command.
	Command []string
	// DiskQuota enables the storage size limit (only where the storage
	// filesystem supports it; see ProbeDiskQuota), of volumes too.
	DiskQuota bool
	// Volumes are named volumes to mount (created when missing, kept when
	// the container goes).
	Volumes []Volume
}

// Container is an app container as the runtime sees it.
type Container struct {
	ID           string
	Name         string
	AppID        int64
	DeploymentID int64
	Slot         int
	Slug         string
	Image        string
	ImageID      string
	Port         int
	HostPort     int
	State        string // created, running, exited, …
	ExitCode     int
	Pid          int
	StartedAt    time.Time
	FinishedAt   time.Time
	Restarts     int
}

// Running reports whether the container's process is up.
func (c Container) Running() bool { return c.State == "running" }

// ContainerName is the name of a deployment's container of an app's
// instance slot.
func (r *Runtime) ContainerName(slug string, deploymentID int64, slot int) string {
	name := fmt.Sprintf("wh-%s-%d", slug, deploymentID)
	if r.cfg.Instance != "" {
		name = fmt.Sprintf("wh-%s-%s-%d", r.cfg.Instance, slug, deploymentID)
	}
	if slot > 0 {
		name += "-i" + strconv.Itoa(slot)
	}
	return name
}

func (r *Runtime) managed() string {
	if r.cfg.Instance != "" {
		return r.cfg.Instance
	}
	return "true"
}

// Run creates and starts an app container. A host port the runtime chose
// that turns out to be taken when the container binds it (something took
// it after the check) is held back and another one is tried.
func (r *Runtime) Run(ctx context.Context, s RunSpec) (Container, error) {
	if s.Image == "" || s.Port <= 0 || s.Port > 65535 {
		return Container{}, fmt.Errorf("invalid run spec: image %q, port %d", s.Image, s.Port)
	}
	if s.HostPort != 0 {
		return r.run(ctx, s, s.HostPort)
	}
	var err error
	for attempt := 0; attempt < 5; attempt++ {
		var hp int
		if hp, err = r.FreePort(ctx); err != nil {
			return Container{}, err
		}
		var c Container
		c, err = r.run(ctx, s, hp)
		if !addrInUse(err) {
			return c, err
		}
		r.holdPort(hp)
		r.cfg.Logger.Warn("runtime: host port taken at bind time, trying another", zap.Int("port", hp), zap.Error(err))
	}
	return Container{}, err
}

func (r *Runtime) run(ctx context.Context, s RunSpec, hp int) (Container, error) {
	defer r.release(hp)
	g := specgen.NewSpecGenerator(s.Image, false)
	g.Name = r.ContainerName(s.Slug, s.DeploymentID, s.Slot)
	g.Labels = map[string]string{
		LabelManaged:    r.managed(),
		LabelApp:        strconv.FormatInt(s.AppID, 10),
		LabelDeployment: strconv.FormatInt(s.DeploymentID, 10),
		LabelSlug:       s.Slug,
		LabelPort:       strconv.Itoa(s.Port),
	}
	if s.Slot > 0 {
		g.Labels[LabelSlot] = strconv.Itoa(s.Slot)
	}
	env := map[string]string{}
	for k, v := range s.Env {
		env[k] = v
	}
	env["PORT"] = strconv.Itoa(s.Port)
	g.Env = env
	if len(s.Command) > 0 {
		g.Entrypoint = s.Command // the image's CMD is then not appended
	}
	yes := true
	g.Init = &yes // signals reach the app even when it is PID 1-unaware
	g.NoNewPrivileges = &yes
	stop := uint(r.cfg.StopTimeout / time.Second)
	g.StopTimeout = &stop
	g.RestartPolicy = "no" // the agent restarts crashed apps and counts crashes
	g.NetNS = specgen.Namespace{NSMode: specgen.Bridge}
	netName := r.cfg.AppNetwork
	if s.TeamID != 0 {
		g.Labels[LabelTeam] = strconv.FormatInt(s.TeamID, 10)
		l := r.teamLock(s.TeamID)
		l.Lock()
		defer l.Unlock()
		var err error
		if netName, err = r.ensureTeamNetwork(ctx, s.TeamID); err != nil {
			return Container{}, err
		}
	}
	g.Networks = map[string]nettypes.PerNetworkOptions{netName: {}}
	g.PortMappings = []nettypes.PortMapping{{HostIP: r.cfg.BindIP, HostPort: uint16(hp), ContainerPort: uint16(s.Port), Protocol: "tcp"}}
	res := &spec.LinuxResources{}
	if s.MemoryMB > 0 {
		mem := int64(s.MemoryMB) << 20
		res.Memory = &spec.LinuxMemory{Limit: &mem, Swap: &mem}
	}
	if s.CPUMillis > 0 {
		period := uint64(100000)
		quota := int64(s.CPUMillis) * 100 // period/1000 per milli-CPU
		res.CPU = &spec.LinuxCPU{Period: &period, Quota: &quota}
	}
	pids := int64(4096)
	res.Pids = &spec.LinuxPids{Limit: pids}
	g.ResourceLimits = res
	if s.DiskQuota && s.DiskMB > 0 {
		g.StorageOpts = map[string]string{"size": strconv.Itoa(s.DiskMB) + "M"}
	}
	var err error
	if g.Volumes, err = r.mountVolumes(ctx, s.Volumes, s.DiskQuota); err != nil {
		return Container{}, err
	}
	// A leftover container of the same deployment (an earlier attempt of
	// the same job) is replaced.
	if ok, _ := containers.Exists(r.connFor(ctx), g.Name, nil); ok {
		force := true
		containers.Remove(r.connFor(ctx), g.Name, &containers.RemoveOptions{Force: &force})
	}
	created, err := containers.CreateWithSpec(r.connFor(ctx), g, nil)
	if err != nil {
		return Container{}, fmt.Errorf("creating container: %w", err)
	}
	if err := containers.Start(r.connFor(ctx), created.ID, nil); err != nil {
		force := true
		containers.Remove(r.connFor(ctx), created.ID, &containers.RemoveOptions{Force: &force})
		return Container{}, fmt.Errorf("starting container: %w", err)
	}
	return r.Inspect(ctx, created.ID)
}

// Start starts an existing (exited) container again.
func (r *Runtime) Start(ctx context.Context, id string) error {
	return containers.Start(r.connFor(ctx), id, nil)
}

// Stop stops a container (SIGTERM, then SIGKILL after the stop timeout).
func (r *Runtime) Stop(ctx context.Context, id string) error {
	t := uint(r.cfg.StopTimeout / time.Second)
	ignore := true
	return containers.Stop(r.connFor(ctx), id, &containers.StopOptions{Timeout: &t, Ignore: &ignore})
}

// Kill sends SIGKILL (tests use it to simulate a crash).
func (r *Runtime) Kill(ctx context.Context, id string) error {
	sig := "KILL"
	return containers.Kill(r.connFor(ctx), id, &containers.KillOptions{Signal: &sig})
}

// Remove deletes a container, stopping it first if needed; the last
// container of a team takes the team's network with it.
func (r *Runtime) Remove(ctx context.Context, id string) error {
	var team int64
	if d, err := containers.Inspect(r.connFor(ctx), id, nil); err == nil && d.Config != nil {
		team, _ = strconv.ParseInt(d.Config.Labels[LabelTeam], 10, 64)
	}
	force := true
	t := uint(r.cfg.StopTimeout / time.Second)
	if _, err := containers.Remove(r.connFor(ctx), id, &containers.RemoveOptions{Force: &force, Timeout: &t}); err != nil {
		return err
	}
	if team != 0 {
		if err := r.releaseTeamNetwork(ctx, team); err != nil {
			r.cfg.Logger.Warn("runtime: removing a team network", zap.Int64("team", team), zap.Error(err))
		}
	}
	return nil
}

// Inspect returns one container.
func (r *Runtime) Inspect(ctx context.Context, id string) (Container, error) {
	d, err := containers.Inspect(r.connFor(ctx), id, nil)
	if err != nil {
		return Container{}, err
	}
	c := Container{ID: d.ID, Name: d.Name, Image: d.ImageName, Restarts: int(d.RestartCount)}
	if d.Config != nil {
		c.AppID, c.DeploymentID, c.Slug, c.Port = fromLabels(d.Config.Labels)
		c.Slot, _ = strconv.Atoi(d.Config.Labels[LabelSlot])
	}
	if d.State != nil {
		c.State, c.ExitCode, c.Pid = d.State.Status, int(d.State.ExitCode), d.State.Pid
		c.StartedAt, c.FinishedAt = d.State.StartedAt, d.State.FinishedAt
	}
	if d.HostConfig != nil {
		for _, bs := range d.HostConfig.PortBindings {
			for _, b := range bs {
				if p, err := strconv.Atoi(b.HostPort); err == nil && c.HostPort == 0 {
					c.HostPort = p
				}
			}
		}
	}
	return c, nil
}

// MemoryLimit is the memory limit Podman applied to a container (bytes).
func (r *Runtime) MemoryLimit(ctx context.Context, id string) (int64, error) {
	d, err := containers.Inspect(r.connFor(ctx), id, nil)
	if err != nil {
		return 0, err
	}
	if d.HostConfig == nil {
		return 0, nil
	}
	return d.HostConfig.Memory, nil
}

func fromLabels(l map[string]string) (app, dep int64, slug string, port int) {
	app, _ = strconv.ParseInt(l[LabelApp], 10, 64)
	dep, _ = strconv.ParseInt(l[LabelDeployment], 10, 64)
	port, _ = strconv.Atoi(l[LabelPort])
	return app, dep, l[LabelSlug], port
}

// List returns every app container the agent manages, running or not.
func (r *Runtime) List(ctx context.Context) ([]Container, error) {
	all := true
	list, err := containers.List(r.connFor(ctx), &containers.ListOptions{All: &all,
		Filters: map[string][]string{"label": {LabelManaged + "=" + r.managed()}}})
	if err != nil {
		return nil, err
	}
	out := make([]Container, 0, len(list))
	for _, lc := range list {
		c := Container{ID: lc.ID, Image: lc.Image, ImageID: lc.ImageID, State: lc.State, ExitCode: int(lc.ExitCode), Pid: lc.Pid,
			StartedAt: time.Unix(lc.StartedAt, 0), FinishedAt: time.Unix(lc.ExitedAt, 0), Restarts: int(lc.Restarts)}
		if len(lc.Names) > 0 {
			c.Name = lc.Names[0]
		}
		c.AppID, c.DeploymentID, c.Slug, c.Port = fromLabels(lc.Labels)
		c.Slot, _ = strconv.Atoi(lc.Labels[LabelSlot])
		for _, p := range lc.Ports {
			if c.HostPort == 0 {
				c.HostPort = int(p.HostPort)
			}
		}
		out = append(out, c)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].DeploymentID < out[j].DeploymentID })
	return out, nil
}

// withConn carries the caller's deadline and cancellation and the Podman
// connection the bindings look up in the context.
type withConn struct {
	context.Context
	conn context.Context
}

func (c withConn) Value(k any) any {
	if v := c.Context.Value(k); v != nil {
		return v
	}
	return c.conn.Value(k)
}

// connFor returns ctx carrying the Podman connection.
func (r *Runtime) connFor(ctx context.Context) context.Context {
	if ctx == nil {
		return r.conn
	}
	return withConn{Context: ctx, conn: r.conn}
}
