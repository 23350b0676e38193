#!/usr/bin/env bash
# Builds the webtransport-go peer clients, one per version module here (v0.11, v0.12, ...), into
# build/webtransport-go/<version>/wtgo-client (git-ignored), and the peer server of a module that
# has a server/ package into build/webtransport-go/<version>/wtgo-server (the Node client's tests
# run against it, see __test__/support/peer-servers.mjs), from the pinned go.mod and go.sum only:
# -mod=readonly fails rather than change them. The modules come from Go's module cache, which
# scripts/install-test-tools.sh fills (go mod download); __test__/webtransport-go.test.mjs runs them.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"
command -v go >/dev/null 2>&1 || { echo "webtransport-go build: Go is missing (https://go.dev/dl)" >&2; exit 1; }
for module in "$here"/v*/; do
  version="$(basename "$module")"
  out="$root/build/webtransport-go/$version/wtgo-client"
  echo "webtransport-go build: $version -> ${out#"$root"/}"
  # No VCS stamp: the binary reports its library versions itself, and a root CI run in a clone
  # owned by another user would trip over git's safe.directory check.
  (cd "$module" && GOFLAGS="${GOFLAGS:-} -mod=readonly -buildvcs=false" go build -trimpath -o "$out" .)
  if [ -d "$module/server" ]; then
    server="$(dirname "$out")/wtgo-server"
    echo "webtransport-go build: $version server -> ${server#"$root"/}"
    (cd "$module" && GOFLAGS="${GOFLAGS:-} -mod=readonly -buildvcs=false" go build -trimpath -o "$server" ./server)
  fi
done
