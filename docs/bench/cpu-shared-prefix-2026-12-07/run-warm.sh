#!/bin/sh
# As run.sh, with --warmup (the second of two identical steps timed: a training run's steady
# state, first-touch page faults paid in the untimed step), 2 rounds. Usage: run-warm.sh BINARY
set -e
bin=${1:-memtrain}
for round in 1 2; do
  for flag in --no-shared-prefix ""; do
    echo "=== round $round ${flag:-shared prefix} warm-up $(date -u +%H:%M:%S)"
    "$bin" bench train --device cpu --trainable-layers 10 --warmup $flag
  done
done
