# shellcheck shell=bash
# Shared shell functions for scripts/*.sh (sourced, not run).

pg_bin() {
  local d best=""
  for d in /usr/lib/postgresql/*/bin; do [ -d "$d" ] && best="$d"; done
  echo "$best"
}

# pg_up URL: true when a Postgres server answers at URL.
pg_up() { pg_isready -q -d "$1" -t 2 >/dev/null 2>&1; }

# ensure_postgres_for_tests: the tests need a server at $WH_TEST_DATABASE_URL
# (default 127.0.0.1:5432). Start the system cluster if it is installed but down.
ensure_postgres_for_tests() {
  local url="${WH_TEST_DATABASE_URL:-postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable}"
  if pg_up "$url"; then return 0; fi
  if command -v pg_ctlcluster >/dev/null && [ -d /etc/postgresql ]; then
    local v ver=""
    for v in /etc/postgresql/*; do [ -d "$v" ] && ver="${v##*/}"; done
    pg_ctlcluster --skip-systemctl-redirect "$ver" main start || true
  fi
  for _ in $(seq 1 30); do pg_up "$url" && return 0; sleep 1; done
  echo "Postgres is not reachable at $url; set WH_TEST_DATABASE_URL" >&2
  return 1
}
