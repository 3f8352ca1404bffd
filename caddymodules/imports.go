// Package caddymodules blank-imports every WiseHosting Caddy module, the way
// Caddy's modules/standard does for its own. Import it for its side effects
// to build a binary (or an xcaddy build) that has them all.
package caddymodules

import (
	_ "github.com/wisehosting/wisehosting/caddymodules/alerts"
	_ "github.com/wisehosting/wisehosting/caddymodules/api"
	_ "github.com/wisehosting/wisehosting/caddymodules/backups"
	_ "github.com/wisehosting/wisehosting/caddymodules/certs"
	_ "github.com/wisehosting/wisehosting/caddymodules/core"
	_ "github.com/wisehosting/wisehosting/caddymodules/dashboard"
	_ "github.com/wisehosting/wisehosting/caddymodules/hub"
	_ "github.com/wisehosting/wisehosting/caddymodules/infra"
	_ "github.com/wisehosting/wisehosting/caddymodules/internalapi"
	_ "github.com/wisehosting/wisehosting/caddymodules/logs"
	_ "github.com/wisehosting/wisehosting/caddymodules/proxy"
	_ "github.com/wisehosting/wisehosting/caddymodules/scheduler"
	_ "github.com/wisehosting/wisehosting/caddymodules/usage"
	_ "github.com/wisehosting/wisehosting/caddymodules/webhooks"
)
