#!/usr/bin/env bash
# Several `scripts/gpu_train.sh` runs side by side on one lent GPU. They share the machine's
# start and the transfers and overlap their cold first steps (kernel compilation, autotuning:
# 150-180 s each), but not step time: three runs made each step about three times slower
# (docs/bench/h100-2026-11-28.md). Each run's files land in OUT_DIR/sweep.tgz, in a folder named
# after its config: the device tool brings back at most 8 files.
# Usage: scripts/gpu_sweep.sh MEMTRAIN_BINARY DATA_DIR OUT_DIR SECONDS CONFIG.ron...
set -uo pipefail
bin=$1 data=$2 out=$3 seconds=$4
shift 4
here=$(dirname "$0")
work=$(mktemp -d)
for config in "$@"; do
  "$here/gpu_train.sh" "$bin" "$data" "$config" "$work/$(basename "$config" .ron)" "$seconds" > /dev/null &
done
wait
for config in "$@"; do
  name=$(basename "$config" .ron)
  echo "== $name"; tail -n 3 "$work/$name/train.log"
done
mkdir -p "$out" && tar czf "$out/sweep.tgz" -C "$work" .
