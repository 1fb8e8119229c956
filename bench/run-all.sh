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

# The engine on the full-size random models (written once outside the tree,
# ECHO_BENCH_MODELS), side by side with the llama.cpp reference when
# ../shared/tools/build-llama-reference.sh has built it.
echo "== engine (bench/engine.sh)"
ECHOBOT=$ECHOBOT bench/engine.sh

echo "== admin dashboard (bench/admin.sh)"
ECHOBOT=$ECHOBOT bench/admin.sh
