#!/usr/bin/env bash
# Runs every Fuzz target for a short budget each: scripts/fuzz.sh [duration]
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib.sh
budget="${1:-5s}"
tags="$(go_tags)"
log="$(mktemp)"
trap 'rm -f "$log"' EXIT
git grep -l -E '^func Fuzz[A-Za-z0-9_]*\(' -- '*_test.go' | while read -r f; do
  pkg="./$(dirname "$f")"
  grep -oE '^func Fuzz[A-Za-z0-9_]*' "$f" | sed 's/^func //' | while read -r fn; do
    echo "fuzz: $pkg $fn ($budget)"
    for attempt in 1 2; do
      if go test -tags "$tags" -run '^$' -fuzz "^${fn}\$" -fuzztime "$budget" "$pkg" >"$log" 2>&1; then
        break
      fi
      # The fuzzing engine itself sometimes times out stopping its workers
      # on a loaded machine; that is not a finding. Anything else is.
      if [ "$attempt" = 1 ] && grep -q "context deadline exceeded" "$log" && ! grep -q "Failing input" "$log"; then
        echo "fuzz: engine timeout, running $fn again"
        continue
      fi
      cat "$log"
      exit 1
    done
  done
done
echo "fuzz: all targets passed"
