//! The backward of training attention's layout move on wgpu, from one fused q/k/v projection
//! to head-major q, k, v (forward: `qkv_to_cache.rs` with the step's own columns as its cache
//! and attention's scale folded into q).
//!
//! Forward: `qkv[b, t, :]` holds q's heads, then k's, then v's (the fused weight's column
//! order); out come head-major `q[b, h, t, d] = scale · rope(q)[b, t, h, d]`, `k[b, g, t, d] =
//! rope(k)[b, t, g, d]` and `v[b, g, t, d] = v[b, t, g, d]`: one launch instead of RoPE's two
//! (q, k) and v's layout copy, and the scores need no scaling of their own (f16 scores keep
//! their headroom).
//!
//! Backward (here): the gradients of those three outputs back into the gradient of `qkv`, the
//! rotation's transpose (times the scale) for q and k, the layout move back for v, one launch
//! instead of RoPE's two backward launches and v's gradient copy, and, because the projection
//! was one matmul, no sum of three input gradients. Units stride over `qkv`'s elements.

use cubecl::prelude::*;

/// `dqkv[b, t, :]` from `dq` `[b, heads, t, d]`, `dk`, `dv` `[b, kv_heads, t, d]`:
/// `dx_j = s · (dout_j·cos_j + (dout_{j+half}·sin_{j+half} for the first half,
/// −dout_{j−half}·sin_{j−half} for the second))` with `s` the scale for q and 1 for k; v's
/// gradient moved back as it is.
#[cube(launch)]
#[allow(clippy::too_many_arguments)]
pub fn qkv_to_heads_backward<F: Float>(dq: &[F], dk: &[F], dv: &[F], cos: &[F], sin: &[F], dqkv: &mut [F], q_scale: f32, seq: usize, heads: usize, kv_heads: usize, head_dim: usize, len: usize, stride: usize, #[define(F)] _dtype: ElemType) {
    let half = head_dim / 2;
    let width = (heads + 2 * kv_heads) * head_dim;
    for i in range_stepped(ABSOLUTE_POS as usize, len, stride) {
        let col = i % width;
        let row = i / width;
        let t = row % seq;
        let b = row / seq;
        let head = col / head_dim;
        let j = col % head_dim;
        if head < heads + kv_heads {
            let table = row * head_dim;
            let partner = if j < half { j + half } else { j - half };
            let sign = if j < half { f32::new(1.0) } else { f32::new(-1.0) };
            if head < heads {
                let src = ((b * heads + head) * seq + t) * head_dim;
                let direct = f32::cast_from(dq[src + j]) * f32::cast_from(cos[table + j]);
                dqkv[i] = F::cast_from(q_scale * (direct + sign * f32::cast_from(dq[src + partner]) * f32::cast_from(sin[table + partner])));
            } else {
                let src = ((b * kv_heads + head - heads) * seq + t) * head_dim;
                let direct = f32::cast_from(dk[src + j]) * f32::cast_from(cos[table + j]);
                dqkv[i] = F::cast_from(direct + sign * f32::cast_from(dk[src + partner]) * f32::cast_from(sin[table + partner]));
            }
        } else {
            dqkv[i] = dv[((b * kv_heads + head - heads - kv_heads) * seq + t) * head_dim + j];
        }
    }
}
