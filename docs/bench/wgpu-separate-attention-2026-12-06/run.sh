#!/bin/bash
# What a wgpu training step of the separate q/k/v path keeps, before and after its attention
# became one op that recomputes the probabilities when large (gpu_train_ops::attention,
# 2026-12-06): LoRA rank 8 on q_proj and v_proj of the random SmolLM2-135M twin (the base
# frozen), one 1,024-token sequence, on lavapipe (device memory is host memory there, so a
# process's peak RSS holds it).
# Usage: run.sh BEFORE AFTER OUT_DIR (from the repository root; the binaries are
# `examples/train_probe` builds with PROBE_LORA, of the code before the op (its commit's parent,
# with train_probe.rs of after) and after, copied aside). On 2026-12-06 each pair ran side by side.
set -e
before=$1 after=$2 out=${3:-/tmp/separate-attention}; mkdir -p "$out"
. scripts/env.sh
for precision in f32 mixed; do
  for w in before after; do
    bin=$before; [ $w = after ] && bin=$after
    PROBE_DEVICE=wgpu PROBE_PRECISION=$precision PROBE_LORA=8 /usr/bin/time -v "$bin" 1024 1 > "$out/$precision-$w.log" 2>&1
  done
done
grep -H -E "^step|Maximum resident" "$out"/*.log
# Launches of one 64-token LoRA step (the probabilities kept at this length), before and after.
PROBE_LORA=8 scripts/train_launch_count.sh "$before" "$out/launches-lora-before" 64 on
PROBE_LORA=8 scripts/train_launch_count.sh "$after" "$out/launches-lora-after" 64 on
