#!/usr/bin/env bash
# bootstrap.sh [run|test|bench] - installs what Echo needs on Debian 12, and only
# what is missing: safe to run again, non-interactive, works as root (CI=true)
# or through sudo. `run` is enough to build and serve; `test` adds the compilers,
# Python and browser used by the test suite; `bench` adds the load generator.
set -euo pipefail
profile=${1:-run}
cd "$(dirname "$0")/.."

run_pkgs=(build-essential cmake pkg-config git curl ca-certificates
          libmicrohttpd-dev libwslay-dev libjansson-dev libsodium-dev libsqlite3-dev
          libpcre2-dev libutf8proc-dev libvips-dev libcurl4-openssl-dev nettle-dev)
test_pkgs=(clang libclang-rt-14-dev libcmocka-dev sqlite3
           python3 python3-pytest python3-requests python3-socketio python3-websocket
           python3-numpy python3-jinja2 python3-cryptography chromium)
bench_pkgs=(wrk)

want=("${run_pkgs[@]}")
case "$profile" in
  run) ;;
  test) want+=("${test_pkgs[@]}") ;;
  bench) want+=("${test_pkgs[@]}" "${bench_pkgs[@]}") ;;
  *) echo "bootstrap: unknown profile '$profile' (run, test or bench)" >&2; exit 2 ;;
esac
# Node and npm build the front-end; a machine that already has a node keeps it.
command -v node >/dev/null 2>&1 || want+=(nodejs)
command -v npm >/dev/null 2>&1 || want+=(npm)

missing=()
for p in "${want[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "bootstrap: installing ${missing[*]}"
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  export DEBIAN_FRONTEND=noninteractive
  $sudo apt-get update -qq
  $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# Front-end packages: reinstalled only when the lock file changed.
stamp=node_modules/.echo-lock-stamp
if [ ! -f "$stamp" ] || ! cmp -s package-lock.json "$stamp"; then
  echo "bootstrap: npm ci"
  npm ci --no-audit --no-fund --loglevel=error >/dev/null
  cp package-lock.json "$stamp"
fi

# Vendor the browser libraries into static/vendor/ (served by Echo itself).
mkdir -p static/vendor
for f in node_modules/socket.io-client/dist/socket.io.min.js \
         node_modules/marked/lib/marked.umd.js \
         node_modules/dompurify/dist/purify.min.js; do
  [ -f "$f" ] || { echo "bootstrap: $f is missing after npm ci" >&2; exit 1; }
  cmp -s "$f" "static/vendor/$(basename "$f")" || cp "$f" static/vendor/
done
