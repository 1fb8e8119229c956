#!/usr/bin/env bash
# bench/admin.sh - the admin dashboard (issue 8) on 100,000 users and
# 1,000,000 messages: seeds a scratch database (echobot db seed: prepared
# statements, one transaction per million rows) and prints the seeding time,
# then `echobot admin bench` (the dashboard's aggregations and SVG charts
# in-process, with the query plans), then the pages over HTTP through a real
# `echobot serve` logged in as an admin: GET /admin and each chart, the best
# and median of RUNS requests. Target: the dashboard under 200 ms.
#
#   bench/admin.sh                                  # build/release's echobot
#   ECHOBOT=path/to/echobot USERS=10000 MESSAGES=100000 bench/admin.sh
#
# Everything lives in a scratch folder removed at the end; the server
# listens on a free loopback port and is stopped at the end.
set -euo pipefail
cd "$(dirname "$0")/.."

USERS=${USERS:-100000}
MESSAGES=${MESSAGES:-1000000}
RUNS=${RUNS:-10}

if [ -z "${ECHOBOT:-}" ]; then
  for c in build/release/src/app/echobot build/rel/src/app/echobot; do
    [ -x "$c" ] && ECHOBOT=$c && break
  done
fi
if [ -z "${ECHOBOT:-}" ] || [ ! -x "$ECHOBOT" ]; then
  echo "bench/admin.sh: no echobot binary (make build, or set ECHOBOT)" >&2
  exit 1
fi

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
mkdir -p "$tmp/instance"
dbfile="$tmp/instance/echo.db"
export ECHO_ENV=development ECHO_LOG_LEVEL=warn ECHO_ANTIBOT_MIN_MS=0 ECHO_RATELIMIT_ENABLED=0

start=$(date +%s.%N)
"$ECHOBOT" db seed --users "$USERS" --messages "$MESSAGES" --batch 1000000 --prefix bench_ \
  --database "$dbfile" >/dev/null
end=$(date +%s.%N)
printf 'seeded %s users and %s messages in %.1f s (echobot db seed --batch 1000000)\n' \
  "$USERS" "$MESSAGES" "$(awk "BEGIN {print $end - $start}")"

"$ECHOBOT" admin bench --runs "$RUNS" --database "$dbfile"

# An admin to log in with, made from the shell.
printf 'benchpassword\n' | "$ECHOBOT" user create --username benchadmin \
  --email benchadmin@example.com --admin --database "$dbfile" >/dev/null

port=$(/usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
ECHO_ACCESS_LOG=0 "$ECHOBOT" serve --host 127.0.0.1 --port "$port" --instance "$tmp/instance" \
  2>"$tmp/server.log" &
pid=$!
for _ in $(seq 1 100); do
  if /usr/bin/python3 -c "import socket; socket.create_connection(('127.0.0.1',$port),0.2)" 2>/dev/null; then
    break
  fi
  kill -0 "$pid" 2>/dev/null || { cat "$tmp/server.log" >&2; exit 1; }
  sleep 0.1
done
base="http://127.0.0.1:$port"
jar="$tmp/cookies"
page=$(curl -s -c "$jar" -b "$jar" "$base/login")
field() { sed -n "s/.*name=\"$1\" value=\"\\([^\"]*\\)\".*/\\1/p" <<<"$page" | head -1; }
curl -s -o /dev/null -c "$jar" -b "$jar" \
  --data-urlencode "csrf_token=$(field csrf_token)" --data-urlencode "form_ts=$(field form_ts)" \
  --data-urlencode "website=" --data-urlencode "username=benchadmin" \
  --data-urlencode "password=benchpassword" "$base/login"
code=$(curl -s -o /dev/null -w '%{http_code}' -b "$jar" "$base/admin")
[ "$code" = 200 ] || { echo "bench/admin.sh: GET /admin answers $code after login" >&2; exit 1; }

# Prints the best and median time of RUNS requests of a path.
timeit() {
  local path=$1 times
  times=$(for _ in $(seq 1 "$RUNS"); do
    curl -s -o /dev/null -b "$jar" -w '%{time_total}\n' "$base$path"
  done | sort -n)
  printf '  GET %-28s best %7.1f ms   median %7.1f ms\n' "$path" \
    "$(head -1 <<<"$times" | awk '{print $1 * 1000}')" \
    "$(sed -n "$(( (RUNS + 1) / 2 ))p" <<<"$times" | awk '{print $1 * 1000}')"
}
echo "over HTTP (echobot serve, curl, $RUNS requests each; the chart SVGs come from the page's 20-second cache, as they do for a browser):"
for path in /admin /admin/charts/signups.svg /admin/charts/messages.svg \
  /admin/charts/lengths.svg /admin/charts/signups.png /admin/users /admin/messages; do
  timeit "$path"
done
