//! Means with bootstrap confidence intervals, so that a gain can be told from noise.
//!
//! Contract: percentile bootstrap (2,000 resamples, seeded: a report is reproducible), 95 %.
//! For two models scored on the same exercises, the gain's interval resamples exercises in
//! pairs, which is much tighter than comparing two independent intervals.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

const RESAMPLES: usize = 2000;

/// A mean with its 95 % bootstrap interval over `n` items.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Estimate {
    pub n: usize,
    pub mean: f32,
    pub low: f32,
    pub high: f32,
}

/// `mean [low, high]`, with the formatter's precision (2 by default) and sign flag, so the CLI
/// and the app print intervals alike: `format!("{e:+.3}")` gives `+0.125 [+0.031, +0.219]`.
impl std::fmt::Display for Estimate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let p = f.precision().unwrap_or(2);
        if f.sign_plus() {
            write!(f, "{:+.p$} [{:+.p$}, {:+.p$}]", self.mean, self.low, self.high)
        } else {
            write!(f, "{:.p$} [{:.p$}, {:.p$}]", self.mean, self.low, self.high)
        }
    }
}

fn mean(xs: &[f32]) -> f32 {
    if xs.is_empty() { 0.0 } else { xs.iter().sum::<f32>() / xs.len() as f32 }
}

/// 2.5 and 97.5 percentiles of `stats` (sorted in place).
fn interval(stats: &mut [f32]) -> (f32, f32) {
    stats.sort_by(f32::total_cmp);
    let at = |q: f64| stats[((q * (stats.len() - 1) as f64).round() as usize).min(stats.len() - 1)];
    (at(0.025), at(0.975))
}

/// Mean of `xs` with a percentile-bootstrap 95 % interval.
pub fn estimate(xs: &[f32], seed: u64) -> Estimate {
    let n = xs.len();
    if n == 0 {
        return Estimate::default();
    }
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut stats: Vec<f32> = (0..RESAMPLES).map(|_| (0..n).map(|_| xs[rng.random_range(0..n)]).sum::<f32>() / n as f32).collect();
    let (low, high) = interval(&mut stats);
    Estimate { n, mean: mean(xs), low, high }
}

/// Mean of `after[i] - before[i]` with a paired-bootstrap 95 % interval (same items, two models).
pub fn paired_gain(before: &[f32], after: &[f32], seed: u64) -> Estimate {
    let diffs: Vec<f32> = before.iter().zip(after).map(|(b, a)| a - b).collect();
    estimate(&diffs, seed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn interval_holds_the_mean_and_narrows_with_more_items() {
        let small: Vec<f32> = (0..20).map(|i| (i % 2) as f32).collect();
        let large: Vec<f32> = (0..2000).map(|i| (i % 2) as f32).collect();
        let (s, l) = (estimate(&small, 1), estimate(&large, 1));
        assert!((s.mean - 0.5).abs() < 1e-6 && s.low < 0.5 && s.high > 0.5);
        assert!(s.high - s.low > 3.0 * (l.high - l.low), "{s:?} vs {l:?}");
        // Binomial standard error at n = 20 is 0.11: the interval is about ±0.22.
        assert!((0.25..=0.4).contains(&s.low) && (0.6..=0.75).contains(&s.high), "{s:?}");
    }

    #[test]
    fn display_follows_the_precision_and_sign_flags() {
        let e = Estimate { n: 4, mean: 0.125, low: -0.03125, high: 0.25 };
        assert_eq!(format!("{e}"), "0.12 [-0.03, 0.25]");
        assert_eq!(format!("{e:+.3}"), "+0.125 [-0.031, +0.250]");
    }

    #[test]
    fn constant_data_has_a_zero_width_interval() {
        let e = estimate(&[1.0; 7], 3);
        assert_eq!((e.low, e.mean, e.high), (1.0, 1.0, 1.0));
        assert_eq!(estimate(&[], 3), Estimate::default());
    }

    #[test]
    fn paired_gain_sees_a_consistent_improvement_that_unpaired_intervals_miss() {
        // Item difficulty varies a lot, the second model is a little better on every item.
        let before: Vec<f32> = (0..30).map(|i| (i % 5) as f32 * 0.2).collect();
        let after: Vec<f32> = before.iter().map(|x| x + 0.05).collect();
        let gain = paired_gain(&before, &after, 7);
        assert!((gain.mean - 0.05).abs() < 1e-5 && gain.low > 0.0, "{gain:?}");
        let (b, a) = (estimate(&before, 7), estimate(&after, 8));
        assert!(a.low < b.high, "the unpaired intervals overlap");
    }
}
