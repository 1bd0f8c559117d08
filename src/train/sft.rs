//! Supervised warm start (issue 5 item 4): teacher-forced cross-entropy on target tokens only,
//! for models too small to start RL from nothing.
//!
//! Contract: an [`SftExample`] is one conversation (prompt ids, target ids, a weight); the loss
//! is the weighted mean negative log-likelihood over all target tokens of the batch (each token
//! weighs its conversation's weight; all 1 = the plain token mean); prompt tokens are context
//! only. It shares the GRPO layout ([`TokenBatch`]) so both read log-probs the same way.

use super::grpo::{Forward, PolicySample, TokenBatch, recomputable_logprobs};
use super::update::Loss;
use crate::model::Llama;
use anyhow::{Result, bail};
use burn::optim::{GradientsParams, ModuleOptimizer};
use burn::prelude::*;

#[derive(Clone, Debug, PartialEq)]
pub struct SftExample {
    pub prompt: Vec<u32>,
    pub target: Vec<u32>,
    /// What each target token weighs against others (1 by default; answer turns may weigh more).
    pub weight: f32,
}

impl SftExample {
    /// A conversation whose tokens weigh 1.
    pub fn new(prompt: Vec<u32>, target: Vec<u32>) -> Self {
        SftExample { prompt, target, weight: 1.0 }
    }
}

fn batch_of(examples: &[SftExample]) -> Result<TokenBatch> {
    // Old log-probs and advantages are unused by the SFT loss; the layout is what matters.
    let samples: Vec<PolicySample> = examples
        .iter()
        .map(|e| PolicySample { prompt: e.prompt.clone(), response: e.target.clone(), old_logprobs: vec![0.0; e.target.len()], advantage: 0.0, stem: None })
        .collect();
    TokenBatch::new(&samples)
}

/// Weighted mean NLL `[1]` of the targets under `model` (the plain mean when every weight is 1).
pub fn sft_loss(model: &Llama, inv_freq: &[f64], examples: &[SftExample], device: &Device) -> Result<Tensor<1>> {
    weighted_sft_loss(model, inv_freq, examples, SftWeighting::Token, device)
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

impl SftWeighting {
    /// The total weight of `examples`: what a micro-batch's loss is a share of.
    pub fn mass(self, examples: &[SftExample]) -> f32 {
        examples.iter().map(|e| self.token_weight(e) * e.target.len() as f32).sum()
    }

    /// What one target token of `e` weighs before normalisation.
    fn token_weight(self, e: &SftExample) -> f32 {
        match self {
            SftWeighting::Token => e.weight,
            SftWeighting::Conversation => e.weight / e.target.len().max(1) as f32,
        }
    }
}

/// The SFT loss `[1]` of `examples` under `weighting`: the weighted mean over tokens, or the
/// weighted mean over conversations of each conversation's mean NLL.
pub fn weighted_sft_loss(model: &Llama, inv_freq: &[f64], examples: &[SftExample], weighting: SftWeighting, device: &Device) -> Result<Tensor<1>> {
    Ok(sft_training_loss(model, inv_freq, examples, weighting, device, Forward::plain(device))?.value)
}

/// [`weighted_sft_loss`] for a training step, run as `forward` says.
pub fn sft_training_loss(model: &Llama, inv_freq: &[f64], examples: &[SftExample], weighting: SftWeighting, device: &Device, forward: Forward) -> Result<Loss> {
    let batch = batch_of(examples)?;
    let (logprobs, tape) = recomputable_logprobs(model, inv_freq, &batch, device, forward);
    let mass = weighting.mass(examples);
    let weights: Vec<f32> = examples.iter().flat_map(|e| std::iter::repeat_n(weighting.token_weight(e) / mass, e.target.len())).collect();
    let w = Tensor::<1>::from_data(TensorData::new(weights, [batch.tokens()]), device);
    Ok(Loss { value: logprobs.mul(w).sum().neg(), tape })
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
