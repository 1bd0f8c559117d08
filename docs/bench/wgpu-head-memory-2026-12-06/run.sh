. scripts/env.sh
for mode in off on; do
  if [ $mode = off ]; then export MEMTRAIN_NO_GPU_KERNELS=1; else unset MEMTRAIN_NO_GPU_KERNELS; fi
  /usr/bin/time -v timeout 900 $CARGO_TARGET_DIR/release/memtrain bench suite --model random:smollm2-135m --devices wgpu --batches 1 --decode-tokens 4 --prompt-tokens 16 --train-seqs 512 --no-grpo --peers none --json /tmp/mem/$mode.json --markdown /tmp/mem/$mode.md > /tmp/mem/$mode.log 2>&1
done
echo finished > /tmp/mem/done
