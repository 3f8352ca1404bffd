package scheduler

import (
	"fmt"
	"os"
	"strconv"
	"text/tabwriter"

	caddycmd "github.com/caddyserver/caddy/v2/cmd"
	"github.com/spf13/cobra"

	"github.com/wisehosting/wisehosting/caddymodules/core"
	"github.com/wisehosting/wisehosting/internal/volumes"
)

func init() {
	caddycmd.RegisterCommand(caddycmd.Command{
		Name:  "volume",
		Usage: "list [--worker <name>] | add <app> <name> <mount-path> <size-mb> [--per-instance]  [--config <path>]",
		Short: "Lists the apps' persistent volumes and the worker holding each, or declares one",
		Long: `
"volume list" shows every persistent volume not yet removed, across teams:
its Podman name on the worker (wh-vol-<id>; each instance's copy of a
volume declared per instance is a line of its own, wh-vol-<id>-<n>), team,
app, mount path, size,
the disk it used when last measured, the worker holding its data and, for
a released volume (its app or the volume was deleted), when its data is
removed. --worker keeps the volumes of one worker: what must be copied
before that host is retired (volumes do not move by themselves).

"volume add APP NAME MOUNT_PATH SIZE_MB" declares a volume of the app (by
slug), as POST /api/apps/{app}/volumes does: mounted from the app's next
deploy on. With --per-instance each instance of the app gets its own copy
(wh-vol-<id>-<n>) and the app keeps its replicas; without it the volume is
shared, and an app with more than one replica is refused.`,
		CobraFunc: func(cmd *cobra.Command) {
			core.ConfigFlags(cmd)
			cmd.Flags().String("worker", "", "only the volumes of this worker")
			cmd.Flags().Bool("per-instance", false, "add: one copy of the volume per instance of the app")
			cmd.RunE = core.RunE("volume", func(fl caddycmd.Flags) error {
				switch args := fl.Args(); {
				case len(args) == 1 && args[0] == "list":
					return cmdVolumeList(fl)
				case len(args) == 5 && args[0] == "add":
					return cmdVolumeAdd(fl)
				}
				return core.Usagef("expected list, or add APP NAME MOUNT_PATH SIZE_MB")
			})
		},
	})
}

func cmdVolumeAdd(fl caddycmd.Flags) error {
	args := fl.Args()
	size, err := strconv.Atoi(args[4])
	if err != nil {
		return core.Usagef("the size is a number of MB, not %q", args[4])
	}
	ctx, pool, done, err := core.OpenCommandDB(fl)
	if err != nil {
		return err
	}
	defer done()
	v, err := (&volumes.Service{Pool: pool}).CreateBySlug(ctx, args[1], volumes.New{Name: args[2], MountPath: args[3], SizeMB: size, PerInstance: fl.Bool("per-instance")})
	if err != nil {
		return err
	}
	if v.PerInstance {
		fmt.Printf("app %s mounts volume %s at %s from its next deploy on, one copy of %d MB per instance (%d now).\n", args[1], v.Name, v.MountPath, v.SizeMB, len(v.Instances))
	} else {
		fmt.Printf("app %s mounts volume %s (%s) at %s from its next deploy on.\n", args[1], v.Name, volumes.PodmanName(v.ID), v.MountPath)
	}
	return nil
}

func cmdVolumeList(fl caddycmd.Flags) error {
	ctx, pool, done, err := core.OpenCommandDB(fl)
	if err != nil {
		return err
	}
	defer done()
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
