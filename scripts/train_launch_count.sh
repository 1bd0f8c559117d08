#!/usr/bin/env bash
# Kernel launches of one training step on wgpu (forward + backward + AdamW of one sequence of
# the random SmolLM2-135M twin), with our kernels on and off (issue 7). Launch counts are the
# same on any adapter, so lavapipe measures them. Two `train_probe` runs differ only in their
# number of timed steps (1 and 2, each after one warm-up step), so per kernel name the
# difference of their runs in CubeCL's profiling log is one warm step's launches (autotune
# probes listed apart). A first run per setting fills CubeCL's persistent autotune cache, so
# that neither counted run tunes (tuning runs kernels too, a varying number per process).
# Usage: scripts/train_launch_count.sh TRAIN_PROBE_BINARY OUT_DIR [SEQ] [SETTINGS (default "on off")]
set -euo pipefail
bin=$(realpath "$1") out=$(realpath -m "$2") seq=${3:-64} settings=${4:-on off}
mkdir -p "$out"
work=$(mktemp -d)
by_name() { # kernel runs by name (the log's kernel column, hash dropped) of one run of $1 steps
  cat > "$work/cubecl.toml" <<TOML
[profiling.logger]
level = "basic"
file = "$work/kernels.log"
TOML
  rm -f "$work/kernels.log"
  (cd "$work" && PROBE_DEVICE=wgpu "$bin" "$seq" "$1" >/dev/null)
  sleep 1 # the logger writes asynchronously
  awk -F'|' '/^\| +[0-9.]+(ns|µs|ms|s) +\|/ {n=$NF; sub(/_[0-9a-f]+ *$/, "", n); gsub(/^ +| +$/, "", n); c[n]++} END {for (k in c) print k, c[k]}' "$work/kernels.log" | sort
}
{
  echo "random smollm2-135m twin, one sequence of $seq tokens, $(date -u +%FT%TZ)"
  for setting in $settings; do
    if [ "$setting" = off ]; then export MEMTRAIN_NO_GPU_KERNELS=1; fi
    by_name 1 > /dev/null && by_name 1 > "$work/short" && by_name 2 > "$work/long"
    echo "our kernels $setting: launches per training step, by kernel"
    join -a1 -a2 -e0 -o 0,1.2,2.2 "$work/short" "$work/long" \
      | awk '{d = $3 - $2; if (d == 0) next; if ($1 ~ /LaunchOverhead|DirectThroughput/) {printf "  %-36s %8d  (autotune probe)\n", $1, d; p += d} else {printf "  %-36s %8d\n", $1, d; t += d}} END {printf "  %-36s %8d\n  %-36s %8d\n", "all_model_kernels", t, "all_autotune_probes", p}' \
      | sort -k2 -rn
  done
} | tee "$out/launches.txt"
rm -rf "$work"
