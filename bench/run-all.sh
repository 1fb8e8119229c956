#!/usr/bin/env bash
# run-all.sh - every benchmark of docs/PERF.md in one go, against the Release
# build (make bench builds it first). Each prints its own figures.
#   ECHOBOT=path/to/echobot bench/run-all.sh
set -euo pipefail
cd "$(dirname "$0")/.."
ECHOBOT=${ECHOBOT:-build/release/src/app/echobot}
SHARED=${ECHO_SHARED_DIR:-../shared}
VOCAB=$SHARED/testdata/qwen2-vocab/ggml-vocab-qwen2.gguf

echo "== HTTP (bench/http.sh)"
ECHOBOT=$ECHOBOT bench/http.sh

if [ -f "$VOCAB" ]; then
  echo "== tokenizer"
  "$ECHOBOT" bench tokenizer -m "$VOCAB"
else
  echo "== tokenizer: skipped ($VOCAB not found)"
fi

echo "== kernels"
"$ECHOBOT" bench kernels

# The engine runs on the full-size model with random weights; it is written
# once (about 1.7 GB) outside the tree.
MODEL=${ECHO_BENCH_MODEL:-build/bench-models/qwen2.5-1.5b-random-q8_0.gguf}
if [ ! -f "$MODEL" ]; then
  echo "== writing the full-size random Q8_0 model to $MODEL"
  mkdir -p "$(dirname "$MODEL")"
  /usr/bin/python3 tools/make_test_model.py --size full --type q8_0 gguf "$MODEL"
fi
echo "== engine ($MODEL)"
"$ECHOBOT" bench -m "$MODEL" -p 512 -n 128 -t 2

echo "== admin dashboard (bench/admin.sh)"
ECHOBOT=$ECHOBOT bench/admin.sh
