//! Supervised warm start (issue 5 item 4): teacher-forced cross-entropy on target tokens only,
//! for models too small to start RL from nothing.
//!
//! Contract: an [`SftExample`] is one conversation (prompt ids, target ids); the loss is the
//! mean negative log-likelihood over all target tokens of the batch; prompt tokens are context
//! only. It shares the GRPO layout ([`TokenBatch`]) so both read log-probs the same way.

use super::grpo::{PolicySample, TokenBatch, token_logprobs};
use crate::model::Llama;
use anyhow::{Result, bail};
use burn::optim::{GradientsParams, ModuleOptimizer};
use burn::prelude::*;

#[derive(Clone, Debug, PartialEq)]
pub struct SftExample {
    pub prompt: Vec<u32>,
    pub target: Vec<u32>,
}

fn batch_of(examples: &[SftExample]) -> Result<TokenBatch> {
    // Old log-probs and advantages are unused by the SFT loss; the layout is what matters.
    let samples: Vec<PolicySample> = examples
        .iter()
        .map(|e| PolicySample { prompt: e.prompt.clone(), response: e.target.clone(), old_logprobs: vec![0.0; e.target.len()], advantage: 0.0 })
        .collect();
    TokenBatch::new(&samples)
}

/// Mean NLL `[1]` of the targets under `model`.
pub fn sft_loss(model: &Llama, inv_freq: &[f64], examples: &[SftExample], device: &Device) -> Result<Tensor<1>> {
    let batch = batch_of(examples)?;
    Ok(token_logprobs(model, inv_freq, &batch, device).mean().neg())
}

/// How the SFT loss weighs tokens.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum SftWeighting {
    /// Every target token counts the same (the MemTrain code's token mean): a 64-token memory
    /// turn weighs ten times a five-token `\boxed{answer}`.
    #[default]
    Token,
    /// Each conversation's mean NLL counts the same (the paper's normaliser): the short answer
    /// and recall turns, where the model must *use* its memory, are not drowned by the long
    /// memory turns. Measured on tiny-cpu (20 steps): the equally short "No previous memory"
    /// replies then dominate and SmolLM2 wrote nothing else on held-out documents, so no preset
    /// uses it.
    Conversation,
}

/// The SFT loss `[1]` of `examples` under `weighting`: the mean over tokens, or the mean over
/// conversations of each conversation's mean NLL.
pub fn weighted_sft_loss(model: &Llama, inv_freq: &[f64], examples: &[SftExample], weighting: SftWeighting, device: &Device) -> Result<Tensor<1>> {
    match weighting {
        SftWeighting::Token => sft_loss(model, inv_freq, examples, device),
        SftWeighting::Conversation => {
            let batch = batch_of(examples)?;
            let weights: Vec<f32> = examples.iter().flat_map(|e| std::iter::repeat_n(1.0 / (e.target.len() * examples.len()) as f32, e.target.len())).collect();
            let w = Tensor::<1>::from_data(TensorData::new(weights, [batch.tokens()]), device);
            Ok(token_logprobs(model, inv_freq, &batch, device).mul(w).sum().neg())
        }
    }
}

/// One AdamW step on `examples`; returns the updated model and the loss before the step.
pub fn sft_step(model: Llama, optim: &mut ModuleOptimizer, lr: f64, inv_freq: &[f64], examples: &[SftExample]) -> Result<(Llama, f32)> {
    let device = model.embed_tokens.weight.val().device();
    if !device.is_autodiff() {
        bail!("sft_step needs the model on an autodiff device (device.autodiff())");
    }
    let loss = sft_loss(&model, inv_freq, examples, &device)?;
    let value = loss.clone().detach().into_data().try_to_vec::<f32>().map_err(|e| anyhow::anyhow!("reading the loss: {e:?}"))?[0];
    if !value.is_finite() {
        bail!("loss is {value}: step skipped");
    }
    let grads = GradientsParams::from_grads(loss.backward(), &model);
    Ok((optim.step(lr, model, grads), value))
}
