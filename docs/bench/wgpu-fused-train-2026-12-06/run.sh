#!/bin/bash
# Mixed precision with f16 inside the layer, and the fused q/k/v and gate/up projections in a
# wgpu training step, against the code before them, on lavapipe (device memory is host memory
# there, so a process's peak RSS holds it; launch counts are the same on any adapter).
# Usage: run.sh BEFORE_TRAIN_PROBE AFTER_TRAIN_PROBE OUT_DIR (from the repository root; the
# binaries are `examples/train_probe` builds of each commit, copied aside).
# On 2026-12-06: before = e9c19ce + the probe's PROBE_PRECISION switch (49c4199's probe),
# after = 65311c2.
set -e
before=$1 after=$2 out=${3:-/tmp/fused-train}; mkdir -p "$out"
. scripts/env.sh
for which in before after; do
  bin=${!which}
  # One 1,024-token training step after a warm-up (random SmolLM2-135M twin), each its own process.
  for precision in mixed f32; do
    PROBE_DEVICE=wgpu PROBE_PRECISION=$precision /usr/bin/time -v "$bin" 1024 1 > "$out/$which-$precision-1024.log" 2>&1
  done
  # Launches of one 64-token step.
  scripts/train_launch_count.sh "$bin" "$out/launches-$which-f32" 64 on
  PROBE_PRECISION=mixed scripts/train_launch_count.sh "$bin" "$out/launches-$which-mixed" 64 on
done
grep -H -E "^step|Maximum resident" "$out"/*.log
