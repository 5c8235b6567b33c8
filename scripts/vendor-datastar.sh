#!/usr/bin/env bash
# Vendor the Datastar browser client into static/.
#
#   scripts/vendor-datastar.sh          fetch the pinned npm tarball, verify it,
#                                       and (re)write the files in static/
#   scripts/vendor-datastar.sh --check  do the same into a temp dir and fail if
#                                       the committed files in static/ differ
#
# Needs the npm registry (npm pack). For an offline check of the committed
# bundle use scripts/check-datastar.sh.
#
# Files written (all in static/):
#   datastar-1.0.0-beta.11.js      package/dist/datastar.js: the self-contained
#                                  ES-module bundle with every plugin registered
#                                  (load it with <script type="module">). The
#                                  only change is its trailing
#                                  "//# sourceMappingURL=datastar.js.map" line,
#                                  rewritten to point at the renamed map below.
#   datastar-1.0.0-beta.11.js.map  package/dist/datastar.js.map, verbatim (only
#                                  written when the bundle references a map)
#   datastar-LICENSE.txt           MIT licence (the package ships no LICENSE file)
#   datastar.sha256                sha256 of the vendored .js (sha256sum format)
set -euo pipefail

PKG_NAME='@starfederation/datastar'
PKG_VERSION='1.0.0-beta.11'
# sha256 of the tarball `npm pack @starfederation/datastar@1.0.0-beta.11` produces.
TARBALL_SHA256='5b134a2237ebe6852337e268de502daa5321e2330ce060fba4b919fc71bb8b7c'

JS_NAME="datastar-${PKG_VERSION}.js"
MAP_NAME="${JS_NAME}.map"
LICENSE_NAME='datastar-LICENSE.txt'
SUM_NAME='datastar.sha256'

die() { echo "vendor-datastar: ERROR: $*" >&2; exit 1; }
log() { echo "vendor-datastar: $*" >&2; }

mode=write
case "${1:-}" in
  '') ;;
  --check) mode=check ;;
  -h|--help) sed -n '2,22p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
  *) die "unknown argument: $1 (usage: $0 [--check])" ;;
esac
[ $# -le 1 ] || die "too many arguments (usage: $0 [--check])"

command -v npm >/dev/null 2>&1 || die "npm not found on PATH"
command -v node >/dev/null 2>&1 || die "node not found on PATH"
command -v sha256sum >/dev/null 2>&1 || die "sha256sum not found on PATH"

repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
static_dir="${repo_root}/static"

work="$(mktemp -d "${TMPDIR:-/tmp}/vendor-datastar.XXXXXX")"
trap 'rm -rf "$work"' EXIT

# generate OUTDIR: fetch, verify and write the vendored files into OUTDIR.
generate() {
  local out="$1"
  local pack="${work}/pack"
  mkdir -p "$pack" "$out"

  log "npm pack ${PKG_NAME}@${PKG_VERSION}"
  local tgz
  tgz="$(cd "$pack" && npm pack --silent --ignore-scripts "${PKG_NAME}@${PKG_VERSION}" | tail -n 1)"
  [ -n "$tgz" ] && [ -f "${pack}/${tgz}" ] || die "npm pack produced no tarball (got '${tgz}')"

  local got
  got="$(sha256sum "${pack}/${tgz}" | cut -d' ' -f1)"
  if [ "$got" != "$TARBALL_SHA256" ]; then
    die "tarball sha256 mismatch for ${PKG_NAME}@${PKG_VERSION}:
    expected ${TARBALL_SHA256}
    got      ${got}
  Refusing to vendor. If the upgrade is intended, update PKG_VERSION and TARBALL_SHA256."
  fi
  log "tarball sha256 OK: ${got}"

  tar -xzf "${pack}/${tgz}" -C "$pack" package/package.json package/dist/datastar.js \
    || die "tarball lacks package/package.json or package/dist/datastar.js"
  # The map is optional; extract it if present.
  tar -xzf "${pack}/${tgz}" -C "$pack" package/dist/datastar.js.map 2>/dev/null || true

  local pj="${pack}/package/package.json" src="${pack}/package/dist/datastar.js"
  local name version license
  name="$(node -p 'require(process.argv[1]).name' "$pj")"
  version="$(node -p 'require(process.argv[1]).version' "$pj")"
  license="$(node -p 'require(process.argv[1]).license' "$pj")"
  [ "$name" = "$PKG_NAME" ] || die "package.json name is '${name}', want '${PKG_NAME}'"
  [ "$version" = "$PKG_VERSION" ] || die "package.json version is '${version}', want '${PKG_VERSION}'"
  [ "$license" = "MIT" ] || die "package.json license is '${license}', not MIT: review the licence text before vendoring"

  # Sanity: it must be the self-contained full bundle (no imports) that
  # registers the plugins Parley uses.
  if LC_ALL=C grep -Eq '(^|[;})])import[[:space:]]*[{*"'"'"'(]|(^|[;})])import [a-zA-Z_$][a-zA-Z0-9_$]* from' "$src"; then
    die "dist/datastar.js contains import statements; it is not the self-contained bundle"
  fi
  local plugin
  for plugin in onLoad get post bind signals on; do
    LC_ALL=C grep -Fq "name:\"${plugin}\"" "$src" || die "dist/datastar.js does not register the '${plugin}' plugin"
  done

  # Source map: only if the bundle references one.
  local map_ref
  map_ref="$(LC_ALL=C sed -n 's|^//# sourceMappingURL=\(.*\)$|\1|p' "$src")"
  if [ -n "$map_ref" ]; then
    [ "$map_ref" = "datastar.js.map" ] || die "unexpected sourceMappingURL '${map_ref}' in dist/datastar.js"
    [ -f "${pack}/package/dist/datastar.js.map" ] || die "dist/datastar.js references datastar.js.map but the tarball has none"
    LC_ALL=C sed "s|^//# sourceMappingURL=datastar\\.js\\.map\$|//# sourceMappingURL=${MAP_NAME}|" "$src" >"${out}/${JS_NAME}"
    cp "${pack}/package/dist/datastar.js.map" "${out}/${MAP_NAME}"
  else
    cp "$src" "${out}/${JS_NAME}"
    rm -f "${out}/${MAP_NAME}"
  fi

  cat >"${out}/${LICENSE_NAME}" <<EOF
Vendored from the npm package ${PKG_NAME}@${PKG_VERSION} (static/${JS_NAME}), whose package.json declares "license": "${license}"; the package ships no LICENSE file, so the standard MIT text follows.

MIT License

Copyright (c) Delaney Gillilan and the Datastar contributors

Permission is hereby granted, free of charge, to any person obtaining a copy
of this software and associated documentation files (the "Software"), to deal
in the Software without restriction, including without limitation the rights
to use, copy, modify, merge, publish, distribute, sublicense, and/or sell
copies of the Software, and to permit persons to whom the Software is
furnished to do so, subject to the following conditions:

The above copyright notice and this permission notice shall be included in all
copies or substantial portions of the Software.

THE SOFTWARE IS PROVIDED "AS IS", WITHOUT WARRANTY OF ANY KIND, EXPRESS OR
IMPLIED, INCLUDING BUT NOT LIMITED TO THE WARRANTIES OF MERCHANTABILITY,
FITNESS FOR A PARTICULAR PURPOSE AND NONINFRINGEMENT. IN NO EVENT SHALL THE
AUTHORS OR COPYRIGHT HOLDERS BE LIABLE FOR ANY CLAIM, DAMAGES OR OTHER
LIABILITY, WHETHER IN AN ACTION OF CONTRACT, TORT OR OTHERWISE, ARISING FROM,
OUT OF OR IN CONNECTION WITH THE SOFTWARE OR THE USE OR OTHER DEALINGS IN THE
SOFTWARE.
EOF

  (cd "$out" && sha256sum "$JS_NAME" >"$SUM_NAME")
}

case "$mode" in
  write)
    gen="${work}/out"
    generate "$gen"
    mkdir -p "$static_dir"
    for f in "$JS_NAME" "$MAP_NAME" "$LICENSE_NAME" "$SUM_NAME"; do
      if [ -f "${gen}/${f}" ]; then
        cp "${gen}/${f}" "${static_dir}/${f}.tmp.$$"
        mv -f "${static_dir}/${f}.tmp.$$" "${static_dir}/${f}"
        log "wrote static/${f}"
      else
        rm -f "${static_dir}/${f}"
      fi
    done
    log "$(cat "${static_dir}/${SUM_NAME}")"
    ;;
  check)
    gen="${work}/out"
    generate "$gen"
    fail=0
    for f in "$JS_NAME" "$MAP_NAME" "$LICENSE_NAME" "$SUM_NAME"; do
      if [ -f "${gen}/${f}" ] && [ ! -f "${static_dir}/${f}" ]; then
        echo "vendor-datastar: MISSING static/${f}" >&2; fail=1
      elif [ ! -f "${gen}/${f}" ] && [ -f "${static_dir}/${f}" ]; then
        echo "vendor-datastar: UNEXPECTED static/${f} (not produced by this script)" >&2; fail=1
      elif [ -f "${gen}/${f}" ] && ! cmp -s "${gen}/${f}" "${static_dir}/${f}"; then
        echo "vendor-datastar: DIFFERS static/${f}" >&2; fail=1
      fi
    done
    [ "$fail" -eq 0 ] || die "committed Datastar files differ from ${PKG_NAME}@${PKG_VERSION}; run scripts/vendor-datastar.sh"
    log "OK: static/ matches ${PKG_NAME}@${PKG_VERSION}"
    ;;
esac
