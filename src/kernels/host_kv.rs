//! The KV cache of CPU inference as plain host buffers ([`super::cached_attention`]), with the
//! rows of identical prompts shared instead of copied.
//!
//! Why the sharing: generation prefills identical prompts once (GRPO's recall answers sample
//! each of 32 prompts 4 times) and then gave every sequence its own copy of its prompt's cache
//! rows: 3 GB written for 128 sequences of 279 prompt columns (512 allocated) in SmolLM2-135M's
//! 30 layers, 7.7 s of a 20 s call, 1.6 s more for the rollouts' first turn (README,
//! Performance). Now each sequence keeps only the columns it writes after the prompt, and
//! attention reads the prompt's columns from the one shared row ([`SharedRows`],
//! [`super::decode_attention::decode_shared`]).

use super::head_layout::{self as layout, Dims, Rope};

/// One layer's keys and values (keys after RoPE) for `batch` sequences of `capacity` columns:
/// columns `first..capacity` of each sequence in `keys`/`values`, `[batch, kv_heads, capacity −
/// first, head_dim]` row-major, and its columns `..first` in [`SharedRows`] (`first` = 0 without
/// them). Columns past the written ones are zeros or stale, and masked by the attention bias.
#[derive(Clone, Debug, Default)]
pub struct HostKv {
    pub(super) keys: Vec<f32>,
    pub(super) values: Vec<f32>,
    batch: usize,
    kv_heads: usize,
    capacity: usize,
    head_dim: usize,
    shared: Option<SharedRows>,
}

/// Leading columns that several sequences share (one prefill of identical prompts).
#[derive(Clone, Debug)]
pub struct SharedRows {
    /// `[rows, kv_heads, stride, head_dim]`, of which columns `..columns` are read.
    pub keys: Vec<f32>,
    pub values: Vec<f32>,
    pub stride: usize,
    pub columns: usize,
    /// Each sequence's row here.
    pub row_of: Vec<usize>,
}

impl HostKv {
    /// Whether nothing was written yet (the layer uses Burn's tensors, or has not run).
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty() && self.shared.is_none()
    }

    /// The shared leading columns, if any.
    pub fn shared(&self) -> Option<&SharedRows> {
        self.shared.as_ref()
    }

    /// Columns per sequence in `keys`/`values`: those after the shared ones.
    fn own(&self) -> usize {
        self.capacity - self.shared.as_ref().map_or(0, |s| s.columns)
    }

    /// Grown to `capacity` columns for `b` sequences, the written columns kept (an empty cache
    /// is allocated).
    pub(super) fn fit(&mut self, b: usize, kvh: usize, hd: usize, capacity: usize) {
        if self.is_empty() {
            *self = HostKv { keys: vec![0.0; b * kvh * capacity * hd], values: vec![0.0; b * kvh * capacity * hd], batch: b, kv_heads: kvh, capacity, head_dim: hd, shared: None };
            return;
        }
        // The batch changes only through `retain`: anything else is a caller's bug, and going
        // on would attend to another sequence's keys.
        assert_eq!((self.batch, self.kv_heads, self.head_dim), (b, kvh, hd), "KV cache [batch, kv heads, head dim] vs this call's");
        if capacity == self.capacity {
            return;
        }
        let first = self.capacity - self.own();
        assert!(capacity >= first, "a cache cannot shrink below its shared columns");
        let (old, new) = (self.own() * hd, (capacity - first) * hd);
        let keep = old.min(new);
        let grow = |src: &[f32]| {
            let mut dst = vec![0.0f32; b * kvh * new];
            for (d, s) in dst.chunks_mut(new.max(1)).zip(src.chunks(old.max(1))) {
                d[..keep].copy_from_slice(&s[..keep]);
            }
            dst
        };
        self.keys = grow(&self.keys);
        self.values = grow(&self.values);
        self.capacity = capacity;
    }

    /// Writes token-major `[b, s, kvh, hd]` keys (rotated by `rope` on the way) and values at
    /// columns `start..start + s`, which must be past the shared ones.
    pub(super) fn write(&mut self, k: &[f32], v: &[f32], d: Dims, start: usize, rope: Rope) {
        let (first, own) = (self.capacity - self.own(), self.own());
        assert!(start >= first, "writing column {start} of a cache whose first {first} are shared");
        for (buffer, x, rope) in [(&mut self.keys, k, Some(rope)), (&mut self.values, v, None)] {
            let heads = layout::to_heads(x, d, rope);
            for (bh, src) in heads.chunks(d.s * d.hd).enumerate() {
                buffer[(bh * own + start - first) * d.hd..][..d.s * d.hd].copy_from_slice(src);
            }
        }
    }

    /// A cache of `pads.len()` sequences and `capacity` columns whose sequence `r` holds, from
    /// its column `pads[r]` (its first prompt token) up to column `columns`, the leading
    /// positions of `prefix`, a one-sequence cache of their shared prompt prefix. Keys were
    /// rotated at their positions, not their columns, so they move as they are. The columns
    /// past `columns` are left for the caller's next write (`None` if `prefix` is not one
    /// written sequence holding `columns` positions).
    pub fn shared_prefix(prefix: &HostKv, pads: &[usize], columns: usize, capacity: usize) -> Option<HostKv> {
        let HostKv { batch, kv_heads, head_dim: hd, capacity: from_cap, .. } = *prefix;
        if prefix.is_empty() || prefix.shared.is_some() || batch != 1 || from_cap < columns || capacity < columns {
            return None;
        }
        let b = pads.len();
        let mut out = HostKv { keys: vec![0.0; b * kv_heads * capacity * hd], values: vec![0.0; b * kv_heads * capacity * hd], batch: b, kv_heads, capacity, head_dim: hd, shared: None };
        for (r, &pad) in pads.iter().enumerate() {
            let n = columns.saturating_sub(pad) * hd;
            for h in 0..kv_heads {
                let (from, to) = (h * from_cap * hd, ((r * kv_heads + h) * capacity + pad) * hd);
                out.keys[to..to + n].copy_from_slice(&prefix.keys[from..from + n]);
                out.values[to..to + n].copy_from_slice(&prefix.values[from..from + n]);
            }
        }
        Some(out)
    }

    /// The sequences at `rows`, in that order: finished sequences leaving the batch, or rows
    /// repeated (see [`Self::repeat_rows`] for identical prompts).
    pub fn retain(&mut self, rows: &[usize]) {
        if self.is_empty() {
            return;
        }
        let per = self.kv_heads * self.own() * self.head_dim;
        if rows.is_sorted_by(|a, b| a < b) {
            // Rows leaving: moved down in place. A new buffer (the old way) meant faulting in
            // gigabytes of fresh pages each time a sequence finished: 1.3 s a time for 128
            // recall answers of SmolLM2-135M with 512 cached columns, ~20 s of a GRPO step.
            for buffer in [&mut self.keys, &mut self.values] {
                for (to, &from) in rows.iter().enumerate().filter(|(to, from)| to != *from) {
                    buffer.copy_within(from * per..(from + 1) * per, to * per);
                }
                buffer.truncate(rows.len() * per);
            }
        } else {
            let pick = |src: &[f32]| {
                let mut out = Vec::with_capacity(rows.len() * per);
                rows.iter().for_each(|&r| out.extend_from_slice(&src[r * per..(r + 1) * per]));
                out
            };
            self.keys = pick(&self.keys);
            self.values = pick(&self.values);
        }
        if let Some(s) = &mut self.shared {
            s.row_of = rows.iter().map(|&r| s.row_of[r]).collect();
        }
        self.batch = rows.len();
    }

    /// The sequences at `rows` (repeats allowed), each reading its first `written` columns
    /// from the row it repeats instead of a copy of them: the current buffers become the shared
    /// rows, and each sequence gets zeroed buffers for its later columns. A cache that already
    /// shares columns (or `written` out of range) copies rows as [`Self::retain`] does.
    pub fn repeat_rows(&mut self, rows: &[usize], written: usize) {
        if self.is_empty() || self.shared.is_some() || written == 0 || written > self.capacity {
            self.retain(rows);
            return;
        }
        let own = rows.len() * self.kv_heads * (self.capacity - written) * self.head_dim;
        let (keys, values) = (std::mem::replace(&mut self.keys, vec![0.0; own]), std::mem::replace(&mut self.values, vec![0.0; own]));
        self.shared = Some(SharedRows { keys, values, stride: self.capacity, columns: written, row_of: rows.to_vec() });
        self.batch = rows.len();
    }

    /// Each sequence's columns in one buffer again (every shared column copied to its
    /// sequences), for a call that reads them so.
    pub(super) fn unshare(&mut self) {
        let Some(s) = self.shared.take() else { return };
        let (kvh, hd, cap) = (self.kv_heads, self.head_dim, self.capacity);
        let own = cap - s.columns;
        let join = |shared: &[f32], mine: &[f32]| {
            let mut out = vec![0.0f32; self.batch * kvh * cap * hd];
            for (r, &from) in s.row_of.iter().enumerate() {
                for h in 0..kvh {
                    let to = (r * kvh + h) * cap * hd;
                    out[to..][..s.columns * hd].copy_from_slice(&shared[(from * kvh + h) * s.stride * hd..][..s.columns * hd]);
                    out[to + s.columns * hd..][..own * hd].copy_from_slice(&mine[(r * kvh + h) * own * hd..][..own * hd]);
                }
            }
            out
        };
        self.keys = join(&s.keys, &self.keys);
        self.values = join(&s.values, &self.values);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernels::cached_attention::{CachedStep, attend};

    /// Deterministic values in [-1, 1).
    fn values(n: usize, seed: u64) -> Vec<f32> {
        let mut x = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        (0..n)
            .map(|_| {
                x = x.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
                ((x >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
            })
            .collect()
    }

    /// One [`attend`] call of `s` rows per sequence at `past` over `capacity` columns, the
    /// columns before each sequence's `pad` masked, the same inputs for both caches.
    fn step(caches: [&mut HostKv; 2], pads: &[usize], s: usize, past: usize, capacity: usize, seed: u64) -> f32 {
        let (h, kvh, hd) = (4, 2, 8);
        let b = pads.len();
        let (q, k, v) = (values(b * s * h * hd, seed), values(b * s * kvh * hd, seed + 1), values(b * s * kvh * hd, seed + 2));
        let (cos, sin) = (values(b * s * hd, seed + 3), values(b * s * hd, seed + 4));
        let mut bias = vec![0.0f32; b * s * capacity];
        for (r, &pad) in pads.iter().enumerate() {
            for i in 0..s {
                for c in 0..capacity {
                    if c < pad.min(past + i) || c > past + i {
                        bias[(r * s + i) * capacity + c] = -1e9;
                    }
                }
            }
        }
        let st = CachedStep { b, s, h, kvh, hd, past, capacity, scale: 0.35 };
        let [a, z] = caches.map(|c| attend(&q, &k, &v, Rope { cos: &cos, sin: &sin }, &bias, c, st));
        a.iter().zip(&z).map(|(x, y)| (x - y).abs()).fold(0.0, f32::max)
    }

    /// Repeated prompts reading their prompt columns from one shared row attend as copies do:
    /// through decode steps, the capacity growing, sequences leaving and a multi-row step.
    #[test]
    fn shared_prompt_rows_attend_as_copied_ones() {
        let (mut copied, mut shared) = (HostKv::default(), HostKv::default());
        // Three distinct prompts of 5 columns, the second left-padded by 2.
        let distinct_pads = [0, 2, 0];
        assert!(step([&mut copied, &mut shared], &distinct_pads, 5, 0, 8, 10) < 1e-6);
        let rows = [0, 0, 1, 2, 2, 2];
        copied.retain(&rows);
        shared.repeat_rows(&rows, 5);
        assert!(shared.shared().is_some() && copied.shared().is_none());
        let mut pads: Vec<usize> = rows.iter().map(|&r| distinct_pads[r]).collect();
        let mut worst = 0.0f32;
        for (past, capacity) in [(5, 8), (6, 8), (7, 8), (8, 16), (9, 16)] {
            worst = worst.max(step([&mut copied, &mut shared], &pads, 1, past, capacity, 20 + past as u64));
        }
        let keep = [0, 2, 3, 5];
        copied.retain(&keep);
        shared.retain(&keep);
        pads = keep.iter().map(|&r| pads[r]).collect();
        worst = worst.max(step([&mut copied, &mut shared], &pads, 1, 10, 16, 40));
        assert_eq!(shared.shared().map(|s| s.row_of.clone()), Some(vec![0, 1, 2, 2]), "leaving sequences keep their shared rows");
        // Two rows per sequence: the shared columns go back into each sequence's buffer.
        worst = worst.max(step([&mut copied, &mut shared], &pads, 2, 11, 16, 50));
        assert!(shared.shared().is_none());
        assert!(worst < 1e-5, "shared rows attend {worst} off copied ones");
        assert_eq!((shared.keys.len(), shared.values.len()), (copied.keys.len(), copied.values.len()));
        assert!(shared.keys.iter().zip(&copied.keys).all(|(a, b)| a == b), "the unshared keys are the copies' keys");
    }
}
