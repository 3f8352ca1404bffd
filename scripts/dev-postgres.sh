#!/usr/bin/env bash
# Start (creating on first use) a private PostgreSQL cluster under .data/pg on
# 127.0.0.1:55432, for machines without a Postgres server.
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
