//! One AdamW step over a parameter tensor in one kernel (training on wgpu), in the order of
//! Burn's ops (see `train::adamw::fused_update`, the CPU's pass): `m ← β₁m + (1−β₁)g`,
//! `v ← β₂v + (1−β₂)g²`, `p ← p·keep − lr·(m / c₁) / (√(v / c₂) + ε)`, with `c = 1 − βᵗ` and
//! `keep = 1 − lr·λ`. The parameter and both moments are written in place (the launcher hands
//! over buffers it owns). At the first step (`fresh`) the moments are written, never read.
//! Replaces Burn's AdamW, ~14 element-wise ops per parameter that its fusion merges into a few
//! launches.

use cubecl::prelude::*;

#[cube(launch)]
#[allow(clippy::too_many_arguments)]
pub fn adamw_step(param: &mut [f32], grad: &[f32], m: &mut [f32], v: &mut [f32], b1: f32, b2: f32, c1: f32, c2: f32, eps: f32, keep: f32, lr: f32, len: usize, stride: usize, #[comptime] fresh: bool) {
    for i in range_stepped(ABSOLUTE_POS as usize, len, stride) {
        let g = grad[i];
        let mut mi = g * (f32::new(1.0) - b1);
        let mut vi = g * g * (f32::new(1.0) - b2);
        if !fresh {
            mi = m[i] * b1 + mi;
            vi = v[i] * b2 + vi;
        }
        m[i] = mi;
        v[i] = vi;
        param[i] = param[i] * keep - (mi / c1) / ((vi / c2).sqrt() + eps) * lr;
    }
}
