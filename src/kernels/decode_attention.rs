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

/// [`decode`] with each task's columns cut into `splits` spans.
fn decode_in(q: &[f32], k: &[f32], v: &[f32], bias: &[f32], sh: AttnShape, splits: usize) -> Vec<f32> {
    assert_eq!(sh.s, 1, "one query row per sequence");
    let (g, d, cols) = (sh.h / sh.kvh, sh.hd, sh.past + 1);
    assert!(q.len() == sh.b * sh.h * d && k.len() == sh.b * sh.kvh * sh.cols * d && v.len() == k.len() && bias.len() == sh.b * sh.cols && cols <= sh.cols, "decode attention's inputs are not shaped as {sh:?}");
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
            Isa::Baseline => self.body(out),
        }
    }

    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx512f,avx2,fma")]
    fn run_avx512(&self, out: &mut [f32]) -> Partial {
        self.body(out)
    }

    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2,fma")]
    fn run_avx2(&self, out: &mut [f32]) -> Partial {
        self.body(out)
    }

    /// Scores of every query head against each key row as it is read, their exponentials
    /// (shifted by each head's largest score), then each value row added into every head's
    /// output with those weights.
    #[inline(always)]
    fn body(&self, out: &mut [f32]) -> Partial {
        let (g, d) = (self.g, self.d);
        let cols = self.bias.len();
        let mut p = vec![0.0f32; g * cols];
        for (j, (key, &b)) in self.keys.chunks_exact(d).zip(self.bias).enumerate() {
            for (gi, qh) in self.q.chunks_exact(d).enumerate() {
                p[gi * cols + j] = self.scale * dot(qh, key) + b;
            }
        }
        let mut part = Partial { max: vec![0.0; g], sum: vec![0.0; g] };
        for ((row, max), sum) in p.chunks_exact_mut(cols).zip(&mut part.max).zip(&mut part.sum) {
            *max = row.iter().copied().fold(f32::NEG_INFINITY, f32::max);
            *sum = exp_shifted_in_place(row, *max);
        }
        for (j, value) in self.values.chunks_exact(d).enumerate() {
            for (gi, o) in out.chunks_exact_mut(d).enumerate() {
                let w = p[gi * cols + j];
                o.iter_mut().zip(value).for_each(|(o, x)| *o += w * x);
            }
        }
        part
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
        for (hd, past) in [(8, 9), (12, 9), (8, 40)] {
            let sh = AttnShape { b: 2, h: 6, kvh: 2, s: 1, cols: past + 9, hd, past, scale: 0.35 };
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
            // Every copy of the loops gives the same result as the CPU's own.
            let each: Vec<Vec<f32>> = [Isa::Baseline, Isa::detect()]
                .into_iter()
                .map(|isa| {
                    let mut out = vec![0.0f32; sh.h / sh.kvh * hd];
                    let group = Group { q: &q[..out.len()], keys: &k[..(sh.past + 1) * hd], values: &v[..(sh.past + 1) * hd], bias: &bias[..sh.past + 1], g: sh.h / sh.kvh, d: hd, scale: sh.scale };
                    group.run(&mut out, isa).normalize(&mut out);
                    out
                })
                .collect();
            let worst = max_diff(&each[0], &each[1]);
            assert!(worst < 1e-6, "head size {hd}: the baseline loops differ from the vector ones by {worst}");
        }
    }

    #[test]
    fn columns_are_split_only_for_few_tasks_and_never_below_the_minimum_span() {
        assert_eq!(column_splits(3, 1024, 2), 3, "batch 1 of SmolLM2: 3 tasks become 9");
        assert_eq!(column_splits(48, 1024, 2), 1, "batch 16 has tasks enough");
        assert_eq!(column_splits(3, 200, 2), 1, "too few columns to cut");
        assert_eq!(column_splits(3, 300, 16), 2, "spans of at least {MIN_SPLIT} columns");
    }
}
