//! Attention of one new row per sequence over its cached keys and values (a CPU decode step):
//! one task per (sequence, KV head), whose `h / kvh` query heads share each key and value row
//! as it is read.
//!
//! Why: at decode time the cache is the largest thing a step reads after the weights — at
//! batch 16 and 1,024 cached columns, SmolLM2-135M's keys and values are 25 MB per layer, and
//! this attention took 36 ms of a step whose projections took 25 ms
//! (`examples/decode_attention_probe.rs`). Reading each row once for the whole group of query
//! heads (instead of once per head), and compiling the loops for the CPU's vector width
//! (the crate is built for baseline x86-64, so SSE, without this), is what makes it cheap.

use super::causal_attention::AttnShape;
use super::fast_exp::exp_shifted_in_place;
use super::rms_norm::dot;
use std::ops::Range;
use rayon::prelude::*;

/// Fewest columns a task reads when a sequence's columns are split across tasks.
const MIN_SPLIT: usize = 128;

/// `softmax(scale · q · kᵀ + bias) · v` for `q` head-major `[b, h, 1, hd]` over `k`, `v`
/// `[b, kvh, cols, hd]` and `bias` `[b, 1, 1, cols]`, reading columns `..=past` only (the
/// later ones are never written); returns `[b, h, 1, hd]`.
pub fn decode(q: &[f32], k: &[f32], v: &[f32], bias: &[f32], sh: AttnShape) -> Vec<f32> {
    let splits = column_splits(sh.b * sh.kvh, sh.past + 1, rayon::current_num_threads());
    decode_in(q, k, v, bias, sh, splits)
}

/// The prompts' common prefix, kept once (`[kvh, columns, hd]` keys after RoPE and values) beside
/// the copies in each sequence's cache: sequence `r` holds it from its column `starts[r]` (its
/// left padding) on.
#[derive(Clone, Copy, Debug)]
pub struct SharedColumns<'a> {
    pub keys: &'a [f32],
    pub values: &'a [f32],
    pub columns: usize,
    pub starts: &'a [usize],
}

/// [`decode`] reading each sequence's prefix columns from `shared` instead of its own copy, and
/// not reading its padding at all.
///
/// Why: decode attention reads every cached key and value row of every sequence once per step,
/// ~14 % of a GRPO step's generation on 2 cores (`perf`, 2026-12-08). The prompts of a call
/// share their first 80–138 of ~300 columns: read from one buffer per layer (20–35 KB of keys
/// and as much of values per KV head), which stays in the cores' caches while every sequence
/// reads it, they come from memory once per layer and step instead of once per sequence; the
/// padding before them is not read at all. Each sequence's softmax is the merge of two partial
/// ones (the prefix, then its own columns), as for columns split across tasks.
/// `examples/decode_attention_probe.rs --shared` (30 layers, each with its
/// own cache and prefix; rows padded by up to 70 columns; medians of 8 rounds): batch 32 over 300
/// columns sharing 125, 33–34 ms before the sized loops ([`Group::body`]), 22 ms with them,
/// 18 ms with the prefix read once and the padding skipped; batch 128 over 280 columns sharing
/// 80, 85–102, 80 and 65 ms (`docs/bench/cpu-decode-attention-2026-12-08/`).
///
/// Each sequence must hold the prefix's written columns in its own cache too: with too few
/// sequences to keep every core busy (the last rows of a call), this reads them there, through
/// [`decode`]'s column splits.
pub fn decode_with_shared(q: &[f32], k: &[f32], v: &[f32], bias: &[f32], sh: AttnShape, shared: SharedColumns) -> Vec<f32> {
    let splits = column_splits(sh.b * sh.kvh, sh.past + 1, rayon::current_num_threads());
    if splits > 1 {
        return decode_in(q, k, v, bias, sh, splits);
    }
    assert_shaped(q, k, v, bias, sh);
    let (g, d, cols) = (sh.h / sh.kvh, sh.hd, sh.past + 1);
    assert!(shared.starts.len() == sh.b && shared.keys.len() == sh.kvh * shared.columns * d && shared.values.len() == shared.keys.len(), "the shared prefix is not shaped for {sh:?}");
    let isa = Isa::detect();
    let mut out = vec![0.0f32; q.len()];
    out.par_chunks_mut(g * d).enumerate().for_each(|(task, out)| {
        let (bi, kh) = (task / sh.kvh, task % sh.kvh);
        let start = shared.starts[bi];
        assert!(start < cols, "sequence {bi} starts at column {start}, past the {cols} written");
        // The prefix's columns this sequence has (all but at a first step that ends inside it).
        let n = shared.columns.min(cols - start);
        let own = start + n..cols;
        let q = &q[task * g * d..][..g * d];
        let bias = &bias[bi * sh.cols..][..sh.cols];
        let from = kh * shared.columns * d;
        let prefix = Group { q, keys: &shared.keys[from..][..n * d], values: &shared.values[from..][..n * d], bias: &bias[start..start + n], g, d, scale: sh.scale };
        let at = (bi * sh.kvh + kh) * sh.cols * d;
        let rest = Group { q, keys: &k[at + own.start * d..at + own.end * d], values: &v[at + own.start * d..at + own.end * d], bias: &bias[own], g, d, scale: sh.scale };
        let mut parts = Vec::with_capacity(2);
        for group in [prefix, rest].into_iter().filter(|group| !group.bias.is_empty()) {
            let mut o = vec![0.0f32; g * d];
            let part = group.run(&mut o, isa);
            parts.push((o, part));
        }
        Partial::merge(&parts, out, d);
    });
    out
}

/// Checks one decode step's inputs against `sh` (see [`decode`]).
fn assert_shaped(q: &[f32], k: &[f32], v: &[f32], bias: &[f32], sh: AttnShape) {
    assert_eq!(sh.s, 1, "one query row per sequence");
    let d = sh.hd;
    assert!(q.len() == sh.b * sh.h * d && k.len() == sh.b * sh.kvh * sh.cols * d && v.len() == k.len() && bias.len() == sh.b * sh.cols && sh.past < sh.cols, "decode attention's inputs are not shaped as {sh:?}");
}

/// [`decode`] with each task's columns cut into `splits` spans.
fn decode_in(q: &[f32], k: &[f32], v: &[f32], bias: &[f32], sh: AttnShape, splits: usize) -> Vec<f32> {
    assert_shaped(q, k, v, bias, sh);
    let (g, d, cols) = (sh.h / sh.kvh, sh.hd, sh.past + 1);
    let isa = Isa::detect();
    // Task `task` = (sequence, KV head); `span` its columns to read.
    let group = |task: usize, span: Range<usize>| {
        let (bi, kh) = (task / sh.kvh, task % sh.kvh);
        let at = (bi * sh.kvh + kh) * sh.cols * d;
        let (keys, values) = (&k[at..at + cols * d], &v[at..at + cols * d]);
        Group { q: &q[task * g * d..][..g * d], keys: &keys[span.start * d..span.end * d], values: &values[span.start * d..span.end * d], bias: &bias[bi * sh.cols..][span], g, d, scale: sh.scale }
    };
    let mut out = vec![0.0f32; q.len()];
    if splits <= 1 {
        out.par_chunks_mut(g * d).enumerate().for_each(|(task, out)| {
            let part = group(task, 0..cols).run(out, isa);
            part.normalize(out);
        });
        return out;
    }
    // Few sequences over many columns (batch 1 has as many tasks as KV heads): each task's
    // columns in `splits` spans on their own tasks, the partial softmaxes merged after.
    let splits = splits.min(cols);
    let spans: Vec<Range<usize>> = (0..splits).map(|i| cols * i / splits..cols * (i + 1) / splits).collect();
    let parts: Vec<(Vec<f32>, Partial)> = (0..sh.b * sh.kvh * splits)
        .into_par_iter()
        .map(|i| {
            let mut o = vec![0.0f32; g * d];
            let part = group(i / splits, spans[i % splits].clone()).run(&mut o, isa);
            (o, part)
        })
        .collect();
    for (out, parts) in out.chunks_exact_mut(g * d).zip(parts.chunks_exact(splits)) {
        Partial::merge(parts, out, d);
    }
    out
}

/// How many spans each task's columns are cut into: enough tasks for every thread to get a
/// few, none shorter than [`MIN_SPLIT`] columns.
fn column_splits(tasks: usize, cols: usize, threads: usize) -> usize {
    (4 * threads).div_ceil(tasks.max(1)).min(cols / MIN_SPLIT).max(1)
}

/// Per query head of a group, over the columns it read: the largest score and the sum of
/// `exp(score − largest)`; beside it, the output `Σ exp(score − largest) · value`
/// (unnormalised).
struct Partial {
    max: Vec<f32>,
    sum: Vec<f32>,
}

impl Partial {
    /// Divides each head's output by its sum (the softmax's denominator).
    fn normalize(&self, out: &mut [f32]) {
        for (o, &sum) in out.chunks_exact_mut(out.len() / self.sum.len()).zip(&self.sum) {
            o.iter_mut().for_each(|x| *x /= sum);
        }
    }

    /// The softmax over all spans from each span's partial: every span rescaled to the
    /// largest score, then divided by the whole sum.
    fn merge(parts: &[(Vec<f32>, Partial)], out: &mut [f32], d: usize) {
        for (gi, o) in out.chunks_exact_mut(d).enumerate() {
            let max = parts.iter().map(|(_, p)| p.max[gi]).fold(f32::NEG_INFINITY, f32::max);
            let mut sum = 0.0f32;
            for (partial_out, p) in parts {
                let w = (p.max[gi] - max).exp();
                sum += w * p.sum[gi];
                o.iter_mut().zip(&partial_out[gi * d..][..d]).for_each(|(o, x)| *o += w * x);
            }
            o.iter_mut().for_each(|x| *x /= sum);
        }
    }
}

/// One task's inputs: the `g` query rows of one KV head, and the span of that head's columns
/// it reads.
struct Group<'a> {
    q: &'a [f32],
    keys: &'a [f32],
    values: &'a [f32],
    bias: &'a [f32],
    g: usize,
    d: usize,
    scale: f32,
}

#[derive(Clone, Copy, PartialEq)]
enum Isa {
    Baseline,
    #[cfg(target_arch = "x86_64")]
    Avx2,
    #[cfg(target_arch = "x86_64")]
    Avx512,
}

impl Isa {
    /// The baseline, then every vector copy this CPU can run (tests compare them).
    #[cfg(test)]
    fn available() -> Vec<Isa> {
        #[allow(unused_mut)]
        let mut all = vec![Isa::Baseline];
        #[cfg(target_arch = "x86_64")]
        {
            if std::is_x86_feature_detected!("avx2") && std::is_x86_feature_detected!("fma") {
                all.push(Isa::Avx2);
            }
            if std::is_x86_feature_detected!("avx512f") {
                all.push(Isa::Avx512);
            }
        }
        all
    }

    fn detect() -> Self {
        #[cfg(target_arch = "x86_64")]
        {
            if std::is_x86_feature_detected!("avx512f") {
                return Isa::Avx512;
            }
            if std::is_x86_feature_detected!("avx2") && std::is_x86_feature_detected!("fma") {
                return Isa::Avx2;
            }
        }
        Isa::Baseline
    }
}

impl Group<'_> {
    /// Writes the group's unnormalised output into `out` (zeros on entry), returns its partial.
    fn run(&self, out: &mut [f32], isa: Isa) -> Partial {
        match isa {
            // SAFETY: `Isa::detect` saw the CPU report the features these copies are built for.
            #[cfg(target_arch = "x86_64")]
            Isa::Avx512 => unsafe { self.run_avx512(out) },
            #[cfg(target_arch = "x86_64")]
            Isa::Avx2 => unsafe { self.run_avx2(out) },
            Isa::Baseline => self.body(out, Isa::Baseline),
        }
    }

    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx512f,avx2,fma")]
    fn run_avx512(&self, out: &mut [f32]) -> Partial {
        self.body(out, Isa::Avx512)
    }

    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2,fma")]
    fn run_avx2(&self, out: &mut [f32]) -> Partial {
        self.body(out, Isa::Avx2)
    }

    /// Scores of every query head against each key row as it is read, their exponentials
    /// (shifted by each head's largest score), then each value row added into every head's
    /// output with those weights.
    ///
    /// Why head sizes 64 and 128 get their own copies: with the size known, a group's outputs
    /// (up to 256 values: 16 AVX-512 registers; AVX2's 16 registers hold half, so there some
    /// spill) are accumulated while every value row is read once for all of the group's heads,
    /// and each score's lanes are summed as a tree. Written for any size, the loop loaded and
    /// stored every output row once per value row, and summed the lanes one after the other:
    /// together ~70 % of this kernel's samples in a GRPO step.
    #[inline(always)]
    fn body(&self, out: &mut [f32], isa: Isa) -> Partial {
        match self.d {
            64 => self.body_sized::<64>(out, isa),
            128 => self.body_sized::<128>(out, isa),
            _ => self.body_any(out),
        }
    }

    /// [`Self::body`] for any head size.
    #[inline(always)]
    fn body_any(&self, out: &mut [f32]) -> Partial {
        let (g, d) = (self.g, self.d);
        let cols = self.bias.len();
        let mut p = vec![0.0f32; g * cols];
        for (j, (key, &b)) in self.keys.chunks_exact(d).zip(self.bias).enumerate() {
            for (gi, qh) in self.q.chunks_exact(d).enumerate() {
                p[gi * cols + j] = self.scale * dot(qh, key) + b;
            }
        }
        let part = self.softmax(&mut p, cols);
        for (j, value) in self.values.chunks_exact(d).enumerate() {
            for (gi, o) in out.chunks_exact_mut(d).enumerate() {
                let w = p[gi * cols + j];
                o.iter_mut().zip(value).for_each(|(o, x)| *o += w * x);
            }
        }
        part
    }

    /// [`Self::body`] for head size `D`.
    #[inline(always)]
    fn body_sized<const D: usize>(&self, out: &mut [f32], isa: Isa) -> Partial {
        let (g, cols) = (self.g, self.bias.len());
        // The score loop of `body_any` with the sized dot, written out again: passed in as a
        // closure, the dot's intrinsics were no longer inlined (steps took 4× as long).
        let mut p = vec![0.0f32; g * cols];
        for (j, (key, &b)) in self.keys.chunks_exact(D).zip(self.bias).enumerate() {
            for (gi, qh) in self.q.chunks_exact(D).enumerate() {
                p[gi * cols + j] = self.scale * dot_lanes(qh, key, isa) + b;
            }
        }
        let part = self.softmax(&mut p, cols);
        // Heads in chunks whose outputs fit the registers: 4 × 64 or 2 × 128 values.
        let chunk = (256 / D).max(1);
        for (c, o) in out.chunks_mut(chunk * D).enumerate() {
            let p = &p[c * chunk * cols..];
            match o.len() / D {
                1 => weighted_values::<1, D>(p, cols, self.values, o),
                2 => weighted_values::<2, D>(p, cols, self.values, o),
                3 => weighted_values::<3, D>(p, cols, self.values, o),
                _ => weighted_values::<4, D>(p, cols, self.values, o),
            }
        }
        part
    }

    /// Each head's row of scores `[g, cols]` turned into `exp(score − max)` in place; their
    /// maxima and sums.
    #[inline(always)]
    fn softmax(&self, p: &mut [f32], cols: usize) -> Partial {
        let mut part = Partial { max: vec![0.0; self.g], sum: vec![0.0; self.g] };
        for ((row, max), sum) in p.chunks_exact_mut(cols).zip(&mut part.max).zip(&mut part.sum) {
            *max = row.iter().copied().fold(f32::NEG_INFINITY, f32::max);
            *sum = exp_shifted_in_place(row, *max);
        }
        part
    }
}

/// `Σ aᵢ·bᵢ` for rows whose length is a multiple of 16, in the CPU's vector lanes, the lanes
/// summed as a tree: a few vector adds instead of fifteen dependent scalar ones. Intrinsics
/// because for a head size known at compile time the compiler turned the portable loop into
/// 4-lane vectors even with AVX-512 on.
#[inline(always)]
fn dot_lanes(a: &[f32], b: &[f32], isa: Isa) -> f32 {
    debug_assert!(a.len() == b.len() && a.len() % 16 == 0);
    match isa {
        // SAFETY: `isa` is what `Isa::detect` saw the CPU report; the loads stay inside the rows.
        #[cfg(target_arch = "x86_64")]
        Isa::Avx512 => unsafe { dot_avx512(a, b) },
        #[cfg(target_arch = "x86_64")]
        Isa::Avx2 => unsafe { dot_avx2(a, b) },
        Isa::Baseline => dot(a, b),
    }
}

#[cfg(target_arch = "x86_64")]
#[inline(always)]
unsafe fn dot_avx512(a: &[f32], b: &[f32]) -> f32 {
    use std::arch::x86_64::*;
    // SAFETY: the caller checked AVX-512F; each load reads 16 values of a 16-value chunk.
    unsafe {
        let mut acc = _mm512_setzero_ps();
        for (x, y) in a.chunks_exact(16).zip(b.chunks_exact(16)) {
            acc = _mm512_fmadd_ps(_mm512_loadu_ps(x.as_ptr()), _mm512_loadu_ps(y.as_ptr()), acc);
        }
        _mm512_reduce_add_ps(acc)
    }
}

#[cfg(target_arch = "x86_64")]
#[inline(always)]
unsafe fn dot_avx2(a: &[f32], b: &[f32]) -> f32 {
    use std::arch::x86_64::*;
    // SAFETY: the caller checked AVX2 and FMA; each load reads 8 values of a 16-value chunk.
    unsafe {
        let (mut lo, mut hi) = (_mm256_setzero_ps(), _mm256_setzero_ps());
        for (x, y) in a.chunks_exact(16).zip(b.chunks_exact(16)) {
            lo = _mm256_fmadd_ps(_mm256_loadu_ps(x.as_ptr()), _mm256_loadu_ps(y.as_ptr()), lo);
            hi = _mm256_fmadd_ps(_mm256_loadu_ps(x.as_ptr().add(8)), _mm256_loadu_ps(y.as_ptr().add(8)), hi);
        }
        let v = _mm256_add_ps(lo, hi);
        let v = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
        let v = _mm_add_ps(v, _mm_movehl_ps(v, v));
        _mm_cvtss_f32(_mm_add_ss(v, _mm_shuffle_ps(v, v, 1)))
    }
}

/// `out[t] = Σ_j p[t · cols + j] · values[j]` for the `N` heads of `out` (`[N, D]`, zeros on
/// entry): each value row read once for all `N`, the sums kept in registers until the end.
#[inline(always)]
fn weighted_values<const N: usize, const D: usize>(p: &[f32], cols: usize, values: &[f32], out: &mut [f32]) {
    let mut acc = [[0.0f32; D]; N];
    for (j, value) in values.chunks_exact(D).enumerate() {
        let value: &[f32; D] = value.try_into().expect("a value row");
        for (t, acc) in acc.iter_mut().enumerate() {
            let w = p[t * cols + j];
            for k in 0..D {
                acc[k] += w * value[k];
            }
        }
    }
    for (o, acc) in out.chunks_exact_mut(D).zip(&acc) {
        o.copy_from_slice(acc);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernels::causal_attention as kernel;

    fn max_diff(a: &[f32], b: &[f32]) -> f32 {
        a.iter().zip(b).map(|(a, b)| (a - b).abs()).fold(0.0f32, f32::max)
    }

    #[test]
    fn decode_matches_the_blocked_kernel_with_grouped_heads_padding_stale_columns_and_split_spans() {
        // 2 sequences, 6 query heads over 2 KV heads, `past` cached columns + this row, 8 more
        // columns of capacity, row 1 left-padded by 3 (its first span is all padding when the
        // columns are cut in 4); head sizes with and without a ragged tail of lanes.
        // Head sizes 64 and 128 take the sized loops: 7 heads a group are a chunk of 4 and one
        // of 3 at 64, 3 heads a chunk of 2 and one of 1 at 128; 2 and 1 heads at 64.
        for (h, hd, past) in [(6, 8, 9), (6, 12, 9), (6, 8, 40), (6, 64, 9), (14, 64, 40), (6, 128, 40), (4, 64, 20), (2, 64, 20)] {
            let sh = AttnShape { b: 2, h, kvh: 2, s: 1, cols: past + 9, hd, past, scale: 0.35 };
            let wave = |n: usize, f: f32| (0..n).map(|i| ((i as f32) * f).sin()).collect::<Vec<f32>>();
            let (q, k, v) = (wave(sh.b * sh.h * sh.hd, 0.7), wave(sh.b * sh.kvh * sh.cols * sh.hd, 1.3), wave(sh.b * sh.kvh * sh.cols * sh.hd, 0.4));
            let mut bias = vec![0.0f32; sh.b * sh.cols];
            for (bi, pad) in [(0, 0), (1, 3)] {
                for j in 0..sh.cols {
                    if j < pad || j > sh.past {
                        bias[bi * sh.cols + j] = -1e9;
                    }
                }
            }
            let (want, _) = kernel::forward(&q, &k, &v, &bias, sh);
            for splits in [1, 2, 4] {
                let got = decode_in(&q, &k, &v, &bias, sh, splits);
                let worst = max_diff(&want, &got);
                assert!(worst < 1e-5, "head size {hd}, {splits} spans: decode differs from the blocked kernel by {worst}");
                // Columns past the written ones are never read: NaN there would reach every output.
                let stale = |x: &[f32]| x.iter().enumerate().map(|(i, &x)| if (i / sh.hd) % sh.cols > sh.past { f32::NAN } else { x }).collect::<Vec<f32>>();
                assert_eq!(decode_in(&q, &stale(&k), &stale(&v), &bias, sh, splits), got);
            }
            // Every copy of the loops this CPU can run gives the baseline's result.
            let each: Vec<Vec<f32>> = Isa::available()
                .into_iter()
                .map(|isa| {
                    let mut out = vec![0.0f32; sh.h / sh.kvh * hd];
                    let group = Group { q: &q[..out.len()], keys: &k[..(sh.past + 1) * hd], values: &v[..(sh.past + 1) * hd], bias: &bias[..sh.past + 1], g: sh.h / sh.kvh, d: hd, scale: sh.scale };
                    group.run(&mut out, isa).normalize(&mut out);
                    out
                })
                .collect();
            for other in &each[1..] {
                let worst = max_diff(&each[0], other);
                assert!(worst < 1e-6, "head size {hd}: the baseline loops differ from the vector ones by {worst}");
            }
        }
    }

    #[test]
    fn decode_with_a_shared_prefix_reads_it_once_and_skips_padding() {
        // 3 sequences, 6 query heads over 2 KV heads, a 5-column prefix; row 1 is padded by 4
        // columns, row 2 by 9: at `past` 12 its prefix ends past the written columns (a first
        // step that ends inside it) and only 4 of its 5 prefix columns are read.
        let (hd, past, columns, starts) = (64usize, 12usize, 5usize, [0usize, 4, 9]);
        let sh = AttnShape { b: 3, h: 6, kvh: 2, s: 1, cols: past + 4, hd, past, scale: 0.35 };
        let wave = |n: usize, f: f32| (0..n).map(|i| ((i as f32) * f).sin()).collect::<Vec<f32>>();
        let (shared_k, shared_v) = (wave(sh.kvh * columns * hd, 0.9), wave(sh.kvh * columns * hd, 0.6));
        let (mut k, mut v) = (wave(sh.b * sh.kvh * sh.cols * hd, 1.3), wave(sh.b * sh.kvh * sh.cols * hd, 0.4));
        let q = wave(sh.b * sh.h * hd, 0.7);
        let mut bias = vec![0.0f32; sh.b * sh.cols];
        for (bi, &start) in starts.iter().enumerate() {
            for j in 0..sh.cols {
                if j < start || j > past {
                    bias[bi * sh.cols + j] = -1e9;
                }
            }
            // Each row's copy of the prefix, as generation writes it, for the plain decode.
            for kh in 0..sh.kvh {
                for c in 0..columns.min(past + 1 - start) {
                    let (to, from) = (((bi * sh.kvh + kh) * sh.cols + start + c) * hd, (kh * columns + c) * hd);
                    k[to..to + hd].copy_from_slice(&shared_k[from..from + hd]);
                    v[to..to + hd].copy_from_slice(&shared_v[from..from + hd]);
                }
            }
        }
        let want = decode_in(&q, &k, &v, &bias, sh, 1);
        // Padding, the rows' own prefix copies and the unwritten columns poisoned: none may be read.
        let (mut k2, mut v2) = (k.clone(), v.clone());
        for (bi, &start) in starts.iter().enumerate() {
            for kh in 0..sh.kvh {
                let row = (bi * sh.kvh + kh) * sh.cols * hd;
                // Columns past `past` (never written) as well.
                for c in (0..(start + columns).min(past + 1)).chain(past + 1..sh.cols) {
                    k2[row + c * hd..row + (c + 1) * hd].fill(f32::NAN);
                    v2[row + c * hd..row + (c + 1) * hd].fill(f32::NAN);
                }
            }
        }
        let shared = SharedColumns { keys: &shared_k, values: &shared_v, columns, starts: &starts };
        let got = decode_with_shared(&q, &k2, &v2, &bias, sh, shared);
        let worst = max_diff(&want, &got);
        assert!(worst < 1e-6, "decode with the shared prefix differs from reading each row's copy by {worst}");
        // A wrong start for one row (its copy read from the wrong column) is seen.
        let wrong = decode_with_shared(&q, &k, &v, &bias, sh, SharedColumns { starts: &[0, 3, 9], ..shared });
        assert!(max_diff(&want, &wrong) > 1e-3);
    }

    #[test]
    fn columns_are_split_only_for_few_tasks_and_never_below_the_minimum_span() {
        assert_eq!(column_splits(3, 1024, 2), 3, "batch 1 of SmolLM2: 3 tasks become 9");
        assert_eq!(column_splits(48, 1024, 2), 1, "batch 16 has tasks enough");
        assert_eq!(column_splits(3, 200, 2), 1, "too few columns to cut");
        assert_eq!(column_splits(3, 300, 16), 2, "spans of at least {MIN_SPLIT} columns");
    }
}
