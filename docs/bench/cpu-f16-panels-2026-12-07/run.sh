#!/usr/bin/env bash
# CPU decode with the decode kernels' weight panels in f32 (default) and in f16 (`--f16`), on
# the real SmolLM2-135M-Instruct GGUF (the default model), greedy, 128-token prompts, 64 decoded
# tokens per sequence, batches 1, 4 and 16; each a process, rounds alternating the two.
# Usage: docs/bench/cpu-f16-panels-2026-12-07/run.sh MEMTRAIN_BINARY OUT_DIR [ROUNDS]
set -euo pipefail
bin=$1 out=$2 rounds=${3:-3}
mkdir -p "$out"
one() { # $1 batch, $2 name, then extra options
  local batch=$1 name=$2
  shift 2
  "$bin" bench generate --device cpu --batch "$batch" "$@" --json "$out/b$batch-$name-r$round.json" | tee -a "$out/cpu.md"
}
for round in $(seq 1 "$rounds"); do
  for batch in 1 4 16; do
    one "$batch" f32
    one "$batch" f16 --f16
  done
done
