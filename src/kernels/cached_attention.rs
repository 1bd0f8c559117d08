//! Attention over a KV cache for CPU inference (generation's prefill and decode on flex): RoPE,
//! the cache write and attention in one op, the cache kept as plain host buffers.
//!
//! Why: composed from Burn ops, each layer of a decode step ran RoPE on q and k (two narrows,
//! a negation, a concatenation, two products and a sum each), two layout copies, two
//! `slice_assign`s into the cache tensors and flex's attention, which runs one small gemm per
//! (sequence, KV head): ~80 ms of small single-threaded ops in a 185 ms batch-16 step of
//! SmolLM2-135M (README, Performance). Here q and k are rotated on their way to head-major
//! layout, k and v are written straight into the cache's buffers, and attention reads only the
//! key columns each row may see: a prefill through the training kernel's forward
//! ([`causal_attention`](super::causal_attention), one task per sequence and query head), a
//! decode step through [`decode_attention`] (one task per sequence and KV head, no gemm calls).

use super::causal_attention::{self as kernel, AttnShape};
use super::decode_attention;
use super::flex_glue::{self as glue, slice};
use super::head_layout::{self as layout, Dims, Rope};
use burn::prelude::*;
use burn_dispatch::backends::Flex;
use burn_std::Shape;
pub use super::host_kv::HostKv;

/// Attention for token-major q `[b, s, h, hd]`, k and v `[b, s, kvh, hd]` (projections' output)
/// at columns `past..past + s` of `cache` (grown to `capacity` columns; k and v written there),
/// RoPE tables cos/sin `[b, 1, s, hd]`, additive bias `[b, 1, s, capacity]`. Returns
/// `softmax(scale · q · kᵀ + bias) · v` token-major, `[b, s, h, hd]`. `None` unless every input
/// is f32 on plain flex (CPU inference) and our kernels are on: the caller then uses Burn's ops.
#[allow(clippy::too_many_arguments)]
pub fn cached_attention(q: &Tensor<4>, k: &Tensor<4>, v: &Tensor<4>, (cos, sin): (&Tensor<4>, &Tensor<4>), bias: &Tensor<4>, cache: &mut HostKv, past: usize, capacity: usize, scale: f32) -> Option<Tensor<4>> {
    if !glue::enabled() {
        return None;
    }
    let [b, s, h, hd] = q.dims();
    let [_, _, kvh, _] = k.dims();
    let table = [b, 1, s, hd];
    if k.dims() != [b, s, kvh, hd] || v.dims() != k.dims() || cos.dims() != table || sin.dims() != table || bias.dims() != [b, 1, s, capacity] {
        return None;
    }
    if kvh == 0 || h % kvh != 0 || hd % 2 != 0 || past + s > capacity {
        return None;
    }
    let [q, k, v, cos, sin, bias] = [q, k, v, cos, sin, bias].map(glue::plain);
    let (q, k, v, cos, sin, bias) = (q?, k?, v?, cos?, sin?, bias?);
    let rope = Rope { cos: slice(&cos), sin: slice(&sin) };
    let step = CachedStep { b, s, h, kvh, hd, past, capacity, scale };
    let out = attend(slice(&q), slice(&k), slice(&v), rope, slice(&bias), cache, step);
    Some(Tensor::from_primitive::<Flex>(glue::tensor(out, Shape::new([b, s, h, hd]))))
}

/// The sizes of one [`attend`] call: `b` sequences of `s` new rows, `h` query and `kvh` KV
/// heads of `hd` values, written at columns `past..past + s` of a cache of `capacity` columns.
#[derive(Clone, Copy, Debug)]
pub struct CachedStep {
    pub b: usize,
    pub s: usize,
    pub h: usize,
    pub kvh: usize,
    pub hd: usize,
    pub past: usize,
    pub capacity: usize,
    pub scale: f32,
}

/// [`cached_attention`] on host slices (the caller checked the sizes: `h` a multiple of
/// `kvh`, `hd` even, `past + s ≤ capacity`): token-major q `[b, s, h, hd]`, k and v
/// `[b, s, kvh, hd]`, RoPE tables `[b, s, hd]`, bias `[b, s, capacity]`; returns token-major
/// `[b, s, h, hd]`.
pub fn attend(q: &[f32], k: &[f32], v: &[f32], rope: Rope, bias: &[f32], cache: &mut HostKv, st: CachedStep) -> Vec<f32> {
    let CachedStep { b, s, h, kvh, hd, past, capacity, scale } = st;
    let (qd, kd) = (Dims { b, s, n: h, hd }, Dims { b, s, n: kvh, hd });
    cache.fit(b, kvh, hd, capacity);
    if s > 1 {
        // Several rows per sequence go through the prefill kernel, which reads each sequence's
        // columns in one buffer.
        cache.unshare();
    }
    cache.write(k, v, kd, past, rope);
    let q = layout::to_heads(q, qd, Some(rope));
    let shape = AttnShape { b, h, kvh, s, cols: capacity, hd, past, scale };
    if s == 1 {
        // Head-major `[b, h, 1, hd]` is already token-major.
        match cache.shared() {
            Some(shared) => decode_attention::decode_shared(&q, shared, (&cache.keys, &cache.values), bias, shape),
            None => decode_attention::decode(&q, &cache.keys, &cache.values, bias, shape),
        }
    } else {
        layout::from_heads(&kernel::forward(&q, &cache.keys, &cache.values, bias, shape).0, qd, None)
    }
}
