#!/usr/bin/env bash
# One-command benchmark of wasmhost against nginx on 127.0.0.1 (issue 6); see docs/BENCHMARKS.md.
#
# Installs wrk and nginx from Debian if missing, builds the release binary,
# runs the Criterion micro-benchmark, then runs every wrk scenario against
# wasmhost and nginx in interleaved rounds and prints one table. Also measures
# hello with 5,000 idle keep-alive connections held open, and the start-up
# time with 50 apps.
#
# Environment (all optional):
#   BENCH_SECONDS=10        duration of each wrk run
#   BENCH_ROUNDS=3          interleaved rounds (median, min and max are reported)
#   BENCH_CONNECTIONS=64    wrk connections (wrk -c), the same for every scenario
#   BENCH_THREADS=1         wrk threads (wrk -t)
#   BENCH_IDLE=5000         idle keep-alive connections for the idle scenario (0: skip)
#   BENCH_APPS=50           apps for the start-up measurement (0: skip)
#   BENCH_CRITERION_SECS=3  Criterion measurement time per benchmark (0: skip)
#   BENCH_WORKERS=          wasmhost --workers (default: the server's own default)
#   BENCH_PIN=1             per-core efficiency: wasmhost and nginx (one worker)
#                           pinned to CPU 0 with taskset, wrk to CPU 1
#   BENCH_KEEP=1            keep the temporary directory (configs, logs, raw results)
#   BENCH_COMPONENTS=1      then run bench/components.sh with this release binary:
#                           the same wasi:http components on wasmhost and on
#                           `wasmtime serve` 48, interleaved (0: skip)
set -euo pipefail

SECONDS_PER_RUN=${BENCH_SECONDS:-10}
ROUNDS=${BENCH_ROUNDS:-3}
CONNS=${BENCH_CONNECTIONS:-64}
THREADS=${BENCH_THREADS:-1}
IDLE=${BENCH_IDLE:-5000}
APPS=${BENCH_APPS:-50}
CRITERION_SECS=${BENCH_CRITERION_SECS:-3}
WORKERS=${BENCH_WORKERS:-}
PIN=${BENCH_PIN:-0}

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BENCH="$ROOT/bench"
CORES=$(nproc)
# Pinned: servers on CPU 0, the load generator on CPU 1; nginx gets one
# worker, the same one core wasmhost gets.
SERVER_ON=()
CLIENT_ON=()
NGINX_WORKERS=$CORES
if [ "$PIN" = 1 ]; then
    [ "$CORES" -ge 2 ] || { echo "bench: BENCH_PIN=1 needs two cores" >&2; exit 2; }
    command -v taskset >/dev/null || { echo "bench: BENCH_PIN=1 needs taskset (util-linux)" >&2; exit 2; }
    SERVER_ON=(taskset -c 0)
    CLIENT_ON=(taskset -c 1)
    NGINX_WORKERS=1
fi

log() { printf '[bench %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() { log "error: $*"; exit 1; }
loadavg() { cut -d' ' -f1-3 /proc/loadavg; }

# --- tools -------------------------------------------------------------------
missing=()
command -v wrk >/dev/null || missing+=(wrk)
command -v nginx >/dev/null || [ -x /usr/sbin/nginx ] || missing+=(nginx)
command -v curl >/dev/null || missing+=(curl)
command -v python3 >/dev/null || missing+=(python3)
if [ ${#missing[@]} -gt 0 ]; then
    [ "$(id -u)" -eq 0 ] || die "missing ${missing[*]}: run as root (or install them) so apt-get can install them"
    log "installing ${missing[*]} from Debian"
    timeout 600 apt-get update -qq
    DEBIAN_FRONTEND=noninteractive timeout 900 apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
NGINX=$(command -v nginx || echo /usr/sbin/nginx)

# --- temp dir and cleanup ----------------------------------------------------
TMP=$(mktemp -d /tmp/wasmhost-bench.XXXXXX)
# nginx workers drop to an unprivileged user when started as root: they must
# be able to read the static files.
chmod 755 "$TMP"
PIDS=()
cleanup() {
    local pid
    for pid in "${PIDS[@]}"; do
        kill "$pid" 2>/dev/null || true
    done
    for pid in "${PIDS[@]}"; do
        # Bounded: a process that ignores SIGTERM gets SIGKILL after 5 s.
        for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
        kill -9 "$pid" 2>/dev/null || true
    done
    if [ "${BENCH_KEEP:-}" = 1 ]; then
        log "kept $TMP"
    else
        rm -rf "$TMP"
    fi
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

# --- build -------------------------------------------------------------------
cd "$ROOT"
log "load before build: $(loadavg)"
log "cargo build --release"
timeout 3600 cargo build --release
WASMHOST="$ROOT/target/release/wasmhost"
GUESTS="$ROOT/target/guests/wasm32-wasip1/release"
HELLO="$GUESTS/hello.wasm"
[ -x "$WASMHOST" ] || die "$WASMHOST was not built"
for app in hello user todo; do
    [ -f "$GUESTS/$app.wasm" ] || die "$GUESTS/$app.wasm was not built"
done

EXTRA="$TMP/extra.tsv"
RESULTS="$TMP/results.tsv"
: >"$EXTRA"
: >"$RESULTS"
extra() { printf '%s\t%s\n' "$1" "$2" >>"$EXTRA"; }

extra "machine" "$CORES cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ *//'), Linux $(uname -r)"
[ "$PIN" = 1 ] && extra "pinned" "wasmhost and nginx on CPU 0 (taskset), wrk on CPU 1"
extra "settings" "wrk -t$THREADS -c$CONNS -d${SECONDS_PER_RUN}s --latency, $ROUNDS interleaved rounds; nginx $("$NGINX" -v 2>&1 | sed 's/.*nginx\///'), worker_processes $NGINX_WORKERS; wasmhost workers ${WORKERS:-default (8 per core, at least 16)}"

# --- Criterion micro-benchmark ----------------------------------------------
if [ "$CRITERION_SECS" != 0 ]; then
    log "criterion: cargo bench -p wasmhost --bench wasm_call (load $(loadavg))"
    BENCH_MEASURE_SECS=$CRITERION_SECS timeout 3600 \
        cargo bench -p wasmhost --bench wasm_call -- --noplot >"$TMP/criterion.txt" 2>"$TMP/criterion.err" ||
        { cat "$TMP/criterion.err" >&2; die "cargo bench failed"; }
    # "name  time: [low mid high]" (a long name stands on its own line).
    awk '/^[a-z_0-9]+( |$)/ { name = $1 }
         /time:/ { match($0, /\[[^]]*\]/); split(substr($0, RSTART + 1, RLENGTH - 2), a, " ");
                   printf "criterion %s\t%s %s (95%% CI %s %s – %s %s)\n", name, a[3], a[4], a[1], a[2], a[5], a[6] }' \
        "$TMP/criterion.txt" >>"$EXTRA"
fi

# --- site: routes, static files, nginx.conf ---------------------------------
mkdir -p "$TMP/www/static" "$TMP/data" "$TMP/nginx-tmp"
head -c 1024 /dev/urandom >"$TMP/www/static/1k.bin"
head -c 102400 /dev/urandom >"$TMP/www/static/100k.bin"
chmod -R a+rX "$TMP/www"
# The default max_queue (16) is below the connection count: with 64 clients
# the app's gate would answer 503 to the overflow, which is cheap and would
# inflate req/s. Let every connection wait for an instance instead.
QUEUE=$((CONNS * 2 > 10000 ? 10000 : CONNS * 2))
# The todo app twice: as deployed (pre-initialized: routes and templates
# built once at load) and with "preinit": false (built on every request),
# reached with Host: noinit.bench; each has its own storage namespace.
cat >"$TMP/routes.json" <<EOF
{
  "apps": {
    "hello": { "module": "$HELLO", "limits": { "max_queue": $QUEUE } },
    "user": {
      "module": "$GUESTS/user.wasm",
      "limits": { "cpu_time": "5s" },
      "grants": { "host": ["log", "storage", "sessions"] }
    },
    "todo": {
      "module": "$GUESTS/todo.wasm",
      "login_required": true,
      "limits": { "max_queue": $QUEUE },
      "grants": { "host": ["log", "storage"] }
    },
    "todo_noinit": {
      "module": "$GUESTS/todo.wasm",
      "preinit": false,
      "login_required": true,
      "limits": { "max_queue": $QUEUE },
      "grants": { "host": ["log", "storage"] }
    }
  },
  "routes": [
    { "path": "/hello", "app": "hello" },
    { "path": "/hello/...", "app": "hello" },
    { "path": "/user/...", "app": "user" },
    { "path": "/todo/...", "app": "todo" },
    { "host": "noinit.bench", "path": "/todo/...", "app": "todo_noinit" },
    { "path": "/static/...", "static": "$TMP/www/static" }
  ]
}
EOF

free_port() {
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}
NGINX_PORT=$(free_port)
cat >"$TMP/nginx.conf" <<EOF
# nginx reference for bench/run.sh: same hello body and same static files as wasmhost, loopback only.
worker_processes $NGINX_WORKERS;
pid $TMP/nginx.pid;
error_log $TMP/nginx-error.log warn;
daemon off;
events { worker_connections 16384; }
http {
    access_log off;
    sendfile on;
    tcp_nopush on;
    types { application/octet-stream bin; }
    default_type application/octet-stream;
    client_body_temp_path $TMP/nginx-tmp/body;
    proxy_temp_path $TMP/nginx-tmp/proxy;
    fastcgi_temp_path $TMP/nginx-tmp/fastcgi;
    uwsgi_temp_path $TMP/nginx-tmp/uwsgi;
    scgi_temp_path $TMP/nginx-tmp/scgi;
    server {
        listen 127.0.0.1:$NGINX_PORT;
        location = /hello {
            default_type "text/plain; charset=utf-8";
            return 200 "Hello, world!";
        }
        location /static/ {
            root $TMP/www;
        }
    }
}
EOF

# --- start the servers -------------------------------------------------------
# Starts wasmhost on an ephemeral port; sets SERVER_PID and SERVER_PORT.
start_wasmhost() {
    local routes=$1 out=$2 data=${3:-$TMP/data}
    local args=(serve --routes "$routes" --listen 127.0.0.1:0 --data "$data" --no-watch)
    [ -n "$WORKERS" ] && args+=(--workers "$WORKERS")
    env -u WASMHOST_ADMIN_TOKEN RUST_LOG=warn "${SERVER_ON[@]}" "$WASMHOST" "${args[@]}" >"$out" 2>"$out.err" &
    SERVER_PID=$!
    PIDS+=("$SERVER_PID")
    SERVER_PORT=
    for _ in $(seq 6000); do
        if grep -q 'listening on' "$out"; then
            SERVER_PORT=$(sed -n 's/.*listening on http:\/\/127\.0\.0\.1:\([0-9]*\).*/\1/p' "$out" | head -1)
            return 0
        fi
        kill -0 "$SERVER_PID" 2>/dev/null || { cat "$out.err" >&2; die "wasmhost exited at start-up"; }
        sleep 0.02
    done
    die "wasmhost did not start within 120 s"
}

log "starting wasmhost and nginx"
start_wasmhost "$TMP/routes.json" "$TMP/wasmhost.out"
WASM_PID=$SERVER_PID
WASM_PORT=$SERVER_PORT
"${SERVER_ON[@]}" "$NGINX" -p "$TMP" -e "$TMP/nginx-error.log" -c "$TMP/nginx.conf" &
PIDS+=($!)
for _ in $(seq 100); do
    curl -s -o /dev/null "http://127.0.0.1:$NGINX_PORT/hello" && break
    sleep 0.1
done

W="http://127.0.0.1:$WASM_PORT"
N="http://127.0.0.1:$NGINX_PORT"

# --- the todo scenario: one user with 50 todos in each todo app -------------
log "seeding the todo apps: one user, 50 todos each"
form_post() { # url, form data, extra curl args...: prints the status code
    curl -s --max-time 20 -o "$TMP/seed.body" -D "$TMP/seed.head" -w '%{http_code}' \
        --data "$2" "${@:3}" "$1" || true
}
code=$(form_post "$W/user/register" 'username=bench&password=correct+horse+battery')
[ "$code" = 303 ] || [ "$code" = 302 ] || die "register answered $code: $(cat "$TMP/seed.body")"
code=$(form_post "$W/user/login" 'username=bench&password=correct+horse+battery')
[ "$code" = 303 ] || [ "$code" = 302 ] || die "login answered $code: $(cat "$TMP/seed.body")"
COOKIE=$(tr -d '\r' <"$TMP/seed.head" | sed -n 's/^[Ss]et-[Cc]ookie: \(wasmhost_session=[^;]*\).*/\1/p' | head -1)
[ -n "$COOKIE" ] || die "no session cookie after logging in"
for host in 127.0.0.1 noinit.bench; do
    for i in $(seq 50); do
        code=$(form_post "$W/todo/add" "title=Todo+number+$i+of+the+benchmark" -H "Cookie: $COOKIE" -H "Host: $host")
        [ "$code" = 303 ] || [ "$code" = 302 ] || die "todo add ($host) answered $code: $(cat "$TMP/seed.body")"
    done
    count=$(curl -s --max-time 20 -H "Cookie: $COOKIE" -H "Host: $host" -H 'Accept: application/json' \
        "$W/todo/index" | python3 -c 'import json, sys; print(len(json.load(sys.stdin)))')
    [ "$count" = 50 ] || die "$host: the todo index lists $count todos, expected 50"
done
for script in todo todo_noinit; do
    host=127.0.0.1
    [ "$script" = todo_noinit ] && host=noinit.bench
    printf 'wrk.headers["Cookie"] = "%s"\nwrk.headers["Host"] = "%s"\n' "$COOKIE" "$host" >"$TMP/$script.lua"
done
# Both answer the same page: its size is the expected size of each.
TODO_SIZE=$(curl -s --max-time 20 -o /dev/null -w '%{size_download}' -H "Cookie: $COOKIE" "$W/todo/index")
# scenario name | URL | wrk script (or -)
SCENARIOS=(
    "wasm hello|$W/hello|-"
    "nginx return 200|$N/hello|-"
    "wasm echo 1 KiB POST|$W/hello/echo|$BENCH/echo.lua"
    "wasm todo index, 50 todos|$W/todo/index|$TMP/todo.lua"
    "wasm todo index, 50 todos, no preinit|$W/todo/index|$TMP/todo_noinit.lua"
    "static 1 KiB|$W/static/1k.bin|-"
    "nginx static 1 KiB|$N/static/1k.bin|-"
    "static 100 KiB|$W/static/100k.bin|-"
    "nginx static 100 KiB|$N/static/100k.bin|-"
)

# Every scenario must answer 200 with the expected body before it is timed.
check() {
    local url=$1 want=$2 got
    got=$(curl -s --max-time 5 -o "$TMP/check.body" -w '%{http_code} %{size_download}' "${@:3}" "$url") || true
    [ "$got" = "200 $want" ] || die "$url answered '$got', expected '200 $want'"
}
check "$W/hello" 13
check "$N/hello" 13
check "$W/hello/echo" 1024 --data-binary @"$TMP/www/static/1k.bin" -H 'Content-Type: application/octet-stream'
check "$W/static/1k.bin" 1024
check "$W/todo/index" "$TODO_SIZE" -H "Cookie: $COOKIE"
check "$W/todo/index" "$TODO_SIZE" -H "Cookie: $COOKIE" -H "Host: noinit.bench"
check "$N/static/1k.bin" 1024
check "$W/static/100k.bin" 102400
check "$N/static/100k.bin" 102400

# Runs wrk once and appends "name round 2xx-req/s p50 p99 errors requests" to RESULTS.
run_wrk() {
    local name=$1 url=$2 script=$3 round=$4 out
    out="$TMP/wrk-$round-${name// /_}.txt"
    local args=(-t"$THREADS" -c"$CONNS" -d"${SECONDS_PER_RUN}s" --timeout 5s --latency)
    [ "$script" != - ] && args+=(-s "$script")
    timeout $((SECONDS_PER_RUN + 60)) "${CLIENT_ON[@]}" wrk "${args[@]}" "$url" >"$out" 2>&1 || die "wrk failed: $(cat "$out")"
    awk -v name="$name" -v round="$round" '
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
        END { printf "%s\t%s\t%.2f\t%.3f\t%.3f\t%d\t%d\n", name, round, (total - errors) / secs, p50, p99, errors, total }
    ' "$out" >>"$RESULTS"
    log "  $(tail -1 "$RESULTS" | tr '\t' ' ')"
}

# --- interleaved rounds ------------------------------------------------------
for round in $(seq "$ROUNDS"); do
    log "round $round/$ROUNDS (load $(loadavg); rustc processes running: $(pgrep -c rustc || true))"
    extra "load before round $round" "$(loadavg) (rustc processes: $(pgrep -c rustc || true))"
    for s in "${SCENARIOS[@]}"; do
        IFS='|' read -r name url script <<<"$s"
        run_wrk "$name" "$url" "$script" "$round"
    done
    if [ "$IDLE" != 0 ]; then
        python3 "$BENCH/hold_idle.py" --port "$WASM_PORT" --count "$IDLE" \
            --max-seconds $((SECONDS_PER_RUN + 120)) >"$TMP/holder.out" 2>&1 &
        HOLDER=$!
        PIDS+=("$HOLDER")
        for _ in $(seq 600); do
            grep -q '^ready' "$TMP/holder.out" && break
            kill -0 "$HOLDER" 2>/dev/null || die "idle holder failed: $(cat "$TMP/holder.out")"
            sleep 0.1
        done
        grep -q "^ready $IDLE\$" "$TMP/holder.out" || die "idle holder: $(cat "$TMP/holder.out")"
        run_wrk "wasm hello + $IDLE idle conns" "$W/hello" - "$round"
        stop_pid "$HOLDER"
        extra "idle connections still open after round $round" "$(sed -n 's/^alive //p' "$TMP/holder.out") of $IDLE"
    fi
done
kill -0 "$WASM_PID" 2>/dev/null || die "wasmhost died during the run"

# --- start-up with many apps -------------------------------------------------
# Launch 0: the main routes (4 apps) with an empty data directory (baseline:
# process start, engine and pool set-up, compiling and pre-initializing). Launch 1: APPS distinct copies
# of hello (each with its own custom section, so no two share a cache key)
# with an empty data directory: every module compiles. Launch 2: the same
# again with the data directory launch 1 left, so a compiled-module cache
# there (DATA/cache), if the host keeps one, is warm.
if [ "$APPS" != 0 ]; then
    mkdir -p "$TMP/apps"
    python3 - "$HELLO" "$TMP/apps" "$APPS" <<'PY'
import sys
src, out, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
wasm = open(src, "rb").read()
def leb(x):
    b = bytearray()
    while True:
        byte, x = x & 0x7F, x >> 7
        b.append(byte | (0x80 if x else 0))
        if not x:
            return bytes(b)
for i in range(n):
    name, payload = b"wasmhost-bench", str(i).encode()
    body = leb(len(name)) + name + payload
    open(f"{out}/hello{i}.wasm", "wb").write(wasm + b"\x00" + leb(len(body)) + body)
PY
    {
        printf '{\n  "apps": {\n'
        for i in $(seq 0 $((APPS - 1))); do
            printf '    "hello%d": { "module": "%s/apps/hello%d.wasm" }%s\n' "$i" "$TMP" "$i" "$([ "$i" -lt $((APPS - 1)) ] && echo ,)"
        done
        printf '  },\n  "routes": [\n'
        for i in $(seq 0 $((APPS - 1))); do
            printf '    { "host": "app%d.bench", "path": "/hello", "app": "hello%d" }%s\n' "$i" "$i" "$([ "$i" -lt $((APPS - 1)) ] && echo ,)"
        done
        printf '  ]\n}\n'
    } >"$TMP/routes-apps.json"
    for attempt in 0 1 2; do
        routes="$TMP/routes-apps.json" n=$APPS host="app$((APPS - 1)).bench" data="$TMP/data-apps"
        # Launch 0 starts the main routes: hello, user and todo twice (the
        # last three pre-initialized, except todo_noinit).
        [ "$attempt" = 0 ] && routes="$TMP/routes.json" n=4 host=127.0.0.1 data="$TMP/data-one"
        state="empty data directory"
        [ "$attempt" = 2 ] && state="data directory of launch 1"
        log "start-up with $n app(s), launch $attempt, $state (load $(loadavg))"
        started=$(date +%s%N)
        start_wasmhost "$routes" "$TMP/startup-$attempt.out" "$data"
        code=
        for _ in $(seq 6000); do
            code=$(curl -s --max-time 1 -o /dev/null -w '%{http_code}' -H "Host: $host" \
                "http://127.0.0.1:$SERVER_PORT/hello" || true)
            [ "$code" = 200 ] && break
            sleep 0.01
        done
        ended=$(date +%s%N)
        [ "$code" = 200 ] || die "no 200 from the app server"
        stop_pid "$SERVER_PID"
        cached=$(find "$data" -type f -path '*cache*' 2>/dev/null | wc -l)
        extra "start-up to first answered request, $n app(s), launch $attempt ($state)" \
            "$(((ended - started) / 1000000)) ms; files in a cache directory under --data afterwards: $cached"
    done
fi

extra "load after the run" "$(loadavg)"
echo
python3 "$BENCH/summarize.py" "$RESULTS" "$EXTRA"

# --- components: wasmhost against `wasmtime serve` on the same components ----
if [ "${BENCH_COMPONENTS:-1}" != 0 ]; then
    echo
    WASMHOST="$WASMHOST" ROUNDS="$ROUNDS" SECONDS_PER_RUN="$SECONDS_PER_RUN" \
        bash "$BENCH/components.sh"
fi
