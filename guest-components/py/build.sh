#!/usr/bin/env bash
# Builds app.py into a `wasi:http/proxy@0.2.10` component with componentize-py.
#
#   build.sh OUT.wasm [CACHE_DIR]
#
# CACHE_DIR (or $PY_CACHE_DIR; default: $XDG_CACHE_HOME or ~/.cache, under
# wasmhost-guests) holds a Python venv with the pinned componentize-py, made
# on the first run and reused after.
#
# Environment:
#   APP_VERSION    replaces the `VERSION = "1"` line of app.py (default: keep it)
#   PYTHON         the interpreter that makes the venv (default: python3)
#   GUEST_WIT_DIR  the WIT folder (default: ../wit-http beside this script)
set -euo pipefail

COMPONENTIZE_PY_VERSION=0.25.1
WORLD=http-hello

die() { echo "py/build.sh: $*" >&2; exit 1; }

[ $# -ge 1 ] && [ $# -le 2 ] || die "usage: build.sh OUT.wasm [CACHE_DIR]"
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
out="$1"
cache="${2:-${PY_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/wasmhost-guests}}"
wit="${GUEST_WIT_DIR:-$here/../wit-http}"
python="${PYTHON:-python3}"

command -v "$python" >/dev/null 2>&1 \
  || die "$python not found: install Python 3 (Debian: apt-get install python3 python3-venv)"
"$python" -c 'import venv, ensurepip' >/dev/null 2>&1 \
  || die "$python cannot make a venv (no venv/ensurepip module): on Debian, apt-get install python3-venv"
[ -f "$wit/world.wit" ] || die "no WIT at $wit (expected world.wit and deps/)"

mkdir -p "$cache" "$(dirname "$out")"
cache="$(cd "$cache" && pwd)"
out="$(cd "$(dirname "$out")" && pwd)/$(basename "$out")"
wit="$(cd "$wit" && pwd)"

# One venv per (Python version, componentize-py version); `.ok` marks a
# finished install, so an interrupted one is redone.
pyver="$("$python" -c 'import sys; print("%d.%d" % sys.version_info[:2])')"
venv="$cache/venv-py$pyver-componentize-py-$COMPONENTIZE_PY_VERSION"
if [ ! -f "$venv/.ok" ]; then
  echo "py/build.sh: making $venv" >&2
  rm -rf "$venv"
  "$python" -m venv "$venv" || die "'$python -m venv' failed: on Debian, apt-get install python3-venv"
  PIP_DISABLE_PIP_VERSION_CHECK=1 "$venv/bin/pip" install --quiet --only-binary :all: \
    "componentize-py==$COMPONENTIZE_PY_VERSION" \
    || die "pip install componentize-py==$COMPONENTIZE_PY_VERSION failed"
  touch "$venv/.ok"
fi
cpy="$venv/bin/componentize-py"

stage="$(mktemp -d "${TMPDIR:-/tmp}/wasmhost-py-XXXXXX")"
trap 'rm -rf "$stage"' EXIT

# The source, with the version substituted (as a Python string literal).
APP_SRC="$here/app.py" APP_DST="$stage/app.py" "$venv/bin/python" - <<'EOF'
import os, re, sys
src = open(os.environ["APP_SRC"], encoding="utf-8").read()
line = re.compile(r'^VERSION = "[^"\n]*"$', re.M)
if not line.search(src):
    sys.exit('py/build.sh: app.py has no `VERSION = "..."` line')
version = os.environ.get("APP_VERSION", "")
if version:
    src = line.sub(lambda _: "VERSION = " + repr(version), src, count=1)
open(os.environ["APP_DST"], "w", encoding="utf-8").write(src)
EOF

started=$SECONDS
"$cpy" -q -d "$wit" -w "$WORLD" bindings "$stage"
(cd "$stage" && "$cpy" -q -d "$wit" -w "$WORLD" componentize app -o "$stage/app.wasm")
mv "$stage/app.wasm" "$out"
echo "py/build.sh: wrote $out ($(stat -c %s "$out") bytes, componentize-py $COMPONENTIZE_PY_VERSION," \
  "version \"${APP_VERSION:-as in app.py}\", $((SECONDS - started)) s)" >&2
