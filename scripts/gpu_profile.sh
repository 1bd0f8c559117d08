#!/usr/bin/env bash
# Where the wgpu time goes (issue 7), as run on a lent GPU machine: decode phases timed; the
# GRPO update's forward-backward at new and seen widths with CubeCL's compilation log; then the
# per-kernel times of decode steps (CubeCL profiling serialises kernels, so only its breakdown
# counts, not its totals). Uses examples/gpu_probe.rs.
# Usage: scripts/gpu_profile.sh GPU_PROBE_BINARY OUT_DIR
set -uo pipefail
bin=$(realpath "$1") out=$(realpath -m "$2")
mkdir -p "$out"
work=$(mktemp -d)
(cd "$work" && timeout "${DECODE_SECONDS:-150}" "$bin" wgpu decode) 2>&1 | tee "$out/decode.txt"
cat > "$work/cubecl.toml" <<EOF
[compilation.logger]
level = "basic"
file = "$out/compile.log"
[autotune.logger]
level = "minimal"
file = "$out/autotune.log"
EOF
(cd "$work" && PROBE_COMPILE_LOG="$out/compile.log" timeout "${UPDATE_SECONDS:-200}" "$bin" wgpu update) 2>&1 | tee "$out/update.txt"
cat > "$work/cubecl.toml" <<EOF
[profiling.logger]
level = "basic"
file = "$out/kernels.log"
EOF
(cd "$work" && timeout "${PROFILE_SECONDS:-120}" "$bin" wgpu decode64 "${PROFILE_MODEL:-}") > "$out/decode-profiled.txt" 2>&1
# Per-kernel totals over the whole profiled run (the log itself is too large to keep).
awk -F'|' 'NF==3 && $2 ~ /[0-9](ns|µs|ms|s) *$/ {
  d=$2; gsub(/ /,"",d); v=d+0; if (d ~ /ns$/) v/=1e6; else if (d ~ /µs$/) v/=1e3; else if (d ~ /ms$/) v=v; else v*=1e3;
  n=$3; sub(/^ +/,"",n); if (length(n) > 110) n=substr(n,1,60) "…" substr(n,length(n)-40); t[n]+=v; c[n]++; all+=v }
  END { for (k in t) printf "%10.2f ms %6d %5.1f%%  %s\n", t[k], c[k], 100*t[k]/all, k; printf "%10.2f ms total\n", all }' \
  "$out/kernels.log" | sort -rn | head -60 > "$out/kernels-top.txt"
gzip -f "$out/kernels.log"
ls -la "$out"
