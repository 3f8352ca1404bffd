#!/usr/bin/env bash
# Installs everything the test suite needs on a fresh Debian 12 machine.
# Idempotent: fast when everything is already there.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib.sh

need_apt=()
command -v pg_isready >/dev/null || need_apt+=(postgresql postgresql-client)
command -v shellcheck >/dev/null || need_apt+=(shellcheck)
command -v wg >/dev/null || need_apt+=(wireguard-tools)
# userspace WireGuard and nftables: the mesh script is tested live in a network namespace
command -v wireguard-go >/dev/null || need_apt+=(wireguard-go)
command -v nft >/dev/null || need_apt+=(nftables)
command -v wrk >/dev/null || need_apt+=(wrk)
# The worker agent's runtime tests drive a real Podman service; busybox-static
# becomes the local base image (no registry is needed), tc and ip shape and
# isolate networks, and the btrfs headers let plain cgo builds of the Podman
# bindings compile.
command -v podman >/dev/null || need_apt+=(podman)
command -v runc >/dev/null || need_apt+=(runc)
[ -x /bin/busybox ] || need_apt+=(busybox-static)
[ -x /usr/libexec/podman/catatonit ] || need_apt+=(catatonit)
command -v tc >/dev/null || need_apt+=(iproute2)
# The agent isolates each team's app network with nftables rules.
command -v nft >/dev/null || need_apt+=(nftables)
# The prebuilt-image journey pushes to and pulls from a real registry on
# loopback (the distribution registry, with htpasswd authentication).
[ -x /usr/bin/docker-registry ] || need_apt+=(docker-registry)
[ -f /usr/include/btrfs/version.h ] || need_apt+=(libbtrfs-dev)
# The dashboard's browser test drives Debian's Chromium with playwright-core.
[ -x /usr/bin/chromium ] || need_apt+=(chromium)
command -v node >/dev/null || need_apt+=(nodejs npm)
if [ "${#need_apt[@]}" -gt 0 ]; then
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${need_apt[@]}" >/dev/null
fi
# The tests start their own registries; the package's system service (on
# port 5000) is not wanted.
if command -v systemctl >/dev/null && systemctl is-enabled docker-registry >/dev/null 2>&1; then
  systemctl disable --now docker-registry >/dev/null 2>&1 || true
fi
ensure_postgres_for_tests
go mod download
npm ci --prefix caddymodules/dashboard/browsertest --no-audit --no-fund --silent
# Real peers of the interop tests, built once into caches outside the
# repository (the tests find them through the same scripts).
bash scripts/ci-pebble.sh
bash scripts/ci-traefik.sh
