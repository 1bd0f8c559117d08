//! Attention's softmax over biased scores, and its backward, one cube per score row (training
//! and prefill on wgpu).
//!
//! `p = softmax(scale · scores + bias)` along the last axis, `scores` `[batch, heads, rows,
//! cols]`, `bias` `[batch, 1, rows, cols]` shared by the heads (the causal and padding mask).
//! Replaces the scaling of q, Burn's bias add, max, subtraction, exp, sum and division (and, in
//! the backward, the backward of each); the backward needs only `p`: `ds = scale · p·(dp − Σ
//! p·dp)`. Tensors in their float type `F`, arithmetic in f32.

use super::cube_sum_shader::{cube_max, cube_sum};
use cubecl::prelude::*;

#[cube(launch)]
#[allow(clippy::too_many_arguments)]
pub fn softmax_bias_rows<F: Float>(scores: &[F], bias: &[F], out: &mut [F], scale: f32, all_rows: usize, heads: usize, rows: usize, cols: usize, #[comptime] threads: usize, #[define(F)] _dtype: ElemType) {
    // Past 65,535 rows the cubes form a grid (see `gpu::row_grid`): its tail has no row.
    if CUBE_POS as usize >= all_rows {
        terminate!();
    }
    let unit = UNIT_POS as usize;
    let row = CUBE_POS as usize;
    let base = row * cols;
    let bias_base = ((row / (heads * rows)) * rows + row % rows) * cols;
    let mut local_max = f32::new(-3.0e38);
    for c in range_stepped(unit, cols, threads) {
        local_max = local_max.max(f32::cast_from(scores[base + c]) * scale + f32::cast_from(bias[bias_base + c]));
    }
    let m = cube_max(local_max, threads);
    let mut local_sum = f32::new(0.0);
    for c in range_stepped(unit, cols, threads) {
        local_sum += (f32::cast_from(scores[base + c]) * scale + f32::cast_from(bias[bias_base + c]) - m).exp();
    }
    let inv = f32::new(1.0) / cube_sum(local_sum, threads);
    for c in range_stepped(unit, cols, threads) {
        out[base + c] = F::cast_from((f32::cast_from(scores[base + c]) * scale + f32::cast_from(bias[bias_base + c]) - m).exp() * inv);
    }
}

/// `ds = scale · p·(dp − Σ_c p·dp)` per row of `p` (the softmax's output) and `dp` (its
/// gradient).
#[cube(launch)]
#[allow(clippy::too_many_arguments)]
pub fn softmax_backward_rows<F: Float>(p: &[F], dp: &[F], ds: &mut [F], scale: f32, rows: usize, cols: usize, #[comptime] threads: usize, #[define(F)] _dtype: ElemType) {
    if CUBE_POS as usize >= rows {
        terminate!();
    }
    let unit = UNIT_POS as usize;
    let base = CUBE_POS as usize * cols;
    let mut local = f32::new(0.0);
    for c in range_stepped(unit, cols, threads) {
        local += f32::cast_from(p[base + c]) * f32::cast_from(dp[base + c]);
    }
    let dot = cube_sum(local, threads);
    for c in range_stepped(unit, cols, threads) {
        ds[base + c] = F::cast_from(scale * f32::cast_from(p[base + c]) * (f32::cast_from(dp[base + c]) - dot));
    }
}
