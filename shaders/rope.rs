//! Rotary position embedding (Hugging Face's `rotate_half` convention) and the move from the
//! projections' token-major layout to attention's head-major one, in one kernel:
//! `out[b, h, t, d] = x[b, t, h, d]·cos[b, t, d] + r[b, t, h, d]·sin[b, t, d]` with
//! `r = (−x[d + half] for the first half, x[d − half] for the second)`.
//!
//! Units stride over the output's elements. Replaces Burn's two narrows, negation,
//! concatenation, two products, sum and the strided copy of the layout move.

use cubecl::prelude::*;

#[cube(launch)]
#[allow(clippy::too_many_arguments)]
pub fn rope_to_heads<F: Float>(x: &[F], cos: &[F], sin: &[F], out: &mut [F], seq: usize, heads: usize, head_dim: usize, len: usize, stride: usize, #[define(F)] _dtype: ElemType) {
    let half = head_dim / 2;
    for i in range_stepped(ABSOLUTE_POS as usize, len, stride) {
        let d = i % head_dim;
        let t = (i / head_dim) % seq;
        let h = (i / (head_dim * seq)) % heads;
        let b = i / (head_dim * seq * heads);
        let row = ((b * seq + t) * heads + h) * head_dim;
        let table = (b * seq + t) * head_dim + d;
        let rotated = if d < half { -f32::cast_from(x[row + d + half]) } else { f32::cast_from(x[row + d - half]) };
        out[i] = F::cast_from(f32::cast_from(x[row + d]) * f32::cast_from(cos[table]) + rotated * f32::cast_from(sin[table]));
    }
}
