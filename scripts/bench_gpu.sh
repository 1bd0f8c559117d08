#!/usr/bin/env bash
# The GPU half of the benchmark suite, as it was run on a lent NVIDIA machine (no network there):
# ours on wgpu (Vulkan; f32, then generation in f16) against PyTorch eager CUDA, decode with our
# wgpu kernels off, then ours on flex against PyTorch CPU on
# that machine's cores. Random-weight SmolLM2-135M twin (cost does not depend on the values;
# the 98 MB GGUF does not travel), tokenizer from the committed fixture.
# Usage: scripts/bench_gpu.sh MEMTRAIN_BINARY OUT_DIR
set -uo pipefail
bin=$1 out=$2
mkdir -p "$out"
nvidia-smi --query-gpu=name,memory.used --format=csv,noheader -lms 500 > "$out/gpu-memory.csv" 2>/dev/null &
smi=$!
common=(--model random:smollm2-135m --tokenizer tests/fixtures/tokenizer/smollm2_hf --peers scripts/bench_peers.py)
BENCH_PEERS_TORCH_DEVICES=cuda timeout "${GPU_SECONDS:-300}" "$bin" bench suite "${common[@]}" --devices wgpu --f16 \
  --json "$out/suite-gpu.json" --markdown "$out/suite-gpu.md" 2>&1 | tee "$out/gpu.log"
kill $smi 2>/dev/null
# Decode with our wgpu kernels (shaders/) off, batch 64, beside the suite's rows (kernels on).
for batch in 1 64; do
  MEMTRAIN_NO_GPU_KERNELS=1 timeout "${OFF_SECONDS:-120}" "$bin" bench generate --device wgpu --model random:smollm2-135m \
    --batch $batch --prompt-tokens 128 --decode-tokens 64 --json "$out/decode-kernels-off-b$batch.json" 2>&1 | tee -a "$out/kernels-off.log"
done
# Sampled decode as GRPO's rollouts run it (temperature 1, batch 32): our sampling kernel, then
# with every kernel off (logits to the host, sampled there), against the greedy row above.
# Then top-p 0.9 (the boundary found on the device, or the host's sort with the kernels off).
sampled() { # $1: on or off, $2: a name, then extra options
  local state=$1 name=$2
  shift 2
  timeout "${OFF_SECONDS:-120}" "$bin" bench generate --device wgpu --model random:smollm2-135m --batch 32 \
    --prompt-tokens 128 --decode-tokens 64 --temperature 1 "$@" --json "$out/decode-$name-kernels-$state-b32.json" 2>&1 | tee -a "$out/sampled.log"
}
sampled on sampled
MEMTRAIN_NO_GPU_KERNELS=1 sampled off sampled
sampled on top-p --top-p 0.9
MEMTRAIN_NO_GPU_KERNELS=1 sampled off top-p --top-p 0.9
BENCH_PEERS_TORCH_DEVICES=cpu timeout "${CPU_SECONDS:-200}" "$bin" bench suite "${common[@]}" --devices cpu \
  --batches "${CPU_BATCHES:-1,16}" --train-seqs 512 --no-grpo \
  --json "$out/suite-cpu.json" --markdown "$out/suite-cpu.md" 2>&1 | tee "$out/cpu.log"
