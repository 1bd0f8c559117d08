#!/usr/bin/env bash
# Kernel launches per decode step on wgpu, with our kernels (shaders/) on and off (issue 7).
# GPU decode is bound by launches, and launch counts are the same on any adapter, so lavapipe
# measures them too. Two `memtrain bench generate` runs per setting differ only in decoded
# tokens; CubeCL's profiling log lists every kernel run, so per kernel name the difference in
# runs over the difference in decode steps is its launches per step (prefill cancels; `bench
# generate` decodes twice, warm-up then timed, so a run has 2 × tokens steps). CubeCL's
# autotune probes (LaunchOverhead, *DirectThroughput) are listed apart from the model's kernels.
# Usage: scripts/launch_count.sh MEMTRAIN_BINARY OUT_DIR [MODEL] [BATCH]
set -euo pipefail
bin=$(realpath "$1") out=$(realpath -m "$2") model=${3:-random:smollm2-135m} batch=${4:-16}
mkdir -p "$out"
work=$(mktemp -d)
short=4 long=12
by_name() { # kernel runs by name (the log's kernel column, hash dropped) of one run
  cat > "$work/cubecl.toml" <<TOML
[profiling.logger]
level = "basic"
file = "$work/kernels.log"
TOML
  rm -f "$work/kernels.log"
  (cd "$work" && "$bin" bench generate --device wgpu --model "$model" --batch "$batch" --prompt-tokens 16 --decode-tokens "$1" >/dev/null)
  sleep 1 # the logger writes asynchronously
  awk -F'|' '/^\| +[0-9.]+(ns|µs|ms|s) +\|/ {n=$NF; sub(/_[0-9a-f]+ *$/, "", n); gsub(/^ +| +$/, "", n); c[n]++} END {for (k in c) print k, c[k]}' "$work/kernels.log" | sort
}
{
  echo "model $model, batch $batch, prompt 16 tokens, $(date -u +%FT%TZ)"
  for setting in on off; do
    if [ "$setting" = off ]; then export MEMTRAIN_NO_GPU_KERNELS=1; fi
    by_name $short > "$work/short" && by_name $long > "$work/long"
    echo "our kernels $setting: launches per decode step, by kernel"
    join -a1 -a2 -e0 -o 0,1.2,2.2 "$work/short" "$work/long" \
      | awk -v steps=$((2 * (long - short))) '{d = ($3 - $2) / steps; if (d == 0) next; if ($1 ~ /LaunchOverhead|DirectThroughput/) {printf "  %-28s %8.1f  (autotune probe)\n", $1, d; p += d} else {printf "  %-28s %8.1f\n", $1, d; t += d}} END {printf "  %-28s %8.1f\n  %-28s %8.1f\n", "all_model_kernels", t, "all_autotune_probes", p}' \
      | sort -k2 -rn
  done
} | tee "$out/launches.txt"
rm -rf "$work"
