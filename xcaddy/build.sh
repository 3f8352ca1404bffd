#!/usr/bin/env bash
# Rebuild the wisehosting binary with extra Caddy plugins, the way xcaddy
# builds any Caddy: `make xcaddy` or
#   xcaddy/build.sh [--with module@version ...]
# With no arguments it adds the Cloudflare DNS provider (for DNS-01 wildcard
# certificates). Output: bin/wisehosting-custom.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(dirname "$here")"
caddy_version="$(awk '$1 == "github.com/caddyserver/caddy/v2" {print $2; exit}' "$root/go.mod")"
plugins=("$@")
if [ "${#plugins[@]}" -eq 0 ]; then
  plugins=(--with "github.com/caddy-dns/cloudflare@v0.2.1")
fi
mkdir -p "$root/bin"
cd "$here"
# The local tree is given a version (v0.0.0) because xcaddy requires one.
# The control plane needs no build tags (only the agent's Podman bindings do).
XCADDY_SKIP_CLEANUP=0 CGO_ENABLED=0 XCADDY_GO_BUILD_FLAGS="-trimpath -ldflags=-s\ -w" \
  go tool xcaddy build "$caddy_version" \
  --output "$root/bin/wisehosting-custom" \
  --replace "github.com/wisehosting/wisehosting@v0.0.0=$root" \
  --with "github.com/wisehosting/wisehosting/xcaddy@v0.0.0=$here" \
  "${plugins[@]}"
echo "built $root/bin/wisehosting-custom"
