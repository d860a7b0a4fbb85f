#!/usr/bin/env bash
# Tenants under attack (docs/BENCHMARKS.md): 3 and then 10 apps keep every
# request asleep (40 clients each, 3 s sleeps, default limits) while the hello
# app is probed every 100 ms; prints the probes' p50, p99 and worst latency.
#
#   bench/fairness.sh [ATTACKERS...]     # default: 3 10
#
# Builds the debug wasmhost (which builds the hello guest) and the driver
# (bench/soak, binary `fairness`); runs on 127.0.0.1 only.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
TARGET=${CARGO_TARGET_DIR:-$ROOT/target}
cargo build -p wasmhost -p soak --bins
status=0
for attackers in "${@:-3 10}"; do
  for n in $attackers; do
    "$TARGET/debug/fairness" --wasmhost "$TARGET/debug/wasmhost" \
      --hello "$TARGET/guests/wasm32-wasip1/release/hello.wasm" --attackers "$n" || status=1
  done
done
exit $status
