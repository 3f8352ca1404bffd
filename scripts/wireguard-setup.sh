#!/usr/bin/env bash
# Sets up one host of the WireGuard mesh (10.50.0.0/24 by default) and the
# systemd unit of its role. Idempotent: running it again changes nothing
# unless the peers file changed; the private key is generated once.
#
#   scripts/wireguard-setup.sh control-plane|worker|proxy --mesh-ip 10.50.0.1 \
#       [--peers /etc/wisehosting/mesh-peers] [--port 51820] [--cidr 10.50.0.0/24] \
#       [--root DIR] [--no-systemd]
#
# The peers file has one line per other host:  <name> <public key> <endpoint host:port> <mesh ip>
# Print this host's public key for the others' peers files with:
#   wg pubkey < /etc/wireguard/wh0.key
# --root writes every file below DIR instead of / and skips apt and
# systemctl (for review and tests).
set -euo pipefail

usage() { sed -n '2,15p' "$0" >&2; exit 2; }

role="${1:-}"
[ -n "$role" ] || usage
shift
case "$role" in
  control-plane|worker|proxy) ;;
  *) echo "unknown role: $role" >&2; usage ;;
esac

mesh_ip=""
peers="/etc/wisehosting/mesh-peers"
port=51820
cidr="10.50.0.0/24"
root=""
systemd=1
while [ $# -gt 0 ]; do
  case "$1" in
    --mesh-ip) mesh_ip="$2"; shift 2 ;;
    --peers) peers="$2"; shift 2 ;;
    --port) port="$2"; shift 2 ;;
    --cidr) cidr="$2"; shift 2 ;;
    --root) root="$2"; systemd=0; shift 2 ;;
    --no-systemd) systemd=0; shift ;;
    *) echo "unknown option: $1" >&2; usage ;;
  esac
done

valid_ipv4() {
  local IFS=.
  local -a o
  read -r -a o <<< "$1"
  [ "${#o[@]}" -eq 4 ] || return 1
  for x in "${o[@]}"; do
    if ! [[ "$x" =~ ^[0-9]{1,3}$ ]] || [ "$x" -gt 255 ]; then return 1; fi
  done
}
valid_ipv4 "$mesh_ip" || { echo "--mesh-ip must be an IPv4 address (got '$mesh_ip')" >&2; exit 2; }
if ! [[ "$port" =~ ^[0-9]+$ ]] || [ "$port" -lt 1 ] || [ "$port" -gt 65535 ]; then
  echo "invalid --port $port" >&2
  exit 2
fi
prefix_len="${cidr#*/}"
[[ "$prefix_len" =~ ^[0-9]+$ ]] || { echo "invalid --cidr $cidr" >&2; exit 2; }

if [ -z "$root" ] && ! command -v wg >/dev/null; then
  apt-get update -qq && apt-get install -y -qq --no-install-recommends wireguard-tools
fi
command -v wg >/dev/null || { echo "wg (wireguard-tools) is required" >&2; exit 1; }

wgdir="$root/etc/wireguard"
mkdir -p "$wgdir"
chmod 700 "$wgdir"
key="$wgdir/wh0.key"
if [ ! -s "$key" ]; then
  (umask 077 && wg genkey > "$key")
fi

# Render the interface config into a temp file and replace the real one only
# when it differs, so re-runs are no-ops.
conf="$wgdir/wh0.conf"
tmp="$(mktemp)"
trap 'rm -f "$tmp"' EXIT
{
  echo "# Managed by wireguard-setup.sh ($role). Edit the peers file, not this."
  echo "[Interface]"
  echo "Address = $mesh_ip/$prefix_len"
  echo "ListenPort = $port"
  echo "PostUp = wg set %i private-key $key"
  if [ -f "$peers" ]; then
    while read -r name pub endpoint ip _; do
      case "$name" in ''|\#*) continue ;; esac
      valid_ipv4 "$ip" || { echo "peers file: bad mesh ip '$ip' for $name" >&2; exit 1; }
      [ "$ip" = "$mesh_ip" ] && continue
      echo
      echo "[Peer]"
      echo "# $name"
      echo "PublicKey = $pub"
      echo "Endpoint = $endpoint"
      echo "AllowedIPs = $ip/32"
      echo "PersistentKeepalive = 25"
    done < "$peers"
  fi
} > "$tmp"
changed=0
if ! cmp -s "$tmp" "$conf"; then
  install -m 600 "$tmp" "$conf"
  changed=1
  echo "wrote $conf"
else
  echo "$conf unchanged"
fi

case "$role" in
  control-plane) unit=wisehosting.service ;;
  worker) unit=wisehosting-agent.service ;;
  proxy) unit=wisehosting-proxy.service ;;
esac
here="$(cd "$(dirname "$0")" && pwd)"
unitdir="$root/etc/systemd/system"
mkdir -p "$unitdir" "$root/etc/wisehosting/credentials"
chmod 700 "$root/etc/wisehosting/credentials"
if ! cmp -s "$here/systemd/$unit" "$unitdir/$unit"; then
  install -m 644 "$here/systemd/$unit" "$unitdir/$unit"
  echo "installed $unitdir/$unit"
fi

if [ "$systemd" = 1 ]; then
  systemctl daemon-reload
  systemctl enable --now wg-quick@wh0
  [ "$changed" = 1 ] && systemctl restart wg-quick@wh0
  systemctl enable "$unit"
fi
echo "public key: $(wg pubkey < "$key")"
