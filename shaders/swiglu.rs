//! `silu(gate) · up` element-wise in one kernel: `gate / (1 + e^(−gate)) · up`.
//!
//! Units stride over the elements (`stride` = units in the launch), so any size fits a
//! launch's cube limit. Replaces Burn's sigmoid chain and two products (in the decode layer,
//! where Burn's fusion falls back, each its own launch).

use cubecl::prelude::*;

#[cube(launch)]
pub fn swiglu(gate: &[f32], up: &[f32], out: &mut [f32], len: usize, stride: usize) {
    for i in range_stepped(ABSOLUTE_POS as usize, len, stride) {
        let g = gate[i];
        out[i] = g / (f32::new(1.0) + (-g).exp()) * up[i];
    }
}

/// `silu(gate) · up` where each row of `x` holds gate's `width` columns then up's (one fused
/// gate/up projection): `out[r, j] = silu(x[r, j]) · x[r, width + j]`.
#[cube(launch)]
pub fn swiglu_halves(x: &[f32], out: &mut [f32], width: usize, len: usize, stride: usize) {
    for i in range_stepped(ABSOLUTE_POS as usize, len, stride) {
        let row = i / width;
        let j = i % width;
        let g = x[row * 2 * width + j];
        out[i] = g / (f32::new(1.0) + (-g).exp()) * x[row * 2 * width + width + j];
    }
}
