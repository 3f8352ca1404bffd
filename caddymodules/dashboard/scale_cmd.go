package dashboard

import (
	"fmt"
	"strconv"

	caddycmd "github.com/caddyserver/caddy/v2/cmd"
	"github.com/spf13/cobra"

	"github.com/wisehosting/wisehosting/caddymodules/core"
	"github.com/wisehosting/wisehosting/internal/apps"
	"github.com/wisehosting/wisehosting/internal/plans"
)

func init() {
	caddycmd.RegisterCommand(caddycmd.Command{
		Name:  "app",
		Usage: "scale <slug> <replicas> [--max-surge N] [--max-unavailable N] | restart <slug>  [--config <path>]",
		Short: "Scales or restarts an app's instances",
		Long: `
"app scale SLUG N" runs N instances of the app, within its team's plan:
new instances start at once from the app's current image (no rebuild),
removed ones leave routing at once and stop after the drain delay.
--max-surge and --max-unavailable set how the app's rolling deploys
move its instances (see the README, "Replicas and rolling deploys").
"app restart SLUG" restarts the app's instances one at a time, each
answering its health check before the next; with more than one instance,
each leaves routing while it restarts, so the app keeps serving.`,
		CobraFunc: func(cmd *cobra.Command) {
			core.ConfigFlags(cmd)
			cmd.Flags().Int("max-surge", 0, "instances a rolling deploy moves at once (default: unchanged)")
			cmd.Flags().Int("max-unavailable", 0, "instances that may stop before their successor runs (default: unchanged)")
			cmd.RunE = core.RunE("app", cmdApp)
		},
	})
}

func cmdApp(fl caddycmd.Flags) error {
	args := fl.Args()
	if len(args) == 2 && args[0] == "restart" {
		return cmdAppRestart(fl, args[1])
	}
	if len(args) != 3 || args[0] != "scale" {
		return core.Usagef("expected scale SLUG REPLICAS or restart SLUG")
	}
	n, err := strconv.Atoi(args[2])
	if err != nil {
		return core.Usagef("replicas must be a number, not %q", args[2])
	}
	a, ctx, pool, done, err := core.OpenCommandApp(fl)
	if err != nil {
		return err
	}
	defer done()
	reg, err := plans.NewRegistry(a.Plans, a.DefaultPlan)
	if err != nil {
		return err
	}
	var surge, unavailable *int
	if fl.Changed("max-surge") {
		v := fl.Int("max-surge")
		surge = &v
	}
	if fl.Changed("max-unavailable") {
		v := fl.Int("max-unavailable")
		unavailable = &v
	}
	s, started, err := (&apps.Service{Pool: pool, Plans: reg, VolumeGrace: a.VolumeGracePeriod()}).ScaleBySlug(ctx, args[1], n, surge, unavailable)
	if err != nil {
		return err
	}
	noun := "instances"
	if s.Replicas == 1 {
		noun = "instance"
	}
	fmt.Printf("app %s runs %d %s (max surge %d, max unavailable %d); %d starting now.\n", args[1], s.Replicas, noun, s.MaxSurge, s.MaxUnavailable, started)
	return nil
}

func cmdAppRestart(fl caddycmd.Flags, slug string) error {
	ctx, pool, done, err := core.OpenCommandDB(fl)
	if err != nil {
		return err
	}
	defer done()
	n, err := (&apps.Service{Pool: pool}).RestartBySlug(ctx, slug)
	if err != nil {
		return err
	}
	noun := "instances restart"
	if n == 1 {
		noun = "instance restarts"
	}
	fmt.Printf("app %s: %d %s, one at a time (its deployment log tells each step).\n", slug, n, noun)
	return nil
}
