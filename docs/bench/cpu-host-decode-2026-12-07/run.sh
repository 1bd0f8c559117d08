#!/usr/bin/env bash
# CPU decode before and after the few-row forward on host buffers (`model::host_decode`) and
# the grouped, vectorised, column-split decode attention (`kernels::decode_attention`), on the
# real SmolLM2-135M-Instruct GGUF (the default model): greedy, 128- and 512-token prompts, 64
# decoded tokens per sequence, batches 1 and 16, decode panels in f32 (default) and f16
# (`--f16`); each a process, the two binaries alternating within every round.
# Usage: docs/bench/cpu-host-decode-2026-12-07/run.sh BEFORE_BINARY AFTER_BINARY OUT_DIR [ROUNDS]
# then summary.py OUT_DIR prints the medians.
set -euo pipefail
before=$1 after=$2 out=$3 rounds=${4:-3}
mkdir -p "$out"
for round in $(seq 1 "$rounds"); do
  for prompt in 128 512; do
    for batch in 1 16; do
      for precision in f32 f16; do
        flag=$([ "$precision" = f16 ] && echo --f16 || true)
        for which in before after; do
          bin=$([ "$which" = before ] && echo "$before" || echo "$after")
          "$bin" bench generate --device cpu --batch "$batch" --prompt-tokens "$prompt" --decode-tokens 64 $flag \
            --json "$out/$which-p$prompt-b$batch-$precision-r$round.json" | tail -1 | sed "s/^/$which /" | tee -a "$out/runs.md"
        done
      done
    done
  done
done
