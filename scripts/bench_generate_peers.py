#!/usr/bin/env python3
"""Side-by-side generation benchmark: `memtrain bench generate` (flex CPU and wgpu) and
llama.cpp (llama-cpp-python from PyPI) on the same GGUF, in one run, on one machine.
Not run in CI. Prints a Markdown table for README.

Usage: python scripts/bench_generate_peers.py [--model PATH] [--threads N] [--skip-wgpu]
Needs: pip install llama-cpp-python (optional: without it the llama.cpp rows say "absent").
"""
import argparse
import json
import os
import platform
import subprocess
import tempfile
import time

PROMPT_TOKENS = 128
DECODE_TOKENS = 64


def memtrain_bin():
    target = os.environ.get("CARGO_TARGET_DIR", os.path.expanduser("~/.cache/memtrain-target"))
    return os.path.join(target, "release", "memtrain")


def ours(model, device, batch):
    with tempfile.NamedTemporaryFile(suffix=".json") as f:
        subprocess.run([memtrain_bin(), "bench", "generate", "--model", model, "--device", device,
                        "--batch", str(batch), "--prompt-tokens", str(PROMPT_TOKENS),
                        "--decode-tokens", str(DECODE_TOKENS), "--json", f.name], check=True,
                       stdout=subprocess.DEVNULL)
        return json.load(open(f.name))


def llama_cpp(model, threads):
    try:
        from llama_cpp import Llama
    except ImportError:
        return None
    llm = Llama(model_path=model, n_ctx=1024, n_threads=threads, n_batch=512, verbose=False)
    text = ("The history of the city begins with a small harbour where fishermen traded salt, "
            "wool and timber with merchants who came from the islands in the south. ") * 20
    ids = llm.tokenize(text.encode())[:PROMPT_TOKENS]
    llm.reset()
    t0 = time.perf_counter()
    llm.eval(ids)
    prefill = time.perf_counter() - t0
    t0 = time.perf_counter()
    for _ in range(DECODE_TOKENS):
        tok = llm.sample(temp=0.0)
        llm.eval([tok])
    decode = time.perf_counter() - t0
    return {"prefill_tok_s": PROMPT_TOKENS / prefill, "decode_tok_s": DECODE_TOKENS / decode}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default=os.path.expanduser(
        "~/.local/share/memtrain/models/SmolLM2-135M-Instruct.Q4_1.gguf"))
    ap.add_argument("--threads", type=int, default=os.cpu_count())
    ap.add_argument("--skip-wgpu", action="store_true")
    args = ap.parse_args()
    rows = []
    devices = ["cpu"] + ([] if args.skip_wgpu else ["wgpu"])
    for device in devices:
        for batch in (1, 16):
            r = ours(args.model, device, batch)
            rows.append((f"memtrain ({r['device']})", batch, r["prefill_tok_s"], r["decode_tok_s"]))
    peer = llama_cpp(args.model, args.threads)
    if peer:
        rows.append((f"llama.cpp (llama-cpp-python, {args.threads} threads)", 1, peer["prefill_tok_s"], peer["decode_tok_s"]))
    print(f"Machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores; "
          f"{time.strftime('%Y-%m-%d')}; prompt {PROMPT_TOKENS} tokens, decode {DECODE_TOKENS} tokens per sequence\n")
    print("| engine | batch | prefill tok/s | decode tok/s (aggregate) |")
    print("|---|---|---|---|")
    for name, b, p, d in rows:
        print(f"| {name} | {b} | {p:.0f} | {d:.1f} |")
    if not peer:
        print("\nllama.cpp: absent (pip install llama-cpp-python)")


if __name__ == "__main__":
    main()
