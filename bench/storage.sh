#!/usr/bin/env bash
# Storage on Redis against storage on SQLite, same binary, same run,
# interleaved (docs/BENCHMARKS.md, "Storage: Redis against SQLite"):
#
#   bench/storage.sh [WASMHOST]
#
# Two servers serve the same routes: one with its storage and sessions in
# SQLite under --data (the default), one with --storage redis:// on a
# redis-server started here with the durability docs/scale-out.md asks for
# (appendonly yes, appendfsync always). Scenarios: the todo index of one user
# with 50 todos (a session lookup, then the todos read through the model
# layer's batched read), and a keyvalue increment (the `kv` test component,
# wasi:keyvalue `increment`). For each, the Redis commands one request sends
# are counted from Redis's INFO commandstats over 200 requests.
#
# WASMHOST defaults to target/debug/wasmhost. Needs wrk, curl, python3,
# redis-server and redis-cli (Debian: apt-get install wrk curl python3
# redis-server). Loopback only; BENCH_SECONDS (default 10) per run,
# BENCH_ROUNDS (default 3) rounds, wrk -t1 -c16.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
WASMHOST=$(realpath "${1:-$ROOT/target/debug/wasmhost}")
GUESTS="$ROOT/target/guests/wasm32-wasip1/release"
KV="$ROOT/target/components/wasm32-wasip2/release/component_kv.wasm"
SECS=${BENCH_SECONDS:-10}
ROUNDS=${BENCH_ROUNDS:-3}
for tool in wrk curl python3 redis-server redis-cli; do
  command -v "$tool" >/dev/null || { echo "storage: $tool is missing (apt-get install wrk curl python3 redis-server)" >&2; exit 2; }
done
for f in "$GUESTS/user.wasm" "$GUESTS/todo.wasm" "$KV"; do
  [ -f "$f" ] || { echo "storage: $f is missing: run cargo build -p wasmhost first" >&2; exit 2; }
done
TMP=$(mktemp -d)
PIDS=()
trap 'for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$TMP"' EXIT
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

REDIS_PORT=$(free_port)
mkdir -p "$TMP/redis"
redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --save "" --appendonly yes --appendfsync always \
  --dir "$TMP/redis" >"$TMP/redis.log" 2>&1 &
PIDS+=($!)
for _ in $(seq 100); do redis-cli -p "$REDIS_PORT" ping >/dev/null 2>&1 && break; sleep 0.1; done
redis-cli -p "$REDIS_PORT" ping >/dev/null || { echo "storage: redis-server did not start" >&2; exit 1; }

cat >"$TMP/routes.json" <<JSON
{
  "apps": {
    "user": { "module": "$GUESTS/user.wasm", "limits": { "cpu_time": "5s" }, "grants": { "host": ["log", "storage", "sessions"] } },
    "todo": { "module": "$GUESTS/todo.wasm", "login_required": true, "limits": { "max_queue": 64 }, "grants": { "host": ["log", "storage"] } },
    "kv": { "module": "$KV", "limits": { "max_queue": 64 }, "grants": { "host": ["storage"] } }
  },
  "routes": [
    { "path": "/user/...", "app": "user" },
    { "path": "/todo/...", "app": "todo" },
    { "path": "/kv/...", "app": "kv" }
  ]
}
JSON
start() { # name, extra flags...
  local name=$1
  shift
  mkdir -p "$TMP/$name"
  (cd "$TMP" && RUST_LOG=error exec "$WASMHOST" serve --routes routes.json --listen 127.0.0.1:0 --no-watch \
    --data "$TMP/$name/data" "$@" >"$TMP/$name/out" 2>"$TMP/$name/err") &
  PIDS+=($!)
  for _ in $(seq 600); do grep -q 'http://' "$TMP/$name/out" 2>/dev/null && break; sleep 0.1; done
  local addr
  addr=$(sed -n 's#.*http://\([0-9.:]*\).*#\1#p' "$TMP/$name/out" | head -1)
  [ -n "$addr" ] || { echo "storage: the $name server did not start: $(cat "$TMP/$name/err")" >&2; exit 1; }
  echo "http://$addr"
}
SQLITE=$(start sqlite)
REDIS=$(start redis --storage "redis://127.0.0.1:$REDIS_PORT/0" --node bench)

post() { curl -s --max-time 20 -o /dev/null -D "$TMP/head" -w '%{http_code}' --data "$2" "${@:3}" "$1"; }
redirect() { case "$1" in 302 | 303) ;; *) echo "storage: $2 answered $1" >&2; exit 1 ;; esac; }
for backend in sqlite redis; do
  W=${SQLITE}
  [ "$backend" = redis ] && W=${REDIS}
  redirect "$(post "$W/user/register" 'username=bench&password=correct+horse+battery')" "register ($backend)"
  redirect "$(post "$W/user/login" 'username=bench&password=correct+horse+battery')" "login ($backend)"
  cookie=$(tr -d '\r' <"$TMP/head" | sed -n 's/^[Ss]et-[Cc]ookie: \(wasmhost_session=[^;]*\).*/\1/p' | head -1)
  for i in $(seq 50); do
    redirect "$(post "$W/todo/add" "title=Todo+number+$i+of+the+benchmark" -H "Cookie: $cookie")" "todo add ($backend)"
  done
  n=$(curl -s -H "Cookie: $cookie" -H 'Accept: application/json' "$W/todo/index" |
    python3 -c 'import json, sys; print(len(json.load(sys.stdin)))')
  [ "$n" = 50 ] || { echo "storage: $backend lists $n todos, expected 50" >&2; exit 1; }
  printf 'wrk.headers["Cookie"] = "%s"\n' "$cookie" >"$TMP/todo-$backend.lua"
  code=$(curl -s -o /dev/null -w '%{http_code}' -X POST "$W/kv/incr")
  [ "$code" = 200 ] || { echo "storage: kv increment ($backend) answered $code" >&2; exit 1; }
done
printf 'wrk.method = "POST"\n' >"$TMP/incr.lua"

# Redis round trips per request: the commands clients sent (MONITOR tags
# the ones a Lua script ran with "lua" instead of a client address), less
# the deploy sync's own polling and status writes, over 200 requests.
per_request() { # url, curl args...
  local url=$1
  shift
  redis-cli -p "$REDIS_PORT" monitor >"$TMP/monitor" &
  local mon=$!
  sleep 0.5
  for _ in $(seq 200); do curl -s -o /dev/null "$@" "$url"; done
  sleep 0.5
  kill "$mon"
  wait "$mon" 2>/dev/null || true
  grep -v ' lua\]' "$TMP/monitor" | grep -v -e '"deploy:seq"' -e ':deploy:seq"' -e ':nodes"' -e '"HGETALL"' -e '"OK"' |
    grep -c '^[0-9]' | python3 -c "import sys; print(f'{int(sys.stdin.read()) / 200:.2f}')"
}
COOKIE_REDIS=$(sed -n 's/.*"\(wasmhost_session=[^"]*\)".*/\1/p' "$TMP/todo-redis.lua")
echo "redis commands per todo index request: $(per_request "$REDIS/todo/index" -H "Cookie: $COOKIE_REDIS")"
echo "redis commands per kv increment request: $(per_request "$REDIS/kv/incr" -X POST)"

for round in $(seq "$ROUNDS"); do
  for backend in sqlite redis; do
    W=${SQLITE}
    [ "$backend" = redis ] && W=${REDIS}
    rps=$(wrk -t1 -c16 -d"${SECS}s" -s "$TMP/todo-$backend.lua" "$W/todo/index" | awk '/Requests\/sec/ {print $2}')
    echo "round $round todo index $backend: $rps req/s"
    rps=$(wrk -t1 -c16 -d"${SECS}s" -s "$TMP/incr.lua" "$W/kv/incr" | awk '/Requests\/sec/ {print $2}')
    echo "round $round kv increment $backend: $rps req/s"
  done
done
echo "load: $(cut -d' ' -f1-3 /proc/loadavg)"
