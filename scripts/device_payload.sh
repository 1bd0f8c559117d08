#!/usr/bin/env bash
# Packs what a lent GPU machine (no network, 64 MiB carried per call) needs for
# scripts/gpu_train.sh: the release binary (stripped, xz: ~18 MB) and the default GGUF (xz, then
# cut in two so each call stays under the limit), plus the synthetic data set of README's
# Training section. As used on 2026-11-27 (docs/bench/h200-2026-11-27.md):
#   call 1, carry [".gl", ".dev1"]: for f in .gl/*.deb; do dpkg -x $f /; done; ldconfig; then
#     mkdir -p /root/mt; cp .dev1/partA /root/mt/; xz -dc .dev1/memtrain.xz > /root/mt/memtrain; chmod +x /root/mt/memtrain
#   call 2 within the machine's 30 s warm window, carry [".gl", ".dev2"]:
#     cat /root/mt/partA .dev2/partB | xz -dc > /root/mt/model.gguf
#     echo "$(cat .dev2/model.sha256)  /root/mt/model.gguf" | sha256sum -c
#     scripts/gpu_train.sh /root/mt/memtrain .dev2/ex .dev2/gpu.ron $OUT 480
# .dev2/gpu.ron is tiny-cpu with model Path("/root/mt/model.gguf"); edit it before call 2.
# Usage (repo root, after a release build and `memtrain fetch-model`): scripts/device_payload.sh
set -euo pipefail
. scripts/env.sh
bin="$CARGO_TARGET_DIR/release/memtrain"
model="${MEMTRAIN_MODEL:-$HOME/.local/share/memtrain/models/SmolLM2-135M-Instruct.Q4_1.gguf}"
grep -qx '/.dev1/' .git/info/exclude 2>/dev/null || printf '/.dev1/\n/.dev2/\n' >> .git/info/exclude
rm -rf .dev1 .dev2 && mkdir -p .dev1 .dev2
strip -o .dev1/memtrain "$bin" && xz -T0 -6 .dev1/memtrain
xz -T0 -6 -c "$model" > .dev2/model.xz
head -c 40000000 .dev2/model.xz > .dev1/partA
tail -c +40000001 .dev2/model.xz > .dev2/partB && rm .dev2/model.xz
sha256sum "$model" | cut -c1-64 > .dev2/model.sha256
"$bin" synth-docs --out .dev2/syn --count 30 --seed 1 >/dev/null
# After-pivot masking: objective 1's answer is named before its [MASK]s (README, Training).
"$bin" exercises --docs .dev2/syn --out .dev2/ex --preset tiny --mask after-pivot --model "$model" >/dev/null && rm -rf .dev2/syn
"$bin" train-config --preset tiny-cpu | sed 's|model: Default|model: Path("/root/mt/model.gguf")|' > .dev2/gpu.ron
# The next GPU sweep (scripts/gpu_sweep.sh ... .dev2/all.ron .dev2/all-ad3.ron .dev2/all-ad3-m96.ron):
# the H100's 400-step all-layer config, then with 3 answer drills, then also a 96-token memory
# (the best CPU recall, docs/bench/cpu-objective1-2026-11-28/).
cp docs/bench/h100-2026-11-28/all.ron .dev2/all.ron
sed 's|recall_drills: 0,|recall_drills: 0,\n        answer_drills: 3,|' .dev2/all.ron > .dev2/all-ad3.ron
sed 's|memory_tokens: 64,|memory_tokens: 96,|' .dev2/all-ad3.ron > .dev2/all-ad3-m96.ron
# The Vulkan loader and GL libraries the device machine lacks (device README), once.
if ! ls .gl/libvulkan1_*.deb >/dev/null 2>&1; then
  grep -qx '/.gl/' .git/info/exclude || echo /.gl/ >> .git/info/exclude
  mkdir -p .gl /tmp/amd64/partial
  o='-oAPT::Architecture=amd64 -oAPT::Architectures=amd64 -oDir::State::Lists=/tmp/amd64'
  apt-get $o update >/dev/null && (cd .gl && apt-get $o download libvulkan1 libegl1 libglvnd0 libopengl0 libgl1 libglx0 libgles2)
fi
du -sh .dev1 .dev2 .gl
