//! RMSNorm of each row in one kernel: `out = x / sqrt(mean(x²) + eps) · γ`, in the tensors'
//! float type `F` (f32, or f16 for `--f16` generation) with the arithmetic in f32.
//!
//! One cube per row, `threads` units striding over its columns; the units' partial sums of
//! squares meet in shared memory ([`cube_sum`]). Replaces Burn's five element-wise ops, a reduction and a
//! broadcast product (each its own launch when the decode layer's fusion falls back).

use super::cube_sum_shader::cube_sum;
use cubecl::prelude::*;

#[cube(launch)]
#[allow(clippy::too_many_arguments)]
pub fn rms_norm_rows<F: Float>(x: &[F], gamma: &[F], out: &mut [F], rows: usize, width: usize, eps: f32, #[comptime] threads: usize, #[define(F)] _dtype: ElemType) {
    // Past 65,535 rows the cubes form a grid (see `gpu::row_grid`): its tail has no row.
    if CUBE_POS as usize >= rows {
        terminate!();
    }
    let unit = UNIT_POS as usize;
    let base = CUBE_POS as usize * width;
    let mut squares = f32::new(0.0);
    for i in range_stepped(unit, width, threads) {
        let v = f32::cast_from(x[base + i]);
        squares += v * v;
    }
    let inv = f32::new(1.0) / (cube_sum(squares, threads) / f32::cast_from(width) + eps).sqrt();
    for i in range_stepped(unit, width, threads) {
        out[base + i] = F::cast_from(f32::cast_from(x[base + i]) * inv * f32::cast_from(gamma[i]));
    }
}

/// The residual add and the next RMSNorm in one kernel: `sum = x + delta` (the residual
/// stream, written out) and `out = sum / sqrt(mean(sum²) + eps) · γ`. Replaces the add's own
/// launch before [`rms_norm_rows`].
#[cube(launch)]
#[allow(clippy::too_many_arguments)]
pub fn add_rms_norm_rows<F: Float>(x: &[F], delta: &[F], gamma: &[F], sum: &mut [F], out: &mut [F], width: usize, eps: f32, #[comptime] threads: usize, #[define(F)] _dtype: ElemType) {
    let unit = UNIT_POS as usize;
    let base = CUBE_POS as usize * width;
    let mut squares = f32::new(0.0);
    for i in range_stepped(unit, width, threads) {
        // Rounded to F first, as Burn's add would leave it: the norm reads what the stream holds.
        let v = f32::cast_from(F::cast_from(f32::cast_from(x[base + i]) + f32::cast_from(delta[base + i])));
        sum[base + i] = F::cast_from(v);
        squares += v * v;
    }
    let inv = f32::new(1.0) / (cube_sum(squares, threads) / f32::cast_from(width) + eps).sqrt();
    // Each unit reads back only the sums it wrote itself: no barrier needed.
    for i in range_stepped(unit, width, threads) {
        out[base + i] = F::cast_from(f32::cast_from(sum[base + i]) * inv * f32::cast_from(gamma[i]));
    }
}

/// RMSNorm's backward (training on wgpu), one cube per row: with `r = 1/√(mean(x²) + eps)`,
/// `dx = r·γ·dy − x·r³·Σ(γ·dy·x)/width`, and each row's share of dγ, `dy·x·r`, into
/// `dgamma_rows` (the caller sums it over the rows). Replaces the backward of Burn's composed
/// norm (a dozen element-wise ops and reductions).
#[cube(launch)]
#[allow(clippy::too_many_arguments)]
pub fn rms_norm_backward_rows<F: Float>(x: &[F], gamma: &[F], dy: &[F], dx: &mut [F], dgamma_rows: &mut [F], rows: usize, width: usize, eps: f32, #[comptime] threads: usize, #[define(F)] _dtype: ElemType) {
    if CUBE_POS as usize >= rows {
        terminate!();
    }
    let unit = UNIT_POS as usize;
    let base = CUBE_POS as usize * width;
    let mut squares = f32::new(0.0);
    let mut dot = f32::new(0.0);
    for i in range_stepped(unit, width, threads) {
        let v = f32::cast_from(x[base + i]);
        squares += v * v;
        dot += v * f32::cast_from(gamma[i]) * f32::cast_from(dy[base + i]);
    }
    let inv = f32::new(1.0) / (cube_sum(squares, threads) / f32::cast_from(width) + eps).sqrt();
    let correction = cube_sum(dot, threads) * inv * inv * inv / f32::cast_from(width);
    for i in range_stepped(unit, width, threads) {
        let v = f32::cast_from(x[base + i]);
        let g = f32::cast_from(dy[base + i]);
        dx[base + i] = F::cast_from(inv * f32::cast_from(gamma[i]) * g - v * correction);
        dgamma_rows[base + i] = F::cast_from(g * v * inv);
    }
}
