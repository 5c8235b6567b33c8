#!/usr/bin/env bash
# Runs every test against real parts: private redis-server processes (the
# tests start their own on free ports) and Debian's headless Chromium. Installs
# the two when they are missing and we may (root with apt-get).
set -euo pipefail
cd "$(dirname "$0")/.."

missing=()
command -v redis-server >/dev/null 2>&1 || missing+=(redis-server)
command -v chromium >/dev/null 2>&1 || missing+=(chromium)
if ((${#missing[@]})); then
  if [[ $(id -u) == 0 ]] && command -v apt-get >/dev/null 2>&1; then
    echo "installing ${missing[*]} (tests need them)"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
  else
    echo "tests need: ${missing[*]}; install them (e.g. sudo apt-get install ${missing[*]})" >&2
    exit 1
  fi
fi

# One package per core (go's default -p), each running its tests in
# parallel. Four packages at once was 40% faster but saturated two cores, and
# the fault tests that measure leases and outages in wall time then failed.
go test -count=1 -timeout 15m "$@" ./...
