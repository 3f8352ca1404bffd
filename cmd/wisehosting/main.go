// Command wisehosting is the control plane: Caddy with the WiseHosting
// modules, the same program `xcaddy build --with` would generate. Run
// `wisehosting run --config Caddyfile`; `wisehosting help` lists the
// operator commands (migrate, worker, user, dns, infra …).
package main

import (
	"fmt"
	"io"
	"os"
	"sort"
	"strings"
	"text/tabwriter"

	"github.com/caddyserver/caddy/v2"
	caddycmd "github.com/caddyserver/caddy/v2/cmd"

	// plug in Caddy modules here
	_ "github.com/caddyserver/caddy/v2/modules/standard"
	_ "github.com/wisehosting/wisehosting/caddymodules"
)

// version is set at build time: -ldflags "-X main.version=…" (the Makefile
// uses `git describe`).
var version = "dev"

// ours are the WiseHosting commands, listed first by `wisehosting help`.
var ours = map[string]bool{"migrate": true, "worker": true, "user": true, "dns": true, "infra": true,
	"app": true, "volume": true, "backup": true, "traefik-routes": true}

func main() {
	args := os.Args[1:]
	switch {
	case len(args) == 0, len(args) == 1 && (args[0] == "help" || args[0] == "--help" || args[0] == "-h"):
		help(os.Stdout)
		return
	case len(args) == 1 && (args[0] == "version" || args[0] == "--version" || args[0] == "-v"):
		fmt.Println(versionText())
		return
	}
	if msg, usage, bad := flagError(args); bad {
		fmt.Fprintf(os.Stderr, "wisehosting %s: %s\nusage: wisehosting %s %s\n", args[0], msg, args[0], usage)
		os.Exit(2)
	}
	// Caddy's help and usage lines name the binary: `wisehosting volume …`.
	caddy.CustomBinaryName = "wisehosting"
	caddycmd.Main()
}

func versionText() string {
	_, caddyVersion := caddy.Version()
	return fmt.Sprintf("WiseHosting %s (Caddy %s)", version, strings.Fields(caddyVersion)[0])
}

// help lists WiseHosting's commands first, then Caddy's, which keep their
// names (`wisehosting run`, `wisehosting adapt` …).
func help(w io.Writer) {
	fmt.Fprintf(w, `%s: a self-hosted platform-as-a-service (control plane).

Usage: wisehosting <command> [arguments]

Start the control plane:
  wisehosting run --config /etc/wisehosting/Caddyfile

Operator commands (those using the database read it from --config, else
from $WISEHOSTING_DATABASE_URL, else in a dev checkout from .data/dev.env):
`, versionText())
	var mine, theirs []caddycmd.Command
	for name, c := range caddycmd.Commands() {
		if ours[name] {
			mine = append(mine, c)
		} else {
			theirs = append(theirs, c)
		}
	}
	byName := func(cs []caddycmd.Command) {
		sort.Slice(cs, func(i, j int) bool { return cs[i].Name < cs[j].Name })
	}
	byName(mine)
	byName(theirs)
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	for _, c := range mine {
		fmt.Fprintf(tw, "  %s\t%s\n", c.Name, c.Short)
	}
	tw.Flush()
	fmt.Fprintln(w, "\nCaddy's commands (the control plane is a Caddy server):")
	for _, c := range theirs {
		fmt.Fprintf(tw, "  %s\t%s\n", c.Name, c.Short)
	}
	tw.Flush()
	fmt.Fprintln(w, "\n`wisehosting help <command>` tells more about one. Documentation: README.md.")
}
