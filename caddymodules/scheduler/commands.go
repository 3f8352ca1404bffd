package scheduler

import (
	"fmt"
	"os"
	"text/tabwriter"

	caddycmd "github.com/caddyserver/caddy/v2/cmd"
	"github.com/spf13/cobra"

	"github.com/wisehosting/wisehosting/caddymodules/core"
	"github.com/wisehosting/wisehosting/internal/volumes"
)

func init() {
	caddycmd.RegisterCommand(caddycmd.Command{
		Name:  "volume",
		Usage: "list [--worker <name>] [--config <path>]",
		Short: "Lists the apps' persistent volumes and the worker holding each",
		Long: `
"volume list" shows every persistent volume not yet removed, across teams:
its Podman name on the worker (wh-vol-<id>; each instance's copy of a
volume declared per instance is a line of its own, wh-vol-<id>-<n>), team,
app, mount path, size,
the disk it used when last measured, the worker holding its data and, for
a released volume (its app or the volume was deleted), when its data is
removed. --worker keeps the volumes of one worker: what must be copied
before that host is retired (volumes do not move by themselves).`,
		CobraFunc: func(cmd *cobra.Command) {
			cmd.Flags().StringP("config", "c", "", "Caddyfile or JSON config holding the wisehosting app")
			cmd.Flags().StringP("adapter", "a", "", "Name of config adapter")
			cmd.Flags().String("worker", "", "only the volumes of this worker")
			cmd.RunE = core.RunE("volume", func(fl caddycmd.Flags) error {
				if args := fl.Args(); len(args) != 1 || args[0] != "list" {
					return core.Usagef("expected list")
				}
				return cmdVolumeList(fl)
			})
		},
	})
}

func cmdVolumeList(fl caddycmd.Flags) error {
	a, err := core.LoadConfig(fl)
	if err != nil {
		return err
	}
	ctx, cancel := core.CommandContext()
	defer cancel()
	pool, err := a.OpenPool(ctx)
	if err != nil {
		return err
	}
	defer pool.Close()
	list, err := volumes.ListAll(ctx, pool, fl.String("worker"))
	if err != nil {
		return err
	}
	tw := tabwriter.NewWriter(os.Stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "VOLUME\tTEAM\tAPP\tMOUNT\tSIZE\tUSED\tWORKER\tREMOVED AFTER")
	for _, v := range list {
		used, worker, after := "-", v.Worker, "-"
		if v.UsedAt != nil {
			used = fmt.Sprintf("%.1fMB", float64(v.UsedBytes)/(1<<20))
		}
		if worker == "" {
			worker = "(none yet)"
		}
		if v.RemoveAfter != nil {
			after = v.RemoveAfter.Local().Format("2006-01-02 15:04")
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%dMB\t%s\t%s\t%s\n", v.PodmanName, v.Team, v.AppSlug, v.MountPath, v.SizeMB, used, worker, after)
	}
	return tw.Flush()
}
