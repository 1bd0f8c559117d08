#!/usr/bin/env bash
# CPU decode with the decode kernels' weight panels in f32 (default), f16 (`--f16`) and 8 bits
# (`--q8`), on the real SmolLM2-135M-Instruct GGUF (the default model), greedy, 128-token
# prompts, 64 decoded tokens per sequence, batches 1, 4 and 16; each a process, rounds
# alternating the three.
# Usage: docs/bench/cpu-q8-panels-2026-12-07/run.sh MEMTRAIN_BINARY OUT_DIR [ROUNDS]
# The binary must be built from the branch q8 (592a264): main has no --q8 (not kept, README).
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
    one "$batch" q8 --q8
  done
done
