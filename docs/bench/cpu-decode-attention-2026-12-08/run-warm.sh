#!/bin/sh
# The warm GRPO step (`--warmup`: the second of two identical steps timed) of the CPU preset's
# work, training the top 10 layers, with the binary before this change (028ce79) and after,
# alternating, 2 rounds. Usage: run-warm.sh OLD_BINARY NEW_BINARY
set -e
for round in 1 2; do
  for bin in "$1" "$2"; do
    echo "=== round $round $bin $(date -u +%H:%M:%S)"
    "$bin" bench train --device cpu --trainable-layers 10 --warmup
  done
done
