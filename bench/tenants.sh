#!/usr/bin/env bash
# Many tenants in one process (docs/BENCHMARKS.md, "Many tenants"): DISTINCT
# distinct hello modules (each with its own custom section, so no two share a
# compiled-module cache entry), each mounted MOUNTS times as its own app under
# its own host name. Reports, against one app alone in the same run: RSS per
# app, start-up to the last app's first answer with a cold and a warm cache,
# and hello req/s while all are loaded.
#
#   bench/tenants.sh [DISTINCT] [MOUNTS] [WASMHOST]     # default 50 20 target/debug/wasmhost
#
# Needs wrk, curl and python3 (Debian: apt-get install wrk curl python3);
# loopback only; BENCH_SECONDS (default 10) per wrk run, wrk -t1 -c64.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
DISTINCT=${1:-50}
MOUNTS=${2:-20}
WASMHOST=$(realpath "${3:-$ROOT/target/debug/wasmhost}")
HELLO="$ROOT/target/guests/wasm32-wasip1/release/hello.wasm"
SECS=${BENCH_SECONDS:-10}
for tool in wrk curl python3; do
  command -v "$tool" >/dev/null || { echo "tenants: $tool is missing (apt-get install wrk curl python3)" >&2; exit 2; }
done
[ -f "$HELLO" ] || { echo "tenants: $HELLO is missing: run cargo build -p wasmhost first" >&2; exit 2; }
TMP=$(mktemp -d)
PID=
trap '[ -n "$PID" ] && kill "$PID" 2>/dev/null; rm -rf "$TMP"' EXIT
python3 - "$HELLO" "$TMP" "$DISTINCT" "$MOUNTS" <<'PY'
import json, sys
src, out, distinct, mounts = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
wasm = open(src, "rb").read()
def leb(x):
    b = bytearray()
    while True:
        byte, x = x & 0x7F, x >> 7
        b.append(byte | (0x80 if x else 0))
        if not x:
            return bytes(b)
for i in range(distinct):
    name, payload = b"wasmhost-tenants", str(i).encode()
    body = leb(len(name)) + name + payload
    open(f"{out}/hello{i}.wasm", "wb").write(wasm + b"\x00" + leb(len(body)) + body)
def config(n_distinct, n_mounts):
    apps, routes = {}, []
    for i in range(n_distinct):
        for j in range(n_mounts):
            apps[f"h{i}-{j}"] = {"module": f"{out}/hello{i}.wasm"}
            routes.append({"host": f"a{i}-{j}.bench", "path": "/hello", "app": f"h{i}-{j}"})
    return {"apps": apps, "routes": routes}
json.dump(config(1, 1), open(f"{out}/one.json", "w"))
json.dump(config(distinct, mounts), open(f"{out}/all.json", "w"))
PY
LAST="a$((DISTINCT - 1))-$((MOUNTS - 1)).bench"

start() { # routes, data dir: starts the server, sets PID and W
  : >"$TMP/out"
  (cd "$TMP" && RUST_LOG=error exec "$WASMHOST" serve --routes "$1" --listen 127.0.0.1:0 --data "$2" >"$TMP/out" 2>"$TMP/err") &
  PID=$!
  for _ in $(seq 6000); do grep -q 'http://' "$TMP/out" 2>/dev/null && break; sleep 0.05; done
  W="http://$(sed -n 's#.*http://\([0-9.:]*\).*#\1#p' "$TMP/out" | head -1)"
  [ "$W" != "http://" ] || { echo "tenants: the server did not start: $(tail -3 "$TMP/err")" >&2; exit 1; }
}
first_answer() { # host: waits for its 200
  for _ in $(seq 30000); do
    [ "$(curl -s --max-time 1 -o /dev/null -w '%{http_code}' -H "Host: $1" "$W/hello" || true)" = 200 ] && return
    sleep 0.01
  done
  echo "tenants: $1 never answered 200" >&2; exit 1
}
rss_kib() { awk '/^VmRSS/ {print $2}' "/proc/$PID/status"; }
rps() { # host
  printf 'wrk.headers["Host"] = "%s"\n' "$1" >"$TMP/host.lua"
  wrk -t1 -c64 -d"${SECS}s" -s "$TMP/host.lua" "$W/hello" | awk '/Requests\/sec/ {print $2}'
}
stop() { kill -TERM "$PID"; wait "$PID" 2>/dev/null || true; PID=; }
ms_since() { echo $((($(date +%s%N) - $1) / 1000000)); }

# One app alone, measured like the many: a first launch fills its cache,
# the second (warm) is measured.
start one.json data-one; first_answer a0-0.bench; stop
t=$(date +%s%N); start one.json data-one; first_answer a0-0.bench; one_start=$(ms_since "$t")
sleep 1; one_rss=$(rss_kib); one_rps=$(rps a0-0.bench); one_rss_after=$(rss_kib); stop
t=$(date +%s%N); start all.json data-all; first_answer "$LAST"; cold_start=$(ms_since "$t"); stop
t=$(date +%s%N); start all.json data-all; first_answer "$LAST"; warm_start=$(ms_since "$t")
sleep 1; all_rss=$(rss_kib); all_rps=$(rps a0-0.bench); last_rps=$(rps "$LAST"); all_rss_after=$(rss_kib); stop
n=$((DISTINCT * MOUNTS))
echo "one app:   start-up ${one_start} ms warm, RSS ${one_rss} KiB (${one_rss_after} after wrk), hello ${one_rps} req/s"
echo "$n apps ($DISTINCT modules x $MOUNTS): start-up ${cold_start} ms cold, ${warm_start} ms warm; RSS ${all_rss} KiB (${all_rss_after} after wrk); hello ${all_rps} req/s (first app), ${last_rps} req/s (last app)"
echo "RSS per app: $(((all_rss - one_rss) / (n - 1))) KiB; hello with $n apps / with one: $(python3 -c "print(f'{$all_rps / $one_rps:.2f}')")"
echo "load: $(cut -d' ' -f1-3 /proc/loadavg)"
