#!/bin/bash
# Retakes docs/screenshots/*.png from the release binary under Xvfb (lavapipe via env.sh).
# Usage: scripts/screenshots.sh   (after `cargo build --release`)
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/env.sh
BIN="$CARGO_TARGET_DIR/release/memtrain"
WORK=$(mktemp -d)
trap 'kill $XVFB 2>/dev/null || true; rm -rf "$WORK"' EXIT
Xvfb :99 -screen 0 1280x800x24 >/dev/null 2>&1 &
XVFB=$!
sleep 2
export DISPLAY=:99 MEMTRAIN_HOME="$WORK" MEMTRAIN_MODEL=/nonexistent
mkdir -p docs/screenshots "$WORK/bad"
printf 'not a pdf at all' > "$WORK/bad/scanned-letter.pdf"
"$BIN" exercises --docs assets/samples --out "$WORK/datasets/tiny-seed0" --preset tiny >/dev/null
shot() { # tab, output name, MEMTRAIN_OPEN list
  if [ -n "$3" ]; then export MEMTRAIN_OPEN="$3"; else unset MEMTRAIN_OPEN; fi
  MEMTRAIN_START_TAB="$1" "$BIN" >"$WORK/$2.log" 2>&1 </dev/null &
  local app=$!
  sleep "${SHOT_WAIT:-15}"
  xwd -root -silent -display :99 | convert xwd:- -crop 980x700+0+0 +repage "docs/screenshots/$2.png"
  kill $app; wait $app 2>/dev/null || true
}
shot documents documents-empty ""
shot documents documents "$PWD/assets/samples:$WORK/bad"
shot exercises exercises-empty ""
shot exercises exercises "$PWD/assets/samples:$WORK/datasets/tiny-seed0"
# Evaluate: a tiny-cpu quick look on the samples and its comparison (tiny-cpu trains the
# default model, so the real model must be installed for this one; ~15 min on 2 cores).
REAL=${MEMTRAIN_REAL_MODEL:-$HOME/.local/share/memtrain/models/SmolLM2-135M-Instruct.Q4_1.gguf}
RUN="$WORK/runs/tiny-seed0-tiny-cpu"
MEMTRAIN_MODEL="$REAL" "$BIN" train --data "$WORK/datasets/tiny-seed0" --out "$RUN" --preset tiny-cpu --sft-steps 20 --steps 0 --device cpu >"$WORK/train.log" 2>&1
MEMTRAIN_MODEL="$REAL" "$BIN" eval --model "$RUN/initial" --compare "$RUN/final" --data "$WORK/datasets/tiny-seed0" --out "$RUN/eval" --limit 16 --device cpu >"$WORK/eval.log" 2>&1
shot evaluate evaluate "$WORK/datasets/tiny-seed0"
shot train train "$WORK/datasets/tiny-seed0"
# Inspector and Ask: the real model reads by itself (MEMTRAIN_AUTORUN) and the shot is taken
# once it has written a few memories.
export MEMTRAIN_MODEL="$REAL"
shot model model ""
SHOT_WAIT=75 MEMTRAIN_AUTORUN=inspector shot inspector inspector "$WORK/datasets/tiny-seed0"
SHOT_WAIT=100 MEMTRAIN_AUTORUN=ask MEMTRAIN_ASK="Who is the secretary of the history society?" shot ask ask "$PWD/assets/samples/harbour-town-chronicle.md"
ls -l docs/screenshots
