//! Attention of one new query token per sequence over its KV cache, in one kernel.
//!
//! One cube per (sequence, query head); grouped heads read their KV head's keys and values.
//! Units stride over the cache's columns for the scores (dot product · scale + the layout's
//! additive bias, which masks padding and unwritten columns), meet in shared memory for the
//! softmax's max and sum, then each unit owns output dimensions and sums `p · v` over the
//! columns. The scores go through `scores` (global scratch, `[sequences·heads, cols]`), so the
//! cache length is not bounded by shared memory. Tensors in their float type `F` (f32, or f16
//! for `--f16` generation); the scores and all arithmetic in f32. Replaces Burn's q·kᵀ matmul,
//! scale, bias add, softmax (max, subtract, exp, sum, divide) and p·v matmul.

use super::cube_sum_shader::{cube_max, cube_sum};
use cubecl::prelude::*;

#[cube(launch)]
#[allow(clippy::too_many_arguments)]
pub fn decode_attention<F: Float>(
    q: &[F],
    keys: &[F],
    values: &[F],
    bias: &[F],
    scores: &mut [f32],
    out: &mut [F],
    heads: usize,
    kv_heads: usize,
    cols: usize,
    head_dim: usize,
    scale: f32,
    #[comptime] threads: usize,
    #[define(F)] _dtype: ElemType,
) {
    let unit = UNIT_POS as usize;
    let task = CUBE_POS as usize;
    let seq = task / heads;
    let kv = (task % heads) / (heads / kv_heads);
    let q_base = task * head_dim;
    let kv_base = (seq * kv_heads + kv) * cols * head_dim;
    let s_base = task * cols;

    let mut local_max = f32::new(-3.0e38);
    for c in range_stepped(unit, cols, threads) {
        let k_base = kv_base + c * head_dim;
        let mut dot = f32::new(0.0);
        for d in 0..head_dim {
            dot += f32::cast_from(q[q_base + d]) * f32::cast_from(keys[k_base + d]);
        }
        let s = dot * scale + f32::cast_from(bias[seq * cols + c]);
        scores[s_base + c] = s;
        local_max = local_max.max(s);
    }
    let m = cube_max(local_max, threads);

    // Each unit rewrites its own columns' scores as unnormalised probabilities.
    let mut local_sum = f32::new(0.0);
    for c in range_stepped(unit, cols, threads) {
        let p = (scores[s_base + c] - m).exp();
        scores[s_base + c] = p;
        local_sum += p;
    }
    let inv = f32::new(1.0) / cube_sum(local_sum, threads);
    // The next loop reads the other units' probabilities from global memory.
    sync_storage();

    for d in range_stepped(unit, head_dim, threads) {
        let mut acc = f32::new(0.0);
        for c in 0..cols {
            acc += scores[s_base + c] * f32::cast_from(values[kv_base + c * head_dim + d]);
        }
        out[q_base + d] = F::cast_from(acc * inv);
    }
}
