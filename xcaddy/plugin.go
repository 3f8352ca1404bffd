// Package xcaddy is the WiseHosting plugin as xcaddy sees it: importing it
// registers every WiseHosting Caddy module. build.sh hands it to
// `xcaddy build --with`, together with any other plugins.
package xcaddy

import (
	_ "github.com/wisehosting/wisehosting/caddymodules"
)
