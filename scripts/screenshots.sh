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
  sleep 15
  xwd -root -silent -display :99 | convert xwd:- -crop 980x700+0+0 +repage "docs/screenshots/$2.png"
  kill $app; wait $app 2>/dev/null || true
}
shot documents documents-empty ""
shot documents documents "$PWD/assets/samples:$WORK/bad"
shot exercises exercises-empty ""
shot exercises exercises "$PWD/assets/samples:$WORK/datasets/tiny-seed0"
ls -l docs/screenshots
