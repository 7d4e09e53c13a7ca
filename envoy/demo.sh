#!/usr/bin/env bash
# `make demo` / `make demo-stop`: the example gRPC service on 127.0.0.1:50051 and
# Envoy on 127.0.0.1:8080 (admin 127.0.0.1:9901) with the rust-grpc-proxy filter.
# Expects `make demo` to have built everything (wasm, example service, descriptors, venv).
#
#   envoy/demo.sh start    start both, print curl lines, wait; Ctrl-C stops both
#   envoy/demo.sh stop     stop a demo started with DEMO_DETACH=1 (or left behind)
#
# Environment: DEMO_FLAVOUR=wasm|native (native = Envoy's own grpc_json_transcoder),
# DEMO_DETACH=1 (return once both are up), DEMO_STREAM=array|ndjson|sse (server-stream format), DEMO_LISTEN_PORT, DEMO_ADMIN_PORT, DEMO_BACKEND_PORT.
set -euo pipefail
cd "$(dirname "$0")/.."

BUILD=build
FLAVOUR=${DEMO_FLAVOUR:-wasm}
LISTEN_PORT=${DEMO_LISTEN_PORT:-8080}
ADMIN_PORT=${DEMO_ADMIN_PORT:-9901}
BACKEND_PORT=${DEMO_BACKEND_PORT:-50051}
EXAMPLE_BIN=${DEMO_EXAMPLE_SERVICE:-target/release/example-service}
ENVOY_BIN=.venv/bin/envoy
CONFIG=$BUILD/demo-envoy.yaml
EXAMPLE_PID=$BUILD/demo-example-service.pid
ENVOY_PID=$BUILD/demo-envoy.pid
EXAMPLE_LOG=$BUILD/demo-example-service.log
ENVOY_LOG=$BUILD/demo-envoy.log

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
needed=("$EXAMPLE_BIN" "$ENVOY_BIN" "$BUILD/descriptors.pb")
[[ $FLAVOUR == wasm ]] && needed+=("$BUILD/rust_grpc_proxy.wasm")
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

# DEMO_STREAM=ndjson|sse: envoy/transcoder-options.json with that print option for server streams.
OPTIONS_ARGS=()
case "${DEMO_STREAM:-array}" in
  array) ;;
  ndjson|sse)
    OPTIONS_ARGS=(--options "$(.venv/bin/python - "$DEMO_STREAM" <<'PY'
import json, sys
options = json.load(open("envoy/transcoder-options.json"))
key = {"ndjson": "stream_newline_delimited", "sse": "stream_sse_style_delimited"}[sys.argv[1]]
options.setdefault("print_options", {})[key] = True
print(json.dumps(options))
PY
)") ;;
  *) echo "demo: DEMO_STREAM must be array, ndjson or sse" >&2; exit 1 ;;
esac

mkdir -p "$BUILD"
.venv/bin/python envoy/render.py --flavour "$FLAVOUR" \
  --descriptor "$BUILD/descriptors.pb" --wasm "$BUILD/rust_grpc_proxy.wasm" \
  --listen-port "$LISTEN_PORT" --admin-port "$ADMIN_PORT" --backend "127.0.0.1:$BACKEND_PORT" \
  "${OPTIONS_ARGS[@]}" --out "$CONFIG"

trap 'stop; exit 130' INT TERM
"$EXAMPLE_BIN" serve --listen "127.0.0.1:$BACKEND_PORT" >"$EXAMPLE_LOG" 2>&1 &
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
example gRPC service on 127.0.0.1:$BACKEND_PORT.
Config $CONFIG; logs $ENVOY_LOG and $EXAMPLE_LOG; pids in $BUILD/demo-*.pid.

Try:
  curl '$B/api/v1/echo/hello/get?query=666' -H 'MD-hello: world'
  curl $B/v1/shelves
  curl $B/v1/shelves/1/books/2
  curl -X POST $B/v1/shelves -H 'content-type: application/json' -d '{"theme": "Poetry"}'
  curl -X POST $B/api/v1/echo/hi/post -H 'content-type: application/json' -d '{"query": "7"}'
  curl -i $B/v1/fail/5            # gRPC NOT_FOUND -> HTTP 404 + google.rpc.Status JSON
  curl -i -X DELETE $B/v1/shelves/1

Native gRPC goes through the same listener untouched (HTTP/2 cleartext), e.g. an
empty ListShelves call with curl (a gRPC frame: 0 = uncompressed, length 0):
  printf '\\0\\0\\0\\0\\0' | curl -s --http2-prior-knowledge -H 'content-type: application/grpc' \\
    -H 'te: trailers' --data-binary @- $B/bookstore.v1.Bookstore/ListShelves -o - | od -c | head
or with grpcurl, if you have it (Debian has none):
  grpcurl -plaintext -protoset $BUILD/descriptors.pb 127.0.0.1:$LISTEN_PORT bookstore.v1.Bookstore/ListShelves

EOF

if [[ ${DEMO_DETACH:-0} == 1 ]]; then
  trap - INT TERM
  echo "Detached: 'make demo-stop' stops both."
  exit 0
fi

echo "Ctrl-C stops both."
trap 'echo; stop; echo "demo stopped"; exit 0' INT TERM
# Poll until one of them exits on its own (then stop the other) or Ctrl-C.
# (On Ctrl-C the terminal signals the whole group: Envoy and the service may exit
# by themselves first; the trap runs as soon as the `sleep` is interrupted.)
while kill -0 "$(<"$EXAMPLE_PID")" 2>/dev/null && kill -0 "$(<"$ENVOY_PID")" 2>/dev/null; do
  sleep 0.5
done
echo "demo: a process exited on its own; see $ENVOY_LOG and $EXAMPLE_LOG" >&2
stop
exit 1
