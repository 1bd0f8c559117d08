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

/// The backward of [`rope_to_heads`] (training on wgpu): from the gradient of its head-major
/// output `dout[b, h, t, d]` to the token-major input's, `dx[b, t, h, j] = dout_j·cos_j +
/// (dout_{j+half}·sin_{j+half} for the first half, −dout_{j−half}·sin_{j−half} for the
/// second)` (the rotation's transpose). Units stride over dx's elements.
#[cube(launch)]
#[allow(clippy::too_many_arguments)]
pub fn rope_to_heads_backward<F: Float>(dout: &[F], cos: &[F], sin: &[F], dx: &mut [F], seq: usize, heads: usize, head_dim: usize, len: usize, stride: usize, #[define(F)] _dtype: ElemType) {
    let half = head_dim / 2;
    for i in range_stepped(ABSOLUTE_POS as usize, len, stride) {
        let j = i % head_dim;
        let h = (i / head_dim) % heads;
        let t = (i / (head_dim * heads)) % seq;
        let b = i / (head_dim * heads * seq);
        let row = ((b * heads + h) * seq + t) * head_dim;
        let table = (b * seq + t) * head_dim;
        let partner = if j < half { j + half } else { j - half };
        let sign = if j < half { f32::new(1.0) } else { f32::new(-1.0) };
        let direct = f32::cast_from(dout[row + j]) * f32::cast_from(cos[table + j]);
        dx[i] = F::cast_from(direct + sign * f32::cast_from(dout[row + partner]) * f32::cast_from(sin[table + partner]));
    }
}
