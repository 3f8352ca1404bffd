package infra

import (
	"errors"
	"fmt"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/caddyserver/caddy/v2"
	caddycmd "github.com/caddyserver/caddy/v2/cmd"
	"github.com/spf13/cobra"

	"github.com/wisehosting/wisehosting/caddymodules/core"
	"github.com/wisehosting/wisehosting/internal/dnsprov"
	"github.com/wisehosting/wisehosting/internal/infra"
)

func init() {
	caddycmd.RegisterCommand(caddycmd.Command{
		Name:  "dns",
		Usage: "list | set <name> <type> <value> [--ttl 5m] | delete <name> <type>  [--infra infra.yaml]",
		Short: "Lists or changes records at the DNS provider of infra.yaml",
		Long: `
Manages records of the zone in infra.yaml's dns section through its
provider (cloudflare, cloudns). Names are relative to the zone ("*.apps", "@").
"set" is idempotent: it creates the record or updates it in place.`,
		CobraFunc: func(cmd *cobra.Command) {
			cmd.Flags().String("infra", "infra.yaml", "the installation's description")
			cmd.Flags().Duration("ttl", 5*time.Minute, "record TTL for set")
			cmd.Args = cobra.RangeArgs(1, 4)
			cmd.RunE = core.RunCode("dns", cmdDNS)
		},
	})
}

func cmdDNS(fl caddycmd.Flags) (int, error) {
	if n := map[string]int{"list": 1, "set": 4, "delete": 3}[fl.Arg(0)]; n == 0 || fl.NArg() != n {
		return caddy.ExitCodeFailedStartup, core.Usagef("expected list | set <name> <type> <value> | delete <name> <type>")
	}
	cfg, err := infra.Load(fl.String("infra"))
	if err != nil {
		return caddy.ExitCodeFailedStartup, err
	}
	if cfg.DNS.Provider == "" || cfg.DNS.Zone == "" {
		return caddy.ExitCodeFailedStartup, errors.New("infra.yaml has no dns provider and zone")
	}
	p, err := cfg.DNS.Open()
	if err != nil {
		return caddy.ExitCodeFailedStartup, err
	}
	ctx, cancel := core.CommandContext()
	defer cancel()
	args := fl.Args()
	zone := cfg.DNS.Zone
	switch {
	case args[0] == "list" && len(args) == 1:
		recs, err := p.GetRecords(ctx, zone)
		if err != nil {
			return caddy.ExitCodeFailedStartup, err
		}
		tw := tabwriter.NewWriter(os.Stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "NAME\tTYPE\tTTL\tVALUE")
		for _, r := range recs {
			rr := r.RR()
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", rr.Name, rr.Type, rr.TTL, rr.Data)
		}
		tw.Flush()
	case args[0] == "set" && len(args) == 4:
		if err := dnsprov.EnsureRecord(ctx, p, zone, args[1], args[2], args[3], fl.Duration("ttl")); err != nil {
			return caddy.ExitCodeFailedStartup, err
		}
		fmt.Printf("%s %s %s in %s\n", args[1], strings.ToUpper(args[2]), args[3], zone)
	case args[0] == "delete" && len(args) == 3:
		if err := dnsprov.DeleteRecord(ctx, p, zone, args[1], args[2]); err != nil {
			return caddy.ExitCodeFailedStartup, err
		}
		fmt.Printf("deleted %s %s from %s\n", args[1], strings.ToUpper(args[2]), zone)
	default:
		return caddy.ExitCodeFailedStartup, core.Usagef("expected list | set <name> <type> <value> | delete <name> <type>")
	}
	return 0, nil
}
