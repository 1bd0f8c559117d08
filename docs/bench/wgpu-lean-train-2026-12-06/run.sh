#!/bin/bash
# What a wgpu training step keeps, before and after (2026-12-06, night): attention's
# probabilities recomputed in the backward (656304a) and the projections' products keeping the
# weights' own buffers instead of concatenated / f16-cast copies (18bdaa9), on lavapipe (device
# memory is host memory there, so a process's peak RSS holds it; launch counts are the same on
# any adapter).
# Usage: run.sh BEFORE AFTER_ATTENTION AFTER_BOTH OUT_DIR (from the repository root; the
# binaries are `examples/train_probe` builds of 65311c2 (before), 656304a and the final code,
# copied aside). On 2026-12-06 the 1,024-token "both" runs used 18bdaa9's build (which
# recomputed the probabilities at every length; at 1,024 tokens the final code does the same)
# and the launch counts df12d3e's (which keeps them at 64 tokens).
set -e
before=$1 attention=$2 both=$3 out=${4:-/tmp/lean-train}; mkdir -p "$out"
. scripts/env.sh
# One 1,024-token training step after a warm-up (random SmolLM2-135M twin), each its own process.
PROBE_DEVICE=wgpu PROBE_PRECISION=f32 /usr/bin/time -v "$attention" 1024 1 > "$out/attention-f32-1024.log" 2>&1
for precision in f32 mixed; do
  PROBE_DEVICE=wgpu PROBE_PRECISION=$precision /usr/bin/time -v "$both" 1024 1 > "$out/both-$precision-1024.log" 2>&1
done
PROBE_DEVICE=wgpu PROBE_PRECISION=mixed /usr/bin/time -v "$before" 1024 1 > "$out/before-mixed-1024.log" 2>&1
# (before-f32: docs/bench/wgpu-fused-train-2026-12-06/after-f32-1024.log, the same binary.)
# Launches of one 64-token step.
scripts/train_launch_count.sh "$both" "$out/launches-both-f32" 64 on
PROBE_PRECISION=mixed scripts/train_launch_count.sh "$both" "$out/launches-both-mixed" 64 on
grep -H -E "^step|Maximum resident" "$out"/*.log
