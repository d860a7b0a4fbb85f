#!/usr/bin/env bash
# How long a deploy of a never-seen version takes, step by step
# (docs/BENCHMARKS.md, "A never-seen version"):
#
#   bench/never_seen.sh [WASMHOST]
#
# Serves the hello and todo apps twice each (pre-initialized as deployed, and
# with "preinit": false, which is one plain compile) and a JavaScript
# component, then deploys to each a version the host has never seen: the
# same module with one custom section added, so that no cache holds it. It
# prints the time of each deploy call (which answers once the new version
# serves), the tier the version serves on then, and when its optimized code
# took over. WASMHOST defaults to target/debug/wasmhost. Needs curl, python3,
# wrk and the JavaScript component of the test suite
# (target/components/dynamic/, built by `cargo test`).
#
# LOAD=4 (the default) keeps 4 keep-alive clients on /hello throughout
# (`wrk -t1 -c4`); LOAD=0 runs no load. EXTRA="--no-baseline-tier" measures
# the server without the baseline tier.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
WASMHOST=$(realpath "${1:-$ROOT/target/debug/wasmhost}")
G="$ROOT/target/guests/wasm32-wasip1/release"
JS="$ROOT/target/components/dynamic/js-hello-v1.wasm"
LOAD=${LOAD:-4}
EXTRA=${EXTRA:-}
for f in "$G/hello.wasm" "$G/todo.wasm" "$JS"; do
  [ -f "$f" ] || { echo "never_seen: $f is missing: run cargo test first" >&2; exit 2; }
done
TMP=$(mktemp -d)
WRK=
trap 'kill "$PID" $WRK 2>/dev/null || true; rm -rf "$TMP"' EXIT
cd "$TMP"
python3 - "$G" "$JS" <<'PY'
import sys
def leb(n):
    out = bytearray()
    while True:
        b, n = n & 0x7f, n >> 7
        if n:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)
def tag(src, dst, label):
    name = b"wasmhost-bench"
    payload = leb(len(name)) + name + label.encode()
    # A custom section is valid at the end of a core module and of a component.
    open(dst, "wb").write(open(src, "rb").read() + b"\x00" + leb(len(payload)) + payload)
g, js = sys.argv[1], sys.argv[2]
for n in ["hello", "todo"]:
    tag(f"{g}/{n}.wasm", f"{n}-v1.wasm", "v1")
    tag(f"{g}/{n}.wasm", f"{n}-new.wasm", "never seen")
tag(js, "js-v1.wasm", "v1")
tag(js, "js-new.wasm", "never seen")
PY
cat >routes.json <<'JSON'
{ "apps": {
    "hello": { "module": "hello-v1.wasm" },
    "hello_plain": { "module": "hello-v1.wasm", "preinit": false },
    "todo": { "module": "todo-v1.wasm", "grants": { "host": ["log", "storage"] } },
    "todo_plain": { "module": "todo-v1.wasm", "preinit": false, "grants": { "host": ["log", "storage"] } },
    "js": { "module": "js-v1.wasm" } },
  "routes": [
    { "path": "/hello", "app": "hello" }, { "path": "/hello/...", "app": "hello" },
    { "path": "/hp/...", "app": "hello_plain" },
    { "path": "/todo/...", "app": "todo" }, { "path": "/tp/...", "app": "todo_plain" },
    { "path": "/js/...", "app": "js" } ] }
JSON
export WASMHOST_ADMIN_TOKEN=bench
# shellcheck disable=SC2086 # EXTRA is a list of flags
RUST_LOG=error "$WASMHOST" serve --routes routes.json --listen 127.0.0.1:0 --admin-listen 127.0.0.1:0 \
  --data data --no-watch $EXTRA >out 2>err &
PID=$!
for _ in $(seq 1200); do grep -q 'admin API' out 2>/dev/null && break; sleep 0.1; done
ADMIN=$(sed -n 's#^admin API on \(http://[0-9.:]*\).*#\1#p' out)
[ -n "$ADMIN" ] || { echo "never_seen: the server did not start: $(cat err)" >&2; exit 1; }
LISTEN=$(sed -n 's#^wasmhost listening on \(http://[0-9.:]*\).*#\1#p' out)
if [ "$LOAD" -gt 0 ]; then
  wrk -t1 -c"$LOAD" -d600s "$LISTEN/hello" >wrk.out 2>&1 &
  WRK=$!
  sleep 1
fi
tier() { curl -s -H "Authorization: Bearer bench" "$ADMIN/apps/$1" \
  | python3 -c 'import json,sys; print(json.load(sys.stdin).get("tier"))'; }
for app in hello_plain hello todo_plain todo js; do
  file=${app%_plain}-new.wasm
  start=$(date +%s.%N)
  secs=$(curl -s -o resp -w '%{time_total}' -X PUT --data-binary "@$file" \
    -H "Authorization: Bearer bench" "$ADMIN/apps/$app/module")
  grep -q '"changed": true' resp || { echo "never_seen: deploy to $app: $(cat resp)" >&2; exit 1; }
  first=$(tier "$app")
  # The next deploy waits for this one's optimized code, so that no
  # background compile runs beside it.
  for _ in $(seq 3000); do [ "$(tier "$app")" = optimized ] && break; sleep 0.05; done
  optimized=$(python3 -c "import time; print(f'{time.time() - $start:.2f}')")
  echo "$app: $(stat -c %s "$file") bytes, deploy answered after ${secs} s on $first code;" \
    "optimized code served after $optimized s"
done
if [ -n "$WRK" ]; then
  kill -INT "$WRK"; wait "$WRK" 2>/dev/null || true; WRK=
  echo "load: $(grep -E 'Requests/sec|Non-2xx|Socket errors' wrk.out | tr -s ' ' | tr '\n' ' ')"
fi
