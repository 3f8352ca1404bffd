// Package infra registers the `wisehosting infra` operator commands: a
// parallel health check of every host of the installation and the shared
// setup steps, driven by infra.yaml (internal/infra).
package infra

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"syscall"

	"github.com/caddyserver/caddy/v2"
	caddycmd "github.com/caddyserver/caddy/v2/cmd"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/spf13/cobra"

	"github.com/wisehosting/wisehosting/caddymodules/core"
	"github.com/wisehosting/wisehosting/internal/infra"
	"github.com/wisehosting/wisehosting/internal/workers"
)

func init() {
	caddycmd.RegisterCommand(caddycmd.Command{
		Name:  "infra",
		Usage: "status|setup|ssh <host> [-- command…]|lb status|lb create|snapshot <host> [--description D] [--infra infra.yaml] [--config Caddyfile] [--json] [--dry-run] [--step dns|proxy] [--proxy-dir DIR]",
		Short: "Checks or sets up the hosts described in infra.yaml",
		Long: `
"infra status" checks every host of infra.yaml in parallel: control planes
answer /health with a reachable database, workers are connected (read from
the control plane's database, given with --config), proxies serve HTTPS, the
wildcard DNS record of the app zone points at the proxies, and certificates
are not about to expire. It exits 1 when a check fails.

"infra setup" ensures the wildcard A records *.<subdomain_base> of the
proxies at the DNS provider (step dns) and writes each proxy host's files
(step proxy): Traefik's traefik.yml, start script and unit, or with
proxy.kind caddy the proxy-mode Caddyfile; --dry-run prints what it would
change.

"infra lb status|create" shows (address, services, health of each target)
or creates the Hetzner Cloud load balancer of infra.yaml's
hetzner.load_balancer; "infra snapshot <host>" starts a snapshot of that
Hetzner Cloud server.

"infra ssh <host>" runs the system ssh to the host's public (else mesh)
address as its ssh_user (root), on ssh_port (22), with ssh_key if given.
With a hetzner: section, servers are discovered from the Hetzner Cloud API.`,
		CobraFunc: func(cmd *cobra.Command) {
			cmd.Flags().String("infra", "infra.yaml", "the installation's description")
			cmd.Flags().StringP("config", "c", "", "control plane Caddyfile or JSON config (for worker checks)")
			cmd.Flags().StringP("adapter", "a", "", "Name of config adapter")
			cmd.Flags().Bool("json", false, "print results as JSON")
			cmd.Flags().Bool("dry-run", false, "setup: only print the planned changes")
			cmd.Flags().String("step", "", "setup: run only this step (dns, proxy)")
			cmd.Flags().String("description", "", "snapshot: the image description")
			cmd.Flags().String("proxy-dir", ".", "setup: where the proxy hosts' files (traefik.yml, start script and unit; or Caddyfile) are written")
			cmd.Args = cobra.MinimumNArgs(1)
			cmd.RunE = core.RunCode("infra", cmdInfra)
		},
	})
}

func cmdInfra(fl caddycmd.Flags) (int, error) {
	switch fl.Arg(0) {
	case "ssh", "lb", "snapshot", "status", "setup":
	default:
		return caddy.ExitCodeFailedStartup, core.Usagef("expected status|setup|ssh <host>|lb status|lb create|snapshot <host>")
	}
	cfg, err := infra.Load(fl.String("infra"))
	if err != nil {
		return caddy.ExitCodeFailedStartup, err
	}
	ctx, cancel := core.CommandContext()
	defer cancel()
	if cfg.Hetzner != nil {
		found, err := infra.DiscoverHetzner(ctx, cfg.Hetzner)
		if err != nil {
			return caddy.ExitCodeFailedStartup, err
		}
		cfg.Merge(found)
		if err := cfg.Validate(); err != nil {
			return caddy.ExitCodeFailedStartup, err
		}
	}
	switch fl.Arg(0) {
	case "ssh":
		if fl.NArg() < 2 {
			return caddy.ExitCodeFailedStartup, core.Usagef("expected ssh <host> [-- command…]")
		}
		args, err := cfg.SSHArgs(fl.Arg(1), fl.Args()[2:]...)
		if err != nil {
			return caddy.ExitCodeFailedStartup, err
		}
		bin, err := exec.LookPath("ssh")
		if err != nil {
			return caddy.ExitCodeFailedStartup, fmt.Errorf("the ssh client is not installed: %w", err)
		}
		// Replace this process: the session gets the terminal and signals.
		return caddy.ExitCodeFailedStartup, syscall.Exec(bin, args, os.Environ())
	case "lb", "snapshot":
		return hetzner(ctx, fl, cfg)
	case "status":
		return status(ctx, fl, cfg)
	case "setup":
		s := &infra.Setup{Config: cfg, ProxyDir: fl.String("proxy-dir")}
		acts, err := s.Plan(ctx, fl.String("step"))
		if err != nil {
			return caddy.ExitCodeFailedStartup, err
		}
		for _, a := range acts {
			fmt.Printf("[%s] %s\n", a.Step, a.Description)
		}
		if fl.Bool("dry-run") {
			fmt.Println("dry run: nothing changed")
			return 0, nil
		}
		if err := infra.Apply(ctx, acts); err != nil {
			return caddy.ExitCodeFailedStartup, err
		}
		fmt.Println("done")
		return 0, nil
	}
	return caddy.ExitCodeFailedStartup, core.Usagef("expected status|setup|ssh <host>|lb status|lb create|snapshot <host>")
}

// hetzner runs "lb status", "lb create" and "snapshot <host>".
func hetzner(ctx context.Context, fl caddycmd.Flags, cfg *infra.Config) (int, error) {
	h := cfg.Hetzner
	if h == nil || h.TokenFile == "" {
		return caddy.ExitCodeFailedStartup, errors.New("infra.yaml has no hetzner section with a token_file")
	}
	args := fl.Args()
	if args[0] == "snapshot" {
		if len(args) != 2 {
			return caddy.ExitCodeFailedStartup, core.Usagef("expected snapshot <host> [--description D]")
		}
		snap, err := h.CreateSnapshot(ctx, args[1], fl.String("description"))
		if err != nil {
			return caddy.ExitCodeFailedStartup, err
		}
		fmt.Printf("snapshot %d of %s: %s\n", snap.ID, args[1], snap.Status)
		return 0, nil
	}
	if h.LoadBalancer == nil || h.LoadBalancer.Name == "" {
		return caddy.ExitCodeFailedStartup, errors.New("infra.yaml has no hetzner.load_balancer with a name")
	}
	switch {
	case len(args) == 2 && args[1] == "status":
		lb, err := h.FindLoadBalancer(ctx, h.LoadBalancer.Name)
		if err != nil {
			return caddy.ExitCodeFailedStartup, err
		}
		if lb == nil {
			fmt.Printf("no load balancer %s (infra lb create makes it)\n", h.LoadBalancer.Name)
			return 1, nil
		}
		infra.PrintLoadBalancer(os.Stdout, lb)
		return 0, nil
	case len(args) == 2 && args[1] == "create":
		lb, created, err := h.EnsureLoadBalancer(ctx, *h.LoadBalancer)
		if err != nil {
			return caddy.ExitCodeFailedStartup, err
		}
		if created {
			fmt.Printf("created load balancer %s (id %d) at %s\n", lb.Name, lb.ID, lb.PublicNet.IPv4.IP)
		} else {
			fmt.Printf("load balancer %s exists (id %d)\n", lb.Name, lb.ID)
		}
		return 0, nil
	}
	return caddy.ExitCodeFailedStartup, core.Usagef("expected lb status|create")
}

// WorkerSource reads the workers' state from the control plane's database.
func WorkerSource(pool *pgxpool.Pool) func(ctx context.Context) (map[string]infra.WorkerState, error) {
	return func(ctx context.Context) (map[string]infra.WorkerState, error) {
		ws, err := workers.List(ctx, pool)
		if err != nil {
			return nil, err
		}
		out := map[string]infra.WorkerState{}
		for _, w := range ws {
			st := infra.WorkerState{Status: w.Status}
			if w.LastSeen != nil {
				st.LastSeen = *w.LastSeen
			}
			out[w.Name] = st
		}
		return out, nil
	}
}

func status(ctx context.Context, fl caddycmd.Flags, cfg *infra.Config) (int, error) {
	ch := &infra.Checker{Config: cfg}
	if fl.String("config") != "" {
		a, err := core.LoadConfig(fl)
		if err != nil {
			return caddy.ExitCodeFailedStartup, err
		}
		pool, err := a.OpenPool(ctx)
		if err != nil {
			return caddy.ExitCodeFailedStartup, err
		}
		defer pool.Close()
		ch.Workers = WorkerSource(pool)
	}
	results := ch.Run(ctx)
	ok := true
	if fl.Bool("json") {
		for _, r := range results {
			ok = ok && r.OK
		}
		json.NewEncoder(os.Stdout).Encode(results)
	} else {
		ok = infra.Print(os.Stdout, results)
	}
	if !ok {
		return 1, nil
	}
	return 0, nil
}
