#!/bin/sh
# The default GRPO step training the top 10 layers (the tiny-cpu preset's `trainable_layers`),
# the update from the rollouts' kept stream at layer 20 against the update through every layer,
# same binary, alternating, 3 rounds. Usage: run.sh BINARY > runs.log 2>&1
set -e
bin=${1:-memtrain}
for round in 1 2 3; do
  for flag in --no-stem-reuse ""; do
    echo "=== round $round ${flag:-stem reuse} $(date -u +%H:%M:%S)"
    "$bin" bench train --device cpu --trainable-layers 10 $flag
  done
done
