//! Sampling the next token of each sequence from its logits row, where the logits are: the
//! Gumbel-max trick, `token = argmax_i (logit_i / T + g_i)` with `g_i = −ln(−ln u_i)` and
//! `u_i` uniform in (0, 1), draws exactly from `softmax(logits / T)` without sorting, a prefix
//! sum or any pass the rows would have to share. `u_i` comes from a hash of the row's seed and
//! `i` (the host draws a fresh seed per row per step from that sequence's own RNG, so a
//! sequence's draws do not depend on the rows beside it). Also returns the token's
//! log-probability at temperature 1 (what GRPO keeps): `logit − max − ln Σ exp(logit − max)`.
//!
//! With top-k or top-p the draw is restricted to the row's kept tokens, whose boundary
//! `nucleus.rs` finds first (a pass for the row's largest logit, then its counting passes); the
//! Gumbel-max over the kept tokens alone draws from the renormalised softmax over them.
//!
//! One cube per row, units striding over the vocabulary; max, best key (ties to the lower id)
//! and the sum meet in shared memory. Replaces copying the whole `[rows, vocab]` logits to the
//! host and two passes of exponentials there per row (19 ms per step at 32 rows on one core).

use super::cube_sum_shader::cube_sum;
use super::nucleus_shader::{kept, kept_boundary, order_key};
use cubecl::prelude::*;

/// murmur3's 32-bit finaliser: every input bit flips about half the output bits.
#[cube]
fn mix(x: u32) -> u32 {
    let mut h = x;
    h ^= h >> 16;
    h *= 0x85eb_ca6b;
    h ^= h >> 13;
    h *= 0xc2b2_ae35;
    h ^= h >> 16;
    h
}

/// `−ln u` for `u` uniform in (0, 1) from 23 bits of `h` (an exponential variate, always > 0).
/// `u = (k + ½)·2⁻²³` is exact in f32 and never reaches 0 or 1 (24 bits would round the last
/// cell up to 1, whose −ln is 0: an infinite key). Near 1 the GPU's `ln` may be off by 2⁻²¹
/// absolutely (WGSL's bound), which could give 0 or a negative value, so there `−ln u` comes
/// from the series of `−ln(1 − v)` with `v = 1 − u` (exact): `v + v²/2 + v³/3`.
#[cube]
fn exponential(h: u32) -> f32 {
    let u = (f32::cast_from(h >> 9) + f32::new(0.5)) * f32::new(1.192_092_9e-7);
    let v = f32::new(1.0) - u;
    let mut e = -u.ln();
    if v < f32::new(1.0e-3) {
        e = v * (f32::new(1.0) + v * (f32::new(0.5) + v / f32::new(3.0)));
    }
    e
}

/// `out[row] = (token, log-prob)` for `logits` `[rows, vocab]` and `seeds` `[rows]` (integers
/// below 2²⁴ held in f32); `inv_temperature` 0 picks greedily (the largest logit, lowest id on
/// ties, as the host's argmax does; the seeds, `top_k` and `top_p` are then ignored). `top_k` 0
/// and `top_p` ≥ 1 keep the whole vocabulary.
#[cube(launch)]
pub fn sample_rows(logits: &[f32], seeds: &[f32], out: &mut [f32], vocab: usize, inv_temperature: f32, top_k: usize, top_p: f32, #[comptime] threads: usize) {
    let unit = UNIT_POS as usize;
    let row = CUBE_POS as usize;
    let base = row * vocab;
    let stream = mix(u32::cast_from(seeds[row]) ^ 0x9e37_79b9);
    // The kept tokens' boundary (nucleus.rs); (0, vocab) keeps all, as greedy does.
    let mut t = 0u32;
    let mut b = vocab;
    if inv_temperature > f32::new(0.0) {
        let (kt, kb) = kept_boundary(logits, base, vocab, top_k, top_p, inv_temperature, threads);
        t = kt;
        b = kb;
    }
    let mut local_max = f32::new(-3.0e38);
    let mut best_key = f32::new(-3.0e38);
    // A valid id even if no key beats the start (a row of NaNs): never past the row's end.
    let mut best_id = if unit < vocab { unit } else { 0usize };
    for i in range_stepped(unit, vocab, threads) {
        let l = logits[base + i];
        local_max = local_max.max(l);
        let mut key = l;
        if inv_temperature > f32::new(0.0) {
            key = l * inv_temperature - exponential(mix(u32::cast_from(i) ^ stream)).ln();
        }
        // Units visit ids in increasing order, so `>` keeps each unit's lowest id on ties; a
        // token outside top-k / top-p never competes.
        if key > best_key && kept(order_key(l), i, t, b) {
            best_key = key;
            best_id = i;
        }
    }
    let mut maxes = Shared::<[f32]>::new_slice(threads);
    let mut keys = Shared::<[f32]>::new_slice(threads);
    let mut ids = Shared::<[u32]>::new_slice(threads);
    maxes[unit] = local_max;
    keys[unit] = best_key;
    ids[unit] = u32::cast_from(best_id);
    sync_cube();
    if unit == 0 {
        let mut m = maxes[0];
        let mut k = keys[0];
        let mut id = ids[0];
        for t in 1..threads {
            m = m.max(maxes[t]);
            if keys[t] > k || (keys[t] == k && ids[t] < id) {
                k = keys[t];
                id = ids[t];
            }
        }
        maxes[0] = m;
        ids[0] = id;
    }
    sync_cube();
    let m = maxes[0];
    let mut local_sum = f32::new(0.0);
    for i in range_stepped(unit, vocab, threads) {
        local_sum += (logits[base + i] - m).exp();
    }
    let total = cube_sum(local_sum, threads);
    if unit == 0 {
        let token = usize::cast_from(ids[0]);
        out[row * 2] = f32::cast_from(token);
        out[row * 2 + 1] = logits[base + token] - m - total.ln();
    }
}
