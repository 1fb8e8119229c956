#!/usr/bin/env bash
# bench/http.sh - HTTP throughput of `echobot serve` with wrk: the template
# page (GET /, rendered from templates/index.html on every request) and a
# static file (GET /static/css/echo.css, sent with sendfile), each for
# DURATION (10s) with 2 threads and 64 connections. Prints requests/s and the
# 99th percentile latency per target. Target for the template page on a
# 2-core machine: >= 20,000 requests/s (docs/PERF.md, "HTTP").
#
#   bench/http.sh                       # uses build/release's echobot
#   ECHOBOT=path/to/echobot bench/http.sh
#   ECHO_ACCESS_LOG=0 bench/http.sh     # without the per-request log line
#
# The server runs from the repository root (templates/, static/) with a
# scratch instance folder, on a free loopback port, and is stopped at the end.
set -euo pipefail
cd "$(dirname "$0")/.."

DURATION=${DURATION:-10s}
THREADS=${WRK_THREADS:-2}
CONNECTIONS=${WRK_CONNECTIONS:-64}
STATIC_PATH=${STATIC_PATH:-/static/css/echo.css}

if [ -z "${ECHOBOT:-}" ]; then
  for c in build/release/echobot build/release/src/app/echobot; do
    [ -x "$c" ] && ECHOBOT=$c && break
  done
fi
if [ -z "${ECHOBOT:-}" ] || [ ! -x "$ECHOBOT" ]; then
  echo "bench/http.sh: no echobot binary (make build, or set ECHOBOT)" >&2
  exit 1
fi
command -v wrk >/dev/null || { echo "bench/http.sh: wrk is not installed (scripts/bootstrap.sh bench)" >&2; exit 1; }

tmp=$(mktemp -d)
pid=""
cleanup() {
  if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then
    kill -TERM "$pid"
    wait "$pid" || true
  fi
  rm -rf "$tmp"
}
trap cleanup EXIT

port=$(/usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
export ECHO_ACCESS_LOG=${ECHO_ACCESS_LOG:-1}
"$ECHOBOT" serve --host 127.0.0.1 --port "$port" --instance "$tmp/instance" 2>"$tmp/server.log" &
pid=$!
for _ in $(seq 1 100); do
  if /usr/bin/python3 -c "import socket,sys; socket.create_connection(('127.0.0.1',$port),0.2)" 2>/dev/null; then
    break
  fi
  kill -0 "$pid" 2>/dev/null || { cat "$tmp/server.log" >&2; exit 1; }
  sleep 0.1
done

base="http://127.0.0.1:$port"
for path in / "$STATIC_PATH"; do
  code=$(curl -s -o /dev/null -w '%{http_code}' "$base$path")
  [ "$code" = 200 ] || { echo "bench/http.sh: $path answers $code, not 200" >&2; exit 1; }
done

# Prints "<name>: N requests/s, p99 X" from wrk's output.
run() {
  local name=$1 path=$2 out rps p99
  out=$(wrk -t"$THREADS" -c"$CONNECTIONS" -d"$DURATION" --latency "$base$path")
  rps=$(awk '/^Requests\/sec:/ {printf "%.0f", $2}' <<<"$out")
  p99=$(awk '$1 == "99%" {print $2}' <<<"$out")
  errors=$(awk '/Non-2xx|Socket errors/ {print}' <<<"$out")
  printf '%-34s %8s requests/s   p99 %s\n' "$name ($path)" "$rps" "$p99"
  [ -z "$errors" ] || printf '  %s\n' "$errors"
}

echo "echobot serve: $ECHOBOT, ECHO_THREADS=${ECHO_THREADS:-4}, access log ${ECHO_ACCESS_LOG}; wrk -t$THREADS -c$CONNECTIONS -d$DURATION; $(nproc) CPUs"
run "template page" /
run "static file" "$STATIC_PATH"
