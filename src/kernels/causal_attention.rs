//! Attention for training on the CPU, `out = softmax(scale · q · kᵀ + bias) · v`, forward and
//! backward, without keeping the score matrix.
//!
//! Why: composed from Burn ops (`model::attention`), every layer of a training step builds the
//! scores and then ~8 single-threaded, freshly allocated passes over them (scale, bias, max, exp,
//! sum, divide, and their backward), and keeps the probabilities alive for the backward. Here
//! each (sequence, query head) is one task on its own core: blocks of [`ROWS`] query rows meet
//! only the key columns they may see (causal: `past + last row`), the softmax is one pass per row,
//! and the forward keeps only each row's log-sum-exp; the backward recomputes the probabilities
//! from it (one more small gemm per block) — the FlashAttention recipe, on the CPU.
//!
//! Layout (row-major): q `[b, h, s, hd]`, k and v `[b, kvh, cols, hd]` (`h` a multiple of `kvh`:
//! query head `i` reads KV head `i / (h / kvh)`), bias `[b, 1, s, cols]` (additive, −1e9 masks),
//! `past` cached columns before the first query row.

use super::fast_exp::exp_shifted_in_place;
use rayon::prelude::*;

/// Query rows per block: the block's scores (`ROWS × cols`) stay in L2.
pub const ROWS: usize = 64;

#[derive(Clone, Copy, Debug, PartialEq)]
pub struct AttnShape {
    pub b: usize,
    pub h: usize,
    pub kvh: usize,
    pub s: usize,
    pub cols: usize,
    pub hd: usize,
    pub past: usize,
    pub scale: f32,
}

impl AttnShape {
    fn group(&self) -> usize {
        self.h / self.kvh
    }
    /// Key columns the rows `r0..r1` may see.
    fn visible(&self, r1: usize) -> usize {
        (self.past + r1).min(self.cols)
    }
    fn check(&self, q: &[f32], k: &[f32], v: &[f32], bias: &[f32]) {
        assert!(self.kvh > 0 && self.h % self.kvh == 0, "{} query heads over {} KV heads", self.h, self.kvh);
        assert_eq!(q.len(), self.b * self.h * self.s * self.hd, "q is not [b, h, s, hd]");
        assert_eq!(k.len(), self.b * self.kvh * self.cols * self.hd, "k is not [b, kvh, cols, hd]");
        assert_eq!(v.len(), k.len(), "v is not shaped like k");
        assert_eq!(bias.len(), self.b * self.s * self.cols, "bias is not [b, 1, s, cols]");
        assert!(self.past + self.s <= self.cols, "{} past + {} rows > {} key columns", self.past, self.s, self.cols);
    }
}

/// One (sequence, query head): offsets of its q rows, its KV head's k/v and its bias rows.
struct Head {
    q: usize,
    kv: usize,
    bias: usize,
}

fn head(s: &AttnShape, task: usize) -> Head {
    let (bi, hi) = (task / s.h, task % s.h);
    let kh = hi / s.group();
    Head { q: task * s.s * s.hd, kv: (bi * s.kvh + kh) * s.cols * s.hd, bias: bi * s.s * s.cols }
}

/// `dst[m × n] = beta · lhs[m × k] · rhs[k × n] (+ dst if accumulate)`, strides as (column, row).
#[allow(clippy::too_many_arguments)]
fn mm(m: usize, n: usize, k: usize, dst: &mut [f32], accumulate: bool, lhs: &[f32], lhs_cs: usize, lhs_rs: usize, rhs: &[f32], rhs_cs: usize, rhs_rs: usize, beta: f32) {
    debug_assert!(dst.len() >= m * n);
    // SAFETY: callers pass slices that cover (m-1)·rs + (k-1)·cs (+1) elements; checked by the
    // shapes in `check` and by the block bounds below.
    unsafe {
        gemm::gemm(m, n, k, dst.as_mut_ptr(), 1, n as isize, accumulate, lhs.as_ptr(), lhs_cs as isize, lhs_rs as isize, rhs.as_ptr(), rhs_cs as isize, rhs_rs as isize, 1.0, beta, false, false, false, gemm::Parallelism::None);
    }
}

/// Scores of rows `r0..r1` against their visible columns, scaled and biased: `[rows, c]`.
fn scores(sh: &AttnShape, hd: &Head, q: &[f32], k: &[f32], bias: &[f32], r0: usize, r1: usize, out: &mut Vec<f32>) -> usize {
    let (rows, c, d) = (r1 - r0, sh.visible(r1), sh.hd);
    out.clear();
    out.resize(rows * c, 0.0);
    let qb = &q[hd.q + r0 * d..hd.q + r1 * d];
    // S = q_blk · kᵀ: rhs element [kk, j] = k[j·hd + kk].
    mm(rows, c, d, out, false, qb, 1, d, &k[hd.kv..hd.kv + c * d], d, 1, sh.scale);
    for (i, row) in out.chunks_mut(c).enumerate() {
        let b = &bias[hd.bias + (r0 + i) * sh.cols..][..c];
        for (z, bb) in row.iter_mut().zip(b) {
            *z += bb;
        }
    }
    c
}

/// `row ← softmax(row)`; returns the row's log-sum-exp.
pub(super) fn softmax_in_place(row: &mut [f32]) -> f32 {
    let max = row.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let sum = exp_shifted_in_place(row, max);
    let inv = 1.0 / sum;
    row.iter_mut().for_each(|z| *z *= inv);
    max + sum.ln()
}

/// `(out [b, h, s, hd], lse [b, h, s])`.
pub fn forward(q: &[f32], k: &[f32], v: &[f32], bias: &[f32], sh: AttnShape) -> (Vec<f32>, Vec<f32>) {
    sh.check(q, k, v, bias);
    let tasks = sh.b * sh.h;
    let parts: Vec<(Vec<f32>, Vec<f32>)> = (0..tasks)
        .into_par_iter()
        .map(|task| {
            let hd = head(&sh, task);
            let (mut out, mut lse) = (vec![0.0f32; sh.s * sh.hd], vec![0.0f32; sh.s]);
            let mut p = Vec::new();
            for r0 in (0..sh.s).step_by(ROWS) {
                let r1 = (r0 + ROWS).min(sh.s);
                let c = scores(&sh, &hd, q, k, bias, r0, r1, &mut p);
                for (i, row) in p.chunks_mut(c).enumerate() {
                    lse[r0 + i] = softmax_in_place(row);
                }
                mm(r1 - r0, sh.hd, c, &mut out[r0 * sh.hd..r1 * sh.hd], false, &p, 1, c, &v[hd.kv..hd.kv + c * sh.hd], 1, sh.hd, 1.0);
            }
            (out, lse)
        })
        .collect();
    let mut out = Vec::with_capacity(q.len());
    let mut lse = Vec::with_capacity(tasks * sh.s);
    for (o, l) in parts {
        out.extend(o);
        lse.extend(l);
    }
    (out, lse)
}

/// `(dq, dk, dv)` for the upstream gradient `dout` (shaped like `out`).
#[allow(clippy::too_many_arguments)]
pub fn backward(q: &[f32], k: &[f32], v: &[f32], bias: &[f32], out: &[f32], lse: &[f32], dout: &[f32], sh: AttnShape) -> (Vec<f32>, Vec<f32>, Vec<f32>) {
    sh.check(q, k, v, bias);
    assert_eq!(out.len(), q.len(), "out is not shaped like q");
    assert_eq!(dout.len(), q.len(), "dout is not shaped like q");
    let d = sh.hd;
    // Per query head: its dq rows, and its share of its KV head's dk and dv (summed below).
    let parts: Vec<(Vec<f32>, Vec<f32>, Vec<f32>)> = (0..sh.b * sh.h)
        .into_par_iter()
        .map(|task| {
            let hd = head(&sh, task);
            let mut dq = vec![0.0f32; sh.s * d];
            let (mut dk, mut dv) = (vec![0.0f32; sh.cols * d], vec![0.0f32; sh.cols * d]);
            let (mut p, mut dp) = (Vec::new(), Vec::new());
            let (kh, vh) = (&k[hd.kv..hd.kv + sh.cols * d], &v[hd.kv..hd.kv + sh.cols * d]);
            for r0 in (0..sh.s).step_by(ROWS) {
                let r1 = (r0 + ROWS).min(sh.s);
                let rows = r1 - r0;
                let c = scores(&sh, &hd, q, k, bias, r0, r1, &mut p);
                for (i, row) in p.chunks_mut(c).enumerate() {
                    let l = lse[task * sh.s + r0 + i];
                    exp_shifted_in_place(row, l);
                }
                let dob = &dout[hd.q + r0 * d..hd.q + r1 * d];
                let ob = &out[hd.q + r0 * d..hd.q + r1 * d];
                let qb = &q[hd.q + r0 * d..hd.q + r1 * d];
                // dv[0..c] += Pᵀ · dO
                mm(c, d, rows, &mut dv[..c * d], true, &p, c, 1, dob, 1, d, 1.0);
                // dP = dO · vᵀ
                dp.clear();
                dp.resize(rows * c, 0.0);
                mm(rows, c, d, &mut dp, false, dob, 1, d, &vh[..c * d], d, 1, 1.0);
                // dS = P ∘ (dP − rowsum(dO ∘ O)), kept in p.
                for i in 0..rows {
                    let delta: f32 = dob[i * d..(i + 1) * d].iter().zip(&ob[i * d..(i + 1) * d]).map(|(a, b)| a * b).sum();
                    for (z, g) in p[i * c..(i + 1) * c].iter_mut().zip(&dp[i * c..(i + 1) * c]) {
                        *z *= g - delta;
                    }
                }
                // dq = scale · dS · k ; dk[0..c] += scale · dSᵀ · q
                mm(rows, d, c, &mut dq[r0 * d..r1 * d], false, &p, 1, c, &kh[..c * d], 1, d, sh.scale);
                mm(c, d, rows, &mut dk[..c * d], true, &p, c, 1, qb, 1, d, sh.scale);
            }
            (dq, dk, dv)
        })
        .collect();
    let mut dq = Vec::with_capacity(q.len());
    let (mut dk, mut dv) = (vec![0.0f32; k.len()], vec![0.0f32; v.len()]);
    for (task, (q_part, k_part, v_part)) in parts.into_iter().enumerate() {
        dq.extend(q_part);
        let at = head(&sh, task).kv;
        for (acc, x) in dk[at..at + sh.cols * d].iter_mut().zip(k_part) {
            *acc += x;
        }
        for (acc, x) in dv[at..at + sh.cols * d].iter_mut().zip(v_part) {
            *acc += x;
        }
    }
    (dq, dk, dv)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn data(len: usize, seed: u64) -> Vec<f32> {
        let mut x = seed.wrapping_mul(0x9E3779B97F4A7C15) | 1;
        (0..len)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                (x % 2001) as f32 / 1000.0 - 1.0
            })
            .collect()
    }

    /// f64 reference with the full score matrix: out, and the gradients of Σ dout ∘ out.
    fn reference(q: &[f32], k: &[f32], v: &[f32], bias: &[f32], dout: &[f32], sh: AttnShape) -> [Vec<f64>; 4] {
        let d = sh.hd;
        let (mut out, mut dq, mut dk, mut dv) = (vec![0.0; q.len()], vec![0.0; q.len()], vec![0.0; k.len()], vec![0.0; v.len()]);
        for task in 0..sh.b * sh.h {
            let hd = head(&sh, task);
            for r in 0..sh.s {
                let qr = |kk: usize| q[hd.q + r * d + kk] as f64;
                let s: Vec<f64> = (0..sh.cols).map(|j| (0..d).map(|kk| qr(kk) * k[hd.kv + j * d + kk] as f64).sum::<f64>() * sh.scale as f64 + bias[hd.bias + r * sh.cols + j] as f64).collect();
                let max = s.iter().cloned().fold(f64::MIN, f64::max);
                let e: Vec<f64> = s.iter().map(|z| (z - max).exp()).collect();
                let sum: f64 = e.iter().sum();
                let p: Vec<f64> = e.iter().map(|x| x / sum).collect();
                for kk in 0..d {
                    out[hd.q + r * d + kk] = (0..sh.cols).map(|j| p[j] * v[hd.kv + j * d + kk] as f64).sum();
                }
                let g = |kk: usize| dout[hd.q + r * d + kk] as f64;
                let dp: Vec<f64> = (0..sh.cols).map(|j| (0..d).map(|kk| g(kk) * v[hd.kv + j * d + kk] as f64).sum()).collect();
                let delta: f64 = (0..sh.cols).map(|j| p[j] * dp[j]).sum();
                for j in 0..sh.cols {
                    let ds = p[j] * (dp[j] - delta) * sh.scale as f64;
                    for kk in 0..d {
                        dv[hd.kv + j * d + kk] += p[j] * g(kk);
                        dq[hd.q + r * d + kk] += ds * k[hd.kv + j * d + kk] as f64;
                        dk[hd.kv + j * d + kk] += ds * qr(kk);
                    }
                }
            }
        }
        [out, dq, dk, dv]
    }

    fn close(got: &[f32], want: &[f64], what: &str) {
        assert_eq!(got.len(), want.len(), "{what}: length");
        for (i, (a, b)) in got.iter().zip(want).enumerate() {
            assert!((*a as f64 - b).abs() <= 2e-5 * (1.0 + b.abs()), "{what}[{i}]: {a} vs {b}");
        }
    }

    /// Causal bias with left padding `pad[b]`: padded rows see only themselves.
    fn causal_bias(sh: &AttnShape, pad: &[usize]) -> Vec<f32> {
        let mut bias = vec![-1e9f32; sh.b * sh.s * sh.cols];
        for bi in 0..sh.b {
            for r in 0..sh.s {
                for j in 0..=(sh.past + r) {
                    if j == sh.past + r || j >= sh.past + pad[bi] {
                        bias[(bi * sh.s + r) * sh.cols + j] = 0.0;
                    }
                }
            }
        }
        bias
    }

    #[test]
    fn matches_the_full_softmax_reference_across_blocks_groups_padding_and_past_columns() {
        // 150 rows: three blocks, the last one ragged; 3 query heads per KV head; one sequence
        // left-padded; then a call with cached columns before the first row.
        for (s, past) in [(150, 0), (70, 9)] {
            let sh = AttnShape { b: 2, h: 6, kvh: 2, s, cols: past + s, hd: 5, past, scale: 0.4 };
            let (q, k, v) = (data(sh.b * sh.h * s * 5, 1), data(sh.b * 2 * sh.cols * 5, 2), data(sh.b * 2 * sh.cols * 5, 3));
            let bias = causal_bias(&sh, &[0, 7]);
            let dout = data(q.len(), 4);
            let [want_out, want_dq, want_dk, want_dv] = reference(&q, &k, &v, &bias, &dout, sh);
            let (out, lse) = forward(&q, &k, &v, &bias, sh);
            close(&out, &want_out, "out");
            let (dq, dk, dv) = backward(&q, &k, &v, &bias, &out, &lse, &dout, sh);
            close(&dq, &want_dq, "dq");
            close(&dk, &want_dk, "dk");
            close(&dv, &want_dv, "dv");
        }
    }
}
