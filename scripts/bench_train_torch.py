#!/usr/bin/env python3
"""The forward-backward of `memtrain bench train` in PyTorch on the CPU, for the README ratio.

Reads the token batch that `memtrain bench train --dump-batch batch.json` trained on and runs
the same GRPO loss (teacher-forced log-probs at the response positions only, PPO-clip, token
mean, micro-batches with accumulated gradients) and one AdamW step on SmolLM2-135M (from the
GGUF when given, else random weights of the same shape: the cost does not depend on values).

Usage: python scripts/bench_train_torch.py batch.json [--gguf SmolLM2-135M-Instruct.Q4_1.gguf] [--threads N]
Needs: pip install torch transformers gguf
"""
import argparse
import json
import time

import torch
from transformers import AutoModelForCausalLM, LlamaConfig, LlamaForCausalLM


def smollm2_config():
    return LlamaConfig(vocab_size=49152, hidden_size=576, intermediate_size=1536, num_hidden_layers=30,
                       num_attention_heads=9, num_key_value_heads=3, head_dim=64, rms_norm_eps=1e-5,
                       rope_theta=100000.0, max_position_embeddings=8192, tie_word_embeddings=True)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("batch")
    ap.add_argument("--gguf")
    ap.add_argument("--threads", type=int, default=torch.get_num_threads())
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    dump = json.load(open(args.batch))
    b, micro = dump["batch"], dump["micro_batch"]
    if args.gguf:
        import os
        model = AutoModelForCausalLM.from_pretrained(os.path.dirname(args.gguf) or ".", gguf_file=os.path.basename(args.gguf), torch_dtype=torch.float32)
    else:
        torch.manual_seed(0)
        model = LlamaForCausalLM(smollm2_config())
    model.train()
    rows, width = b["rows"], b["width"]
    inputs = torch.tensor(b["inputs"], dtype=torch.long).view(rows, width)
    positions = torch.tensor(b["positions"], dtype=torch.long)
    targets = torch.tensor(b["targets"], dtype=torch.long)
    old = torch.tensor(b["old_logprobs"], dtype=torch.float32)
    adv = torch.tensor(b["advantages"], dtype=torch.float32)
    total = len(b["targets"])
    opt = torch.optim.AdamW(model.parameters(), lr=1e-6)
    start = time.perf_counter()
    for r0 in range(0, rows, micro):
        r1 = min(rows, r0 + micro)
        sel = (positions >= r0 * width) & (positions < r1 * width)
        rel = positions[sel] - r0 * width
        # Trim the padding to this micro-batch's own width, as the Rust side does.
        w = int((rel % width).max()) + 1
        pos = (rel // width) * w + rel % width
        hidden = model.model(input_ids=inputs[r0:r1, :w]).last_hidden_state.reshape(-1, model.config.hidden_size)
        logp = torch.log_softmax(model.lm_head(hidden[pos]), dim=-1).gather(1, targets[sel].unsqueeze(1)).squeeze(1)
        ratio = torch.exp(logp - old[sel])
        a = adv[sel]
        loss = -torch.minimum(ratio * a, ratio.clamp(0.8, 1.2) * a).sum() / total
        loss.backward()
    fb = time.perf_counter() - start
    start = time.perf_counter()
    opt.step()
    opt.zero_grad()
    step = time.perf_counter() - start
    seq_tokens = int(sum(min(width, 1 + max([p - r * width for p in b["positions"] if r * width <= p < (r + 1) * width] or [0])) for r in range(rows)))
    print(json.dumps({"threads": args.threads, "rows": rows, "width": width, "response_tokens": total,
                      "forward_backward_s": fb, "optimizer_s": step, "padded_tokens_per_s": rows * width / fb,
                      "sequence_tokens": seq_tokens, "sequence_tokens_per_s": seq_tokens / fb}))


if __name__ == "__main__":
    main()
