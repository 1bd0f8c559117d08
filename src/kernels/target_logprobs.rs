//! Log-probabilities of chosen tokens through the LM head, `log softmax(h · Wᵀ)[target]`, and
//! their gradients, on the CPU.
//!
//! Why: composed from Burn ops on flex, the LM head of a 512-token training step builds a
//! `[512, 49152]` logits matrix and then ~10 more passes of the same size (log-softmax, gather,
//! and in the backward the scattered one-hot, softmax backward, a transpose), each single-threaded
//! and freshly allocated — the profile's `expf`, page faults and memmoves. Here the forward is one
//! gemm plus one parallel pass per row (max, sum of exps), and the backward turns the kept logits
//! into `dz = g · (onehot − softmax)` in place with one more pass and then runs two gemms.
//!
//! Layout: `h` is `[n, d]` row-major; the head `W` is a `[vocab, d]` view given by its strides
//! (`HeadLayout`), so both a tied embedding table (`[vocab, d]`) and Burn's `Linear` weight
//! (`[d, vocab]`) are read in place, and the head's gradient is written in the head's own layout.

use super::fast_exp::{exp_shifted_in_place, sum_exp_shifted};
use rayon::prelude::*;

/// How the head's `[vocab, d]` view sits in its row-major buffer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HeadLayout {
    /// `[vocab, d]`: an embedding table used as the head (tied weights).
    VocabMajor,
    /// `[d, vocab]`: Burn's `Linear` weight (`x · W`).
    DimMajor,
}

/// Shapes of one call: `n` positions, hidden size `d`, `vocab` outputs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HeadShape {
    pub n: usize,
    pub d: usize,
    pub vocab: usize,
    pub layout: HeadLayout,
}

impl HeadShape {
    /// The shape of a call with hidden states `[n, d]`, a head of `head` dims stored as `layout`
    /// says, and `targets`; `None` when they do not fit together (sizes, a target ≥ vocab).
    pub fn of(hidden: [usize; 2], head: [usize; 2], layout: HeadLayout, targets: &[u32]) -> Option<Self> {
        let [n, d] = hidden;
        let vocab = match (layout, head) {
            (HeadLayout::VocabMajor, [v, hd]) if hd == d => v,
            (HeadLayout::DimMajor, [hd, v]) if hd == d => v,
            _ => return None,
        };
        (targets.len() == n && targets.iter().all(|&t| (t as usize) < vocab)).then_some(HeadShape { n, d, vocab, layout })
    }

    /// Strides `(row, col)` of element `[j, k]` (token j, hidden unit k) of the head's view.
    fn head_strides(&self) -> (isize, isize) {
        match self.layout {
            HeadLayout::VocabMajor => (self.d as isize, 1),
            HeadLayout::DimMajor => (1, self.vocab as isize),
        }
    }
}

/// What the forward keeps for the backward: the logits `[n, vocab]` and each row's log-sum-exp.
#[derive(Clone, Debug)]
pub struct Saved {
    pub logits: Vec<f32>,
    pub lse: Vec<f32>,
}

/// `log softmax(h · Wᵀ)[i, targets[i]]` for every row i, and what the backward needs.
pub fn forward(h: &[f32], w: &[f32], targets: &[u32], s: HeadShape) -> (Vec<f32>, Saved) {
    check(h, w, targets, s);
    let mut logits = vec![0.0f32; s.n * s.vocab];
    let (w_rs, w_cs) = s.head_strides();
    // logits[i, j] = Σ_k h[i, k] · W[j, k]: lhs h (rows d apart), rhs Wᵀ [d, vocab].
    // SAFETY: every pointer/stride pair addresses inside its buffer, checked by `check`.
    unsafe {
        gemm::gemm(s.n, s.vocab, s.d, logits.as_mut_ptr(), 1, s.vocab as isize, false, h.as_ptr(), 1, s.d as isize, w.as_ptr(), w_rs, w_cs, 0.0, 1.0, false, false, false, gemm::Parallelism::Rayon(0));
    }
    let lse: Vec<f32> = logits.par_chunks(s.vocab).map(log_sum_exp).collect();
    let logp = targets.iter().enumerate().map(|(i, &t)| logits[i * s.vocab + t as usize] - lse[i]).collect();
    (logp, Saved { logits, lse })
}

/// Gradients of `Σ_i g[i] · logp[i]` with respect to `h` (`[n, d]`) and to the head (in the
/// head's own layout), each only when asked for. Consumes the saved logits (overwritten in place).
pub fn backward(h: &[f32], w: &[f32], targets: &[u32], s: HeadShape, saved: Saved, g: &[f32], want_h: bool, want_w: bool) -> (Option<Vec<f32>>, Option<Vec<f32>>) {
    check(h, w, targets, s);
    assert_eq!(g.len(), s.n, "one upstream gradient per position");
    let Saved { logits: mut dz, lse } = saved;
    // d logp_i / d z_ij = [j = t_i] − softmax_ij.
    dz.par_chunks_mut(s.vocab).enumerate().for_each(|(i, row)| {
        let (gi, li) = (g[i], lse[i]);
        exp_shifted_in_place(row, li);
        row.iter_mut().for_each(|z| *z *= -gi);
        row[targets[i] as usize] += gi;
    });
    let (w_rs, w_cs) = s.head_strides();
    let dh = want_h.then(|| {
        let mut dh = vec![0.0f32; s.n * s.d];
        // dh[i, k] = Σ_j dz[i, j] · W[j, k]
        // SAFETY: as in `forward`.
        unsafe {
            gemm::gemm(s.n, s.d, s.vocab, dh.as_mut_ptr(), 1, s.d as isize, false, dz.as_ptr(), 1, s.vocab as isize, w.as_ptr(), w_cs, w_rs, 0.0, 1.0, false, false, false, gemm::Parallelism::Rayon(0));
        }
        dh
    });
    let dw = want_w.then(|| {
        let mut dw = vec![0.0f32; s.vocab * s.d];
        // dW[j, k] = Σ_i dz[i, j] · h[i, k], written with the head's strides.
        // SAFETY: as in `forward`; dw has the head's size and layout.
        unsafe {
            gemm::gemm(s.vocab, s.d, s.n, dw.as_mut_ptr(), w_cs, w_rs, false, dz.as_ptr(), s.vocab as isize, 1, h.as_ptr(), 1, s.d as isize, 0.0, 1.0, false, false, false, gemm::Parallelism::Rayon(0));
        }
        dw
    });
    (dh, dw)
}

fn log_sum_exp(row: &[f32]) -> f32 {
    let max = row.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    if !max.is_finite() {
        return max; // NaN or ±inf propagate: the caller's loss check reports it
    }
    max + sum_exp_shifted(row, max).ln()
}

fn check(h: &[f32], w: &[f32], targets: &[u32], s: HeadShape) {
    assert_eq!(h.len(), s.n * s.d, "hidden states are not [{}, {}]", s.n, s.d);
    assert_eq!(w.len(), s.vocab * s.d, "head is not {}×{}", s.vocab, s.d);
    assert_eq!(targets.len(), s.n, "one target per position");
    assert!(targets.iter().all(|&t| (t as usize) < s.vocab), "a target is outside the vocabulary of {}", s.vocab);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn data(len: usize, seed: u64) -> Vec<f32> {
        let mut x = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        (0..len)
            .map(|_| {
                x = x.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
                ((x >> 33) as f32 / (1u64 << 31) as f32 - 0.5) * 2.0
            })
            .collect()
    }

    /// `W[j, k]` of the `[vocab, d]` view, whatever the layout.
    fn at(w: &[f32], s: HeadShape, j: usize, k: usize) -> f64 {
        (match s.layout {
            HeadLayout::VocabMajor => w[j * s.d + k],
            HeadLayout::DimMajor => w[k * s.vocab + j],
        }) as f64
    }

    /// Plain f64 reference: log-probs, and the gradients of Σ g·logp.
    fn reference(h: &[f32], w: &[f32], t: &[u32], s: HeadShape, g: &[f32]) -> (Vec<f64>, Vec<f64>, Vec<f64>) {
        let (mut logp, mut dh, mut dw) = (vec![], vec![0.0; s.n * s.d], vec![0.0; s.vocab * s.d]);
        for i in 0..s.n {
            let z: Vec<f64> = (0..s.vocab).map(|j| (0..s.d).map(|k| h[i * s.d + k] as f64 * at(w, s, j, k)).sum()).collect();
            let max = z.iter().cloned().fold(f64::MIN, f64::max);
            let lse = max + z.iter().map(|v| (v - max).exp()).sum::<f64>().ln();
            logp.push(z[t[i] as usize] - lse);
            for j in 0..s.vocab {
                let dz = g[i] as f64 * ((j == t[i] as usize) as u8 as f64 - (z[j] - lse).exp());
                for k in 0..s.d {
                    dh[i * s.d + k] += dz * at(w, s, j, k);
                    let idx = match s.layout {
                        HeadLayout::VocabMajor => j * s.d + k,
                        HeadLayout::DimMajor => k * s.vocab + j,
                    };
                    dw[idx] += dz * h[i * s.d + k] as f64;
                }
            }
        }
        (logp, dh, dw)
    }

    fn close(got: &[f32], want: &[f64], tol: f64, what: &str) {
        assert_eq!(got.len(), want.len(), "{what}: length");
        for (i, (a, b)) in got.iter().zip(want).enumerate() {
            assert!((*a as f64 - b).abs() <= tol * (1.0 + b.abs()), "{what}[{i}]: {a} vs {b}");
        }
    }

    #[test]
    fn log_probs_and_gradients_match_an_f64_reference_in_both_head_layouts() {
        for layout in [HeadLayout::VocabMajor, HeadLayout::DimMajor] {
            // Ragged sizes, so that no dimension is a multiple of a SIMD width.
            let s = HeadShape { n: 13, d: 19, vocab: 37, layout };
            let (h, w, g) = (data(s.n * s.d, 1), data(s.vocab * s.d, 2), data(s.n, 3));
            let t: Vec<u32> = (0..s.n as u32).map(|i| (i * 11 + 5) % s.vocab as u32).collect();
            let (logp, saved) = forward(&h, &w, &t, s);
            let (want_logp, want_dh, want_dw) = reference(&h, &w, &t, s, &g);
            close(&logp, &want_logp, 1e-5, "logp");
            let (dh, dw) = backward(&h, &w, &t, s, saved, &g, true, true);
            close(&dh.unwrap(), &want_dh, 1e-5, "dh");
            close(&dw.unwrap(), &want_dw, 1e-5, "dw");
        }
    }

    #[test]
    fn only_the_asked_gradients_are_computed() {
        let s = HeadShape { n: 3, d: 4, vocab: 5, layout: HeadLayout::VocabMajor };
        let (h, w) = (data(12, 4), data(20, 5));
        let (_, saved) = forward(&h, &w, &[0, 4, 2], s);
        let (dh, dw) = backward(&h, &w, &[0, 4, 2], s, saved, &[1.0; 3], false, true);
        assert!(dh.is_none() && dw.is_some());
    }
}
