//go:build remote && containers_image_openpgp

// Command wisehosting-agent runs on every worker host: it dials out to the
// control plane, builds and runs apps in Podman, ships stats and logs, and
// serves the worker's zone on :8080.
//
//	wisehosting-agent -cp https://cp.example.com -key-file /etc/wisehosting/worker.key -mesh-ip 10.50.0.2
//
// The key may also come from WISEHOSTING_WORKER_KEY. Every flag has an
// environment variable: WISEHOSTING_<FLAG> with dashes as underscores.
package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"

	"go.uber.org/zap"

	"github.com/wisehosting/wisehosting/agent"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "wisehosting-agent:", err)
		os.Exit(1)
	}
}

func run() error {
	fs := flag.NewFlagSet("wisehosting-agent", flag.ExitOnError)
	var cfg agent.Config
	var keyFile, caFile, portRange string
	var debug bool
	fs.StringVar(&cfg.ControlPlane, "cp", "", "control plane URL (https://…; http:// only for loopback or private IP literals)")
	fs.StringVar(&keyFile, "key-file", "", "file holding the worker key (or WISEHOSTING_WORKER_KEY)")
	fs.StringVar(&cfg.Name, "name", hostname(), "worker name shown in logs")
	fs.StringVar(&cfg.MeshIP, "mesh-ip", "", "this worker's WireGuard address; app ports are published on it")
	fs.StringVar(&cfg.Zone, "zone", "", "this worker's zone, e.g. de.example.com")
	fs.StringVar(&cfg.ZoneListen, "zone-listen", ":8080", `zone router address ("off" when a local Traefik serves the zone)`)
	fs.StringVar(&cfg.Podman, "podman", "unix:///run/podman/podman.sock", "Podman API socket")
	fs.StringVar(&cfg.WorkDir, "work-dir", "", "directory for temporary checkouts and files, emptied at start (default: the system temp dir)")
	fs.StringVar(&cfg.StateDir, "state-dir", "", "persistent directory for job results the control plane has not acknowledged, the deployments put live (which decide the images kept) and the log spool (default: <work-dir>/wisehosting-state)")
	fs.IntVar(&cfg.MaxJobs, "max-jobs", 2, "jobs run at once")
	fs.StringVar(&portRange, "port-range", "20000-29999", "host ports given to apps (must be outside net.ipv4.ip_local_port_range)")
	fs.IntVar(&cfg.ImageRetention, "image-retention", 3, "images kept per app: those of its last N successful deployments on this worker (rollback targets)")
	fs.IntVar(&cfg.BuildCacheMB, "build-cache-mb", 2048, "build layer cache size above which it is pruned")
	var egressAllow string
	var egressOff bool
	fs.StringVar(&cfg.Egress.MeshRange, "mesh-range", "10.50.0.0/24", "the WireGuard mesh; app containers may not connect to it")
	fs.StringVar(&egressAllow, "egress-allow", "", "comma-separated CIDR ranges app containers may reach although private (e.g. a database)")
	fs.BoolVar(&egressOff, "no-egress-filter", false, "do not filter app containers' connections (hosts without nftables)")
	var spoolMB int64
	fs.StringVar(&cfg.LogSpoolDir, "log-spool-dir", "", `log lines not yet confirmed by the control plane, beyond memory (default: <state-dir>/log-spool; "off": memory only)`)
	fs.IntVar(&cfg.LogMemoryLines, "log-memory-lines", 10000, "unconfirmed log lines kept in memory before the spool")
	fs.Int64Var(&spoolMB, "log-spool-mb", 256, "size bound of the log spool; past it the oldest lines are dropped")
	fs.BoolVar(&cfg.AllowLocalGit, "allow-local-git", false, "accept file:// repositories (single-host installs)")
	fs.StringVar(&cfg.GitCAFile, "git-ca-file", "", "PEM file of a private CA that signed your git server's certificate (self-hosted git)")
	fs.StringVar(&caFile, "ca-file", "", "PEM file of a private CA that signed the control plane's certificate")
	fs.StringVar(&cfg.Instance, "instance", "", "separates several agents sharing one Podman service: each sees only its own containers and images")
	fs.BoolVar(&debug, "debug", false, "debug logging")
	fs.VisitAll(func(f *flag.Flag) {
		env := "WISEHOSTING_" + strings.ToUpper(strings.ReplaceAll(f.Name, "-", "_"))
		if v, ok := os.LookupEnv(env); ok {
			fs.Set(f.Name, v)
		}
	})
	fs.Parse(os.Args[1:])

	cfg.LogSpoolBytes = spoolMB << 20
	cfg.Egress.Off = egressOff
	for _, r := range strings.Split(egressAllow, ",") {
		if r = strings.TrimSpace(r); r != "" {
			cfg.Egress.Allow = append(cfg.Egress.Allow, r)
		}
	}
	cfg.APIKey = strings.TrimSpace(os.Getenv("WISEHOSTING_WORKER_KEY"))
	if keyFile != "" {
		b, err := os.ReadFile(keyFile)
		if err != nil {
			return err
		}
		cfg.APIKey = strings.TrimSpace(string(b))
	}
	if cfg.ControlPlane == "" {
		return errors.New("-cp is required")
	}
	if _, err := fmt.Sscanf(portRange, "%d-%d", &cfg.PortMin, &cfg.PortMax); err != nil {
		return fmt.Errorf("-port-range %q: want MIN-MAX, e.g. 20000-29999", portRange)
	}
	if cfg.ImageRetention < 1 {
		return errors.New("-image-retention must be at least 1")
	}
	if caFile != "" {
		pem, err := os.ReadFile(caFile)
		if err != nil {
			return err
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return fmt.Errorf("%s holds no PEM certificate", caFile)
		}
		cfg.TLSConfig = &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
	}
	zc := zap.NewProductionConfig()
	if debug {
		zc.Level = zap.NewAtomicLevelAt(zap.DebugLevel)
	}
	logger, err := zc.Build()
	if err != nil {
		return err
	}
	defer logger.Sync()
	cfg.Logger = logger

	// Temporary files (pulls, Containerfiles, git's home) go to a
	// directory of this agent, emptied at every start: a killed agent
	// leaves nothing behind for long.
	workDir := cfg.WorkDir
	if workDir == "" {
		workDir = os.TempDir()
	}
	tmp := filepath.Join(workDir, "wisehosting-tmp")
	if cfg.Instance != "" {
		tmp += "-" + cfg.Instance
	}
	if err := os.RemoveAll(tmp); err != nil {
		return fmt.Errorf("cleaning %s: %w", tmp, err)
	}
	if err := os.MkdirAll(tmp, 0o700); err != nil {
		return err
	}
	os.Setenv("TMPDIR", tmp)

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	a, err := agent.New(ctx, cfg)
	if err != nil {
		return err
	}
	logger.Info("agent starting", zap.String("cp", cfg.ControlPlane), zap.String("mesh_ip", cfg.MeshIP), zap.String("disk_quota", a.DiskQuota().Mode))
	err = a.Run(ctx)
	if ctx.Err() != nil {
		logger.Info("agent stopped; containers keep running")
		return nil
	}
	return err
}

func hostname() string {
	h, _ := os.Hostname()
	return h
}
