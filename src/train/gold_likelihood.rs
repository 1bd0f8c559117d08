//! A dense reward for small models (method notes §8.2 item 3, InfoMem-style): how likely the
//! current policy finds the *gold* answer, given a memory it wrote.
//!
//! Why: while every sampled answer of a group is wrong, exact match gives every rollout 0, the
//! group has no variance and GRPO drops it, so a model that cannot answer yet never learns to
//! write better memories. The probability of the gold reply differs between two memories as soon
//! as one of them holds a little more of the answer, so it ranks rollouts long before exact match
//! can.
//!
//! Contract: the score of one (prompt, gold) pair is the geometric mean of the per-token
//! probabilities of the reply `\boxed{gold}` + end-of-turn (the reply SFT teaches) after the
//! agent's chat prompt, i.e. `exp(mean log p)`, in (0, 1]; it is computed without gradients on
//! the inference model and never reported as exact match.

use super::grpo::{PolicySample, TokenBatch, reference_logprobs};
use super::reference::{boxed, reply_ids};
use crate::checkpoint::tokenizer::TextTokenizer;
use crate::model::Llama;
use anyhow::Result;

/// One question to score: the user prompt (agent prompt text) and the gold answer.
pub struct GoldQuery {
    pub prompt: String,
    pub gold: String,
}

/// `exp(mean log p(reply))` of each query's gold reply, `micro_batch` conversations per forward.
pub fn gold_likelihoods(model: &Llama, inv_freq: &[f64], tokenizer: &TextTokenizer, queries: &[GoldQuery], micro_batch: usize) -> Result<Vec<f32>> {
    let samples = queries
        .iter()
        .map(|q| {
            let response = reply_ids(tokenizer, &boxed(&q.gold))?;
            let prompt = crate::agent::chat_prompt_ids(tokenizer, &q.prompt)?;
            Ok(PolicySample { prompt, old_logprobs: vec![0.0; response.len()], response, advantage: 0.0, stem: None })
        })
        .collect::<Result<Vec<_>>>()?;
    let mut out = Vec::with_capacity(samples.len());
    for part in samples.chunks(micro_batch.max(1)) {
        let logp = reference_logprobs(model, inv_freq, &TokenBatch::new(part)?)?;
        let mut at = 0;
        for s in part {
            let n = s.response.len();
            out.push(mean_probability(&logp[at..at + n]));
            at += n;
        }
    }
    Ok(out)
}

/// Geometric mean of the probabilities whose logs are given (1 for an empty reply).
pub fn mean_probability(logprobs: &[f32]) -> f32 {
    if logprobs.is_empty() {
        return 1.0;
    }
    (logprobs.iter().sum::<f32>() / logprobs.len() as f32).exp()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mean_probability_is_the_geometric_mean() {
        let lp = [0.5f32.ln(), 0.125f32.ln()];
        assert!((mean_probability(&lp) - 0.25).abs() < 1e-6);
        assert_eq!(mean_probability(&[0.0, 0.0]), 1.0);
    }
}
