//! The decode layer's step from one fused q/k/v projection to attention's inputs, in one
//! kernel: RoPE (Hugging Face's `rotate_half`) on q and k, q moved to head-major layout, and k
//! and v written into the KV cache at their columns `past + t`:
//! `q_out[b, h, t, d] = rope(q)[b, t, h, d]`, `keys[b, g, past + t, d] = rope(k)[b, t, g, d]`,
//! `values[b, g, past + t, d] = v[b, t, g, d]`, where `qkv[b, t, :]` holds q's heads, then k's,
//! then v's (the fused weight's column order).
//!
//! `q_out` is scaled by `q_scale` (1 in decoding; attention's scale in training, where the
//! same kernel with `capacity = seq`, `past = 0` moves a training step's q/k/v to head-major
//! layout: see `qkv_heads.rs` for its backward).
//!
//! Units stride over `qkv`'s elements. Replaces three projections' splits, RoPE's two kernels
//! (`rope.rs`, for q and k) and the cache's two slice-assigns.

use cubecl::prelude::*;

#[cube(launch)]
#[allow(clippy::too_many_arguments)]
pub fn qkv_to_cache<F: Float>(
    qkv: &[F],
    cos: &[F],
    sin: &[F],
    q_out: &mut [F],
    keys: &mut [F],
    values: &mut [F],
    q_scale: f32,
    seq: usize,
    heads: usize,
    kv_heads: usize,
    head_dim: usize,
    capacity: usize,
    past: usize,
    len: usize,
    stride: usize,
    #[define(F)] _dtype: ElemType,
) {
    let half = head_dim / 2;
    let width = (heads + 2 * kv_heads) * head_dim;
    for i in range_stepped(ABSOLUTE_POS as usize, len, stride) {
        let col = i % width;
        // `row` is b · seq + t: also the row of the cos/sin tables `[batch, 1, seq, head_dim]`.
        let row = i / width;
        let t = row % seq;
        let b = row / seq;
        let head = col / head_dim;
        let d = col % head_dim;
        if head < heads + kv_heads {
            let table = row * head_dim + d;
            let partner = if d < half { -f32::cast_from(qkv[i + half]) } else { f32::cast_from(qkv[i - half]) };
            let rotated = f32::cast_from(qkv[i]) * f32::cast_from(cos[table]) + partner * f32::cast_from(sin[table]);
            if head < heads {
                q_out[((b * heads + head) * seq + t) * head_dim + d] = F::cast_from(rotated * q_scale);
            } else {
                keys[((b * kv_heads + head - heads) * capacity + past + t) * head_dim + d] = F::cast_from(rotated);
            }
        } else {
            values[((b * kv_heads + head - heads - kv_heads) * capacity + past + t) * head_dim + d] = qkv[i];
        }
    }
}
