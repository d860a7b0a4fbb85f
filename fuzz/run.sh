#!/usr/bin/env bash
# Runs every fuzz target (or the ones named) for SECONDS each; fails if any crashes.
#
#   fuzz/run.sh [SECONDS] [TARGET...]      # default 60 s, every target
#   fuzz/run.sh 3600                       # an hour each (docs/reliability.md)
#   fuzz/run.sh 600 conn head
#
# Installs what is missing: a nightly toolchain (cargo-fuzz needs it) and
# cargo-fuzz. New corpus entries go to fuzz/corpus/<target>/ (git ignores
# all but the seed-* files); a crash is saved in fuzz/artifacts/<target>/
# and reproduced with `cargo +nightly fuzz run <target> <file>` plus the
# same build options as below.
set -euo pipefail
cd "$(dirname "$0")"

seconds="${1:-60}"
shift || true
if ! [[ "$seconds" =~ ^[0-9]+$ ]] || [ "$seconds" -eq 0 ]; then
  echo "usage: fuzz/run.sh [SECONDS] [TARGET...]" >&2
  exit 2
fi

rustup toolchain list | grep -q '^nightly' || rustup toolchain install nightly --profile minimal
cargo +nightly fuzz --version >/dev/null 2>&1 || cargo install cargo-fuzz --locked

# Build options (docs/reliability.md, "Build options"): no sanitizer, since
# the code under test is safe Rust (no `unsafe` in the host) and
# AddressSanitizer would instrument all of wasmtime for nothing, making the
# build and every execution slower; debug assertions and overflow checks
# stay on (cargo-fuzz's default), so arithmetic overflow is a crash too.
# fuzz/Cargo.toml also builds the crates no target runs (wasmtime,
# Cranelift, SQLite) unoptimised.
build_options=(--sanitizer none --debug-assertions)

if [ "$#" -gt 0 ]; then
  targets=("$@")
else
  mapfile -t targets < <(cargo +nightly fuzz list)
fi

start=$(date +%s)
cargo +nightly fuzz build "${build_options[@]}"
echo "fuzz: built in $(($(date +%s) - start)) s"

mkdir -p logs
failed=()
for target in "${targets[@]}"; do
  echo "fuzz: $target for ${seconds} s"
  mkdir -p "corpus/$target"
  # -timeout: an input running 10 s is a hang, reported as a crash.
  # -max_len: room for pipelined requests and config files.
  if cargo +nightly fuzz run "${build_options[@]}" "$target" "corpus/$target" -- \
    -max_total_time="$seconds" -timeout=10 -max_len=16384 -print_final_stats=1 \
    >"logs/$target.log" 2>&1; then
    grep -E '^#[0-9]+[[:space:]]+DONE|^stat::(number_of_executed_units|average_exec_per_sec|peak_rss_mb)' \
      "logs/$target.log" | sed 's/^/  /' || true
  else
    failed+=("$target")
    tail -n 60 "logs/$target.log" >&2
  fi
done

if [ "${#failed[@]}" -gt 0 ]; then
  echo "fuzz: FAILED: ${failed[*]} (inputs in fuzz/artifacts/<target>/, logs in fuzz/logs/)" >&2
  exit 1
fi
echo "fuzz: ${#targets[@]} targets, ${seconds} s each, no crash"
