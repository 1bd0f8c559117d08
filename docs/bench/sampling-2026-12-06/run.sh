#!/usr/bin/env bash
# Host sampling's cost per decode step (what GRPO's rollouts pay at temperature 1 where the
# logits go to the host: the CPU, and wgpu before shaders/sample.rs), as the difference between
# greedy and sampled decoding of the same batch in one process kind, each its own process.
# On a GPU run it with --device wgpu to see the sampling kernel's row (scripts/bench_gpu.sh).
# Usage: docs/bench/sampling-2026-12-06/run.sh MEMTRAIN_BINARY OUT_DIR [DEVICE]
set -euo pipefail
bin=$1 out=$2 device=${3:-cpu}
mkdir -p "$out"
for t in 0 1; do
  "$bin" bench generate --model random:smollm2-135m --device "$device" --batch 32 --prompt-tokens 16 --decode-tokens 24 --temperature $t --json "$out/$device-t$t.json" | tee -a "$out/$device.md"
done
