//! `silu(gate) · up` element-wise in one kernel: `gate / (1 + e^(−gate)) · up` (in the tensors'
//! float type `F`, the arithmetic in f32).
//!
//! Units stride over the elements (`stride` = units in the launch), so any size fits a
//! launch's cube limit. Replaces Burn's sigmoid chain and two products (in the decode layer,
//! where Burn's fusion falls back, each its own launch).

use cubecl::prelude::*;

#[cube(launch)]
pub fn swiglu<F: Float>(gate: &[F], up: &[F], out: &mut [F], len: usize, stride: usize, #[define(F)] _dtype: ElemType) {
    for i in range_stepped(ABSOLUTE_POS as usize, len, stride) {
        let g = f32::cast_from(gate[i]);
        out[i] = F::cast_from(g / (f32::new(1.0) + (-g).exp()) * f32::cast_from(up[i]));
    }
}

/// `silu(gate) · up` where each row of `x` holds gate's `width` columns then up's (one fused
/// gate/up projection): `out[r, j] = silu(x[r, j]) · x[r, width + j]`.
#[cube(launch)]
pub fn swiglu_halves<F: Float>(x: &[F], out: &mut [F], width: usize, len: usize, stride: usize, #[define(F)] _dtype: ElemType) {
    for i in range_stepped(ABSOLUTE_POS as usize, len, stride) {
        let row = i / width;
        let j = i % width;
        let g = f32::cast_from(x[row * 2 * width + j]);
        out[i] = F::cast_from(g / (f32::new(1.0) + (-g).exp()) * f32::cast_from(x[row * 2 * width + width + j]));
    }
}

/// The backward of `silu(gate) · up` (training on wgpu): with `s = sigmoid(gate)`,
/// `dgate = dy · up · s·(1 + gate·(1 − s))` and `dup = dy · gate·s`, one pass for both.
#[cube(launch)]
#[allow(clippy::too_many_arguments)]
pub fn swiglu_backward<F: Float>(gate: &[F], up: &[F], dy: &[F], dgate: &mut [F], dup: &mut [F], len: usize, stride: usize, #[define(F)] _dtype: ElemType) {
    for i in range_stepped(ABSOLUTE_POS as usize, len, stride) {
        let g = f32::cast_from(gate[i]);
        let d = f32::cast_from(dy[i]);
        let s = f32::new(1.0) / (f32::new(1.0) + (-g).exp());
        dup[i] = F::cast_from(d * g * s);
        dgate[i] = F::cast_from(d * f32::cast_from(up[i]) * s * (f32::new(1.0) + g * (f32::new(1.0) - s)));
    }
}

/// The backward of [`swiglu_halves`] (training on wgpu, one fused gate/up projection): from
/// `dy` `[rows, width]` the gradient of `x` `[rows, 2·width]`, gate's half then up's, as
/// [`swiglu_backward`] computes them. Units stride over `dy`'s elements, each writing both
/// halves.
#[cube(launch)]
pub fn swiglu_halves_backward<F: Float>(x: &[F], dy: &[F], dx: &mut [F], width: usize, len: usize, stride: usize, #[define(F)] _dtype: ElemType) {
    for i in range_stepped(ABSOLUTE_POS as usize, len, stride) {
        let gate_at = (i / width) * 2 * width + i % width;
        let g = f32::cast_from(x[gate_at]);
        let d = f32::cast_from(dy[i]);
        let s = f32::new(1.0) / (f32::new(1.0) + (-g).exp());
        dx[gate_at + width] = F::cast_from(d * g * s);
        dx[gate_at] = F::cast_from(d * f32::cast_from(x[gate_at + width]) * s * (f32::new(1.0) + g * (f32::new(1.0) - s)));
    }
}
