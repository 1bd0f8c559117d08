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
