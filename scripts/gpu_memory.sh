#!/usr/bin/env bash
# Issue 7 item 4 on a lent GPU: does a SmolLM2-360M GRPO step fit in 8 GB? One `bench train`
# step (4 documents × 8 rollouts + 4 recall answers each, micro-batches of 16 conversations)
# of the random-weight 360M twin on wgpu per way of training, each in its own process, with
# the GPU allocator's pools after the step (in the report) and nvidia-smi's reading beside it.
# The same commands with --device cpu gave the host figures in README (Performance, Memory).
# Usage: scripts/gpu_memory.sh MEMTRAIN_BINARY OUT_DIR   (from the repo root; no network needed)
set -uo pipefail
bin=$1 out=$2
mkdir -p "$out"
common=(bench train --model random:smollm2-360m --tokenizer tests/fixtures/tokenizer/smollm2_hf --device wgpu --warmup)
run() {
  local name=$1; shift
  nvidia-smi --query-gpu=memory.used --format=csv,noheader,nounits -lms 200 > "$out/$name-smi.csv" 2>/dev/null &
  local smi=$!
  timeout "${STEP_SECONDS:-240}" "$bin" "${common[@]}" "$@" --json "$out/$name.json" > "$out/$name.txt" 2>&1
  kill $smi 2>/dev/null
  echo "$name: $(tail -1 "$out/$name.txt"); nvidia-smi peak $(sort -n "$out/$name-smi.csv" 2>/dev/null | tail -1) MiB"
}
run lora16 --lora 16
run top10 --trainable-layers 10
run full-checkpointing --checkpointing
run full-mb4 --micro-batch 4
run full
