#!/usr/bin/env bash
# Offline check that the vendored Datastar bundle matches static/datastar.sha256.
# (scripts/vendor-datastar.sh --check additionally re-derives it from npm.)
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../static"
sha256sum -c datastar.sha256
