#!/usr/bin/env bash
# Builds Traefik (for the routing interop tests) from the Go module proxy
# into a cache outside the repository, once. Prints the binary's path.
set -euo pipefail
version="${TRAEFIK_VERSION:-v3.6.12}"
cache="${WH_CACHE_DIR:-$HOME/.cache/wisehosting}"
bin="$cache/traefik-$version"
if [ -x "$bin" ]; then
  echo "$bin"
  exit 0
fi
mkdir -p "$cache"
work="$(mktemp -d)"
trap 'chmod -R u+w "$work"; rm -rf "$work"' EXIT
# `go install …@version` refuses modules with replace directives, so build
# inside a copy of the module.
dir="$(cd "$work" && GOFLAGS=-mod=mod go mod download -json "github.com/traefik/traefik/v3@$version" | sed -n 's/^\s*"Dir": "\(.*\)",$/\1/p')"
[ -n "$dir" ] || { echo "could not download traefik $version" >&2; exit 1; }
cp -r "$dir" "$work/src"
chmod -R u+w "$work/src"
(cd "$work/src" && CGO_ENABLED=0 go build -trimpath -ldflags '-s -w' -o "$bin.tmp" ./cmd/traefik) >&2
mv "$bin.tmp" "$bin"
echo "$bin"
