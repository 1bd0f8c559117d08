#!/bin/bash
# Our wgpu training ops (RMSNorm, SiLU·up, RoPE, softmax with backward kernels; AdamW in one
# kernel) against the code before them, on lavapipe: device memory is host memory there, so a
# row's peak RSS holds it. One training step of the random SmolLM2-135M twin at 512 tokens, f32
# alone and with --f16 (f32 rows, then mixed-f16 rows), each a process of its own.
# Usage: run.sh BEFORE_BINARY AFTER_BINARY OUT_DIR (from the repository root).
# On 2026-12-06 only the f32 rows ran (before: ce2e327, after: 4a243cb; ~17 min each on lavapipe
# beside a CI run): before-f32.*, after-f32.*, peak-rss.txt.
set -e
before=$1 after=$2 out=${3:-/tmp/trainops}; mkdir -p "$out"
. scripts/env.sh
common="--model random:smollm2-135m --devices wgpu --batches 1 --decode-tokens 4 --prompt-tokens 16 --train-seqs 512 --no-grpo --peers none"
for which in before after; do
  bin=${!which}
  /usr/bin/time -v $bin bench suite $common --json "$out/$which-f32.json" --markdown "$out/$which-f32.md" > "$out/$which-f32.log" 2>&1
  /usr/bin/time -v $bin bench suite $common --f16 --json "$out/$which-mixed.json" --markdown "$out/$which-mixed.md" > "$out/$which-mixed.log" 2>&1
done
echo finished > "$out/done"
