#!/usr/bin/env bash
# Start (creating on first use) a private PostgreSQL cluster under .data/pg on
# 127.0.0.1:55432, for machines without a Postgres server. As root, when
# the postgres user cannot enter the checkout, the cluster lives under
# /var/lib/wisehosting-dev/<checksum of the checkout's path>/pg instead.
#   scripts/dev-postgres.sh        # start
#   scripts/dev-postgres.sh stop   # stop it (make run does on exit)
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib.sh
bin="$(pg_bin)"
if [ -z "$bin" ]; then
  echo "PostgreSQL is not installed: apt-get install -y postgresql (or set DATABASE_URL)" >&2
  exit 1
fi
dir="$PWD/.data/pg"
as_pg=()
if [ "$(id -u)" = 0 ]; then
  # initdb refuses to run as root.
  id postgres >/dev/null 2>&1 || useradd --system --no-create-home postgres
  as_pg=(runuser -u postgres --)
  mkdir -p .data
  if runuser -u postgres -- test -x "$PWD"; then
    chmod 0711 .data # entered, not listed: the files in it stay private
  else
    # The checkout is in a directory the postgres user cannot enter (root's
    # home, a private temporary directory): keep the cluster where it can.
    dir="/var/lib/wisehosting-dev/$(printf %s "$PWD" | cksum | cut -d' ' -f1)/pg"
    mkdir -p "$(dirname "$dir")"
    chmod 0755 /var/lib/wisehosting-dev "$(dirname "$dir")"
  fi
fi
# The postgres user may not enter the current directory.
cd /
if [ "${1:-}" = stop ]; then
  [ -f "$dir/postmaster.pid" ] && "${as_pg[@]}" "$bin/pg_ctl" -D "$dir" -m fast -w stop >/dev/null
  exit 0
fi
if [ ! -f "$dir/PG_VERSION" ]; then
  mkdir -p "$dir"
  [ "${#as_pg[@]}" -gt 0 ] && chown postgres "$dir"
  "${as_pg[@]}" "$bin/initdb" -D "$dir" -U postgres --auth=trust -E UTF8 --locale=C.UTF-8 >/dev/null
fi
if ! pg_up "postgres://postgres@127.0.0.1:55432/postgres"; then
  "${as_pg[@]}" "$bin/pg_ctl" -D "$dir" -l "$dir/log" -o "-p 55432 -k $dir -c listen_addresses=127.0.0.1" -w start >/dev/null
fi
psql -q "postgres://postgres@127.0.0.1:55432/postgres" -tc "SELECT 1 FROM pg_database WHERE datname='wisehosting_dev'" | grep -q 1 ||
  psql -q "postgres://postgres@127.0.0.1:55432/postgres" -c "CREATE DATABASE wisehosting_dev"
echo "private PostgreSQL running on 127.0.0.1:55432 (data: $dir)"
