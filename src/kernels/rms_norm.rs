//! RMSNorm over the last dimension, forward and backward, for training on the CPU.
//!
//! Why: Burn's `RmsNorm` is five element-wise ops (square, mean, add, sqrt, divide) and a
//! broadcast multiply, each a fresh single-threaded pass with its output kept for the backward,
//! which then runs about twice as many; a training step of SmolLM2-135M has 61 of these norms.
//! Here the forward is one pass per row (keeping only each row's `1/rms`), the backward one pass
//! per row plus the γ reduction, both split across cores.
//!
//! `y = x · rstd · γ`, `rstd = 1/√(mean(x²) + eps)`, rows of `d = γ.len()` values, row-major.
//! Backward: `dγ = Σ_rows dy · x · rstd`; `dx = rstd · (dy·γ − x · rstd² · mean(dy·γ·x))`.

use rayon::prelude::*;

/// Rows per parallel task: enough work per task to hide rayon's overhead at d = 576.
const ROWS: usize = 16;

/// Σ aᵢ·bᵢ in sixteen lanes (a single running sum would not vectorise).
#[inline(always)]
pub(super) fn dot(a: &[f32], b: &[f32]) -> f32 {
    let mut acc = [0.0f32; 16];
    let (ca, cb) = (a.chunks_exact(16), b.chunks_exact(16));
    let tail: f32 = ca.remainder().iter().zip(cb.remainder()).map(|(x, y)| x * y).sum();
    for (x, y) in ca.zip(cb) {
        for ((s, x), y) in acc.iter_mut().zip(x).zip(y) {
            *s += x * y;
        }
    }
    acc.iter().sum::<f32>() + tail
}

fn rows(x: &[f32], d: usize) -> usize {
    assert!(d > 0 && x.len() % d == 0, "{} values are not rows of {d}", x.len());
    x.len() / d
}

/// `(y, rstd)` for `x: [n, d]` and `gamma: [d]`.
pub fn forward(x: &[f32], gamma: &[f32], eps: f32) -> (Vec<f32>, Vec<f32>) {
    let d = gamma.len();
    let n = rows(x, d);
    let (mut y, mut rstd) = (vec![0.0f32; x.len()], vec![0.0f32; n]);
    y.par_chunks_mut(ROWS * d).zip(rstd.par_chunks_mut(ROWS)).zip(x.par_chunks(ROWS * d)).for_each(|((y, rstd), x)| {
        for ((y, r), x) in y.chunks_mut(d).zip(rstd).zip(x.chunks(d)) {
            *r = 1.0 / (dot(x, x) / d as f32 + eps).sqrt();
            for ((y, &x), &g) in y.iter_mut().zip(x).zip(gamma) {
                *y = x * *r * g;
            }
        }
    });
    (y, rstd)
}

/// `(dx, dgamma)` for the upstream gradient `dy` (shaped like `x`).
pub fn backward(x: &[f32], gamma: &[f32], rstd: &[f32], dy: &[f32]) -> (Vec<f32>, Vec<f32>) {
    let d = gamma.len();
    let n = rows(x, d);
    assert_eq!(rstd.len(), n, "one rstd per row");
    assert_eq!(dy.len(), x.len(), "dy is not shaped like x");
    let mut dx = vec![0.0f32; x.len()];
    // Each task adds its rows' share of dγ into its own buffer; the buffers are summed after.
    let partial: Vec<Vec<f32>> = dx
        .par_chunks_mut(ROWS * d)
        .zip(x.par_chunks(ROWS * d))
        .zip(dy.par_chunks(ROWS * d))
        .zip(rstd.par_chunks(ROWS))
        .map(|(((dx, x), dy), rstd)| {
            let mut dgamma = vec![0.0f32; d];
            let mut gy = vec![0.0f32; d];
            for (((dx, x), dy), &r) in dx.chunks_mut(d).zip(x.chunks(d)).zip(dy.chunks(d)).zip(rstd) {
                for (((g, acc), &dy), (&x, &gm)) in gy.iter_mut().zip(dgamma.iter_mut()).zip(dy).zip(x.iter().zip(gamma)) {
                    *g = dy * gm;
                    *acc += dy * x * r;
                }
                let c = r * r * dot(&gy, x) / d as f32;
                for ((dx, &g), &x) in dx.iter_mut().zip(&gy).zip(x) {
                    *dx = r * (g - x * c);
                }
            }
            dgamma
        })
        .collect();
    let mut dgamma = vec![0.0f32; d];
    for p in partial {
        dgamma.iter_mut().zip(p).for_each(|(a, b)| *a += b);
    }
    (dx, dgamma)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn data(len: usize, seed: u32) -> Vec<f32> {
        (0..len).map(|i| (((i as u32).wrapping_mul(2_654_435_761).wrapping_add(seed) >> 8) % 2001) as f32 / 500.0 - 2.0).collect()
    }

    /// The formulas in f64, one row at a time, written as the derivative of the loss Σ dy·y.
    fn reference(x: &[f32], gamma: &[f32], dy: &[f32], eps: f64) -> (Vec<f64>, Vec<f64>, Vec<f64>) {
        let d = gamma.len();
        let (mut y, mut dx, mut dg) = (vec![], vec![], vec![0.0; d]);
        for (x, dy) in x.chunks(d).zip(dy.chunks(d)) {
            let ms = x.iter().map(|&v| (v as f64).powi(2)).sum::<f64>() / d as f64;
            let r = 1.0 / (ms + eps).sqrt();
            let s: f64 = (0..d).map(|j| dy[j] as f64 * gamma[j] as f64 * x[j] as f64).sum();
            for j in 0..d {
                y.push(x[j] as f64 * r * gamma[j] as f64);
                dg[j] += dy[j] as f64 * x[j] as f64 * r;
                // ∂/∂x_j of Σ_i dy_i γ_i x_i r = dy_j γ_j r + (Σ_i dy_i γ_i x_i) · ∂r/∂x_j, ∂r/∂x_j = −r³ x_j / d.
                dx.push(dy[j] as f64 * gamma[j] as f64 * r - s * r.powi(3) * x[j] as f64 / d as f64);
            }
        }
        (y, dx, dg)
    }

    #[test]
    fn forward_and_backward_match_the_formulas_in_f64() {
        // 37 rows (three tasks, the last ragged) of 50 values (not a multiple of sixteen).
        let (n, d, eps) = (37, 50, 1e-5);
        let (x, gamma, dy) = (data(n * d, 1), data(d, 2), data(n * d, 3));
        let (y, rstd) = forward(&x, &gamma, eps as f32);
        let (dx, dg) = backward(&x, &gamma, &rstd, &dy);
        let (want_y, want_dx, want_dg) = reference(&x, &gamma, &dy, eps);
        for (what, got, want) in [("y", &y, &want_y), ("dx", &dx, &want_dx), ("dgamma", &dg, &want_dg)] {
            let scale = want.iter().fold(0.0f64, |m, v| m.max(v.abs()));
            let err = got.iter().zip(want.iter()).fold(0.0f64, |m, (&g, &w)| m.max((g as f64 - w).abs()));
            assert!(scale > 0.1 && err < 1e-5 * scale, "{what}: error {err} at scale {scale}");
        }
    }
}
