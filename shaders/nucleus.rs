//! Top-k and top-p (nucleus) on the device: which tokens of a row may be sampled, found without
//! ordering the vocabulary.
//!
//! The host sampler orders a row by logit, descending, lower id first on ties (`f32::total_cmp`),
//! keeps the first k, then the shortest prefix of those whose probability (renormalised over the
//! k, at the temperature) reaches p. Any prefix of that order is a boundary `(t, b)`: token `i`
//! is kept when `key(logit_i) > t`, or `== t` and `i ≤ b`, where `key` maps an f32's bits to a
//! u32 whose unsigned order is `total_cmp`'s. So instead of sorting 49k entries per row, the
//! boundary is found by radix selection, four bits a pass from the top: `t` is the largest key
//! with at least k tokens at or above it (8 counting passes over the row), or with at least p of
//! the mass at or above it (8 passes summing exponentials, the first also giving the whole
//! mass); when more tokens tie at `t` than fit, `b` is found the same way over their ids (6
//! passes). Each pass sorts the row's tokens into 16 digits plus "above" and "below" in
//! registers, and the sums meet in shared memory; 8 to 28 passes a row, against copying every
//! row to the host and sorting it there.

use super::cube_sum_shader::cube_max;
use cubecl::prelude::*;

/// The order key of `l`: unsigned order of keys = `f32::total_cmp` order of values (negative
/// values have all their bits flipped, positive ones only the sign).
#[cube]
pub fn order_key(l: f32) -> u32 {
    let bits = u32::reinterpret(l);
    let mut key = bits | 0x8000_0000;
    if bits >= 0x8000_0000 {
        key = bits ^ 0xFFFF_FFFF;
    }
    key
}

/// The value whose key is `key` (inverse of [`order_key`]).
#[cube]
fn key_value(key: u32) -> f32 {
    let mut bits = key ^ 0xFFFF_FFFF;
    if key >= 0x8000_0000 {
        bits = key ^ 0x8000_0000;
    }
    f32::reinterpret(bits)
}

/// Whether token `id` with key `key` lies inside the boundary `(t, b)`.
#[cube]
pub fn kept(key: u32, id: usize, t: u32, b: usize) -> bool {
    key > t || (key == t && id <= b)
}

/// Slots of a radix pass: 16 digits, then "above the prefix" and "below the prefix".
const SLOTS: usize = 18;

/// `x`'s bits from `bit` up (0 once `bit` reaches 32: a u32 shift by 32 is undefined).
#[cube]
fn high_bits(x: u32, bit: u32) -> u32 {
    let mut h = 0u32;
    if bit < 32 {
        h = x >> bit;
    }
    h
}

/// One radix pass over the row. Tokens taken: those inside `(t, b)`, and with key `tie` alone
/// when `by_id`. Their value — the key, or the id when `by_id` — is compared with `prefix` above
/// bit `shift + 4`: equal ones add their weight (1, or `exp((logit − max)/T)` when `weighted`)
/// to digit `(value >> shift) & 15`, greater ones to slot 16, smaller ones to slot 17. Every unit
/// gets the 18 sums in `totals` (`partial` holds `SLOTS × threads` partial sums).
#[cube]
fn radix_pass(
    logits: &[f32],
    base: usize,
    vocab: usize,
    t: u32,
    b: usize,
    tie: u32,
    by_id: bool,
    prefix: u32,
    shift: u32,
    weighted: bool,
    max: f32,
    inv_temperature: f32,
    partial: &mut Shared<[f32]>,
    totals: &mut Shared<[f32]>,
    #[comptime] threads: usize,
) {
    let unit = UNIT_POS as usize;
    let mut local = Array::<f32>::new(SLOTS);
    #[unroll]
    for s in 0..SLOTS {
        local[s] = f32::new(0.0);
    }
    let wanted = high_bits(prefix, shift + 4);
    for i in range_stepped(unit, vocab, threads) {
        let l = logits[base + i];
        let key = order_key(l);
        if kept(key, i, t, b) && (!by_id || key == tie) {
            let mut value = key;
            if by_id {
                value = u32::cast_from(i);
            }
            let mut weight = f32::new(1.0);
            if weighted {
                weight = ((l - max) * inv_temperature).exp();
            }
            let high = high_bits(value, shift + 4);
            let mut slot = ((value >> shift) & 15) as usize;
            if high > wanted {
                slot = 16;
            }
            if high < wanted {
                slot = 17;
            }
            local[slot] += weight;
        }
    }
    // Unit-major, so that the 18 summing units read neighbouring words (no bank conflicts).
    #[unroll]
    for s in 0..SLOTS {
        partial[unit * SLOTS + s] = local[s];
    }
    sync_cube();
    if unit < SLOTS {
        let mut sum = f32::new(0.0);
        for u in 0..threads {
            sum += partial[u * SLOTS + unit];
        }
        totals[unit] = sum;
    }
    sync_cube();
}

/// The largest key `t` whose tokens inside `(t0, b0)` at or above it weigh at least `target` (a
/// count, or a mass when `weighted`), four bits a pass from the top (8 passes). The target is
/// `count`, or when `share` > 0 that share of the whole weight, which the first pass sums.
/// Returns `t`, the weight strictly above it, the weight at it and the target.
#[cube]
fn key_boundary(
    logits: &[f32],
    base: usize,
    vocab: usize,
    t0: u32,
    b0: usize,
    weighted: bool,
    share: f32,
    count: f32,
    max: f32,
    inv_temperature: f32,
    partial: &mut Shared<[f32]>,
    totals: &mut Shared<[f32]>,
    #[comptime] threads: usize,
) -> (u32, f32, f32, f32) {
    let mut at = 0u32;
    let mut above = f32::new(0.0);
    let mut tied = f32::new(0.0);
    let mut target = count;
    for level in 0..8u32 {
        let shift = 28 - 4 * level;
        radix_pass(logits, base, vocab, t0, b0, 0u32, false, at, shift, weighted, max, inv_temperature, partial, totals, threads);
        if share > f32::new(0.0) && level == 0 {
            // Summed in the order of the loop below, so that digit 0 reaches it exactly.
            let mut whole = totals[16];
            for k in 0..16u32 {
                whole += totals[(15 - k) as usize];
            }
            target = share * whole;
        }
        // Digits from the top: the first at which the weight from there up reaches the target.
        // Digit 0 reaches it by the last pass's choice; a sum rounded another way that falls
        // short by an ulp still takes it.
        let mut from_here = totals[16];
        let mut digit = 0u32;
        let mut found = false;
        let mut strictly_above = totals[16];
        for k in 0..16u32 {
            let d = 15 - k;
            let with = from_here + totals[d as usize];
            if !found && (with >= target || d == 0) {
                digit = d;
                found = true;
                strictly_above = from_here;
                tied = totals[d as usize];
            }
            from_here = with;
        }
        above = strictly_above;
        at |= digit << shift;
        // Everyone has read `totals` before the next pass writes it.
        sync_cube();
    }
    (at, above, tied, target)
}

/// The id of the `rank`-th (from 1) token inside `(t, b)` with key `tie`: the largest `j` with
/// fewer than `rank` such tokens below it, four bits a pass (ids are below 2²⁴).
#[cube]
fn tie_id(logits: &[f32], base: usize, vocab: usize, t: u32, b: usize, tie: u32, rank: f32, partial: &mut Shared<[f32]>, totals: &mut Shared<[f32]>, #[comptime] threads: usize) -> usize {
    let mut at = 0u32;
    for level in 0..6u32 {
        let shift = 20 - 4 * level;
        radix_pass(logits, base, vocab, t, b, tie, true, at, shift, false, f32::new(0.0), f32::new(0.0), partial, totals, threads);
        let mut below = totals[17];
        let mut digit = 0u32;
        for d in 1..16u32 {
            below += totals[(d - 1) as usize];
            if below < rank {
                digit = d;
            }
        }
        at |= digit << shift;
        sync_cube();
    }
    at as usize
}

/// The boundary `(t, b)` of the row's kept tokens (module docs) for `top_k` (0 or ≥ vocab: off)
/// and `top_p` (≥ 1: off) at `1/inv_temperature` (> 0); `(0, vocab)`, without a pass over the
/// row, when neither restricts. All units must call it (every pass synchronises the cube) and
/// all get the same.
#[cube]
pub fn kept_boundary(logits: &[f32], base: usize, vocab: usize, top_k: usize, top_p: f32, inv_temperature: f32, #[comptime] threads: usize) -> (u32, usize) {
    let mut t = 0u32;
    let mut b = vocab;
    if (top_k > 0 && top_k < vocab) || top_p < f32::new(1.0) {
        let mut local_max = f32::new(-3.0e38);
        for i in range_stepped(UNIT_POS as usize, vocab, threads) {
            local_max = local_max.max(logits[base + i]);
        }
        let (kt, kb) = boundary_given_max(logits, base, vocab, top_k, top_p, cube_max(local_max, threads), inv_temperature, threads);
        t = kt;
        b = kb;
    }
    (t, b)
}

/// [`kept_boundary`] once the row's largest logit `max` is known (the weights' reference).
#[cube]
fn boundary_given_max(logits: &[f32], base: usize, vocab: usize, top_k: usize, top_p: f32, max: f32, inv_temperature: f32, #[comptime] threads: usize) -> (u32, usize) {
    let mut partial = Shared::<[f32]>::new_slice(SLOTS * threads);
    let mut totals = Shared::<[f32]>::new_slice(SLOTS);
    let mut t = 0u32;
    let mut b = vocab;
    if top_k > 0 && top_k < vocab {
        let k = f32::cast_from(top_k);
        let (at, above, tied, _) = key_boundary(logits, base, vocab, 0u32, vocab, false, f32::new(0.0), k, max, inv_temperature, &mut partial, &mut totals, threads);
        t = at;
        // Only the lowest ids of a tie at the k-th place fit.
        if tied > k - above {
            b = tie_id(logits, base, vocab, 0u32, vocab, at, k - above, &mut partial, &mut totals, threads);
        }
    }
    if top_p < f32::new(1.0) {
        let (at, above, tied_mass, target) = key_boundary(logits, base, vocab, t, b, true, top_p, f32::new(0.0), max, inv_temperature, &mut partial, &mut totals, threads);
        // The tie's tokens all weigh `each`; the host adds them one by one in id order until the
        // mass reaches p: the fewest that do (a rounding slip cannot leave the tie's range).
        let each = ((key_value(at) - max) * inv_temperature).exp();
        let tied = (tied_mass / each).round();
        let needed = ((target - above) / each).ceil().min(tied).max(f32::new(1.0));
        let mut id = vocab;
        if at == t {
            id = b;
        }
        if tied > needed {
            id = tie_id(logits, base, vocab, t, b, at, needed, &mut partial, &mut totals, threads);
        }
        // The nucleus lies inside the top-k cut; a boundary below it (NaN or infinite logits
        // make the mass NaN, and every digit then falls to 0) keeps the cut.
        if at >= t {
            t = at;
            b = id;
        }
    }
    (t, b)
}

/// `out[row] = (t's high 16 bits, low 16 bits, b)` for each row of `logits` `[rows, vocab]`: the
/// boundary alone (every value exact in f32), which the tests compare with the host's kept set.
#[cube(launch)]
pub fn kept_boundaries(logits: &[f32], out: &mut [f32], vocab: usize, top_k: usize, top_p: f32, inv_temperature: f32, #[comptime] threads: usize) {
    let row = CUBE_POS as usize;
    let (t, b) = kept_boundary(logits, row * vocab, vocab, top_k, top_p, inv_temperature, threads);
    if UNIT_POS == 0 {
        out[row * 3] = f32::cast_from(t >> 16);
        out[row * 3 + 1] = f32::cast_from(t & 0xFFFF);
        out[row * 3 + 2] = f32::cast_from(b);
    }
}
