#!/usr/bin/env bash
# `make run`: start a development control plane on https://localhost:8443.
# Postgres: $DATABASE_URL if set, else the server on 127.0.0.1:5432, else a
# private cluster under .data/pg made with the Debian PostgreSQL binaries.
# The dev secret and proxy token are generated once into .data/dev.env so a
# restart keeps reading what it encrypted.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib.sh
mkdir -p .data

if [ ! -f .data/dev.env ]; then
  umask 077
  {
    echo "WISEHOSTING_SECRET=$(head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n')"
    echo "WISEHOSTING_PROXY_TOKEN=$(head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n')"
  } > .data/dev.env
fi
set -a
# shellcheck source=/dev/null
source .data/dev.env
set +a

db_url="${DATABASE_URL:-}"
if [ -z "$db_url" ]; then
  if pg_up "postgres://postgres@127.0.0.1:5432/postgres"; then
    psql -q "postgres://postgres@127.0.0.1:5432/postgres" -tc "SELECT 1 FROM pg_database WHERE datname='wisehosting_dev'" | grep -q 1 ||
      psql -q "postgres://postgres@127.0.0.1:5432/postgres" -c "CREATE DATABASE wisehosting_dev"
    db_url="postgres://postgres@127.0.0.1:5432/wisehosting_dev?sslmode=disable"
  else
    bash scripts/dev-postgres.sh
    db_url="postgres://postgres@127.0.0.1:55432/wisehosting_dev?sslmode=disable"
  fi
fi
export WISEHOSTING_DATABASE_URL="$db_url"
echo "control plane: https://localhost:${WISEHOSTING_HTTPS_PORT:-8443}  (database: ${db_url%%\?*})"
exec ./bin/wisehosting run --config scripts/dev.Caddyfile --adapter caddyfile
