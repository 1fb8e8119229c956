#!/usr/bin/env bash
# bench/engine.sh - the engine's speed on the full-size random models
# (Qwen2.5-1.5B shapes), side by side with the llama.cpp reference on the same
# files, with the same threads, in the same run (docs/PERF.md, "Engine").
#
# For each weight type it runs `echobot bench -m FILE -t THREADS -p 512 -n 128
# -r REPS` (which prints the measured read bandwidth and the share of the
# bandwidth limit reached), then, when it exists, llama.cpp's
#   llama-bench -m FILE -t THREADS -p 512 -n 128 -r REPS
# and prints one table: prompt (pp512) and generation (tg128) tokens/s of
# both and the ratio Echo / llama.cpp.
#
#   bench/engine.sh                        # q8_0 q4_0 f16 q4_k_m, 2 threads
#   TYPES="q8_0 q4_0" THREADS=2 REPS=3 bench/engine.sh
#   ECHOBOT=path/to/echobot LLAMA_BENCH=path/to/llama-bench bench/engine.sh
#
# Models are written by tools/make_test_model.py when missing (about 1-3
# minutes and 0.9-3.1 GB each) into ECHO_BENCH_MODELS (default
# /tmp/echo-bench-models), outside the tree. The reference is built by
# ../shared/tools/build-llama-reference.sh into $HOME/llama-ref (default
# LLAMA_BENCH: $HOME/llama-ref/lcpp/build/bin/llama-bench); without it only
# Echo's figures are printed.
set -euo pipefail
cd "$(dirname "$0")/.."

TYPES=${TYPES:-q8_0 q4_0 f16 q4_k_m}
THREADS=${THREADS:-2}
PROMPT=${PROMPT:-512}
GEN=${GEN:-128}
REPS=${REPS:-3}
MODELS=${ECHO_BENCH_MODELS:-/tmp/echo-bench-models}
LLAMA_BENCH=${LLAMA_BENCH:-$HOME/llama-ref/lcpp/build/bin/llama-bench}

if [ -z "${ECHOBOT:-}" ]; then
  for c in build/release/src/app/echobot build/rel/src/app/echobot build/release/echobot; do
    [ -x "$c" ] && ECHOBOT=$c && break
  done
fi
if [ -z "${ECHOBOT:-}" ] || [ ! -x "$ECHOBOT" ]; then
  echo "bench/engine.sh: no echobot binary (make build, or set ECHOBOT)" >&2
  exit 1
fi
have_llama=0
if [ -x "$LLAMA_BENCH" ]; then
  have_llama=1
else
  echo "bench/engine.sh: no llama.cpp reference at $LLAMA_BENCH (build it with" \
       "../shared/tools/build-llama-reference.sh); Echo's figures only" >&2
fi

mkdir -p "$MODELS"
OUT=$(mktemp -d)
trap 'rm -rf "$OUT"' EXIT

echo "engine.sh: $(date -u '+%Y-%m-%d %H:%M UTC'), $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), $(nproc) CPUs, load average $(cut -d' ' -f1-3 /proc/loadavg)"
echo "echobot: $ECHOBOT; threads $THREADS, pp$PROMPT, tg$GEN, $REPS repetitions"
for t in $TYPES; do
  f="$MODELS/full-$t.gguf"
  if [ ! -f "$f" ]; then
    echo "== writing $f"
    /usr/bin/python3 tools/make_test_model.py gguf "$f" --size full --type "$t"
  fi
  echo
  echo "== $t: echobot bench -m $f -t $THREADS -p $PROMPT -n $GEN -r $REPS"
  "$ECHOBOT" bench -m "$f" -t "$THREADS" -p "$PROMPT" -n "$GEN" -r "$REPS" | tee "$OUT/echo-$t.txt"
  if [ "$have_llama" = 1 ]; then
    echo "== $t: llama-bench -m $f -t $THREADS -p $PROMPT -n $GEN -r $REPS"
    "$LLAMA_BENCH" -m "$f" -t "$THREADS" -p "$PROMPT" -n "$GEN" -r "$REPS" -o json \
      2>/dev/null > "$OUT/llama-$t.json" || echo "llama-bench failed on $f" >&2
  fi
done

echo
/usr/bin/python3 - "$OUT" "$PROMPT" "$GEN" $TYPES <<'EOF'
import json, os, re, sys
out, pp, tg, types = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4:]

def echo(t):
    """pp/tg mean tokens/s from echobot bench's table (| ppN | mean | sd | best |)."""
    res = {}
    try:
        for line in open(os.path.join(out, "echo-%s.txt" % t)):
            m = re.match(r"\|\s*(pp|tg)(\d+)\s*\|\s*([\d.]+)\s*\|\s*([\d.]+)", line)
            if m:
                res[m.group(1)] = (float(m.group(3)), float(m.group(4)))
    except OSError:
        pass
    return res

def llama(t):
    res = {}
    try:
        with open(os.path.join(out, "llama-%s.json" % t)) as f:
            for r in json.load(f):
                key = "pp" if r["n_gen"] == 0 else "tg"
                res[key] = (r["avg_ts"], r["stddev_ts"])
    except (OSError, ValueError, KeyError):
        pass
    return res

def cell(v):
    return "%.1f +- %.1f" % v if v else "-"

def ratio(a, b):
    return "%.2fx" % (a[0] / b[0]) if a and b and b[0] > 0 else "-"

print("| weights | test | Echo tokens/s | llama.cpp tokens/s | Echo / llama.cpp |")
print("|---|---|---|---|---|")
for t in types:
    e, l = echo(t), llama(t)
    for key, n in (("pp", pp), ("tg", tg)):
        if n > 0:
            print("| %s | %s%d | %s | %s | %s |" % (t, key, n, cell(e.get(key)), cell(l.get(key)),
                                                 ratio(e.get(key), l.get(key))))
EOF
