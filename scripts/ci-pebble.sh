#!/usr/bin/env bash
# Installs Pebble (the ACME test CA) for the certificate tests. Prints the
# binary's path; its test certificates are in the module's test/certs.
set -euo pipefail
version="${PEBBLE_VERSION:-v2.10.1}"
gobin="$(go env GOPATH)/bin"
if [ ! -x "$gobin/pebble" ]; then
  go install "github.com/letsencrypt/pebble/v2/cmd/pebble@$version" >&2
fi
echo "$gobin/pebble"
