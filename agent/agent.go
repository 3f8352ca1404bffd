//go:build remote && containers_image_openpgp

// Package agent assembles the worker agent: the transport to the control
// plane, the Podman runtime, the supervisor and the zone router. The
// command cmd/wisehosting-agent is a thin wrapper around Run.
package agent

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	goruntime "runtime"
	"sync"
	"syscall"
	"time"

	"go.uber.org/zap"

	"github.com/wisehosting/wisehosting/agent/runtime"
	"github.com/wisehosting/wisehosting/agent/supervisor"
	"github.com/wisehosting/wisehosting/agent/transport"
	"github.com/wisehosting/wisehosting/agent/zone"
	"github.com/wisehosting/wisehosting/internal/wsproto"
)

// Version is reported to the control plane in the hello.
var Version = "0.1.0"

// Config is the agent's configuration.
type Config struct {
	// ControlPlane is the control plane's URL.
	ControlPlane string
	// APIKey is the worker's key (from `wisehosting worker add`).
	APIKey string
	Name   string
	// MeshIP is the worker's WireGuard address: app ports are published
	// on it and the control plane's proxies reach them there.
	MeshIP string
	// Egress filters what app containers may connect to: each team has
	// its own network, and the mesh range, the metadata address, private
	// ranges and the worker's own addresses are blocked unless allowed.
	Egress runtime.Egress
	// Zone is the worker's zone (e.g. de.example.com), informational; the
	// control plane's worker record is authoritative.
	Zone string
	// ZoneListen is the address of the zone router (default ":8080";
	// "off" disables it, e.g. when a local Traefik serves the zone).
	ZoneListen string
	// Podman is the Podman API socket.
	Podman string
	// WorkDir holds temporary checkouts (in wisehosting-clones[-Instance],
	// emptied at start). Default: the system temp dir.
	WorkDir string
	// StateDir holds what survives a crash of the agent: job results until
	// the control plane acknowledges them, the deployments put live (which
	// decide the images kept) and, by default, the log spool. Default:
	// WorkDir/wisehosting-state[-Instance].
	StateDir string
	// ImageRetention is how many of each app's last successful deployments
	// keep their images (rollback targets); the app's other images are
	// removed (default 3).
	ImageRetention int
	// BuildCacheMB bounds the build layer cache (default 2048).
	BuildCacheMB int
	// MaxJobs is how many jobs run at once (default 2).
	MaxJobs int
	// AllowLocalGit accepts file:// repositories (single-host installs
	// and tests).
	AllowLocalGit bool
	// GitCAFile is a PEM file of CAs that git trusts besides the system
	// ones (self-hosted git servers with a private CA).
	GitCAFile string
	TLSConfig *tls.Config
	// LogSpoolDir holds runtime and build log lines the control plane has
	// not confirmed yet, beyond LogMemoryLines (default 10 000) and up to
	// LogSpoolBytes (default 256 MiB). Default: <StateDir>/log-spool;
	// "off" keeps them in memory only.
	LogSpoolDir    string
	LogMemoryLines int
	LogSpoolBytes  int64
	// Instance separates agents sharing one Podman (tests).
	Instance string
	// Tuning, mostly for tests (zero: defaults).
	DrainDelay, HealthTimeout, ReconcileInterval, StatsInterval, ZoneInterval time.Duration
	PortMin, PortMax                                                          int
	CrashLoopCrashes                                                          int
	Logger                                                                    *zap.Logger
}

// Agent is a running worker agent.
type Agent struct {
	cfg    Config
	RT     *runtime.Runtime
	Sup    *supervisor.Supervisor
	Client *transport.Client
	Zone   *zone.Router
	quota  runtime.DiskQuota
	ln     net.Listener
}

// New connects to Podman, probes the host and prepares the agent; Run
// starts it.
func New(ctx context.Context, cfg Config) (*Agent, error) {
	if cfg.Logger == nil {
		cfg.Logger = zap.NewNop()
	}
	if cfg.MeshIP == "" {
		return nil, errors.New("mesh IP is required (the worker's WireGuard address; 127.0.0.1 on a single host)")
	}
	if cfg.ZoneListen == "" {
		cfg.ZoneListen = ":8080"
	}
	if cfg.MaxJobs == 0 {
		cfg.MaxJobs = 2
	}
	if cfg.WorkDir == "" {
		cfg.WorkDir = os.TempDir()
	}
	suffix := ""
	if cfg.Instance != "" {
		suffix = "-" + cfg.Instance
	}
	if cfg.StateDir == "" {
		cfg.StateDir = filepath.Join(cfg.WorkDir, "wisehosting-state"+suffix)
	}
	switch cfg.LogSpoolDir {
	case "":
		cfg.LogSpoolDir = filepath.Join(cfg.StateDir, "log-spool")
	case "off":
		cfg.LogSpoolDir = ""
	}
	rt, err := runtime.New(ctx, runtime.Config{Socket: cfg.Podman, BindIP: cfg.MeshIP, Instance: cfg.Instance, Egress: cfg.Egress,
		PortMin: cfg.PortMin, PortMax: cfg.PortMax, Logger: cfg.Logger})
	if err != nil {
		return nil, err
	}
	quota, err := rt.ProbeDiskQuota(ctx)
	if err != nil {
		cfg.Logger.Warn("agent: disk quota probe failed; disk limits are not enforced", zap.Error(err))
		quota = runtime.DiskQuota{Mode: runtime.QuotaNone, Reason: err.Error()}
	}
	if !quota.Enforced() {
		cfg.Logger.Warn("agent: per-app disk limits are NOT enforced on this host", zap.String("reason", quota.Reason),
			zap.String("storage", quota.GraphRoot), zap.String("fstype", quota.FSType))
	} else {
		cfg.Logger.Info("agent: per-app disk limits enforced", zap.String("mode", quota.Mode))
	}
	client, err := transport.New(transport.Config{URL: cfg.ControlPlane, APIKey: cfg.APIKey, Name: cfg.Name, Logger: cfg.Logger, TLSConfig: cfg.TLSConfig})
	if err != nil {
		return nil, err
	}
	sup, err := supervisor.New(supervisor.Config{Runtime: rt, Send: client.Send, WorkDir: cfg.WorkDir, AllowLocalGit: cfg.AllowLocalGit, GitCAFile: cfg.GitCAFile,
		CloneDir: filepath.Join(cfg.WorkDir, "wisehosting-clones"+suffix), StateDir: cfg.StateDir,
		ImageRetention: cfg.ImageRetention, BuildCacheMB: cfg.BuildCacheMB,
		DiskQuota: quota, DrainDelay: cfg.DrainDelay, HealthTimeout: cfg.HealthTimeout, ReconcileInterval: cfg.ReconcileInterval,
		StatsInterval: cfg.StatsInterval, CrashLoopCrashes: cfg.CrashLoopCrashes, Logger: cfg.Logger,
		LogSpoolDir: cfg.LogSpoolDir, LogMemoryLines: cfg.LogMemoryLines, LogSpoolBytes: cfg.LogSpoolBytes})
	if err != nil {
		return nil, err
	}
	a := &Agent{cfg: cfg, RT: rt, Sup: sup, Client: client, quota: quota}
	client.Handle(wsproto.TypeJobAssign, sup.HandleJob)
	client.Handle(wsproto.TypeJobCancel, sup.HandleCancel)
	client.Handle(wsproto.TypeDesiredState, sup.HandleDesired)
	client.Handle(wsproto.TypeJobResultAck, sup.HandleResultAck)
	client.Handle(wsproto.TypeRetry, a.retry)
	client.SetHello(a.helloMessage)
	client.OnConnect(a.afterHello)
	client.Handle(wsproto.TypeLogsAck, sup.HandleLogsAck)
	if cfg.ZoneListen != "off" {
		a.Zone = zone.New(zone.Config{URL: cfg.ControlPlane, WorkerID: client.WorkerID, Token: client.BearerToken,
			Client: client.HTTPClient(), Interval: cfg.ZoneInterval, LocalIP: cfg.MeshIP, Redirect: sup.Redirect, Logger: cfg.Logger})
		client.Handle(wsproto.TypeZoneTable, a.Zone.HandlePush)
		ln, err := net.Listen("tcp", cfg.ZoneListen)
		if err != nil {
			return nil, fmt.Errorf("zone router: %w", err)
		}
		a.ln = ln
	}
	return a, nil
}

// ZoneAddr is the zone router's address (nil when disabled).
func (a *Agent) ZoneAddr() net.Addr {
	if a.ln == nil {
		return nil
	}
	return a.ln.Addr()
}

// DiskQuota is the probed disk quota support.
func (a *Agent) DiskQuota() runtime.DiskQuota { return a.quota }

// helloMessage is what this worker is and which jobs it still accounts
// for (running, or ended with a result not yet acknowledged). It is the
// hello of every connection's handshake; the control plane answers with
// the desired state and resolves its other jobs of this worker. The mesh IP
// and zone are informational: the control plane keeps the ones the
// operator set and logs a mismatch.
func (a *Agent) helloMessage() wsproto.Hello {
	running, results := a.Sup.Accounted()
	return wsproto.Hello{Version: Version, WGIP: a.cfg.MeshIP, Zone: a.cfg.Zone, CPUMillis: goruntime.NumCPU() * 1000,
		MemoryMB: memoryMB(), DiskMB: diskMB(a.cfg.WorkDir), DiskQuota: a.quota.Mode, MaxJobs: a.cfg.MaxJobs,
		RunningIDs: running, ResultIDs: results}
}

// afterHello sends the app states and the unacknowledged results again
// once the control plane has the hello, so it has reconciled first.
func (a *Agent) afterHello(ctx context.Context) {
	a.Sup.ResendStates()
	a.Sup.ResendResults()
}

// retry sends again, after a pause, what the control plane could not
// record (its database failed). Results wait for the supervisor's
// backoff, which grows while the control plane keeps refusing them.
func (a *Agent) retry(ctx context.Context, p json.RawMessage) error {
	var r wsproto.Retry
	if err := json.Unmarshal(p, &r); err != nil {
		return fmt.Errorf("decoding retry: %w", err)
	}
	if r.Type == wsproto.TypeJobResult {
		a.Sup.RetryResults()
		return nil
	}
	go func() {
		select {
		case <-ctx.Done():
			return
		case <-time.After(time.Second):
		}
		switch r.Type {
		case wsproto.TypeHello:
			if err := a.Client.Send(ctx, wsproto.TypeHello, a.helloMessage()); err != nil {
				a.cfg.Logger.Warn("agent: hello", zap.Error(err))
			}
			a.Sup.ResendStates()
			a.Sup.RetryResults()
		case wsproto.TypeAppState:
			a.Sup.ResendStates()
		}
	}()
	return nil
}

// Run runs the agent until ctx ends. Containers keep running afterwards.
func (a *Agent) Run(ctx context.Context) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var wg sync.WaitGroup
	errc := make(chan error, 1)
	wg.Add(2)
	go func() { defer wg.Done(); a.Sup.Run(ctx) }()
	go func() {
		defer wg.Done()
		if err := a.Client.Run(ctx); err != nil && ctx.Err() == nil {
			errc <- err
			cancel()
		}
	}()
	if a.ln != nil {
		srv := &http.Server{Handler: a.Zone, ReadHeaderTimeout: 10 * time.Second, IdleTimeout: 120 * time.Second}
		wg.Add(2)
		go func() { defer wg.Done(); a.Zone.Run(ctx) }()
		go func() { defer wg.Done(); srv.Serve(a.ln) }()
		go func() {
			<-ctx.Done()
			sctx, c := context.WithTimeout(context.Background(), 5*time.Second)
			defer c()
			srv.Shutdown(sctx)
		}()
	}
	wg.Wait()
	select {
	case err := <-errc:
		return err
	default:
		return nil
	}
}

func memoryMB() int {
	var si syscall.Sysinfo_t
	if err := syscall.Sysinfo(&si); err != nil {
		return 0
	}
	return int(uint64(si.Totalram) * uint64(si.Unit) >> 20)
}

func diskMB(dir string) int {
	if dir == "" {
		dir = os.TempDir()
	}
	var st syscall.Statfs_t
	if err := syscall.Statfs(dir, &st); err != nil {
		return 0
	}
	return int(st.Bavail * uint64(st.Bsize) >> 20)
}
