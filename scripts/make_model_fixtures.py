#!/usr/bin/env python3
"""Reference outputs from Hugging Face transformers (an independent implementation), run once.

Writes, under tests/fixtures/models/:
  tiny-<variant>/config.json, model.safetensors   tiny random Llama / Qwen2 / Qwen3 checkpoints
  tiny-<variant>/reference.json                   input ids and the logits transformers computes
  smollm2/reference.json                          the real SmolLM2-135M GGUF, dequantized by
                                                  transformers: last-position logits and greedy tokens

Usage: python scripts/make_model_fixtures.py [path/to/SmolLM2-135M-Instruct.Q4_1.gguf]
Needs: pip install torch transformers gguf numpy
"""
import json
import os
import sys

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer, LlamaConfig, Qwen2Config, Qwen3Config

ROOT = os.path.join(os.path.dirname(__file__), "..", "tests", "fixtures", "models")

COMMON = dict(vocab_size=128, hidden_size=64, intermediate_size=96, num_hidden_layers=2,
              num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=256)

VARIANTS = {
    # SmolLM2-like: tied embeddings, f32 storage.
    "llama": (LlamaConfig, dict(rms_norm_eps=1e-5, rope_theta=10000.0, tie_word_embeddings=True), torch.float32),
    # Llama 3.1 rope scaling, untied head, bf16 storage.
    "llama3-scaled": (LlamaConfig, dict(rms_norm_eps=1e-5, rope_theta=500000.0, tie_word_embeddings=False,
                                        rope_scaling=dict(rope_type="llama3", factor=8.0, low_freq_factor=1.0,
                                                          high_freq_factor=4.0, original_max_position_embeddings=64)),
                      torch.bfloat16),
    # q/k/v biases, untied head, f16 storage.
    "qwen2": (Qwen2Config, dict(rms_norm_eps=1e-6, rope_theta=1000000.0, tie_word_embeddings=False), torch.float16),
    # q/k RMSNorm, explicit head_dim different from hidden/heads, tied.
    "qwen3": (Qwen3Config, dict(rms_norm_eps=1e-6, rope_theta=1000000.0, tie_word_embeddings=True, head_dim=24), torch.float32),
}

INPUTS = [[1, 17, 42, 99, 3, 64, 5, 120, 77, 8, 31, 2, 90, 11, 54, 6],
          [7, 100, 12, 45, 9, 3, 88]]


def randomize(model):
    """Weights large enough that a wrong RoPE pairing, a missing bias or a wrong epsilon moves
    the logits far beyond the test tolerance (HF's default init is too small to tell)."""
    g = torch.Generator().manual_seed(1234)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "norm" in name:
                p.copy_(1.0 + 0.3 * torch.randn(p.shape, generator=g))
            elif name.endswith("bias"):
                p.copy_(0.5 * torch.randn(p.shape, generator=g))
            else:
                p.copy_(torch.randn(p.shape, generator=g) / (p.shape[-1] ** 0.5))


def tiny(variant):
    cls, extra, dtype = VARIANTS[variant]
    cfg = cls(**COMMON, **extra)
    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_config(cfg, torch_dtype=torch.float32)
    randomize(model)
    out = os.path.join(ROOT, f"tiny-{variant}")
    os.makedirs(out, exist_ok=True)
    model.to(dtype).save_pretrained(out, safe_serialization=True)
    # Reference from the stored (rounded) weights, computed in float32.
    ref_model = AutoModelForCausalLM.from_pretrained(out, torch_dtype=torch.float32).eval()
    logits = []
    with torch.no_grad():
        for ids in INPUTS:
            logits.append(ref_model(torch.tensor([ids])).logits[0].tolist())
    with open(os.path.join(out, "reference.json"), "w") as f:
        json.dump({"variant": variant, "dtype": str(dtype), "inputs": INPUTS, "logits": logits}, f)
    print(out, "ok")


def smollm2(gguf_path):
    d, name = os.path.split(os.path.abspath(gguf_path))
    tok = AutoTokenizer.from_pretrained(d, gguf_file=name)
    model = AutoModelForCausalLM.from_pretrained(d, gguf_file=name, torch_dtype=torch.float32).eval()
    cases = {}
    prompts = {
        "plain_france": tok("The capital of France is")["input_ids"],
        "chat_japan": tok.apply_chat_template([{"role": "user", "content": "What is the capital of Japan?"}],
                                              add_generation_prompt=True, tokenize=True),
    }
    for key, ids in prompts.items():
        ids = list(ids["input_ids"] if hasattr(ids, "keys") else ids)
        with torch.no_grad():
            last = model(torch.tensor([ids])).logits[0, -1]
            gen = model.generate(torch.tensor([ids]), max_new_tokens=12, do_sample=False)[0, len(ids):]
        top = torch.topk(last, 20)
        cases[key] = {"input_ids": ids, "top_ids": top.indices.tolist(), "top_logits": top.values.tolist(),
                      "greedy_ids": gen.tolist(), "greedy_text": tok.decode(gen, skip_special_tokens=True)}
        print(key, repr(cases[key]["greedy_text"]))
    out = os.path.join(ROOT, "smollm2")
    os.makedirs(out, exist_ok=True)
    with open(os.path.join(out, "reference.json"), "w") as f:
        json.dump(cases, f, indent=1)


if __name__ == "__main__":
    for v in VARIANTS:
        tiny(v)
    if len(sys.argv) > 1:
        smollm2(sys.argv[1])
