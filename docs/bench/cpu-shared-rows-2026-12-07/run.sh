#!/bin/sh
# The default GRPO step training the top 10 layers (the tiny-cpu preset's `trainable_layers`):
# OLD (a build of 2237dc7: repeated prompts' cache rows copied) with --no-shared-prefix (the
# session's starting point) and without (the shared prefix), NEW (467d1f9: rows shared),
# alternating, 3 rounds. Usage: run.sh OLD NEW > runs.log 2>&1
set -e
old=$1
new=$2
for round in 1 2 3; do
  echo "=== round $round old --no-shared-prefix $(date -u +%H:%M:%S)"
  "$old" bench train --device cpu --trainable-layers 10 --no-shared-prefix
  echo "=== round $round old $(date -u +%H:%M:%S)"
  "$old" bench train --device cpu --trainable-layers 10
  echo "=== round $round new $(date -u +%H:%M:%S)"
  "$new" bench train --device cpu --trainable-layers 10
done
