#!/usr/bin/env bash
# Short requests on the event loop against the worker hand-off (issue 13, part 2): one run, interleaved rounds of
# nginx `return 200`, wasmhost (guests of hello tried on the loop) and
# wasmhost --no-inline (every request handed to a worker), for hello, the
# 1 KiB echo POST and a 1 KiB static file; see docs/BENCHMARKS.md.
#
# Environment (all optional):
#   WASMHOST=            a wasmhost binary (default: build the dev profile
#                        with the host crate at opt-level 2, as bench/components.sh)
#   BENCH_SECONDS=5      duration of each wrk run
#   BENCH_ROUNDS=3       interleaved rounds (median, min and max are reported)
#   BENCH_CONNECTIONS=64 wrk connections
#   BENCH_PIN=1          servers on CPU 0 (nginx with one worker), wrk on CPU 1
#   FIRST_FLAGS=         serve flags of the first wasmhost (default: none)
#   SECOND_FLAGS=        serve flags of the second (default: --no-inline);
#                        SECOND_FLAGS="--loops 1" compares one event loop
#                        with the default of one per core
set -euo pipefail

SECONDS_PER_RUN=${BENCH_SECONDS:-5}
ROUNDS=${BENCH_ROUNDS:-3}
CONNS=${BENCH_CONNECTIONS:-64}
PIN=${BENCH_PIN:-0}
read -r -a FIRST <<<"${FIRST_FLAGS:-}"
read -r -a SECOND <<<"${SECOND_FLAGS:---no-inline}"
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BENCH="$ROOT/bench"
TOOLS="$ROOT/target/bench-tools"
CORES=$(nproc)

log() { printf '[inline %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() { log "error: $*"; exit 1; }

SERVER_ON=()
CLIENT_ON=()
NGINX_WORKERS=$CORES
if [ "$PIN" = 1 ]; then
    [ "$CORES" -ge 2 ] || die "BENCH_PIN=1 needs two cores"
    SERVER_ON=(taskset -c 0)
    CLIENT_ON=(taskset -c 1)
    NGINX_WORKERS=1
fi

missing=()
command -v wrk >/dev/null || missing+=(wrk)
command -v nginx >/dev/null || [ -x /usr/sbin/nginx ] || missing+=(nginx)
if [ ${#missing[@]} -gt 0 ]; then
    log "installing ${missing[*]} (Debian)"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq && apt-get install -y -qq "${missing[@]}" >/dev/null
fi
NGINX=$(command -v nginx || echo /usr/sbin/nginx)

if [ -z "${WASMHOST:-}" ]; then
    WASMHOST="$TOOLS/wasmhost-opt2"
    mkdir -p "$TOOLS"
    log "building wasmhost: CARGO_PROFILE_DEV_OPT_LEVEL=2 cargo build -p wasmhost --bin wasmhost"
    (cd "$ROOT" && CARGO_PROFILE_DEV_OPT_LEVEL=2 timeout 3600 cargo build -p wasmhost --bin wasmhost >"$TOOLS/wasmhost-opt2.build.log" 2>&1) ||
        die "the build failed: $(tail -5 "$TOOLS/wasmhost-opt2.build.log")"
    cp "$ROOT/target/debug/wasmhost" "$WASMHOST.tmp" && mv "$WASMHOST.tmp" "$WASMHOST"
fi
HELLO="$ROOT/target/guests/wasm32-wasip1/release/hello.wasm"
[ -f "$HELLO" ] || die "$HELLO is missing: any cargo build -p wasmhost builds it (host/build.rs)"

TMP=$(mktemp -d)
PIDS=()
cleanup() {
    for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
    wait 2>/dev/null || true
    rm -rf "$TMP"
}
trap cleanup EXIT
head -c 1024 /dev/urandom >"$TMP/1k.bin"
mkdir -p "$TMP/nginx-tmp" "$TMP/www/static"
cp "$TMP/1k.bin" "$TMP/www/static/1k.bin"
chmod -R a+rX "$TMP"
# Every connection may wait for a run slot (the default max_queue, 16, would
# answer the overflow 503, which is cheap and would inflate req/s).
cat >"$TMP/routes.json" <<EOF
{
  "apps": { "hello": { "module": "$HELLO", "limits": { "max_queue": $((CONNS * 2)) } } },
  "routes": [ { "path": "/hello", "app": "hello" }, { "path": "/hello/...", "app": "hello" },
              { "path": "/static/...", "static": "$TMP/www/static" } ]
}
EOF
free_port() {
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}
NGINX_PORT=$(free_port)
cat >"$TMP/nginx.conf" <<EOF
worker_processes $NGINX_WORKERS;
pid $TMP/nginx.pid;
error_log $TMP/nginx-error.log warn;
daemon off;
events { worker_connections 16384; }
http {
    access_log off;
    client_body_temp_path $TMP/nginx-tmp/body;
    proxy_temp_path $TMP/nginx-tmp/proxy;
    fastcgi_temp_path $TMP/nginx-tmp/fastcgi;
    uwsgi_temp_path $TMP/nginx-tmp/uwsgi;
    scgi_temp_path $TMP/nginx-tmp/scgi;
    server {
        listen 127.0.0.1:$NGINX_PORT;
        location = /hello { default_type "text/plain; charset=utf-8"; return 200 "Hello, world!"; }
        location = /hello/echo { client_body_buffer_size 16k; return 200 "Hello, world!"; }
        location /static/ { root $TMP/www; }
    }
}
EOF
"${SERVER_ON[@]}" "$NGINX" -p "$TMP" -e "$TMP/nginx-error.log" -c "$TMP/nginx.conf" &
PIDS+=($!)

# Starts wasmhost (arguments after the log name go to serve); sets PORT.
start_wasmhost() {
    local out=$1
    shift
    PORT=
    env -u WASMHOST_ADMIN_TOKEN RUST_LOG=warn "${SERVER_ON[@]}" "$WASMHOST" serve --routes "$TMP/routes.json" \
        --listen 127.0.0.1:0 --data "$TMP/data-$out" --no-watch "$@" >"$TMP/$out" 2>"$TMP/$out.err" &
    PIDS+=($!)
    for _ in $(seq 3000); do
        if grep -q 'listening on' "$TMP/$out"; then
            PORT=$(sed -n 's/.*listening on http:\/\/127\.0\.0\.1:\([0-9]*\).*/\1/p' "$TMP/$out" | head -1)
            return 0
        fi
        sleep 0.02
    done
    die "wasmhost ($out) did not start: $(cat "$TMP/$out.err")"
}
start_wasmhost inline "${FIRST[@]}"
INLINE_PORT=$PORT
start_wasmhost worker "${SECOND[@]}"
WORKER_PORT=$PORT
for _ in $(seq 100); do curl -fs "http://127.0.0.1:$NGINX_PORT/hello" >/dev/null && break; sleep 0.05; done
for port in "$INLINE_PORT" "$WORKER_PORT" "$NGINX_PORT"; do
    body=$(curl -fs "http://127.0.0.1:$port/hello") || die "no answer on port $port"
    [ "$body" = "Hello, world!" ] || die "port $port answered $body"
done

# req/s of one wrk run; fails on any non-2xx answer or socket error.
run() {
    local url=$1 script=$2 out
    local args=(-t1 "-c$CONNS" "-d${SECONDS_PER_RUN}s")
    [ "$script" != - ] && args+=(-s "$script")
    out=$(cd "$TMP" && "${CLIENT_ON[@]}" wrk "${args[@]}" "$url")
    if grep -q 'Non-2xx\|Socket errors' <<<"$out"; then
        die "wrk against $url: $(grep 'Non-2xx\|Socket errors' <<<"$out")"
    fi
    sed -n 's/^Requests\/sec: *\([0-9.]*\).*/\1/p' <<<"$out"
}
median() { sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }

log "wrk -t1 -c$CONNS -d${SECONDS_PER_RUN}s, $ROUNDS interleaved rounds, pinned=$PIN, $(basename "$WASMHOST"); first: [${FIRST[*]}], second: [${SECOND[*]}]"
for scenario in "hello|/hello|-" "echo 1 KiB POST|/hello/echo|$BENCH/echo.lua" "static 1 KiB|/static/1k.bin|-"; do
    IFS='|' read -r name path script <<<"$scenario"
    : >"$TMP/n" && : >"$TMP/i" && : >"$TMP/w"
    for _ in $(seq "$ROUNDS"); do
        run "http://127.0.0.1:$NGINX_PORT$path" "$script" >>"$TMP/n"
        run "http://127.0.0.1:$INLINE_PORT$path" "$script" >>"$TMP/i"
        run "http://127.0.0.1:$WORKER_PORT$path" "$script" >>"$TMP/w"
    done
    n=$(median <"$TMP/n") i=$(median <"$TMP/i") w=$(median <"$TMP/w")
    printf '%-16s nginx %8.0f  first %8.0f (%.2fx nginx; rounds %s)  second %8.0f (%.2fx nginx; rounds %s)  first/second %.2fx\n' \
        "$name" "$n" "$i" "$(echo "$i / $n" | bc -l)" "$(paste -sd/ "$TMP/i" | sed 's/\.[0-9]*//g')" \
        "$w" "$(echo "$w / $n" | bc -l)" "$(paste -sd/ "$TMP/w" | sed 's/\.[0-9]*//g')" "$(echo "$i / $w" | bc -l)"
done
