//! `exp` over slices, vectorised, for our CPU softmax passes (LM head, attention).
//!
//! Why: the standard library's `f32::exp` is a scalar libm call (`__expf_fma`, ~4 ns each); it
//! was 8 % of a 512-token training step's CPU time after the fused head and attention landed
//! (`perf record` on `examples/train_probe.rs`), and attention at 2,048 tokens needs ~1.1 billion
//! of them per step. Here `exp` is the Cephes single-precision recipe — `x = n·ln 2 + r`, a
//! degree-6 polynomial for `e^r` on |r| ≤ ln 2 / 2, `2^n` put into the exponent bits — written
//! without branches so the loops vectorise, compiled for AVX-512 and AVX2 (picked at run time) and
//! portably. Relative error ≤ 2e-7 (tested against f64 `exp`); inputs below −87.3 give exactly 0
//! (so a −1e9 attention mask still contributes nothing), above 88.7 give +inf.

const LOG2E: f32 = std::f32::consts::LOG2_E;
const LN2_HI: f32 = 0.693_359_4;
const LN2_LO: f32 = -2.121_944_4e-4;
const MIN_ARG: f32 = -87.336_55;
const MAX_ARG: f32 = 88.722_83;

/// 1.5 · 2²³: adding it rounds a float of magnitude < 2²² to an integer, which then sits in the
/// low mantissa bits (no `floor` or float→int conversion, which would not vectorise as well).
const ROUND: f32 = 12_582_912.0;

#[inline(always)]
fn exp1(x: f32) -> f32 {
    let clamped = x.max(MIN_ARG).min(MAX_ARG);
    let t = clamped * LOG2E + ROUND;
    let n = t - ROUND;
    let r = clamped - n * LN2_HI - n * LN2_LO;
    let p = ((((1.987_569_1e-4 * r + 1.398_199_9e-3) * r + 8.333_452e-3) * r + 4.166_579_6e-2) * r + 1.666_666_5e-1) * r + 5.000_000_1e-1;
    let y = 1.0 + r + r * r * p;
    // 2^n as 2^(n−1) · 2: n reaches 128 just below MAX_ARG, past the largest exponent. n − 1 + 127
    // is t's low bits + 126 (t's bits minus ROUND's); n = −126 (results < 2e-38) gives 0.
    let e = (t.to_bits() as i32).wrapping_sub(ROUND.to_bits() as i32).wrapping_add(126).max(0);
    let out = y * f32::from_bits((e as u32) << 23) * 2.0;
    // Branch-free selects: the loop stays vectorised.
    let out = if x < MIN_ARG { 0.0 } else { out };
    let out = if x > MAX_ARG { f32::INFINITY } else { out };
    if x.is_nan() { x } else { out }
}

#[inline(always)]
fn exp_in_place_body(xs: &mut [f32], shift: f32) -> f32 {
    // Map, then sum in sixteen lanes: a running scalar sum would keep the loop from vectorising
    // (float addition is not reassociated).
    for x in xs.iter_mut() {
        *x = exp1(*x - shift);
    }
    let mut acc = [0.0f32; 16];
    let chunks = xs.chunks_exact(16);
    let tail: f32 = chunks.remainder().iter().sum();
    for c in chunks {
        for (a, &x) in acc.iter_mut().zip(c) {
            *a += x;
        }
    }
    acc.iter().sum::<f32>() + tail
}

#[inline(always)]
fn sum_body(xs: &[f32], shift: f32) -> f32 {
    // Sixteen partial sums, as above.
    let mut acc = [0.0f32; 16];
    let chunks = xs.chunks_exact(16);
    let tail = chunks.remainder();
    for c in chunks {
        for (a, &x) in acc.iter_mut().zip(c) {
            *a += exp1(x - shift);
        }
    }
    acc.iter().sum::<f32>() + tail.iter().map(|&x| exp1(x - shift)).sum::<f32>()
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
fn exp_in_place_avx512(xs: &mut [f32], shift: f32) -> f32 {
    exp_in_place_body(xs, shift)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
fn exp_in_place_avx2(xs: &mut [f32], shift: f32) -> f32 {
    exp_in_place_body(xs, shift)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
fn sum_avx512(xs: &[f32], shift: f32) -> f32 {
    sum_body(xs, shift)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
fn sum_avx2(xs: &[f32], shift: f32) -> f32 {
    sum_body(xs, shift)
}

/// `xs[i] ← exp(xs[i] − shift)`; returns the sum of the results.
pub fn exp_shifted_in_place(xs: &mut [f32], shift: f32) -> f32 {
    #[cfg(target_arch = "x86_64")]
    {
        if std::is_x86_feature_detected!("avx512f") {
            // SAFETY: the CPU has AVX-512F (checked just above).
            return unsafe { exp_in_place_avx512(xs, shift) };
        }
        if std::is_x86_feature_detected!("avx2") && std::is_x86_feature_detected!("fma") {
            // SAFETY: the CPU has AVX2 and FMA (checked just above).
            return unsafe { exp_in_place_avx2(xs, shift) };
        }
    }
    exp_in_place_body(xs, shift)
}

/// `Σ exp(xs[i] − shift)`, leaving `xs` as it is.
pub fn sum_exp_shifted(xs: &[f32], shift: f32) -> f32 {
    #[cfg(target_arch = "x86_64")]
    {
        if std::is_x86_feature_detected!("avx512f") {
            // SAFETY: as in `exp_shifted_in_place`.
            return unsafe { sum_avx512(xs, shift) };
        }
        if std::is_x86_feature_detected!("avx2") && std::is_x86_feature_detected!("fma") {
            // SAFETY: as in `exp_shifted_in_place`.
            return unsafe { sum_avx2(xs, shift) };
        }
    }
    sum_body(xs, shift)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_f64_exp_over_the_whole_range_on_every_code_path() {
        let xs: Vec<f32> = (0..200_001).map(|i| -90.0 + 180.0 * i as f32 / 200_000.0).collect();
        let check = |got: &[f32], what: &str| {
            for (&x, &y) in xs.iter().zip(got) {
                // The shift is subtracted in f32, as the kernels do; exp is then checked exactly.
                let want = ((x - 0.5) as f64).exp();
                if x - 0.5 < MIN_ARG {
                    assert_eq!(y, 0.0, "{what}: exp({x} − 0.5) below the range must be 0");
                } else if x - 0.5 > MAX_ARG {
                    assert_eq!(y, f32::INFINITY, "{what}: exp({x} − 0.5) above the range");
                } else if want > 1e-37 {
                    assert!(((y as f64 - want) / want).abs() < 2e-7, "{what}: exp({x} − 0.5) = {y}, want {want}");
                }
            }
        };
        let mut simd = xs.clone();
        let sum = exp_shifted_in_place(&mut simd, 0.5);
        check(&simd, "dispatched");
        let mut portable = xs.clone();
        exp_in_place_body(&mut portable, 0.5);
        check(&portable, "portable");
        let finite: Vec<f32> = xs.iter().copied().filter(|&x| x < 80.0).collect();
        let want: f64 = finite.iter().map(|&x| ((x - 0.5) as f64).exp()).sum();
        let got = sum_exp_shifted(&finite, 0.5) as f64;
        assert!(((got - want) / want).abs() < 1e-5, "sum {got} vs {want}");
        assert!(sum.is_infinite());
        let mut nan = [f32::NAN, -1e9, 0.0];
        exp_shifted_in_place(&mut nan, 0.0);
        assert!(nan[0].is_nan() && nan[1] == 0.0 && nan[2] == 1.0);
    }
}
