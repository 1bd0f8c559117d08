//! Rewards of the two MemTrain objectives (method notes §2.3, §3.3).
//!
//! Contract: objective 1 rewards exact match after normalisation ([`scoring::exact_match`]);
//! token F1 is computed beside it for reporting and is never mixed into the reward. Objective 2
//! blends: `R_E = EM_final + λ · mean(EM_recall)` (λ = [`DEFAULT_RECALL_WEIGHT`]); each recall
//! answer's own reward is its EM, and its answers form a GRPO group of their own.

use crate::exercises::scoring;
use serde::Serialize;

/// λ of the paper and the code (`memory_recall_coeff`).
pub const DEFAULT_RECALL_WEIGHT: f32 = 0.5;

/// Both scores of one answer; only `exact` is a reward.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct AnswerScore {
    /// 1.0 on a normalised exact match, else 0.0.
    pub exact: f32,
    /// Token F1, reported beside EM.
    pub f1: f32,
}

/// Scores an extracted answer against the gold entity.
pub fn score_answer(answer: &str, gold: &str) -> AnswerScore {
    let s = scoring::score(answer, gold);
    AnswerScore { exact: if s.exact { 1.0 } else { 0.0 }, f1: s.f1 as f32 }
}

/// Objective-1 reward: exact match only.
pub fn end_to_end_reward(answer: &str, gold: &str) -> f32 {
    score_answer(answer, gold).exact
}

/// Objective-2 reward of one rollout: its final EM plus λ times the mean EM of its recall
/// answers. No recall answers (e.g. a one-chunk document) means no bonus.
pub fn blended_reward(final_exact: f32, recall_exacts: &[f32], recall_weight: f32) -> f32 {
    if recall_exacts.is_empty() {
        return final_exact;
    }
    final_exact + recall_weight * recall_exacts.iter().sum::<f32>() / recall_exacts.len() as f32
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exact_match_ignores_case_articles_punctuation_and_the_box() {
        assert_eq!(end_to_end_reward("\\boxed{the salt road.}", "Salt Road"), 1.0);
        assert_eq!(end_to_end_reward("Salt", "Salt Road"), 0.0);
    }

    #[test]
    fn f1_is_reported_beside_em_but_never_rewarded() {
        let s = score_answer("Anna", "Anna Berg");
        assert_eq!(s.exact, 0.0);
        assert!((s.f1 - 2.0 / 3.0).abs() < 1e-6);
        assert_eq!(end_to_end_reward("Anna", "Anna Berg"), 0.0);
    }

    #[test]
    fn blended_reward_adds_half_the_mean_recall() {
        assert_eq!(blended_reward(1.0, &[1.0, 0.0, 1.0, 0.0], DEFAULT_RECALL_WEIGHT), 1.25);
        assert_eq!(blended_reward(0.0, &[1.0, 1.0], DEFAULT_RECALL_WEIGHT), 0.5);
        assert_eq!(blended_reward(1.0, &[1.0, 1.0], DEFAULT_RECALL_WEIGHT), 1.5);
    }

    #[test]
    fn blended_reward_without_recall_answers_is_the_final_em() {
        assert_eq!(blended_reward(1.0, &[], DEFAULT_RECALL_WEIGHT), 1.0);
    }
}
