#!/bin/sh
# The default GRPO step training the top 10 layers (the tiny-cpu preset's `trainable_layers`),
# generation prefilling the prompts' common leading tokens once against every prompt whole,
# same binary, alternating, 3 rounds. Usage: run.sh BINARY > runs.log 2>&1
set -e
bin=${1:-memtrain}
for round in 1 2 3; do
  for flag in --no-shared-prefix ""; do
    echo "=== round $round ${flag:-shared prefix} $(date -u +%H:%M:%S)"
    "$bin" bench train --device cpu --trainable-layers 10 $flag
  done
done
