#!/usr/bin/env bash
# The same wasi:http hello components served by wasmhost and by `wasmtime serve` 48, interleaved on 127.0.0.1; see docs/BENCHMARKS.md, "Components".
#
#   bench/components.sh
#
# Compares, in one run and in interleaved rounds, the requests per second of
# the Rust hello component (target/components/wasm32-wasip2/release/
# component_hello.wasm) answered by wasmhost and by `wasmtime serve`, and
# reports the ratio. Also measures the JavaScript and Python hello components
# (guest-components/build-dynamic.sh) on both servers, and the JSON-ABI hello
# module on wasmhost as a reference line.
#
# Installs wrk, curl and python3 from Debian if missing (needs root then),
# and wasmtime-cli 48.0.8 into target/bench-tools/wasmtime-48 with cargo when
# missing (waiting for an install already running). Builds wasmhost in the dev
# profile with the host crate at opt-level 2 and copies the binary to
# target/bench-tools/wasmhost-opt2, unless WASMHOST is given.
#
# Environment (all optional):
#   ROUNDS=3            interleaved rounds (median, min and max are reported)
#   SECONDS_PER_RUN=10  duration of each wrk run
#   CONNS=32            wrk connections (-c), the same for every scenario
#   THREADS=2           wrk threads (-t)
#   WASMHOST=           a wasmhost binary to use instead of building one
#   WORKERS=            wasmhost --workers (default: the server's own)
#   SKIP_DYNAMIC=1      skip the JavaScript and Python components
#   KEEP=1              keep the temporary directory (routes, logs, raw wrk output)
set -euo pipefail

ROUNDS=${ROUNDS:-3}
SECONDS_PER_RUN=${SECONDS_PER_RUN:-10}
CONNS=${CONNS:-32}
THREADS=${THREADS:-2}
WORKERS=${WORKERS:-}
SKIP_DYNAMIC=${SKIP_DYNAMIC:-}

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BENCH="$ROOT/bench"
TOOLS="$ROOT/target/bench-tools"
WASMTIME="$TOOLS/wasmtime-48/bin/wasmtime"
WASMTIME_VERSION=48.0.8
COMPONENT_HELLO="$ROOT/target/components/wasm32-wasip2/release/component_hello.wasm"
ABI_HELLO="$ROOT/target/guests/wasm32-wasip1/release/hello.wasm"
DYNAMIC="$ROOT/target/components/dynamic"

log() { printf '[components %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() { log "error: $*"; exit 1; }
loadavg() { cut -d' ' -f1-3 /proc/loadavg; }
cd "$ROOT"

# --- tools -------------------------------------------------------------------
missing=()
for tool in wrk curl python3; do command -v "$tool" >/dev/null || missing+=("$tool"); done
if [ ${#missing[@]} -gt 0 ]; then
    [ "$(id -u)" -eq 0 ] || die "missing ${missing[*]}: run as root (or install them) so apt-get can install them"
    log "installing ${missing[*]} from Debian"
    timeout 600 apt-get update -qq
    DEBIAN_FRONTEND=noninteractive timeout 900 apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# wasmtime serve 48, bench-local. An install already running (this script's,
# or one started by hand with the same command) is waited for, not repeated.
if [ ! -x "$WASMTIME" ]; then
    if pgrep -f "cargo install wasmtime-cli" >/dev/null; then
        log "waiting for the running 'cargo install wasmtime-cli' (log: $TOOLS/install.log)"
        while pgrep -f "cargo install wasmtime-cli" >/dev/null; do sleep 10; done
    fi
fi
if [ ! -x "$WASMTIME" ]; then
    mkdir -p "$TOOLS"
    log "installing wasmtime-cli $WASMTIME_VERSION into $TOOLS/wasmtime-48 (-j 1, niced; log: $TOOLS/install.log; takes a while)"
    nice -n 10 timeout 5400 \
        cargo install wasmtime-cli@48.0.8 --locked --root target/bench-tools/wasmtime-48 --target-dir target/bench-tools/build -j 1 \
        >"$TOOLS/install.log" 2>&1 || die "cargo install wasmtime-cli failed: $(tail -5 "$TOOLS/install.log")"
fi
[ -x "$WASMTIME" ] || die "$WASMTIME is missing after the install (see $TOOLS/install.log)"
"$WASMTIME" --version | grep -q " $WASMTIME_VERSION" || die "$WASMTIME is $("$WASMTIME" --version), expected $WASMTIME_VERSION"

# wasmhost: the dev profile with the host crate at opt-level 2 (dependencies
# are at opt-level 2 in the dev profile anyway), which spares the release
# build's recompilation of wasmtime. The binary is copied at once: the next
# plain dev build overwrites target/debug/wasmhost.
BINARY_NOTE="given as WASMHOST"
if [ -z "${WASMHOST:-}" ]; then
    WASMHOST="$TOOLS/wasmhost-opt2"
    mkdir -p "$TOOLS"
    log "building wasmhost: CARGO_PROFILE_DEV_OPT_LEVEL=2 cargo build -p wasmhost --bin wasmhost -j 1 (niced; load $(loadavg))"
    if CARGO_PROFILE_DEV_OPT_LEVEL=2 nice -n 10 timeout 3600 \
        cargo build -p wasmhost --bin wasmhost -j 1 >"$TOOLS/wasmhost-opt2.build.log" 2>&1; then
        cp "$ROOT/target/debug/wasmhost" "$WASMHOST.tmp" && mv "$WASMHOST.tmp" "$WASMHOST"
        BINARY_NOTE="built now (dev profile, opt-level 2)"
    elif [ -x "$WASMHOST" ]; then
        log "warning: the build failed (see $TOOLS/wasmhost-opt2.build.log); using the existing copy of $(date -r "$WASMHOST" '+%F %T')"
        BINARY_NOTE="EXISTING COPY of $(date -r "$WASMHOST" '+%F %T'): the build failed"
    else
        die "the wasmhost build failed and there is no earlier copy: $(tail -5 "$TOOLS/wasmhost-opt2.build.log")"
    fi
fi
WASMHOST=$(realpath "$WASMHOST")
[ -x "$WASMHOST" ] || die "$WASMHOST is not an executable"
[ -f "$COMPONENT_HELLO" ] || die "$COMPONENT_HELLO is missing: any cargo build -p wasmhost builds it (host/build.rs)"
[ -f "$ABI_HELLO" ] || die "$ABI_HELLO is missing: any cargo build -p wasmhost builds it (host/build.rs)"

# The JavaScript and Python hello components (cached by their inputs' hash).
if [ "$SKIP_DYNAMIC" != 1 ]; then
    log "guest-components/build-dynamic.sh target/components/dynamic 1"
    if ! nice -n 10 timeout 3600 bash guest-components/build-dynamic.sh "$DYNAMIC" 1 >"$TOOLS/build-dynamic.log" 2>&1; then
        if [ -f "$DYNAMIC/js-hello-v1.wasm" ] && [ -f "$DYNAMIC/py-hello-v1.wasm" ]; then
            log "warning: build-dynamic.sh failed (see $TOOLS/build-dynamic.log); using the existing components"
        else
            die "build-dynamic.sh failed: $(tail -5 "$TOOLS/build-dynamic.log")"
        fi
    fi
fi

# --- temp dir and cleanup ----------------------------------------------------
TMP=$(mktemp -d /tmp/wasmhost-components.XXXXXX)
PIDS=()
cleanup() {
    local pid
    for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
    for pid in "${PIDS[@]}"; do
        # Bounded: a process that ignores SIGTERM gets SIGKILL after 5 s.
        for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
        kill -9 "$pid" 2>/dev/null || true
    done
    if [ "${KEEP:-}" = 1 ]; then log "kept $TMP"; else rm -rf "$TMP"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM
# Stops one process this script started and forgets it (so that cleanup never
# signals a recycled pid).
stop_pid() {
    local pid=$1 p kept=()
    kill "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
    for p in "${PIDS[@]}"; do [ "$p" = "$pid" ] || kept+=("$p"); done
    PIDS=("${kept[@]}")
}

RESULTS="$TMP/results.tsv"
EXTRA="$TMP/extra.tsv"
: >"$RESULTS"
: >"$EXTRA"
extra() { printf '%s\t%s\n' "$1" "$2" >>"$EXTRA"; }
free_port() {
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}
now_ms() { echo $(($(date +%s%N) / 1000000)); }

# The components: key | label | module | URL path | expected body (printf %b:
# \n is a newline). The same path is asked of both servers, so both bodies are
# the same bytes (the JS and Python components echo the path on */json).
COMPONENTS=("rust|Rust hello component|$COMPONENT_HELLO|/component/hello|hello from a component\\n")
if [ "$SKIP_DYNAMIC" != 1 ]; then
    COMPONENTS+=(
        "js|JavaScript hello component|$DYNAMIC/js-hello-v1.wasm|/js/json|{\"lang\":\"js\",\"path\":\"/js/json\",\"method\":\"GET\",\"version\":\"1\"}"
        "py|Python hello component|$DYNAMIC/py-hello-v1.wasm|/py/json|{\"lang\":\"py\",\"path\":\"/py/json\",\"method\":\"GET\",\"version\":\"1\"}"
    )
fi

# Waits until URL answers 200 with exactly the body BODY (printf %b) and
# returns 0; returns 1 at once on any other answer (a 404 or a 500 is never
# benchmarked), or when PID exits, or after 600 s. Sets ANSWER to what it got.
wait_answer() {
    local url=$1 body=$2 pid=$3 code
    printf '%b' "$body" >"$TMP/expected"
    for _ in $(seq 3000); do
        code=$(curl -s --max-time 10 -o "$TMP/answer" -w '%{http_code}' "$url" || true)
        ANSWER="status $code, body '$(head -c 200 "$TMP/answer" 2>/dev/null | tr '\n' '~')'"
        if [ "$code" = 200 ] && cmp -s "$TMP/answer" "$TMP/expected"; then return 0; fi
        # Not listening yet (000), or still loading (503): wait. Anything else is a fault.
        case "$code" in 000 | 503) ;; *) return 1 ;; esac
        kill -0 "$pid" 2>/dev/null || { ANSWER="the server exited"; return 1; }
        sleep 0.2
    done
    return 1
}

# --- wasmhost: every component and the JSON-ABI hello in one process ----------
# The default max_queue (16) is below the connection count: the overflow
# would be answered 503, which is cheap and would inflate req/s. Let every
# connection wait for an instance instead (as bench/run.sh does).
QUEUE=$((CONNS * 2 > 10000 ? 10000 : CONNS * 2))
{
    printf '{\n  "apps": {\n'
    printf '    "abi_hello": { "module": "%s", "limits": { "max_queue": %d } }' "$ABI_HELLO" "$QUEUE"
    for c in "${COMPONENTS[@]}"; do
        IFS='|' read -r key _ module _ <<<"$c"
        printf ',\n    "%s": { "module": "%s", "limits": { "max_queue": %d } }' "$key" "$module" "$QUEUE"
    done
    printf '\n  },\n  "routes": [\n    { "path": "/hello", "app": "abi_hello" }'
    for c in "${COMPONENTS[@]}"; do
        IFS='|' read -r key _ _ path _ <<<"$c"
        printf ',\n    { "path": "/%s/...", "app": "%s" }' "$(echo "$path" | cut -d/ -f2)" "$key"
    done
    printf '\n  ]\n}\n'
} >"$TMP/routes.json"
python3 -c 'import json, sys; json.load(open(sys.argv[1]))' "$TMP/routes.json" || die "routes.json is not JSON"

log "starting wasmhost (empty data directory: every module compiles; load $(loadavg))"
args=(serve --routes "$TMP/routes.json" --listen 127.0.0.1:0 --data "$TMP/data" --no-watch)
[ -n "$WORKERS" ] && args+=(--workers "$WORKERS")
started=$(now_ms)
# Both servers run without RUST_BACKTRACE (an error would capture a backtrace).
env -u WASMHOST_ADMIN_TOKEN -u RUST_BACKTRACE -u RUST_LIB_BACKTRACE RUST_LOG=warn "$WASMHOST" "${args[@]}" >"$TMP/wasmhost.out" 2>"$TMP/wasmhost.err" &
WASM_PID=$!
PIDS+=("$WASM_PID")
WASM_PORT=
for _ in $(seq 30000); do
    if grep -q 'listening on' "$TMP/wasmhost.out"; then
        WASM_PORT=$(sed -n 's/.*listening on http:\/\/127\.0\.0\.1:\([0-9]*\).*/\1/p' "$TMP/wasmhost.out" | head -1)
        break
    fi
    kill -0 "$WASM_PID" 2>/dev/null || die "wasmhost exited at start-up: $(tail -5 "$TMP/wasmhost.err")"
    sleep 0.02
done
[ -n "$WASM_PORT" ] || die "wasmhost did not start within 600 s: $(tail -5 "$TMP/wasmhost.err")"
W="http://127.0.0.1:$WASM_PORT"
wait_answer "$W/hello" 'Hello, world!' "$WASM_PID" || die "wasmhost /hello (JSON ABI): $ANSWER"
for c in "${COMPONENTS[@]}"; do
    IFS='|' read -r key label _ path body <<<"$c"
    wait_answer "$W$path" "$body" "$WASM_PID" || die "wasmhost $path ($label): $ANSWER; log: $(tail -3 "$TMP/wasmhost.err")"
done
extra "wasmhost start-up to every app answering, empty data directory (all modules compile)" "$(($(now_ms) - started)) ms"

# --- wasmtime serve: one process per component -------------------------------
# Its defaults except the address. A component that the defaults cannot link
# (one importing wasi:cli interfaces beyond the proxy world: a Rust std,
# componentize-js or componentize-py component does) is started again with
# -S cli, and the table's rows say so.
declare -A WT_PORT WT_PID WT_FLAGS
start_wasmtime() { # key module path body flags...: 0 when it answers correctly
    local key=$1 module=$2 path=$3 body=$4 port pid log
    shift 4
    port=$(free_port)
    log="$TMP/wasmtime-$key$(printf '%s' "$*" | tr -c 'A-Za-z0-9' '_')"
    env -u RUST_BACKTRACE -u RUST_LIB_BACKTRACE \
        "$WASMTIME" serve "$@" --addr "127.0.0.1:$port" "$module" >"$log.out" 2>"$log.err" &
    pid=$!
    PIDS+=("$pid")
    if wait_answer "http://127.0.0.1:$port$path" "$body" "$pid"; then
        WT_PORT[$key]=$port WT_PID[$key]=$pid WT_FLAGS[$key]="$*"
        return 0
    fi
    stop_pid "$pid"
    # Its error line if it printed one ("Error: component imports instance ..."), else its last lines.
    WHY="$ANSWER: $({ grep -m1 '^Error:' "$log.err" || grep -v '^[[:space:]]*$' "$log.err" | tail -3; } | cut -c1-300 | tr '\n' ' ')"
    return 1
}
for c in "${COMPONENTS[@]}"; do
    IFS='|' read -r key label module path body <<<"$c"
    log "starting wasmtime serve for the $label (load $(loadavg))"
    start_wasmtime "$key" "$module" "$path" "$body" && continue
    log "wasmtime serve with its defaults does not serve the $label: $WHY"
    extra "wasmtime serve with its defaults, $key" "does not serve it: $WHY"
    start_wasmtime "$key" "$module" "$path" "$body" -S cli && continue
    log "wasmtime serve -S cli does not serve the $label either: $WHY"
    extra "wasmtime serve -S cli, $key" "does not serve it either: $WHY"
done
[ -n "${WT_PORT[rust]:-}" ] || die "wasmtime serve does not serve the Rust hello component: nothing to compare with (see above)"

# --- measuring ---------------------------------------------------------------
clk_tck=$(getconf CLK_TCK)
cpu_ticks() { awk '{ print $14 + $15 }' "/proc/$1/stat"; } # utime + stime, all threads

# Runs wrk once against URL and appends "name round 2xx-req/s p50 p99 errors
# requests server-cpu-us-per-request" to RESULTS.
run_wrk() {
    local name=$1 url=$2 pid=$3 round=$4 out before after
    out="$TMP/wrk-$round-${name//[^A-Za-z0-9]/_}.txt"
    before=$(cpu_ticks "$pid")
    timeout $((SECONDS_PER_RUN + 60)) wrk -t"$THREADS" -c"$CONNS" -d"${SECONDS_PER_RUN}s" --timeout 5s --latency "$url" \
        >"$out" 2>&1 || die "wrk failed: $(cat "$out")"
    after=$(cpu_ticks "$pid")
    awk -v name="$name" -v round="$round" -v ticks=$((after - before)) -v hz="$clk_tck" '
        function ms(v) {
            if (v ~ /us$/) return substr(v, 1, length(v) - 2) / 1000;
            if (v ~ /ms$/) return substr(v, 1, length(v) - 2) + 0;
            if (v ~ /s$/) return substr(v, 1, length(v) - 1) * 1000;
            return v + 0;
        }
        $1 == "50%" { p50 = ms($2) }
        $1 == "99%" { p99 = ms($2) }
        / requests in / {
            total = $1; secs = $4; sub(/,$/, "", secs);
            if (secs ~ /ms$/) secs = substr(secs, 1, length(secs) - 2) / 1000;
            else if (secs ~ /m$/) secs = substr(secs, 1, length(secs) - 1) * 60;
            else if (secs ~ /s$/) secs = substr(secs, 1, length(secs) - 1) + 0;
        }
        /Non-2xx/ { errors += $NF }
        /Socket errors:/ { gsub(",", ""); errors += $4 + $6 + $8 + $10 }
        # Only 2xx answers count: a cheap 503 must not inflate the figure.
        END { printf "%s\t%s\t%.2f\t%.3f\t%.3f\t%d\t%d\t%.1f\n", name, round, (total - errors) / secs, p50, p99,
                     errors, total, total ? ticks / hz * 1e6 / total : 0 }
    ' "$out" >>"$RESULTS"
    log "  $(tail -1 "$RESULTS" | tr '\t' ' ')"
}

extra "machine" "$(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ *//'), Linux $(uname -r)"
extra "settings" "wrk -t$THREADS -c$CONNS -d${SECONDS_PER_RUN}s --timeout 5s --latency, $ROUNDS interleaved rounds (the server that goes first alternates), 127.0.0.1"
extra "wasmhost" "$WASMHOST ($BINARY_NOTE), commit $(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo '?')$(git -C "$ROOT" diff --quiet HEAD -- host abi 2>/dev/null || echo ' with uncommitted changes under host/ or abi/'), workers ${WORKERS:-default}, apps max_queue $QUEUE, other limits default"
extra "wasmtime serve" "$("$WASMTIME" --version), $WASMTIME serve --addr 127.0.0.1:PORT (its defaults otherwise)"

for round in $(seq "$ROUNDS"); do
    log "round $round/$ROUNDS (load $(loadavg); rustc processes running: $(pgrep -c rustc || true))"
    extra "load before round $round" "$(loadavg) (rustc processes: $(pgrep -c rustc || true))"
    for c in "${COMPONENTS[@]}"; do
        IFS='|' read -r key label _ path _ <<<"$c"
        order=(wasmhost wasmtime)
        [ $((round % 2)) = 0 ] && order=(wasmtime wasmhost)
        for server in "${order[@]}"; do
            if [ "$server" = wasmhost ]; then
                run_wrk "wasmhost: $label" "$W$path" "$WASM_PID" "$round"
            elif [ -n "${WT_PORT[$key]:-}" ]; then
                run_wrk "wasmtime serve${WT_FLAGS[$key]:+ ${WT_FLAGS[$key]}}: $label" \
                    "http://127.0.0.1:${WT_PORT[$key]}$path" "${WT_PID[$key]}" "$round"
                kill -0 "${WT_PID[$key]}" 2>/dev/null || die "wasmtime serve ($key) died during the run"
            fi
        done
    done
    run_wrk "wasmhost: JSON-ABI hello module" "$W/hello" "$WASM_PID" "$round"
    kill -0 "$WASM_PID" 2>/dev/null || die "wasmhost died during the run"
done
# A run that ends with errors in the server logs says so under the table.
errs=$(grep -ciE 'error|panic' "$TMP/wasmhost.err" || true)
[ "$errs" = 0 ] || extra "wasmhost log" "$errs line(s) with error/panic, e.g. $(grep -iE 'error|panic' "$TMP/wasmhost.err" | head -2 | cut -c1-300 | tr '\n' ' ')"
extra "load after the run" "$(loadavg)"
echo
python3 "$BENCH/components_summary.py" "$RESULTS" "$EXTRA"
