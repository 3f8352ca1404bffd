#!/usr/bin/env bash
# `make bench`: runs the Go benchmarks and writes the results to
# bench-results.txt (machine, command, figures).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib.sh
ensure_postgres_for_tests
tags='remote containers_image_openpgp exclude_graphdriver_btrfs exclude_graphdriver_devicemapper'
out="${BENCH_OUT:-bench-results.txt}"
{
  echo "# $(date -u +%FT%TZ) $(uname -srm), $(nproc) cores, $(go version | awk '{print $3}')"
  echo "# go test -tags '$tags' -run '^\$' -bench . -benchmem ./..."
  go test -tags "$tags" -run '^$' -bench "${BENCH:-.}" -benchmem -benchtime "${BENCHTIME:-1s}" -timeout 30m ./... 2>&1 | grep -vE '^(ok|PASS|\?)\s'
} | tee "$out"
