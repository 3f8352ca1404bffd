package proxy

import (
	"context"
	"errors"
	"os"
	"os/signal"
	"syscall"

	"github.com/caddyserver/caddy/v2"
	caddycmd "github.com/caddyserver/caddy/v2/cmd"
	"github.com/spf13/cobra"

	"github.com/wisehosting/wisehosting/caddymodules/core"
	"github.com/wisehosting/wisehosting/internal/credentials"
	"github.com/wisehosting/wisehosting/internal/routecache"
)

func init() {
	caddycmd.RegisterCommand(caddycmd.Command{
		Name:  "traefik-routes",
		Usage: "--control-plane <url> --out <file.yml> [--interval 5s]",
		Short: "Keeps a Traefik proxy host's routes on its disk, from the control plane",
		Long: `
Polls <control-plane>/v1/traefik/proxy-config (every --interval) with the
proxy token and writes each new document, as YAML, to --out, which
Traefik's file provider watches. The file changes only when a good
document arrives: while the control plane or its database is down, and
after a restart of Traefik, Traefik routes every host it knew.

The token is the systemd credential proxy_token, else
$WISEHOSTING_PROXY_TOKEN. Runs until SIGINT or SIGTERM; the Traefik start
script written by "infra setup --step proxy" starts it.`,
		CobraFunc: func(cmd *cobra.Command) {
			cmd.Flags().String("control-plane", "", "base URL of the control plane (over the mesh)")
			cmd.Flags().String("out", "", "the file Traefik's file provider reads")
			cmd.Flags().Duration("interval", 0, "polling interval (default 5s)")
			cmd.Args = cobra.NoArgs
			cmd.RunE = core.RunCode("traefik-routes", cmdTraefikRoutes)
		},
	})
}

func cmdTraefikRoutes(fl caddycmd.Flags) (int, error) {
	s := &routecache.Traefik{ControlPlane: fl.String("control-plane"), Out: fl.String("out"), Interval: fl.Duration("interval"), Logger: caddy.Log()}
	if s.ControlPlane == "" || s.Out == "" {
		return caddy.ExitCodeFailedStartup, core.Usagef("--control-plane and --out are required")
	}
	s.Token = os.Getenv("WISEHOSTING_PROXY_TOKEN")
	if err := credentials.Apply(credentials.ProxyToken, &s.Token); err != nil {
		return caddy.ExitCodeFailedStartup, err
	}
	if s.Token == "" {
		return caddy.ExitCodeFailedStartup, errors.New("no proxy token: set the systemd credential proxy_token or WISEHOSTING_PROXY_TOKEN")
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := s.Run(ctx); err != nil {
		return caddy.ExitCodeFailedStartup, err
	}
	return 0, nil
}
