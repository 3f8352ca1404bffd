#!/usr/bin/env bash
# `make bench`: runs the Go benchmarks, writes the raw results to
# bench-results.txt (machine, command, figures) and the report to
# BENCHMARKS.md.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib.sh
ensure_postgres_for_tests
tags="$(go_tags)"
out="${BENCH_OUT:-bench-results.txt}"
{
  echo "# $(date -u +%FT%TZ) $(uname -srm), $(nproc) cores, $(free -g | awk '/^Mem:/ {print $2}') GiB, $(go version | awk '{print $3}')"
  echo "# go test -tags '$tags' -run '^\$' -bench . -benchmem ./..."
  go test -tags "$tags" -run '^$' -bench "${BENCH:-.}" -benchmem -benchtime "${BENCHTIME:-1s}" -timeout 30m ./... 2>&1 | grep -vE '^(ok|PASS|\?)\s'
} | tee "$out"
report="${BENCH_REPORT:-BENCHMARKS.md}"
# The proxy mode's profile notes and the fault test's figures do not come
# from this run: keep them (they close the report, in that order).
faults="$(sed -n '/^## \(Proxy mode profile\|Fault test\)/,$p' "$report" 2>/dev/null || true)"
go run ./scripts/benchreport <"$out" >"$report"
if [ -n "$faults" ]; then printf '\n%s\n' "$faults" >>"$report"; fi
echo "wrote $report"
