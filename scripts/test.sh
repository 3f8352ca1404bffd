#!/usr/bin/env bash
# Runs every test against real services. Used by `make test` and CI.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib.sh

ensure_postgres_for_tests
tags="$(go_tags)"
out="$(mktemp)"
e2e_out="$(mktemp)"
trap 'rm -f "$out" "$e2e_out"' EXIT
# Each package gets its own databases (internal/pgtest), so packages run in parallel.
status=0
# Everything builds without the agent's build tags (only its Podman
# bindings need them), so go build, go vet and gopls work as they are.
go build ./... || { echo "go build ./... fails without build tags: a file that imports the agent's Podman bindings needs //go:build $tags"; status=1; }
# The packages' tests first: they use both cores.
mapfile -t pkgs < <(go list -tags "$tags" ./... | grep -v '/internal/e2e$')
go test -tags "$tags" -count=1 -timeout 30m -json "$@" "${pkgs[@]}" > "$out" || status=$?
# The journeys (internal/e2e) mostly wait on real services (Podman,
# Postgres, the binaries they start), so the short fuzzing budget on the
# parsers of untrusted bytes runs beside them.
go test -tags "$tags" -count=1 -timeout 35m -json "$@" ./internal/e2e > "$e2e_out" &
e2e=$!
bash scripts/fuzz.sh "${FUZZTIME:-5s}" || status=1
wait "$e2e" || status=1
cat "$e2e_out" >> "$out"
# Human-readable output, then the totals.
go run ./scripts/testsummary < "$out" || status=1
exit "$status"
