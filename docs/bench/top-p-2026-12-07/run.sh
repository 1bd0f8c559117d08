#!/usr/bin/env bash
# What top-p costs a sampled decode step, as the difference between plain temperature sampling
# and top-p 0.9 on the same batch (each its own process, rounds alternating): on the CPU the
# host sampler's sort of each 49k-wide row; on wgpu our sampling kernel's boundary search
# (shaders/nucleus.rs), and with MEMTRAIN_NO_GPU_KERNELS=1 the logits' copy to the host and
# the host's sort. Random-weight SmolLM2-135M twin.
# Usage: docs/bench/top-p-2026-12-07/run.sh MEMTRAIN_BINARY OUT_DIR [ROUNDS]
set -euo pipefail
bin=$1 out=$2 rounds=${3:-2}
mkdir -p "$out"
one() { # $1 device, $2 name, then extra options
  local device=$1 name=$2
  shift 2
  "$bin" bench generate --model random:smollm2-135m --device "$device" --batch 32 --prompt-tokens 16 \
    --decode-tokens 24 --temperature 1 "$@" --json "$out/$device-$name-r$round.json" | tee -a "$out/$device.md"
}
for round in $(seq 1 "$rounds"); do
  one cpu t1
  one cpu top-p --top-p 0.9
  one wgpu t1
  one wgpu top-p --top-p 0.9
  MEMTRAIN_NO_GPU_KERNELS=1 one wgpu t1-kernels-off
  MEMTRAIN_NO_GPU_KERNELS=1 one wgpu top-p-kernels-off --top-p 0.9
done
