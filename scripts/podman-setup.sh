#!/usr/bin/env bash
# Prepares a worker host for the agent: Podman with runc, the containers.conf
# settings these hosts need, catatonit as the container init, tc/nsenter/ss
# for limits, nftables for the app networks' egress rules, and the Podman API socket the agent talks to. Idempotent.
#
#   scripts/podman-setup.sh            # install and start the socket
#   scripts/podman-setup.sh --check    # only report what is missing
set -euo pipefail

check=0
[ "${1:-}" = "--check" ] && check=1

need=()
command -v podman >/dev/null || need+=(podman)
command -v runc >/dev/null || need+=(runc)
[ -x /usr/libexec/podman/catatonit ] || need+=(catatonit)
command -v tc >/dev/null || need+=(iproute2)
command -v nsenter >/dev/null || need+=(util-linux)
command -v nft >/dev/null || need+=(nftables)
command -v git >/dev/null || need+=(git)
if [ "${#need[@]}" -gt 0 ]; then
  if [ "$check" = 1 ]; then
    echo "missing packages: ${need[*]}"
    exit 1
  fi
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi

conf=/etc/containers/containers.conf.d/50-wisehosting.conf
want='[containers]
default_ulimits = ["nofile=20000:20000", "nproc=32768:32768"]
[engine]
runtime = "runc"'
if [ "$(cat "$conf" 2>/dev/null)" != "$want" ]; then
  if [ "$check" = 1 ]; then
    echo "$conf is missing or differs"
    exit 1
  fi
  mkdir -p "$(dirname "$conf")"
  printf '%s\n' "$want" >"$conf"
  echo "wrote $conf"
fi

if command -v systemctl >/dev/null && [ -d /run/systemd/system ]; then
  if [ "$check" = 1 ]; then
    systemctl is-active --quiet podman.socket || { echo "podman.socket is not active"; exit 1; }
  else
    systemctl enable --now podman.socket >/dev/null
  fi
fi
# Report the storage's disk-quota support (what the agent will report).
root=$(podman info --format '{{.Store.GraphRoot}}' 2>/dev/null || echo /var/lib/containers/storage)
echo "podman storage: $root on $(findmnt -n -o FSTYPE,OPTIONS --target "$root" 2>/dev/null || echo unknown)"
echo "ok"
