#!/usr/bin/env bash
# Issue 5 on a lent GPU machine (no network there): the real SmolLM2-135M trained by
# `memtrain train` on wgpu, stopped with Ctrl-C (checkpoint written) when the time is up; the
# run's metrics, held-out evaluations and samples are copied to OUT_DIR (the checkpoints,
# ~1.6 GB, stay behind). The model the config names must already be on that machine.
# Usage: scripts/gpu_train.sh MEMTRAIN_BINARY DATA_DIR CONFIG.ron OUT_DIR [SECONDS]
set -uo pipefail
bin=$1 data=$2 config=$3 out=$4 seconds=${5:-480}
mkdir -p "$out"
run=$(mktemp -d)/run
if command -v nvidia-smi >/dev/null; then
  nvidia-smi --query-gpu=timestamp,name,memory.used,utilization.gpu --format=csv,noheader -lms 1000 > "$out/gpu-usage.csv" 2>/dev/null &
  smi=$!
fi
start=$(date +%s)
timeout -s INT -k 60 "$seconds" "$bin" train --data "$data" --out "$run" --config "$config" --device wgpu > "$out/train.log" 2>&1
echo "train exited with $? after $(( $(date +%s) - start )) s" | tee -a "$out/train.log"
[ -n "${smi:-}" ] && kill "$smi" 2>/dev/null
cp "$run/metrics.jsonl" "$run/eval.jsonl" "$out/" 2>/dev/null
tar czf "$out/samples.tgz" -C "$run" samples config.ron 2>/dev/null
ls -la "$out"
tail -n 5 "$out/train.log"
