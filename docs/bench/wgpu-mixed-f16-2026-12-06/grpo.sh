#!/bin/bash
# One GRPO step (generation, rewards, forward-backward, AdamW) of the random SmolLM2-135M twin on
# lavapipe, f32 then mixed f16, each in its own process (device pools never shared between the
# two). Usage: grpo.sh OUT_DIR (from the repository root, after a release build).
out=${1:-/tmp/grpo}; mkdir -p "$out"
. scripts/env.sh
bin=$CARGO_TARGET_DIR/release/memtrain
args="--model random:smollm2-135m --device wgpu --docs 1 --group 4 --recall-group 2 --memory-tokens 32 --answer-tokens 8 --micro-batch 8"
/usr/bin/time -v timeout 1200 $bin bench train $args --json "$out/f32.json" > "$out/f32.log" 2>&1
/usr/bin/time -v timeout 1200 $bin bench train $args --f16 --json "$out/mixed.json" > "$out/mixed.log" 2>&1
echo finished > "$out/done"
