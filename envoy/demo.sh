#!/usr/bin/env bash
# `make demo` / `make demo-stop`: the example gRPC service on 127.0.0.1:50051 and
# Envoy on 127.0.0.1:8080 (admin 127.0.0.1:9901) with the rust-grpc-proxy filter.
# Expects `make demo` to have built everything (wasm, example service, descriptors, venv).
#
#   envoy/demo.sh start    start both, print curl lines, wait; Ctrl-C stops both
#   envoy/demo.sh stop     stop a demo started with DEMO_DETACH=1 (or left behind)
#
# The service keeps its data in memory (`serve --stateful`), and the filter runs with
# envoy/demo-options.json: the options we recommend, unknown routes answered 404 JSON.
#
# Environment: DEMO_FLAVOUR=wasm|native (native = Envoy's own grpc_json_transcoder),
# DEMO_DETACH=1 (return once both are up), DEMO_STREAM=array|ndjson|sse (server-stream format),
# DEMO_LISTEN_PORT, DEMO_ADMIN_PORT, DEMO_BACKEND_PORT, DEMO_ENVOY, DEMO_WASM, DEMO_DESCRIPTORS,
# DEMO_EXAMPLE_SERVICE (what runs), DEMO_DIR (config, logs and pid files;
# default build/, so that a second demo with its own DEMO_DIR and ports leaves the first alone).
set -euo pipefail
cd "$(dirname "$0")/.."

BUILD=build
STATE=${DEMO_DIR:-$BUILD}
OPTIONS=envoy/demo-options.json
FLAVOUR=${DEMO_FLAVOUR:-wasm}
LISTEN_PORT=${DEMO_LISTEN_PORT:-8080}
ADMIN_PORT=${DEMO_ADMIN_PORT:-9901}
BACKEND_PORT=${DEMO_BACKEND_PORT:-50051}
EXAMPLE_BIN=${DEMO_EXAMPLE_SERVICE:-target/release/example-service}
ENVOY_BIN=${DEMO_ENVOY:-.venv/bin/envoy}
WASM=${DEMO_WASM:-$BUILD/rust_grpc_proxy.wasm}
DESCRIPTORS=${DEMO_DESCRIPTORS:-$BUILD/descriptors.pb}
CONFIG=$STATE/demo-envoy.yaml
EXAMPLE_PID=$STATE/demo-example-service.pid
ENVOY_PID=$STATE/demo-envoy.pid
EXAMPLE_LOG=$STATE/demo-example-service.log
ENVOY_LOG=$STATE/demo-envoy.log

stop_pidfile() {
  local file=$1 pid
  [[ -f $file ]] || return 0
  pid=$(<"$file")
  if [[ -n $pid ]] && kill -0 "$pid" 2>/dev/null; then
    kill "$pid" 2>/dev/null || true
    for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -9 "$pid" 2>/dev/null || true
  fi
  rm -f "$file"
}

stop() {
  stop_pidfile "$ENVOY_PID"
  stop_pidfile "$EXAMPLE_PID"
}

port_busy() {  # true if something accepts connections on 127.0.0.1:$1
  (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

wait_until() {  # wait_until SECONDS DESCRIPTION COMMAND... (COMMAND's status 2 = give up)
  local seconds=$1 what=$2 rc; shift 2
  for _ in $(seq $((seconds * 10))); do
    rc=0; "$@" || rc=$?
    case $rc in 0) return 0 ;; 2) return 1 ;; esac
    sleep 0.1
  done
  echo "demo: timed out waiting for $what" >&2
  return 1
}

case "${1:-start}" in
  stop) stop; echo "demo stopped"; exit 0 ;;
  start) ;;
  *) echo "usage: $0 [start|stop]" >&2; exit 2 ;;
esac

case $FLAVOUR in
  wasm|native) ;;
  *) echo "demo: DEMO_FLAVOUR must be wasm or native" >&2; exit 2 ;;
esac
needed=("$EXAMPLE_BIN" "$ENVOY_BIN" "$DESCRIPTORS")
[[ $FLAVOUR == wasm ]] && needed+=("$WASM")
for f in "${needed[@]}"; do
  [[ -e $f ]] || { echo "demo: $f is missing: run 'make demo' (it builds everything first)" >&2; exit 1; }
done

stop  # leftovers of an earlier detached demo
for port in "$LISTEN_PORT" "$ADMIN_PORT" "$BACKEND_PORT"; do
  if port_busy "$port"; then
    echo "demo: 127.0.0.1:$port is already in use (another demo? 'make demo-stop')" >&2
    exit 1
  fi
done

# DEMO_STREAM=ndjson|sse: the same options with that print option for server streams.
OPTIONS_ARGS=(--options "$OPTIONS")
case "${DEMO_STREAM:-array}" in
  array) ;;
  ndjson|sse)
    OPTIONS_ARGS=(--options "$(.venv/bin/python - "$DEMO_STREAM" "$OPTIONS" <<'PY'
import json, sys
options = json.load(open(sys.argv[2]))
key = {"ndjson": "stream_newline_delimited", "sse": "stream_sse_style_delimited"}[sys.argv[1]]
options.setdefault("print_options", {})[key] = True
print(json.dumps(options))
PY
)") ;;
  *) echo "demo: DEMO_STREAM must be array, ndjson or sse" >&2; exit 1 ;;
esac

mkdir -p "$STATE"
.venv/bin/python envoy/render.py --flavour "$FLAVOUR" \
  --descriptor "$DESCRIPTORS" --wasm "$WASM" \
  --listen-port "$LISTEN_PORT" --admin-port "$ADMIN_PORT" --backend "127.0.0.1:$BACKEND_PORT" \
  "${OPTIONS_ARGS[@]}" --out "$CONFIG"

trap 'stop; exit 130' INT TERM
"$EXAMPLE_BIN" serve --stateful --listen "127.0.0.1:$BACKEND_PORT" >"$EXAMPLE_LOG" 2>&1 &
echo $! >"$EXAMPLE_PID"
example_ready() {
  kill -0 "$(<"$EXAMPLE_PID")" 2>/dev/null || { echo "demo: the example service exited" >&2; return 2; }
  grep -q "listening on" "$EXAMPLE_LOG"
}
if ! wait_until 30 "the example service" example_ready; then
  cat "$EXAMPLE_LOG" >&2; stop; exit 1
fi

"$ENVOY_BIN" -c "$CONFIG" --disable-hot-restart -l info >"$ENVOY_LOG" 2>&1 &
echo $! >"$ENVOY_PID"
envoy_ready() {
  kill -0 "$(<"$ENVOY_PID")" 2>/dev/null || { echo "demo: Envoy exited; $ENVOY_LOG:" >&2; tail -20 "$ENVOY_LOG" >&2; return 2; }
  .venv/bin/python - "$ADMIN_PORT" <<'PY'
import sys, urllib.request
try:
    sys.exit(0 if urllib.request.urlopen(f"http://127.0.0.1:{sys.argv[1]}/ready", timeout=1).status == 200 else 1)
except OSError:
    sys.exit(1)
PY
}
if ! wait_until 60 "Envoy's /ready" envoy_ready; then stop; exit 1; fi

B="http://127.0.0.1:$LISTEN_PORT"
cat <<EOF

Demo running: Envoy ($FLAVOUR transcoder) on $B, admin http://127.0.0.1:$ADMIN_PORT,
example gRPC service on 127.0.0.1:$BACKEND_PORT (data in memory: a restart resets it).
Config $CONFIG (options $OPTIONS); logs $ENVOY_LOG and $EXAMPLE_LOG; pids in $STATE/demo-*.pid.

Try (the README's walkthrough has more, with the answers):
  curl '$B/api/v1/echo/hello/get?query=666' -H 'MD-hello: world'
  curl $B/v1/shelves
  curl -X POST $B/v1/shelves -d '{"theme": "Poetry"}'
  curl $B/v1/shelves/1/books/1
  curl -i $B/v1/fail/5            # gRPC NOT_FOUND -> HTTP 404 + google.rpc.Status JSON
  curl -i $B/v1/nope              # no such route -> 404 + google.rpc.Status JSON
  curl -N $B/v1/shelves/1/books:stream?count=3
  curl -s 'http://127.0.0.1:$ADMIN_PORT/stats?filter=rust_grpc_proxy'   # the filter's metrics

Native gRPC goes through the same listener untouched (HTTP/2 cleartext), e.g. an
empty ListShelves call with curl (a gRPC frame: 0 = uncompressed, length 0):
  printf '\\0\\0\\0\\0\\0' | curl -s --http2-prior-knowledge -H 'content-type: application/grpc' \\
    -H 'te: trailers' --data-binary @- $B/bookstore.v1.Bookstore/ListShelves -o - | od -c | head
or with grpcurl, if you have it (Debian has none):
  grpcurl -plaintext -protoset $DESCRIPTORS 127.0.0.1:$LISTEN_PORT bookstore.v1.Bookstore/ListShelves

EOF

if [[ ${DEMO_DETACH:-0} == 1 ]]; then
  trap - INT TERM
  if [[ $STATE == "$BUILD" ]]; then echo "Detached: 'make demo-stop' stops both."
  else echo "Detached: 'DEMO_DIR=$STATE make demo-stop' stops both."; fi
  exit 0
fi

# The trap before the message: a Ctrl-C right after it must already find it.
trap 'echo; stop; echo "demo stopped"; exit 0' INT TERM
echo "Ctrl-C stops both."
# Poll until one of them exits on its own (then stop the other) or Ctrl-C.
# (On Ctrl-C the terminal signals the whole group: Envoy and the service may exit
# by themselves first; the trap runs as soon as the `sleep` is interrupted.)
while kill -0 "$(<"$EXAMPLE_PID")" 2>/dev/null && kill -0 "$(<"$ENVOY_PID")" 2>/dev/null; do
  sleep 0.5
done
echo "demo: a process exited on its own; see $ENVOY_LOG and $EXAMPLE_LOG" >&2
stop
exit 1
