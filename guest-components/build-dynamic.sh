#!/usr/bin/env bash
# Builds the JavaScript and the Python `wasi:http/proxy@0.2.10` hello
# components for the integration tests:
#
#   guest-components/build-dynamic.sh OUT_DIR [VERSION]
#
# writes OUT_DIR/js-hello-v<VERSION>.wasm and OUT_DIR/py-hello-v<VERSION>.wasm
# (VERSION defaults to 1; it is the "version" the apps answer on */json).
#
# Each output has a hash of its inputs beside it (<output>.inputs-sha256):
# sources, lockfile, WIT, build script, VERSION and the interpreter's version.
# When the output exists and the hash matches, it is not rebuilt.
#
# Caches, all under OUT_DIR (nothing is written to the source tree):
#   OUT_DIR/js-deps/node_modules  `npm ci` of js/package-lock.json
#   OUT_DIR/py-cache/venv-*       a venv with the pinned componentize-py
#
# Needs: node >= 20 with npm (componentize-js 0.23 pulls oxc-parser, which
# requires node >= 20: Debian bookworm's nodejs 18 is too old), python3 with
# the venv module (Debian: python3-venv), network access to the npm registry
# and PyPI on the first run. Set GUEST_BUILD_VERBOSE=1 for npm/pip output.
set -euo pipefail

die() { echo "build-dynamic.sh: error: $*" >&2; exit 1; }
say() { echo "build-dynamic.sh: $*" >&2; }

[ $# -ge 1 ] && [ $# -le 2 ] || die "usage: build-dynamic.sh OUT_DIR [VERSION]"
version="${2:-1}"
[[ "$version" =~ ^[A-Za-z0-9._-]+$ ]] || die "VERSION must match [A-Za-z0-9._-]+, got '$version'"

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
mkdir -p "$1"
out="$(cd "$1" && pwd)"

# --- the tools, each named when missing ---------------------------------------
command -v node >/dev/null 2>&1 \
  || die "node not found: install Node.js >= 20 with npm (Debian bookworm's 'nodejs' is 18, too old)"
command -v npm >/dev/null 2>&1 \
  || die "npm not found: install npm for Node.js >= 20"
node_version="$(node --version)"
node_major="${node_version#v}"; node_major="${node_major%%.*}"
[ "$node_major" -ge 20 ] 2>/dev/null \
  || die "node $node_version is too old: componentize-js 0.23 needs node >= 20"
python="${PYTHON:-python3}"
command -v "$python" >/dev/null 2>&1 \
  || die "$python not found: install Python 3 (Debian: apt-get install python3 python3-venv)"
"$python" -c 'import venv, ensurepip' >/dev/null 2>&1 \
  || die "$python has no working venv module: on Debian, apt-get install python3-venv"
command -v sha256sum >/dev/null 2>&1 || die "sha256sum not found (coreutils)"
python_version="$("$python" -c 'import sys; print("%d.%d" % sys.version_info[:2])')"

# One build at a time per OUT_DIR (parallel test binaries may call this).
if command -v flock >/dev/null 2>&1; then
  exec 9>"$out/.build-dynamic.lock"
  flock 9
fi

quiet=(--loglevel=error)
[ "${GUEST_BUILD_VERBOSE:-}" = 1 ] && quiet=()

# inputs_hash LABEL FILE... : a hash of the files' names and contents and of LABEL.
inputs_hash() {
  local label="$1"; shift
  {
    printf '%s\n' "$label"
    for f in "$@"; do
      printf '%s\n' "${f#"$here"/}"
      sha256sum < "$f"
    done
  } | sha256sum | cut -d' ' -f1
}

# up_to_date OUTPUT HASH : the output exists and was built from these inputs.
up_to_date() {
  [ -s "$1" ] && [ -f "$1.inputs-sha256" ] && [ "$(cat "$1.inputs-sha256")" = "$2" ]
}

mapfile -t wit_files < <(find "$here/wit-http" -type f -name '*.wit' | LC_ALL=C sort)
[ "${#wit_files[@]}" -gt 0 ] || die "no WIT files under $here/wit-http"

status=0

# --- JavaScript ----------------------------------------------------------------
js_out="$out/js-hello-v$version.wasm"
js_hash="$(inputs_hash "js version=$version node=$node_major" \
  "$here/js/package.json" "$here/js/package-lock.json" "$here/js/app.js" "$here/js/build.mjs" \
  "${wit_files[@]}")"
if up_to_date "$js_out" "$js_hash"; then
  say "js: $js_out is up to date"
else
  started=$SECONDS
  deps="$out/js-deps"
  lock_hash="$(sha256sum < "$here/js/package-lock.json" | cut -d' ' -f1)"
  if [ ! -f "$deps/.installed" ] || [ "$(cat "$deps/.installed")" != "$lock_hash node=$node_major" ]; then
    say "js: npm ci into $deps"
    rm -rf "$deps"
    mkdir -p "$deps"
    cp "$here/js/package.json" "$here/js/package-lock.json" "$deps/"
    npm ci --prefix "$deps" --no-audit --no-fund "${quiet[@]}" \
      || die "js: npm ci failed (is the npm registry reachable?)"
    echo "$lock_hash node=$node_major" > "$deps/.installed"
  fi
  say "js: building $js_out (version $version)"
  rm -f "$js_out.inputs-sha256"
  if APP_VERSION="$version" GUEST_NODE_MODULES="$deps/node_modules" GUEST_WIT_DIR="$here/wit-http" \
      node "$here/js/build.mjs" "$js_out"; then
    echo "$js_hash" > "$js_out.inputs-sha256"
    say "js: done in $((SECONDS - started)) s"
  else
    say "error: js: componentize-js failed"
    status=1
  fi
fi

# --- Python --------------------------------------------------------------------
py_out="$out/py-hello-v$version.wasm"
py_hash="$(inputs_hash "py version=$version python=$python_version" \
  "$here/py/app.py" "$here/py/build.sh" "${wit_files[@]}")"
if up_to_date "$py_out" "$py_hash"; then
  say "py: $py_out is up to date"
else
  started=$SECONDS
  say "py: building $py_out (version $version)"
  rm -f "$py_out.inputs-sha256"
  if APP_VERSION="$version" GUEST_WIT_DIR="$here/wit-http" PYTHON="$python" \
      bash "$here/py/build.sh" "$py_out" "$out/py-cache"; then
    echo "$py_hash" > "$py_out.inputs-sha256"
    say "py: done in $((SECONDS - started)) s"
  else
    say "error: py: componentize-py failed"
    status=1
  fi
fi

[ "$status" -eq 0 ] || die "one or more components failed to build (see above)"
