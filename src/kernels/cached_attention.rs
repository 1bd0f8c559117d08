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

/// One layer's keys and values, `[batch, kv_heads, capacity, head_dim]` row-major (keys after
/// RoPE); columns past the written ones are zeros or stale, and masked by the attention bias.
#[derive(Clone, Debug, Default)]
pub struct HostKv {
    keys: Vec<f32>,
    values: Vec<f32>,
    batch: usize,
    kv_heads: usize,
    capacity: usize,
    head_dim: usize,
    /// The prompts' common prefix, once, when the rows' caches were made from it
    /// ([`Self::shared_prefix`]): decode steps read it from here (see
    /// [`decode_attention::decode_with_shared`]).
    prefix: Option<PrefixColumns>,
}

/// A shared prefix's keys and values `[kv_heads, columns, head_dim]`, and the column each row's
/// copy starts at. A row's copy is whole once the first step has run: [`HostKv::shared_prefix`]
/// writes its columns before `columns`, the first step recomputes the rest. Decode steps read the
/// prefix as computed alone, the first step the rows' copies: the same values to float rounding.
#[derive(Clone, Debug)]
struct PrefixColumns {
    keys: Vec<f32>,
    values: Vec<f32>,
    columns: usize,
    starts: Vec<usize>,
}

impl HostKv {
    /// Whether nothing was written yet (the layer uses Burn's tensors, or has not run).
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// `b` sequences of `capacity` zero columns.
    fn zeros(b: usize, kvh: usize, hd: usize, capacity: usize) -> HostKv {
        HostKv { keys: vec![0.0; b * kvh * capacity * hd], values: vec![0.0; b * kvh * capacity * hd], batch: b, kv_heads: kvh, capacity, head_dim: hd, prefix: None }
    }

    /// Grown to `capacity` columns for `b` sequences, the written columns kept (an empty cache
    /// is allocated).
    fn fit(&mut self, b: usize, kvh: usize, hd: usize, capacity: usize) {
        if self.is_empty() {
            *self = HostKv::zeros(b, kvh, hd, capacity);
            return;
        }
        // The batch changes only through `retain`: anything else is a caller's bug, and going
        // on would attend to another sequence's keys.
        assert_eq!((self.batch, self.kv_heads, self.head_dim), (b, kvh, hd), "KV cache [batch, kv heads, head dim] vs this call's");
        if capacity == self.capacity {
            return;
        }
        let (old, keep) = (self.capacity * hd, self.capacity.min(capacity) * hd);
        let grow = |src: &[f32]| {
            let mut dst = vec![0.0f32; b * kvh * capacity * hd];
            for (d, s) in dst.chunks_mut(capacity * hd).zip(src.chunks(old)) {
                d[..keep].copy_from_slice(&s[..keep]);
            }
            dst
        };
        self.keys = grow(&self.keys);
        self.values = grow(&self.values);
        self.capacity = capacity;
    }

    /// A cache of `pads.len()` sequences and `capacity` columns whose sequence `r` holds, from
    /// its column `pads[r]` (its first prompt token) up to column `columns`, the leading
    /// positions of `prefix`, a one-sequence cache of their shared prompt prefix. Keys were
    /// rotated at their positions, not their columns, so they move as they are. The columns
    /// past `columns` are left for the caller's next write (`None` if `prefix` is not one
    /// written sequence holding `columns` positions). The prefix is also kept once, whole, for
    /// decode steps to read instead of the rows' copies.
    pub fn shared_prefix(prefix: &HostKv, pads: &[usize], columns: usize, capacity: usize) -> Option<HostKv> {
        let HostKv { batch, kv_heads, head_dim: hd, capacity: from_cap, .. } = *prefix;
        if prefix.is_empty() || batch != 1 || from_cap < columns || capacity < columns {
            return None;
        }
        let b = pads.len();
        let compact = |src: &[f32]| -> Vec<f32> { (0..kv_heads).flat_map(|h| src[h * from_cap * hd..][..columns * hd].iter().copied()).collect() };
        let shared = PrefixColumns { keys: compact(&prefix.keys), values: compact(&prefix.values), columns, starts: pads.to_vec() };
        let mut out = HostKv { prefix: Some(shared), ..HostKv::zeros(b, kv_heads, hd, capacity) };
        for (r, &pad) in pads.iter().enumerate() {
            let n = columns.saturating_sub(pad) * hd;
            for h in 0..kv_heads {
                let (from, to) = (h * from_cap * hd, ((r * kv_heads + h) * capacity + pad) * hd);
                out.keys[to..to + n].copy_from_slice(&prefix.keys[from..from + n]);
                out.values[to..to + n].copy_from_slice(&prefix.values[from..from + n]);
            }
        }
        Some(out)
    }

    /// Writes token-major `[b, s, kvh, hd]` rows at columns `start..start + s` (`rope` rotates
    /// them: the keys).
    fn write(buffer: &mut [f32], x: &[f32], d: Dims, capacity: usize, start: usize, rope: Option<Rope>) {
        let heads = layout::to_heads(x, d, rope);
        for (bh, src) in heads.chunks(d.s * d.hd).enumerate() {
            buffer[(bh * capacity + start) * d.hd..][..d.s * d.hd].copy_from_slice(src);
        }
    }

    /// The sequences at `rows`, in that order: finished sequences leaving the batch, or rows
    /// repeated (one prefill shared by identical prompts).
    pub fn retain(&mut self, rows: &[usize]) {
        if self.is_empty() {
            return;
        }
        let per = self.kv_heads * self.capacity * self.head_dim;
        if rows.is_sorted_by(|a, b| a < b) {
            // Rows leaving: moved down in place. A new buffer (the old way) meant faulting in
            // gigabytes of fresh pages each time a sequence finished: 1.3 s a time for 128
            // recall answers of SmolLM2-135M with 512 cached columns, ~20 s of a GRPO step.
            for buffer in [&mut self.keys, &mut self.values] {
                for (to, &from) in rows.iter().enumerate().filter(|(to, from)| to != *from) {
                    buffer.copy_within(from * per..(from + 1) * per, to * per);
                }
                buffer.truncate(rows.len() * per);
            }
        } else {
            let pick = |src: &[f32]| {
                let mut out = Vec::with_capacity(rows.len() * per);
                rows.iter().for_each(|&r| out.extend_from_slice(&src[r * per..(r + 1) * per]));
                out
            };
            self.keys = pick(&self.keys);
            self.values = pick(&self.values);
        }
        self.batch = rows.len();
        if let Some(p) = &mut self.prefix {
            p.starts = rows.iter().map(|&r| p.starts[r]).collect();
        }
    }
}

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
    HostKv::write(&mut cache.keys, k, kd, capacity, past, Some(rope));
    HostKv::write(&mut cache.values, v, kd, capacity, past, None);
    let q = layout::to_heads(q, qd, Some(rope));
    let shape = AttnShape { b, h, kvh, s, cols: capacity, hd, past, scale };
    if s == 1 {
        // Head-major `[b, h, 1, hd]` is already token-major.
        match &cache.prefix {
            Some(p) => {
                let shared = decode_attention::SharedColumns { keys: &p.keys, values: &p.values, columns: p.columns, starts: &p.starts };
                decode_attention::decode_with_shared(&q, &cache.keys, &cache.values, bias, shape, shared)
            }
            None => decode_attention::decode(&q, &cache.keys, &cache.values, bias, shape),
        }
    } else {
        layout::from_heads(&kernel::forward(&q, &cache.keys, &cache.values, bias, shape).0, qd, None)
    }
}
