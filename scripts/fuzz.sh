#!/usr/bin/env bash
# Runs every Fuzz target for a short budget each: scripts/fuzz.sh [duration]
set -euo pipefail
cd "$(dirname "$0")/.."
budget="${1:-5s}"
tags='remote containers_image_openpgp'
git grep -l -E '^func Fuzz[A-Za-z0-9_]*\(' -- '*_test.go' | while read -r f; do
  pkg="./$(dirname "$f")"
  grep -oE '^func Fuzz[A-Za-z0-9_]*' "$f" | sed 's/^func //' | while read -r fn; do
    echo "fuzz: $pkg $fn ($budget)"
    go test -tags "$tags" -run '^$' -fuzz "^${fn}\$" -fuzztime "$budget" "$pkg" >/tmp/fuzz.$$.log 2>&1 || { cat /tmp/fuzz.$$.log; exit 1; }
  done
done
echo "fuzz: all targets passed"
