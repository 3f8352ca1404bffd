package hub

import (
	"fmt"
	"os"
	"text/tabwriter"

	"github.com/caddyserver/caddy/v2"
	caddycmd "github.com/caddyserver/caddy/v2/cmd"
	"github.com/spf13/cobra"

	"github.com/wisehosting/wisehosting/caddymodules/core"
	"github.com/wisehosting/wisehosting/internal/workers"
)

func init() {
	caddycmd.RegisterCommand(caddycmd.Command{
		Name:  "worker",
		Usage: "add <name> [--zone <zone>] [--wg-ip <ip>] | set <name> [--zone <zone>] [--wg-ip <ip>] | list | drain <name> | resume <name> | revoke <name>  [--config <path>]",
		Short: "Adds, lists, places, drains or revokes worker hosts",
		Long: `
"worker add NAME" creates a worker and prints its API key once: give it to
the agent (systemd credential worker_api_key). The key itself is not
stored: a lookup hash and the signing key sealed under the master secret
(so this command needs the secret, from --config or WISEHOSTING_SECRET).
The zone and the mesh (WireGuard) IP are the operator's: the worker
cannot change them. "worker set NAME --zone Z --wg-ip IP" changes them
(an empty value clears one). "worker list" shows every worker and when it
was last seen.
"worker drain NAME" places no new deploys on the worker (its apps keep
running; it stays drained across reconnects); "worker resume NAME" ends
that. "worker revoke NAME" refuses the key from now on; a connected agent is
disconnected within one ping interval. A revoked worker is gone for good:
its app instances start on other workers at once (except those whose
volume data is on it: "wisehosting volume list --worker NAME" shows which),
and the stop, delete and restart jobs waiting for it are given up (its
containers and images stay on that host, for the operator to clean).`,
		CobraFunc: func(cmd *cobra.Command) {
			core.ConfigFlags(cmd)
			cmd.Flags().String("zone", "", "DNS zone the worker serves (e.g. de.example.com)")
			cmd.Flags().String("wg-ip", "", "the worker's mesh (WireGuard) IP")
			cmd.RunE = core.RunE("worker", func(fl caddycmd.Flags) error {
				if n := len(fl.Args()); n == 0 || n > 2 {
					return core.Usagef("expected add, set, list, drain, resume or revoke")
				}
				_, err := cmdWorker(fl)
				return err
			})
		},
	})
}

func cmdWorker(fl caddycmd.Flags) (int, error) {
	a, err := core.LoadConfig(fl)
	if err != nil {
		return caddy.ExitCodeFailedStartup, err
	}
	ctx, cancel := core.CommandContext()
	defer cancel()
	pool, err := a.OpenPool(ctx)
	if err != nil {
		return caddy.ExitCodeFailedStartup, err
	}
	defer pool.Close()
	args := fl.Args()
	switch args[0] {
	case "add":
		if len(args) != 2 {
			return caddy.ExitCodeFailedStartup, core.Usagef("worker add needs one NAME")
		}
		kr, err := a.OpenKeyring()
		if err != nil {
			return caddy.ExitCodeFailedStartup, fmt.Errorf("worker add seals the worker's key under the master secret: pass --config or set WISEHOSTING_SECRET (%w)", err)
		}
		w, key, err := workers.Add(ctx, pool, kr, args[1], fl.String("zone"), fl.String("wg-ip"))
		if err != nil {
			return caddy.ExitCodeFailedStartup, err
		}
		fmt.Printf("worker %d (%s) added.\nAPI key (shown once, store it now):\n\n  %s\n\n", w.ID, w.Name, key)
		fmt.Println("On the worker: put it in /etc/credstore/wisehosting/worker_api_key (the agent unit loads it with LoadCredential=) and start wisehosting-agent.")
	case "set":
		if len(args) != 2 {
			return caddy.ExitCodeFailedStartup, core.Usagef("worker set needs one NAME")
		}
		var zone, ip *string
		if fl.Changed("zone") {
			zone = new(fl.String("zone"))
		}
		if fl.Changed("wg-ip") {
			ip = new(fl.String("wg-ip"))
		}
		if zone == nil && ip == nil {
			return caddy.ExitCodeFailedStartup, core.Usagef("worker set: give --zone and/or --wg-ip")
		}
		w, err := workers.Place(ctx, pool, args[1], zone, ip)
		if err != nil {
			return caddy.ExitCodeFailedStartup, fmt.Errorf("setting %s: %w", args[1], err)
		}
		fmt.Printf("worker %d (%s): zone %q, mesh IP %q\n", w.ID, w.Name, w.Zone, w.WGIP)
	case "list":
		ws, err := workers.List(ctx, pool)
		if err != nil {
			return caddy.ExitCodeFailedStartup, err
		}
		tw := tabwriter.NewWriter(os.Stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "ID\tNAME\tSTATUS\tMESH IP\tZONE\tCPU\tMEMORY\tLAST SEEN")
		for _, w := range ws {
			seen := "never"
			if w.LastSeen != nil {
				seen = w.LastSeen.Local().Format("2006-01-02 15:04:05")
			}
			fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%s\t%dm\t%dMB\t%s\n", w.ID, w.Name, w.Status, w.WGIP, w.Zone, w.CPUMillis, w.MemoryMB, seen)
		}
		tw.Flush()
	case "drain", "resume":
		if len(args) != 2 {
			return caddy.ExitCodeFailedStartup, core.Usagef("worker %s needs one NAME", args[0])
		}
		w, err := workers.SetDraining(ctx, pool, args[1], args[0] == "drain")
		if err != nil {
			return caddy.ExitCodeFailedStartup, fmt.Errorf("%s %s: %w", args[0], args[1], err)
		}
		fmt.Printf("worker %d (%s) is %s\n", w.ID, w.Name, w.Status)
	case "revoke":
		if len(args) != 2 {
			return caddy.ExitCodeFailedStartup, core.Usagef("worker revoke needs one NAME")
		}
		w, err := workers.Revoke(ctx, pool, args[1])
		if err != nil {
			return caddy.ExitCodeFailedStartup, fmt.Errorf("revoking %s: %w", args[1], err)
		}
		fmt.Printf("worker %d (%s) revoked\n", w.ID, w.Name)
	default:
		return caddy.ExitCodeFailedStartup, core.Usagef("unknown worker action %q (add, set, list, drain, resume, revoke)", args[0])
	}
	return 0, nil
}
