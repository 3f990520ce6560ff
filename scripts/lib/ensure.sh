#!/usr/bin/env bash
# Makes sure the tools msgsys needs are on this machine: Bun (from the npm registry), nats-server
# (Debian package), the project's packages, and for the tests Chromium (Debian package). Sourced
# by scripts/dev and scripts/test.
set -euo pipefail

MSGSYS_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
BUN_VERSION="1.4.5"

say() { printf '[msgsys] %s\n' "$*" >&2; }

as_root() { if [ "$(id -u)" = 0 ]; then "$@"; elif command -v sudo >/dev/null; then sudo "$@"; else "$@"; fi; }

apt_updated=0
apt_install() {
  command -v apt-get >/dev/null || { say "apt-get not found: install $* by hand"; return 1; }
  if [ "$apt_updated" = 0 ]; then as_root apt-get update -qq >/dev/null; apt_updated=1; fi
  DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -qq "$@" >/dev/null
}

ensure_bun() {
  if command -v bun >/dev/null; then return; fi
  for d in "$HOME/.bun/bin" "$(npm prefix -g 2>/dev/null)/bin"; do
    if [ -x "$d/bun" ]; then export PATH="$d:$PATH"; return; fi
  done
  say "installing Bun $BUN_VERSION from the npm registry"
  npm install -g --silent "bun@$BUN_VERSION" >/dev/null 2>&1 || npm install -g "bun@$BUN_VERSION"
  export PATH="$(npm prefix -g)/bin:$PATH"
  command -v bun >/dev/null || { say "Bun did not install; try: npm install -g bun"; exit 1; }
}

ensure_nats_server() {
  if command -v nats-server >/dev/null || [ -x /usr/sbin/nats-server ]; then return; fi
  say "installing nats-server (Debian package)"
  apt_install nats-server
  # The Debian package starts a system service on 4222; msgsys never needs it.
}

# A current nats-server, built from its Go module into the project's cache (.cache/nats-server/),
# for the tests and benchmarks that compare it with the 2.9 Debian package. Prints the directory
# that holds the binary (put it first on PATH: the embedded server looks there first); fails, saying
# why, when there is no Go to build it with.
CURRENT_NATS_VERSION="v2.15.2"
current_nats_dir() {
  local dir="$MSGSYS_ROOT/.cache/nats-server/$CURRENT_NATS_VERSION"
  if [ -x "$dir/nats-server" ]; then printf '%s' "$dir"; return 0; fi
  local go
  go="$(command -v go || true)"
  if [ -z "$go" ] && [ -x /usr/local/go/bin/go ]; then go=/usr/local/go/bin/go; fi
  if [ -z "$go" ]; then
    say "no Go found to build nats-server $CURRENT_NATS_VERSION (install Go 1.24 or newer)"
    return 1
  fi
  say "building nats-server $CURRENT_NATS_VERSION from its Go module into .cache/nats-server (about a minute)"
  mkdir -p "$dir"
  if ! (cd "$dir" && GOBIN="$dir" GOFLAGS=-mod=mod "$go" install "github.com/nats-io/nats-server/v2@$CURRENT_NATS_VERSION" >&2); then
    say "building nats-server $CURRENT_NATS_VERSION failed"
    return 1
  fi
  printf '%s' "$dir"
}

ensure_packages() {
  cd "$MSGSYS_ROOT"
  if [ ! -d node_modules ] || [ package.json -nt node_modules/.msgsys-installed ] || [ bun.lock -nt node_modules/.msgsys-installed ]; then
    say "installing packages"
    bun install --frozen-lockfile >/dev/null 2>&1 || bun install
    touch node_modules/.msgsys-installed
  fi
}

# The dashboard's browser test drives Debian's Chromium (playwright-core brings no browser). Where
# it cannot be installed the test is skipped and says why; everything else still runs.
CHROMIUM=/usr/bin/chromium
ensure_chromium() {
  if [ -x "$CHROMIUM" ]; then return 0; fi
  say "installing chromium (Debian package) for the dashboard's browser test"
  if ! apt_install chromium || [ ! -x "$CHROMIUM" ]; then
    say "chromium could not be installed: the browser test will be skipped"
  fi
  return 0
}

ensure_all() { ensure_bun; ensure_nats_server; ensure_packages; }
