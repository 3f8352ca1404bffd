#!/usr/bin/env bash
# `make run`: a whole WiseHosting on this machine, bound to loopback.
#   - Postgres: $DATABASE_URL if set, else the server on 127.0.0.1:5432, else
#     a private cluster under .data/pg (port 55432) that is stopped on exit.
#   - the control plane (scripts/dev.Caddyfile) on https://localhost:8443,
#     apps on https://<slug>.localhost:8443, certificates from Caddy's
#     internal CA (kept in .data/caddy);
#   - a local worker: a private Podman service (socket and storage under
#     .data/podman), added with `wisehosting worker add`, and the agent.
# Ctrl-C stops everything it started; the next run reuses .data/.
# Ports: WISEHOSTING_HTTPS_PORT (8443) and WISEHOSTING_ZONE_PORT (8480, the
# local worker's zone router); Caddy's admin API is off (WISEHOSTING_ADMIN).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib.sh
root="$PWD"
data="$root/.data"
# Files the worker builds into images must stay readable by the apps'
# unprivileged users; secrets are written under umask 077 below.
umask 022
mkdir -p "$data/logs"
chmod 0700 "$data/logs"

port="${WISEHOSTING_HTTPS_PORT:-8443}"
zone_port="${WISEHOSTING_ZONE_PORT:-8480}"
export WISEHOSTING_HTTPS_PORT="$port" WISEHOSTING_ZONE_PORT="$zone_port"

# Caddy listens with SO_REUSEPORT: a second server on the same port would
# share it silently, so a served port is refused here.
for p in "$port" "$zone_port"; do
  if port_served "$p"; then
    echo "make run: port $p is already in use on this machine (another make run?)." >&2
    echo "Stop that server, or pick other ports: WISEHOSTING_HTTPS_PORT=9443 WISEHOSTING_ZONE_PORT=9480 make run" >&2
    exit 1
  fi
done

for f in control-plane agent podman; do
  echo "--- make run $(date -u +%Y-%m-%dT%H:%M:%SZ)" >>"$data/logs/$f.log"
done

# --- what we start, stopped in reverse order on exit -------------------------
cp_pid="" agent_pid="" podman_pid="" own_pg=""
stop_pid() { # stop_pid PID NAME: SIGTERM, then SIGKILL after 15 s
  local pid="$1"
  [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null || return 0
  kill -TERM "$pid" 2>/dev/null || true
  for _ in $(seq 1 150); do kill -0 "$pid" 2>/dev/null || return 0; sleep 0.1; done
  echo "make run: $2 did not stop within 15 s; killing it" >&2
  kill -KILL "$pid" 2>/dev/null || true
}
cleanup() {
  trap - EXIT INT TERM
  echo
  echo "stopping…"
  stop_pid "$agent_pid" agent
  stop_pid "$cp_pid" "control plane"
  if [ -n "$podman_pid" ]; then
    # App containers keep no process once stopped; the agent starts them
    # again at the next run.
    dpodman stop --all --time 5 >/dev/null 2>&1 || true
    stop_pid "$podman_pid" "podman service"
  fi
  if [ -n "$own_pg" ]; then
    bash scripts/dev-postgres.sh stop || true
  fi
  wait 2>/dev/null || true
  echo "stopped."
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# --- secrets, once ----------------------------------------------------------
if [ ! -f "$data/secrets.env" ]; then
  umask 077
  if [ -f "$data/dev.env" ]; then
    grep -E '^WISEHOSTING_(SECRET|PROXY_TOKEN)=' "$data/dev.env" > "$data/secrets.env"
  else
    {
      echo "WISEHOSTING_SECRET=$(head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n')"
      echo "WISEHOSTING_PROXY_TOKEN=$(head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n')"
    } > "$data/secrets.env"
  fi
  umask 022
fi
set -a
# shellcheck source=/dev/null
source "$data/secrets.env"
set +a

# --- Postgres ----------------------------------------------------------------
db_url="${DATABASE_URL:-}"
if [ -z "$db_url" ]; then
  if pg_up "postgres://postgres@127.0.0.1:5432/postgres"; then
    psql -q "postgres://postgres@127.0.0.1:5432/postgres" -tc "SELECT 1 FROM pg_database WHERE datname='wisehosting_dev'" | grep -q 1 ||
      psql -q "postgres://postgres@127.0.0.1:5432/postgres" -c "CREATE DATABASE wisehosting_dev"
    db_url="postgres://postgres@127.0.0.1:5432/wisehosting_dev?sslmode=disable"
  else
    own_pg=1
    bash scripts/dev-postgres.sh
    db_url="postgres://postgres@127.0.0.1:55432/wisehosting_dev?sslmode=disable"
  fi
fi
export WISEHOSTING_DATABASE_URL="$db_url"
# The operator commands (`bin/wisehosting worker list` …) read this file in
# a dev checkout.
(
  umask 077
  cat "$data/secrets.env"
  echo "WISEHOSTING_DATABASE_URL=$db_url"
) > "$data/dev.env"

# --- local worker: Podman ----------------------------------------------------
# worker_note says why no local worker runs; the dashboard shows it.
worker_note=""
missing=()
command -v podman >/dev/null || missing+=(podman)
command -v runc >/dev/null || missing+=(runc)
[ -x /usr/libexec/podman/catatonit ] || missing+=(catatonit)
[ -x /bin/busybox ] || missing+=(busybox-static)
command -v git >/dev/null || missing+=(git)
if [ "${#missing[@]}" -gt 0 ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    echo "installing ${missing[*]} for the local worker (apt-get)…"
    if ! { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null; }; then
      worker_note="installing ${missing[*]} failed; run: apt-get install -y ${missing[*]} and make run again"
    fi
  else
    worker_note="the local worker needs ${missing[*]}: run  sudo apt-get install -y ${missing[*]}  and make run again"
  fi
fi
if [ -z "$worker_note" ] && [ "$(id -u)" != 0 ]; then
  worker_note="the local worker runs Podman as root (bridge networks, resource limits): run make run as root, or add a worker host (README: The worker agent)"
fi

pdir="$data/podman"
dpodman() { CONTAINERS_CONF="$pdir/containers.conf" CONTAINERS_STORAGE_CONF="$pdir/storage.conf" podman "$@"; }
if [ -z "$worker_note" ]; then
  mkdir -p "$pdir/storage" "$pdir/run"
  # runc and explicit ulimits: what these hosts need (scripts/podman-setup.sh).
  printf '%s\n' '[containers]' 'default_ulimits = ["nofile=20000:20000", "nproc=32768:32768"]' \
    '[engine]' 'runtime = "runc"' > "$pdir/containers.conf"
  # Private storage: this worker's containers are its own, whatever else
  # runs Podman on the machine.
  printf '%s\n' '[storage]' 'driver = "overlay"' "graphroot = \"$pdir/storage\"" "runroot = \"$pdir/run\"" > "$pdir/storage.conf"
  rm -f "$pdir/podman.sock"
  CONTAINERS_CONF="$pdir/containers.conf" CONTAINERS_STORAGE_CONF="$pdir/storage.conf" \
    setsid podman system service --time=0 "unix://$pdir/podman.sock" >>"$data/logs/podman.log" 2>&1 &
  podman_pid=$!
  for _ in $(seq 1 100); do [ -S "$pdir/podman.sock" ] && break; sleep 0.1; done
  if [ ! -S "$pdir/podman.sock" ]; then
    worker_note="the Podman service did not start: see .data/logs/podman.log"
    stop_pid "$podman_pid" "podman service"
    podman_pid=""
  elif ! dpodman image exists docker.io/library/busybox:stable 2>/dev/null; then
    # The base image of the static preset and the samples, from Debian's
    # busybox-static: no registry is needed.
    if ! import_busybox dpodman >>"$data/logs/podman.log" 2>&1; then
      worker_note="importing the busybox base image failed: see .data/logs/podman.log"
    fi
  fi
fi
export WISEHOSTING_WORKER_NOTE="$worker_note"

# --- sample apps as git repositories -----------------------------------------
for ex in examples/*/; do
  name="$(basename "$ex")"
  repo="$data/examples/$name"
  mkdir -p "$repo"
  [ -d "$repo/.git" ] || git -C "$repo" init -q -b main
  find "$repo" -mindepth 1 -maxdepth 1 ! -name .git -exec rm -rf {} +
  cp -R "$ex." "$repo/"
  git -C "$repo" add -A
  git -C "$repo" -c user.name=WiseHosting -c user.email=dev@localhost -c commit.gpgsign=false \
    commit -q -m "sample $name" >/dev/null 2>&1 || true
done

# --- control plane -----------------------------------------------------------
# Caddy keeps its internal CA and certificates under .data/caddy.
XDG_DATA_HOME="$data" XDG_CONFIG_HOME="$data" setsid ./bin/wisehosting run --config scripts/dev.Caddyfile --adapter caddyfile \
  >>"$data/logs/control-plane.log" 2>&1 &
cp_pid=$!
ca="$data/caddy/pki/authorities/local/root.crt"
for _ in $(seq 1 600); do
  if ! kill -0 "$cp_pid" 2>/dev/null; then
    echo "make run: the control plane exited; the end of .data/logs/control-plane.log:" >&2
    tail -n 30 "$data/logs/control-plane.log" >&2
    cp_pid=""
    exit 1
  fi
  curl -sf --cacert "$ca" "https://localhost:$port/health" >/dev/null 2>&1 && break
  sleep 0.1
done
# The first start prints the first admin's one-time password; it is shown
# again at later starts until the first sign-in replaces it.
password=""
for _ in $(seq 1 100); do
  must="$(psql -qtAX "$db_url" -c "SELECT must_change_password FROM users WHERE email = 'admin@localhost'" 2>/dev/null || true)"
  [ "$must" = f ] && break
  password="$(sed -n 's/^ *One-time password: *\([^ ]*\).*/\1/p' "$data/logs/control-plane.log" | tail -n 1)"
  [ -n "$password" ] && [ "$must" = t ] && break
  password=""
  sleep 0.1
done

# --- local worker: agent -----------------------------------------------------
bin_wh() { XDG_DATA_HOME="$data" XDG_CONFIG_HOME="$data" ./bin/wisehosting "$@"; }
if [ -z "$worker_note" ]; then
  key_file="$data/worker.key"
  if [ ! -s "$key_file" ]; then
    # A new .data on a database that already has this worker (DATABASE_URL
    # or the shared server): add another name.
    name="local"
    bin_wh worker list --config scripts/dev.Caddyfile 2>/dev/null | awk '{print $2}' | grep -qx local &&
      name="local-$(head -c 3 /dev/urandom | od -An -tx1 | tr -d ' \n')"
    out="$(bin_wh worker add "$name" --zone localhost --wg-ip 127.0.0.1 --config scripts/dev.Caddyfile 2>&1)" || {
      worker_note="adding the local worker failed: $out"
    }
    key="$(grep -o 'whk_[A-Za-z0-9_-]*' <<<"$out" | head -n 1 || true)"
    [ -n "$key" ] && (umask 077 && printf '%s\n' "$key" > "$key_file")
  fi
  if [ -z "$worker_note" ]; then
    mkdir -p "$data/work"
    setsid ./bin/wisehosting-agent -cp "https://localhost:$port" -ca-file "$ca" -key-file "$key_file" \
      -name local -mesh-ip 127.0.0.1 -zone localhost -zone-listen "127.0.0.1:$zone_port" \
      -podman "unix://$pdir/podman.sock" -work-dir "$data/work" -allow-local-git \
      >>"$data/logs/agent.log" 2>&1 &
    agent_pid=$!
  fi
fi

# --- banner ------------------------------------------------------------------
cat <<EOF

  WiseHosting is running (logs in .data/logs/, Ctrl-C stops everything).

  Dashboard:      https://localhost:$port
EOF
if [ -n "$password" ]; then
  echo "  Admin account:  admin@localhost"
  echo "  Password:       $password   (one-time: the first sign-in asks for a new one)"
else
  echo "  Admin account:  admin@localhost (password chosen at the first sign-in)"
fi
echo "  Dev CA:         $ca   (trust it to open the links without a warning: README)"
if [ -z "$worker_note" ]; then
  cat <<EOF
  Local worker:   apps are served at https://<slug>.localhost:$port
  Deploy the sample: in the dashboard, New app with repository
                  $data/examples/static  branch main, then Deploy
                  (or $data/examples/shell-server, a small CGI server)
EOF
else
  echo "  No local worker: $worker_note"
fi
echo

while :; do
  if ! kill -0 "$cp_pid" 2>/dev/null; then
    echo "make run: the control plane stopped; the end of .data/logs/control-plane.log:" >&2
    tail -n 30 "$data/logs/control-plane.log" >&2
    cp_pid=""
    exit 1
  fi
  if [ -n "$agent_pid" ] && ! kill -0 "$agent_pid" 2>/dev/null; then
    echo "make run: the local worker's agent stopped; the end of .data/logs/agent.log:" >&2
    tail -n 20 "$data/logs/agent.log" >&2
    agent_pid=""
  fi
  sleep 1 &
  wait $! || true
done
