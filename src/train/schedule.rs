//! Learning rate by step: linear warm-up, then constant or cosine decay (issue 5 item 3).
//! Each phase (SFT, GRPO) runs its own schedule over its own steps.

use super::config::Schedule;

/// The learning rate of step `step` (0-based) of a phase of `total` steps.
pub fn lr_at(peak: f64, step: usize, total: usize, warmup: usize, schedule: Schedule) -> f64 {
    if step < warmup {
        return peak * (step + 1) as f64 / (warmup + 1) as f64;
    }
    match schedule {
        Schedule::Constant => peak,
        Schedule::Cosine { min_lr_ratio_percent } => {
            let min = peak * min_lr_ratio_percent as f64 / 100.0;
            let span = total.saturating_sub(warmup).max(1) as f64;
            let t = ((step - warmup) as f64 / span).min(1.0);
            min + (peak - min) * 0.5 * (1.0 + (std::f64::consts::PI * t).cos())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn warmup_rises_linearly_then_holds() {
        assert!((lr_at(1.0, 0, 100, 4, Schedule::Constant) - 0.2).abs() < 1e-12);
        assert!((lr_at(1.0, 3, 100, 4, Schedule::Constant) - 0.8).abs() < 1e-12);
        assert_eq!(lr_at(1.0, 4, 100, 4, Schedule::Constant), 1.0);
    }

    #[test]
    fn cosine_decays_from_the_peak_to_the_floor() {
        let c = Schedule::Cosine { min_lr_ratio_percent: 10 };
        assert!((lr_at(1.0, 0, 11, 0, c) - 1.0).abs() < 1e-12);
        assert!((lr_at(1.0, 11, 11, 0, c) - 0.1).abs() < 1e-12);
        let mid = lr_at(1.0, 5, 10, 0, c);
        assert!((mid - 0.55).abs() < 1e-9, "{mid}");
    }
}
