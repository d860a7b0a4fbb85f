#!/usr/bin/env bash
# The todo index (one user, 50 todos) answered by two builds of the todo app
# in one server, interleaved (docs/BENCHMARKS.md, "Todo index: batched reads"):
#
#   bench/todo_index.sh BASELINE.wasm CANDIDATE.wasm [WASMHOST]
#
# Each build is its own app (own storage namespace) behind its own host name,
# both pre-initialized as deployed. WASMHOST defaults to target/debug/wasmhost;
# the user app comes from target/guests. Needs wrk and curl (Debian: apt-get
# install wrk curl). Loopback only; BENCH_SECONDS (default 10) per run,
# BENCH_ROUNDS (default 3) rounds, wrk -t1 -c16.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BASE=$(realpath "${1:?usage: bench/todo_index.sh BASELINE.wasm CANDIDATE.wasm [WASMHOST]}")
CAND=$(realpath "${2:?usage: bench/todo_index.sh BASELINE.wasm CANDIDATE.wasm [WASMHOST]}")
WASMHOST=$(realpath "${3:-$ROOT/target/debug/wasmhost}")
USER_WASM="$ROOT/target/guests/wasm32-wasip1/release/user.wasm"
SECS=${BENCH_SECONDS:-10}
ROUNDS=${BENCH_ROUNDS:-3}
for tool in wrk curl python3; do
  command -v "$tool" >/dev/null || { echo "todo_index: $tool is missing (apt-get install wrk curl python3)" >&2; exit 2; }
done
[ -f "$USER_WASM" ] || { echo "todo_index: $USER_WASM is missing: run cargo build -p wasmhost first" >&2; exit 2; }
TMP=$(mktemp -d)
trap 'kill "$PID" 2>/dev/null || true; rm -rf "$TMP"' EXIT
app() { # module file
  printf '{ "module": "%s", "login_required": true, "limits": { "max_queue": 64 }, "grants": { "host": ["log", "storage"] } }' "$1"
}
cat >"$TMP/routes.json" <<JSON
{
  "apps": {
    "user": { "module": "$USER_WASM", "limits": { "cpu_time": "5s" }, "grants": { "host": ["log", "storage", "sessions"] } },
    "baseline": $(app "$BASE"),
    "candidate": $(app "$CAND")
  },
  "routes": [
    { "path": "/user/...", "app": "user" },
    { "host": "baseline.bench", "path": "/todo/...", "app": "baseline" },
    { "host": "candidate.bench", "path": "/todo/...", "app": "candidate" }
  ]
}
JSON
cd "$TMP"
RUST_LOG=error "$WASMHOST" serve --routes routes.json --listen 127.0.0.1:0 --data data >"$TMP/out" 2>"$TMP/err" &
PID=$!
for _ in $(seq 600); do grep -q 'http://' "$TMP/out" 2>/dev/null && break; sleep 0.1; done
ADDR=$(sed -n 's#.*http://\([0-9.:]*\).*#\1#p' "$TMP/out" | head -1)
[ -n "$ADDR" ] || { echo "todo_index: the server did not start: $(cat "$TMP/err")" >&2; exit 1; }
W="http://$ADDR"
post() { curl -s --max-time 20 -o /dev/null -D "$TMP/head" -w '%{http_code}' --data "$2" "${@:3}" "$W$1"; }
redirect() { case "$1" in 302 | 303) ;; *) echo "todo_index: $2 answered $1" >&2; exit 1 ;; esac; }
redirect "$(post /user/register 'username=bench&password=correct+horse+battery')" register
redirect "$(post /user/login 'username=bench&password=correct+horse+battery')" login
COOKIE=$(tr -d '\r' <"$TMP/head" | sed -n 's/^[Ss]et-[Cc]ookie: \(wasmhost_session=[^;]*\).*/\1/p' | head -1)
for host in baseline.bench candidate.bench; do
  for i in $(seq 50); do
    redirect "$(post /todo/add "title=Todo+number+$i+of+the+benchmark" -H "Cookie: $COOKIE" -H "Host: $host")" "todo add"
  done
  n=$(curl -s -H "Cookie: $COOKIE" -H "Host: $host" -H 'Accept: application/json' "$W/todo/index" |
    python3 -c 'import json, sys; print(len(json.load(sys.stdin)))')
  [ "$n" = 50 ] || { echo "todo_index: $host lists $n todos, expected 50" >&2; exit 1; }
  printf 'wrk.headers["Cookie"] = "%s"\nwrk.headers["Host"] = "%s"\n' "$COOKIE" "$host" >"$TMP/$host.lua"
done
for round in $(seq "$ROUNDS"); do
  for host in baseline.bench candidate.bench; do
    wrk -t1 -c16 -d"${SECS}s" -s "$TMP/$host.lua" "$W/todo/index" >"$TMP/wrk.out"
    rps=$(awk '/Requests\/sec/ {print $2}' "$TMP/wrk.out")
    # A refused or failed answer is no page: a run with any is not a result.
    if grep -q 'Non-2xx' "$TMP/wrk.out"; then
      echo "todo_index: ${host%.bench} got answers other than 2xx: $(grep Non-2xx "$TMP/wrk.out")" >&2
      exit 1
    fi
    echo "round $round ${host%.bench}: $rps req/s"
  done
done
echo "load: $(cut -d' ' -f1-3 /proc/loadavg)"
