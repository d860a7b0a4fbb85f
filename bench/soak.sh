#!/usr/bin/env bash
# Soak run (issue "Hardening"): mixed traffic against the real wasmhost binary
# for MINUTES minutes, sampling its RSS, descriptors, threads and error rate
# once a second; fails if RSS or descriptors keep growing or a request fails.
# See docs/reliability.md ("Soak").
#
#   bench/soak.sh MINUTES [OUT_DIR]
#
# Builds the debug wasmhost (which builds the guests) and the soak driver
# first; with nothing to rebuild (as in CI after `cargo test --workspace`)
# that is a few seconds. Writes soak.csv, soak.svg, summary.txt and the
# server's log to OUT_DIR (default: a new temp dir, printed).
set -euo pipefail
cd "$(dirname "$0")/.."

MINUTES=${1:?usage: bench/soak.sh MINUTES [OUT_DIR]}
if ! [[ "$MINUTES" =~ ^[0-9]+$ ]] || [ "$MINUTES" -lt 1 ]; then
  echo "MINUTES must be a whole number of minutes, at least 1 (got '$MINUTES')" >&2
  exit 2
fi
OUT=${2:-$(mktemp -d -t wasmhost-soak.XXXXXX)}

cargo build -p wasmhost -p soak
# host/build.rs builds the guests into target/guests of the workspace that
# ran it; with a target dir shared between checkouts it may have run in
# another one, so build them here if they are missing (the same command).
GUESTS=target/guests/wasm32-wasip1/release
if [ ! -f "$GUESTS/hello.wasm" ] || [ ! -f "$GUESTS/user.wasm" ] \
   || [ ! -f "$GUESTS/todo.wasm" ] || [ ! -f "$GUESTS/weibo.wasm" ]; then
  env -u CARGO_TARGET_DIR cargo build --release --target wasm32-wasip1 \
    --target-dir target/guests -p hello -p user -p todo -p weibo
fi

TARGET=${CARGO_TARGET_DIR:-target}
echo "soak: output in $OUT"
"$TARGET/debug/soak" --seconds $((MINUTES * 60)) --wasmhost "$TARGET/debug/wasmhost" \
  --repo . --out "$OUT"
