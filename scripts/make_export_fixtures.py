#!/usr/bin/env python3
"""llama.cpp's reading of our GGUF exports (an independent implementation), run once.

Exports the real SmolLM2-135M-Instruct GGUF with `memtrain export` as gguf-f16 and gguf-q8_0,
loads each file in llama.cpp (llama-cpp-python from PyPI) and records the last-position logits
of a fixed prompt, so that tests/export.rs can check that (a) llama.cpp loads what we write and
(b) our loader reads it back to the same numbers.

Writes tests/fixtures/export/llamacpp.json.
Usage: python scripts/make_export_fixtures.py path/to/memtrain path/to/SmolLM2-135M-Instruct.Q4_1.gguf
Needs: pip install llama-cpp-python numpy
"""
import json
import os
import subprocess
import sys
import tempfile

import numpy as np
from llama_cpp import Llama

ROOT = os.path.join(os.path.dirname(__file__), "..", "tests", "fixtures", "export")
# "The capital of France is" in SmolLM2's vocabulary (tests/fixtures/models/smollm2/reference.json).
INPUT_IDS = [504, 3575, 282, 4649, 314]


def main():
    memtrain, model = sys.argv[1], sys.argv[2]
    out = {"input_ids": INPUT_IDS}
    with tempfile.TemporaryDirectory() as tmp:
        for fmt in ["gguf-f16", "gguf-q8_0"]:
            path = os.path.join(tmp, fmt + ".gguf")
            subprocess.run([memtrain, "export", "--from", model, "--format", fmt, "--out", path], check=True)
            llm = Llama(model_path=path, n_ctx=64, logits_all=True, verbose=False, n_threads=2)
            llm.eval(INPUT_IDS)
            logits = np.array(llm.scores[len(INPUT_IDS) - 1], dtype=np.float32)
            top = np.argsort(-logits)[:20]
            out[fmt] = {"top_ids": top.tolist(), "top_logits": logits[top].tolist()}
            print(fmt, "top-5", top[:5].tolist(), logits[top[:5]].tolist())
    os.makedirs(ROOT, exist_ok=True)
    with open(os.path.join(ROOT, "llamacpp.json"), "w") as f:
        json.dump(out, f, indent=1)


if __name__ == "__main__":
    main()
