// Command wisehosting is the control plane: Caddy with the WiseHosting
// modules, the same program `xcaddy build --with` would generate. Run
// `wisehosting run --config Caddyfile`; `wisehosting help` lists the
// operator commands (migrate, worker, dns, infra …).
package main

import (
	caddycmd "github.com/caddyserver/caddy/v2/cmd"

	// plug in Caddy modules here
	_ "github.com/caddyserver/caddy/v2/modules/standard"
	_ "github.com/wisehosting/wisehosting/caddymodules"
)

func main() {
	caddycmd.Main()
}
