#!/usr/bin/env python3
"""The peers of `memtrain bench suite`, on the suite's shapes, in the same run.

- PyTorch eager (transformers' LlamaForCausalLM with SmolLM2-135M's shape, f32) on the CPU and,
  when torch sees one, on CUDA: one training step (forward, log-softmax + gather of every next
  token, mean NLL, backward, AdamW) per sequence length, and generation (prefill + greedy decode
  with the KV cache) per batch size. Weights are random: cost does not depend on their values,
  and decoding is forced to the full length (min_new_tokens).
- llama.cpp (llama-cpp-python) on the CPU: batch-1 prefill and decode on the GGUF itself.

Writes JSON rows with the fields of the suite's GenRow/TrainRow, and "absent" lines for peers
that cannot run here (no torch, no llama_cpp, no GGUF). Not run in CI.

Usage: python3 scripts/bench_peers.py --json OUT [--batches 1,8] [--seqs 512] [--gguf PATH]
Env: BENCH_PEERS_TORCH_DEVICES=cpu,cuda (which PyTorch devices to try), BENCH_PEERS_THREADS.
"""
import argparse
import json
import os
import time


def reset_peak():
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
    except OSError:
        pass


def peak_mb():
    try:
        for line in open("/proc/self/status"):
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return None


def smollm2_config():
    from transformers import LlamaConfig
    return LlamaConfig(vocab_size=49152, hidden_size=576, intermediate_size=1536, num_hidden_layers=30,
                       num_attention_heads=9, num_key_value_heads=3, head_dim=64, rms_norm_eps=1e-5,
                       rope_theta=100000.0, max_position_embeddings=8192, tie_word_embeddings=True)


def torch_rows(device, args, out):
    import torch
    from transformers import LlamaForCausalLM
    if device == "cuda":
        name = f"{torch.cuda.get_device_name(0)} (CUDA)"
    else:
        name = f"CPU, {torch.get_num_threads()} threads"
    engine = f"PyTorch {torch.__version__.split('+')[0]} eager"

    def sync():
        if device == "cuda":
            torch.cuda.synchronize()

    def start_peak():
        reset_peak()
        if device == "cuda":
            torch.cuda.reset_peak_memory_stats()

    def read_peak():
        if device == "cuda":
            return torch.cuda.max_memory_allocated() / 2**20
        return peak_mb()

    torch.manual_seed(0)
    model = LlamaForCausalLM(smollm2_config()).to(device)
    vocab = model.config.vocab_size
    for seq in args.seqs:
        model.train()
        opt = torch.optim.AdamW(model.parameters(), lr=1e-6)
        ids = torch.tensor([[(i * 7919 + 13) % vocab for i in range(seq)]], device=device)
        start_peak()
        times = []
        # One warm-up step, then the median of 3 timed ones (as memtrain's rows do).
        for round in range(4):
            sync()
            t0 = time.perf_counter()
            logits = model(input_ids=ids[:, :-1]).logits[0]
            logp = torch.log_softmax(logits, dim=-1).gather(1, ids[0, 1:].unsqueeze(1))
            loss = -logp.mean()
            loss.backward()
            opt.step()
            opt.zero_grad()
            sync()
            if round > 0:
                times.append(time.perf_counter() - t0)
        seconds = sorted(times)[len(times) // 2]
        out["training"].append({"engine": engine, "device": name, "seq": seq, "seconds_step": seconds,
                                "tokens_per_s": seq / seconds, "peak_mb": read_peak()})
        del opt
    model.eval()
    with torch.no_grad():
        for batch in args.batches:
            ids = torch.tensor([[(i * 7919 + b * 104729 + 13) % vocab for i in range(args.prompt_tokens)]
                                for b in range(batch)], device=device)
            mask = torch.ones_like(ids)
            start_peak()
            for round in range(2):
                sync()
                t0 = time.perf_counter()
                model(input_ids=ids, attention_mask=mask, use_cache=True)
                sync()
                prefill = time.perf_counter() - t0
                t0 = time.perf_counter()
                model.generate(ids, attention_mask=mask, max_new_tokens=args.decode_tokens,
                               min_new_tokens=args.decode_tokens, do_sample=False, pad_token_id=0)
                sync()
                total = time.perf_counter() - t0
            # generate() prefills again: its decode share is the rest.
            decode = max(total - prefill, 1e-9)
            out["generation"].append({"engine": engine, "device": name, "batch": batch,
                                      "prefill_tok_s": batch * args.prompt_tokens / prefill,
                                      "decode_tok_s": batch * (args.decode_tokens - 1) / decode,
                                      "peak_mb": read_peak()})


def llama_cpp_rows(args, out):
    from llama_cpp import Llama, __version__
    threads = int(os.environ.get("BENCH_PEERS_THREADS", os.cpu_count()))
    llm = Llama(model_path=args.gguf, n_ctx=max(1024, args.prompt_tokens + args.decode_tokens + 8),
                n_threads=threads, n_batch=512, verbose=False)
    vocab = llm.n_vocab()
    ids = [(i * 7919 + 13) % vocab for i in range(args.prompt_tokens)]
    reset_peak()
    for round in range(2):
        llm.reset()
        t0 = time.perf_counter()
        llm.eval(ids)
        prefill = time.perf_counter() - t0
        t0 = time.perf_counter()
        for _ in range(args.decode_tokens - 1):
            tok = llm.sample(temp=0.0)
            llm.eval([tok])
        decode = time.perf_counter() - t0
    out["generation"].append({"engine": f"llama.cpp (llama-cpp-python {__version__}, GGUF as is)",
                              "device": f"CPU, {threads} threads", "batch": 1,
                              "prefill_tok_s": args.prompt_tokens / prefill,
                              "decode_tok_s": (args.decode_tokens - 1) / decode, "peak_mb": peak_mb()})


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--json", required=True)
    ap.add_argument("--batches", default="1,8,32,64")
    ap.add_argument("--seqs", default="512,2048")
    ap.add_argument("--prompt-tokens", type=int, default=128)
    ap.add_argument("--decode-tokens", type=int, default=64)
    ap.add_argument("--gguf")
    ap.add_argument("--random", action="store_true", help="our side ran random weights (noted only)")
    ap.add_argument("--training-only", action="store_true", help="training rows only (the suite's extra rounds)")
    args = ap.parse_args()
    args.batches = [] if args.training_only else [int(x) for x in args.batches.split(",") if x]
    args.seqs = [int(x) for x in args.seqs.split(",") if x]
    out = {"generation": [], "training": [], "absent": []}
    try:
        import torch
        if "BENCH_PEERS_THREADS" in os.environ:
            torch.set_num_threads(int(os.environ["BENCH_PEERS_THREADS"]))
        for device in os.environ.get("BENCH_PEERS_TORCH_DEVICES", "cpu,cuda").split(","):
            if device == "cuda" and not torch.cuda.is_available():
                out["absent"].append("PyTorch CUDA: torch sees no CUDA device")
                continue
            try:
                torch_rows(device, args, out)
            except Exception as e:  # one device failing must not lose the others
                out["absent"].append(f"PyTorch {device}: {type(e).__name__}: {e}")
    except ImportError as e:
        out["absent"].append(f"PyTorch: {e}")
    if args.training_only:
        pass
    elif not args.gguf or not os.path.exists(args.gguf):
        out["absent"].append("llama.cpp: no GGUF given (--gguf)")
    else:
        try:
            llama_cpp_rows(args, out)
        except ImportError as e:
            out["absent"].append(f"llama.cpp: {e}")
        except Exception as e:
            out["absent"].append(f"llama.cpp: {type(e).__name__}: {e}")
    with open(args.json, "w") as f:
        json.dump(out, f, indent=1)


if __name__ == "__main__":
    main()
