//! Moving attention's inputs and outputs between the projections' token-major layout
//! `[b, s, n, hd]` and the head-major layout `[b, n, s, hd]` attention works in, applying the
//! rotary embedding (HF `rotate_half` convention, see `model::rope`) on the way in and its
//! transpose on the way back (the gradient).
//!
//! Why: composed from Burn ops, RoPE is two narrows, a negation, a concatenation, two products
//! and a sum, and each layout change a strided copy — about twenty single-threaded passes per
//! layer in a training step (forward and backward). Here each direction is one parallel pass.

use rayon::prelude::*;

/// `cos` and `sin` tables `[b, s, hd]` (both halves of each row equal, as `rope::cos_sin` builds).
#[derive(Clone, Copy)]
pub struct Rope<'a> {
    pub cos: &'a [f32],
    pub sin: &'a [f32],
}

/// `[b, s, n, hd]` as named sizes.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Dims {
    pub b: usize,
    pub s: usize,
    pub n: usize,
    pub hd: usize,
}

impl Dims {
    fn check(&self, x: &[f32], rope: Option<Rope>) {
        assert_eq!(x.len(), self.b * self.s * self.n * self.hd, "values are not [b, s, n, hd] = {self:?}");
        assert!(self.hd % 2 == 0, "RoPE needs an even head size, got {}", self.hd);
        if let Some(r) = rope {
            assert!(r.cos.len() == self.b * self.s * self.hd && r.sin.len() == r.cos.len(), "RoPE tables are not [b, s, hd]");
        }
    }
}

/// Rotates one row of a head by its position's angles (`sign` −1: the inverse rotation, which
/// is also the rotation's transpose, so the gradient).
#[inline(always)]
fn rotate(src: &[f32], cos: &[f32], sin: &[f32], sign: f32, dst: &mut [f32]) {
    let half = src.len() / 2;
    let (x1, x2) = src.split_at(half);
    let (d1, d2) = dst.split_at_mut(half);
    for j in 0..half {
        d1[j] = x1[j] * cos[j] - sign * x2[j] * sin[j];
        d2[j] = x2[j] * cos[half + j] + sign * x1[j] * sin[half + j];
    }
}

/// Token-major `[b, s, n, hd]` → head-major `[b, n, s, hd]`, rotated when `rope` is given.
pub fn to_heads(x: &[f32], d: Dims, rope: Option<Rope>) -> Vec<f32> {
    d.check(x, rope);
    let mut out = vec![0.0f32; x.len()];
    out.par_chunks_mut(d.s * d.hd).enumerate().for_each(|(task, head)| {
        let (bi, ni) = (task / d.n, task % d.n);
        for (si, dst) in head.chunks_mut(d.hd).enumerate() {
            let token = bi * d.s + si;
            let src = &x[(token * d.n + ni) * d.hd..][..d.hd];
            match rope {
                Some(r) => rotate(src, &r.cos[token * d.hd..][..d.hd], &r.sin[token * d.hd..][..d.hd], 1.0, dst),
                None => dst.copy_from_slice(src),
            }
        }
    });
    out
}

/// Head-major `[b, n, s, hd]` → token-major `[b, s, n, hd]`, rotated back (the transpose of
/// [`to_heads`]'s rotation: the gradient's path) when `rope` is given.
pub fn from_heads(x: &[f32], d: Dims, rope: Option<Rope>) -> Vec<f32> {
    d.check(x, rope);
    let mut out = vec![0.0f32; x.len()];
    out.par_chunks_mut(d.n * d.hd).enumerate().for_each(|(token, row)| {
        let (bi, si) = (token / d.s, token % d.s);
        for (ni, dst) in row.chunks_mut(d.hd).enumerate() {
            let src = &x[((bi * d.n + ni) * d.s + si) * d.hd..][..d.hd];
            match rope {
                Some(r) => rotate(src, &r.cos[token * d.hd..][..d.hd], &r.sin[token * d.hd..][..d.hd], -1.0, dst),
                None => dst.copy_from_slice(src),
            }
        }
    });
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layouts_round_trip_and_the_rotation_is_hf_rotate_half() {
        let d = Dims { b: 2, s: 3, n: 2, hd: 4 };
        let x: Vec<f32> = (0..48).map(|i| i as f32 - 20.0).collect();
        let angles: Vec<f32> = (0..d.b * d.s * d.hd).map(|i| 0.3 * ((i / d.hd) as f32 + 1.0) * (1 + i % 2) as f32).collect();
        // Both halves of a row share angles, as `rope::cos_sin` builds them.
        let angle = |t: usize, j: usize| angles[t * d.hd + j % 2];
        let cos: Vec<f32> = (0..angles.len()).map(|i| angle(i / d.hd, i % d.hd).cos()).collect();
        let sin: Vec<f32> = (0..angles.len()).map(|i| angle(i / d.hd, i % d.hd).sin()).collect();
        let rope = Rope { cos: &cos, sin: &sin };
        let heads = to_heads(&x, d, None);
        // Element [b=1, n=0, s=2, j=3] comes from token (1, 2), head 0.
        assert_eq!(heads[((d.n + 0) * d.s + 2) * d.hd + 3], x[((d.s + 2) * d.n + 0) * d.hd + 3]);
        assert_eq!(from_heads(&heads, d, None), x);
        let rotated = to_heads(&x, d, Some(rope));
        // rotate_half: out = x·cos + [−x₂, x₁]·sin, checked at [b=1, n=1, s=1].
        let (t, h) = (d.s + 1, 1);
        let src = &x[(t * d.n + h) * d.hd..][..4];
        let got = &rotated[((d.n + h) * d.s + 1) * d.hd..][..4];
        let want = [src[0] * cos[t * 4] - src[2] * sin[t * 4], src[1] * cos[t * 4 + 1] - src[3] * sin[t * 4 + 1], src[2] * cos[t * 4 + 2] + src[0] * sin[t * 4 + 2], src[3] * cos[t * 4 + 3] + src[1] * sin[t * 4 + 3]];
        for (g, w) in got.iter().zip(want) {
            assert!((g - w).abs() < 1e-5, "rotated {got:?} vs {want:?}");
        }
        // The way back undoes the rotation (an orthogonal map: its transpose is its inverse).
        let back = from_heads(&rotated, d, Some(rope));
        assert!(back.iter().zip(&x).all(|(a, b)| (a - b).abs() < 1e-4), "{back:?}");
    }
}
