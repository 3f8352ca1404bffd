#!/usr/bin/env bash
# Builds the control plane image from cmd/wisehosting/Containerfile with
# podman, without a registry: the binary is built here (static, CGO off),
# the default base is scratch, and any local image can be the base instead
# (e.g. the busybox image tests import, for a shell when debugging, or
# gcr.io/distroless/static-debian12:nonroot where a registry is reachable).
#
#   scripts/container-build.sh [--base IMAGE] [--tag NAME] [--binary PATH]
#
# --binary uses an already built static binary instead of building one.
# Prints the image id.
set -euo pipefail

usage() { sed -n '2,11p' "$0" >&2; exit 2; }

here="$(cd "$(dirname "$0")" && pwd)"
root="$(dirname "$here")"
base=scratch
tag=localhost/wisehosting:latest
binary=""
while [ $# -gt 0 ]; do
  case "$1" in
    --base) base="$2"; shift 2 ;;
    --tag) tag="$2"; shift 2 ;;
    --binary) binary="$2"; shift 2 ;;
    *) echo "unknown option: $1" >&2; usage ;;
  esac
done

ctx="$(mktemp -d)"
trap 'rm -rf "$ctx"' EXIT
mkdir -p "$ctx/rootfs/usr/local/bin" "$ctx/rootfs/etc/ssl/certs" "$ctx/rootfs/etc/wisehosting" "$ctx/state" "$ctx/rootfs/tmp"
chmod 1777 "$ctx/rootfs/tmp"
if [ -z "$binary" ]; then
  # The control plane needs no build tags (only the agent's Podman bindings do).
  (cd "$root" && CGO_ENABLED=0 go build -trimpath -ldflags '-s -w' \
    -o "$ctx/rootfs/usr/local/bin/wisehosting" ./cmd/wisehosting)
else
  install -m 755 "$binary" "$ctx/rootfs/usr/local/bin/wisehosting"
fi
# A static binary: nothing else to carry.
if file "$ctx/rootfs/usr/local/bin/wisehosting" 2>/dev/null | grep -q 'dynamically linked'; then
  echo "the binary is dynamically linked; build it with CGO_ENABLED=0" >&2
  exit 1
fi
cp /etc/ssl/certs/ca-certificates.crt "$ctx/rootfs/etc/ssl/certs/"
printf 'root:x:0:0:root:/:/sbin/nologin\nwisehosting:x:65532:65532:wisehosting:/var/lib/wisehosting:/sbin/nologin\n' > "$ctx/rootfs/etc/passwd"
printf 'root:x:0:\nwisehosting:x:65532:\n' > "$ctx/rootfs/etc/group"
cp "$root/cmd/wisehosting/Containerfile" "$ctx/Containerfile"

pull=(--pull=missing)
[ "$base" = scratch ] || ! podman image exists "$base" || pull=(--pull=never)
podman build -q "${pull[@]}" --build-arg "BASE=$base" -t "$tag" -f "$ctx/Containerfile" "$ctx"
