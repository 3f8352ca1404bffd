#!/usr/bin/env bash
# Sets up one host of the WireGuard mesh (10.50.0.0/24 by default) and the
# systemd unit of its role. Idempotent: running it again changes nothing
# unless the peers file changed; the private key is generated once.
#
#   scripts/wireguard-setup.sh control-plane|worker|proxy --mesh-ip 10.50.0.1 \
#       [--peers /etc/wisehosting/mesh-peers] [--port 51821] [--interface wg0] \
#       [--cidr 10.50.0.0/24] [--root DIR [--apply]] [--no-systemd]
#
# The peers file has one line per other host:  <name> <public key> <endpoint host:port> <mesh ip>
# Print this host's public key for the others' peers files with:
#   wg pubkey < /etc/wireguard/wg0.key
# A changed peers file is applied to a running interface with `wg syncconf`
# (existing tunnels stay up). If nftables has an input chain (a firewall is
# active), the listen port is opened in it, now and on every start of the
# interface. --root writes every file below DIR instead of / and skips apt,
# systemctl and the live interface unless --apply is given (for review and
# tests).
set -euo pipefail

usage() { sed -n '2,20p' "$0" >&2; exit 2; }

role="${1:-}"
[ -n "$role" ] || usage
shift
case "$role" in
  control-plane|worker|proxy) ;;
  *) echo "unknown role: $role" >&2; usage ;;
esac

mesh_ip=""
peers="/etc/wisehosting/mesh-peers"
port=51821
iface=wg0
cidr="10.50.0.0/24"
root=""
systemd=1
live=1
while [ $# -gt 0 ]; do
  case "$1" in
    --mesh-ip) mesh_ip="$2"; shift 2 ;;
    --peers) peers="$2"; shift 2 ;;
    --port) port="$2"; shift 2 ;;
    --interface) iface="$2"; shift 2 ;;
    --cidr) cidr="$2"; shift 2 ;;
    --root) root="$2"; systemd=0; live=0; shift 2 ;;
    --apply) live=2; shift ;;
    --no-systemd) systemd=0; shift ;;
    *) echo "unknown option: $1" >&2; usage ;;
  esac
done
[ "$live" = 2 ] && live=1

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
# An interface name as the kernel takes it (and safe in file names and units).
if ! [[ "$iface" =~ ^[A-Za-z0-9_-]{1,15}$ ]]; then
  echo "invalid --interface $iface" >&2
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
key="$wgdir/$iface.key"
if [ ! -s "$key" ]; then
  (umask 077 && wg genkey > "$key")
fi

# The input chain of an active nftables firewall, as "family table chain".
input_chain() {
  command -v nft >/dev/null || return 0
  nft list chains 2>/dev/null | awk '
    $1 == "table" { fam = $2; tbl = $3 }
    $1 == "chain" { ch = $2 }
    /type filter hook input/ && !found { print fam, tbl, ch; found = 1 }'
}
fw="$(input_chain)"
# Opens the port in that chain unless a rule already does (idempotent).
open_port_cmd=""
if [ -n "$fw" ]; then
  read -r fw_family fw_table fw_chain <<< "$fw"
  open_port_cmd="nft list chain $fw_family $fw_table $fw_chain | grep -q 'udp dport $port accept' || nft insert rule $fw_family $fw_table $fw_chain udp dport $port accept comment wisehosting-mesh"
fi

# The peers in wg(8) format, for the config file and for wg syncconf.
render_peers() {
  [ -f "$peers" ] || return 0
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
}

# Render the interface config into a temp file and replace the real one only
# when it differs, so re-runs are no-ops.
conf="$wgdir/$iface.conf"
tmp="$(mktemp)"
live_conf="$(mktemp)"
trap 'rm -f "$tmp" "$live_conf"' EXIT
peer_text="$(render_peers)"
{
  echo "# Managed by wireguard-setup.sh ($role). Edit the peers file, not this."
  echo "[Interface]"
  echo "Address = $mesh_ip/$prefix_len"
  echo "ListenPort = $port"
  echo "PostUp = wg set %i private-key $key"
  [ -n "$open_port_cmd" ] && echo "PostUp = $open_port_cmd"
  printf '%s\n' "$peer_text"
} > "$tmp"
if ! cmp -s "$tmp" "$conf"; then
  install -m 600 "$tmp" "$conf"
  echo "wrote $conf"
else
  echo "$conf unchanged"
fi

if [ "$live" = 1 ] && [ -n "$open_port_cmd" ]; then
  bash -c "$open_port_cmd"
  echo "udp $port open in nftables ($fw_family $fw_table $fw_chain)"
fi
# A running interface takes the new peers without going down.
iface_up=0
if [ "$live" = 1 ] && ip link show "$iface" >/dev/null 2>&1; then
  iface_up=1
  {
    echo "[Interface]"
    echo "PrivateKey = $(cat "$key")"
    echo "ListenPort = $port"
    printf '%s\n' "$peer_text"
  } > "$live_conf"
  wg syncconf "$iface" "$live_conf"
  echo "synced $iface"
fi

case "$role" in
  control-plane) unit=wisehosting.service ;;
  worker) unit=wisehosting-agent.service ;;
  proxy) unit=wisehosting-proxy.service ;;
esac
here="$(cd "$(dirname "$0")" && pwd)"
unitdir="$root/etc/systemd/system"
mkdir -p "$unitdir" "$root/etc/credstore"
# Secrets live in the default credstore, /etc/credstore/wisehosting, which
# the units load with LoadCredential=. A host set up with the former
# /etc/wisehosting/credentials keeps it: the credstore path links to it.
# Otherwise the former path links to the credstore, so both name one place.
creds="$root/etc/credstore/wisehosting" old="$root/etc/wisehosting/credentials"
if [ ! -e "$creds" ] && [ -d "$old" ] && [ ! -L "$old" ]; then
  ln -s /etc/wisehosting/credentials "$creds"
else
  mkdir -p "$creds" "$root/etc/wisehosting"
  chmod 700 "$creds"
  [ -e "$old" ] || [ -L "$old" ] || ln -s /etc/credstore/wisehosting "$old"
fi
# The units wait for the mesh interface: name it.
sed "s/wg-quick@wg0/wg-quick@$iface/g" "$here/systemd/$unit" > "$tmp"
if ! cmp -s "$tmp" "$unitdir/$unit"; then
  install -m 644 "$tmp" "$unitdir/$unit"
  echo "installed $unitdir/$unit"
fi

if [ "$systemd" = 1 ]; then
  systemctl daemon-reload
  if [ "$iface_up" = 0 ]; then
    systemctl enable --now "wg-quick@$iface"
  else
    systemctl enable "wg-quick@$iface"
  fi
  systemctl enable "$unit"
fi
echo "public key: $(wg pubkey < "$key")"
