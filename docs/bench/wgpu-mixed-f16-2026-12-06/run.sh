#!/bin/bash
# Mixed-precision training beside f32 on lavapipe (device memory is host memory there, so a
# row's peak RSS holds it): training steps of the random SmolLM2-135M twin at 512 and 1,024
# tokens. Run A: the suite with --f16 (f32 rows, then mixed-f16 rows; each row hands the pools
# back first). Run B: f32 rows alone, in their own process, to check that A's rows are their own.
# Usage: run.sh OUT_DIR (from the repository root, after a release build).
set -e
out=${1:-/tmp/mix}; mkdir -p "$out"
. scripts/env.sh
bin=$CARGO_TARGET_DIR/release/memtrain
common="--model random:smollm2-135m --devices wgpu --batches 1 --decode-tokens 4 --prompt-tokens 16 --train-seqs 512,1024 --no-grpo --peers none"
/usr/bin/time -v $bin bench suite $common --f16 --json "$out/mixed.json" --markdown "$out/mixed.md" > "$out/mixed.log" 2>&1
/usr/bin/time -v $bin bench suite $common --json "$out/f32.json" --markdown "$out/f32.md" > "$out/f32.log" 2>&1
echo finished > "$out/done"
