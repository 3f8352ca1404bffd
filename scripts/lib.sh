# shellcheck shell=bash
# Shared shell functions for scripts/*.sh (sourced, not run).

# go_tags: the build tags of the agent's Podman bindings, from the one
# definition (GOTAGS in the Makefile); $GOTAGS, when set, wins.
go_tags() {
  if [ -n "${GOTAGS:-}" ]; then echo "$GOTAGS"; return; fi
  sed -n 's/^GOTAGS *[:?]*= *//p' "$(dirname "${BASH_SOURCE[0]}")/../Makefile" | head -1
}

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

# port_served PORT: true when something listens on TCP PORT on any address.
port_served() {
  if command -v ss >/dev/null; then
    [ -n "$(ss -Htln "sport = :$1" 2>/dev/null)" ]
  else
    (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
  fi
}

# import_busybox PODMAN: imports Debian's busybox-static as the image
# docker.io/library/busybox:stable (the base of the static preset and the
# samples), with the applets agent/runtime/podmantest links; PODMAN is the
# podman command to use (a function setting the storage, say).
import_busybox() {
  local podman="$1" rootfs a
  rootfs="$(mktemp -d)"
  chmod 0755 "$rootfs"
  mkdir -m 0755 "$rootfs/bin" "$rootfs/srv" "$rootfs/etc"
  mkdir -m 1777 "$rootfs/tmp"
  install -m 0755 /bin/busybox "$rootfs/bin/busybox"
  for a in sh httpd ls cat echo sleep wget ip nc true false env mkdir cp rm; do
    ln -s busybox "$rootfs/bin/$a"
  done
  printf 'root:x:0:0:root:/:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/false\n' > "$rootfs/etc/passwd"
  printf 'root:x:0:\nnogroup:x:65534:\n' > "$rootfs/etc/group"
  chmod 0644 "$rootfs/etc/passwd" "$rootfs/etc/group"
  tar -C "$rootfs" -c . | "$podman" import --change 'CMD=["/bin/sh"]' - docker.io/library/busybox:stable
  local rc=$?
  rm -rf "$rootfs"
  return "$rc"
}
