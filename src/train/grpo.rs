//! GRPO for the memory agent (method notes §4.1, §8.1): group-relative advantages, token-level
//! PPO-clip with ε_low/ε_high, and a k3 KL penalty to a frozen reference, on teacher-forced
//! per-token log-probs.
//!
//! Contract:
//! - rewards come in GRPO group order (document-major, `group` rollouts each, as
//!   [`crate::agent::run_agent`] returns them); advantage = reward − group mean, optionally ÷
//!   (group std + 1e-6); groups whose rewards are all equal are dropped and counted;
//! - every generated token of every turn of a rollout gets that rollout's advantage; prompt
//!   tokens never enter the loss;
//! - the loss is the token mean over all response tokens of the batch of
//!   `−min(r·A, clip(r, 1−ε_low, 1+ε_high)·A) + β·k3`, with `r = exp(logπ − logπ_old)` and
//!   `k3 = exp(logπ_ref − logπ) − (logπ_ref − logπ) − 1`; β = 0 needs no reference model;
//! - log-probs are read only at response positions: hidden states are picked first, so the
//!   vocabulary-wide log-softmax covers response tokens only.

use crate::agent::{RecallAnswer, Trace, Turn};
use super::update::Loss;
use crate::model::recompute::LayerTape;
use crate::model::precision::Precision;
use crate::model::stem::{Start, StemStates};
use crate::model::{Llama, StepLayout};
use anyhow::{Result, bail};
use burn::optim::{GradientsParams, ModuleOptimizer};
use burn::prelude::*;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::sync::Arc;

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct GrpoConfig {
    pub clip_low: f32,
    pub clip_high: f32,
    /// β of the KL penalty; 0 keeps no reference model.
    pub kl_beta: f32,
    /// Divide advantages by the group std (MemTrain does not: Dr.-GRPO style).
    pub scale_by_std: bool,
}

impl Default for GrpoConfig {
    /// The MemTrain stage: ε = 0.2 both sides, β = 1e-3, no std scaling (notes §4.2).
    fn default() -> Self {
        GrpoConfig { clip_low: 0.2, clip_high: 0.2, kl_beta: 1e-3, scale_by_std: false }
    }
}

/// Advantages per rollout, `None` for rollouts of dropped groups.
#[derive(Clone, Debug, PartialEq)]
pub struct GroupAdvantages {
    pub per_rollout: Vec<Option<f32>>,
    pub groups: usize,
    pub dropped_groups: usize,
}

/// Group-relative advantages over consecutive groups of `group` rewards.
pub fn group_advantages(rewards: &[f32], group: usize, scale_by_std: bool) -> Result<GroupAdvantages> {
    if group == 0 || rewards.len() % group != 0 {
        bail!("{} rewards do not split into groups of {group}", rewards.len());
    }
    let mut per_rollout = Vec::with_capacity(rewards.len());
    let mut dropped_groups = 0;
    for g in rewards.chunks(group) {
        let mean = g.iter().sum::<f32>() / g.len() as f32;
        let spread = g.iter().fold(f32::NEG_INFINITY, |m, &r| m.max(r)) - g.iter().fold(f32::INFINITY, |m, &r| m.min(r));
        // All-equal rewards carry no signal (every advantage would be 0): drop, as DAPO does.
        if spread <= 1e-6 {
            dropped_groups += 1;
            per_rollout.extend(std::iter::repeat_n(None, g.len()));
            continue;
        }
        let scale = if scale_by_std { sample_std(g, mean) + 1e-6 } else { 1.0 };
        per_rollout.extend(g.iter().map(|&r| Some((r - mean) / scale)));
    }
    Ok(GroupAdvantages { per_rollout, groups: rewards.len() / group, dropped_groups })
}

/// Unbiased std (n − 1), as `torch.std` in veRL's GRPO advantage.
fn sample_std(g: &[f32], mean: f32) -> f32 {
    if g.len() < 2 {
        return 0.0;
    }
    (g.iter().map(|&r| (r - mean).powi(2)).sum::<f32>() / (g.len() - 1) as f32).sqrt()
}

/// One (prompt, response) conversation to train on, with the advantage of its rollout.
#[derive(Clone, Debug, PartialEq)]
pub struct PolicySample {
    pub prompt: Vec<u32>,
    pub response: Vec<u32>,
    /// Log-probs of `response` under the policy that sampled it.
    pub old_logprobs: Vec<f32>,
    pub advantage: f32,
    /// The frozen layers' output at this conversation's inputs, when generation kept it
    /// ([`crate::model::stem`]): the update may start above the frozen layers.
    pub stem: Option<Arc<StemStates>>,
}

impl PolicySample {
    /// Tokens a teacher-forced forward feeds: the prompt and the response but its last token
    /// (only ever a target).
    pub fn input_len(&self) -> usize {
        (self.prompt.len() + self.response.len()).saturating_sub(1)
    }
}

/// Every turn of every kept rollout becomes a sample carrying its rollout's advantage.
pub fn samples_from_traces(traces: &[Trace], advantages: &[Option<f32>]) -> Vec<PolicySample> {
    traces
        .iter()
        .zip(advantages)
        .filter_map(|(t, a)| a.map(|a| (t, a)))
        .flat_map(|(t, advantage)| t.turns.iter().filter_map(move |turn| sample_of(turn, advantage)))
        .collect()
}

/// Each recall answer of a kept group becomes one sample with its own group's advantage
/// (recall groups are separate from the rollout groups, notes §3.3).
pub fn samples_from_recall(answers: &[RecallAnswer], advantages: &[Option<f32>]) -> Vec<PolicySample> {
    answers.iter().zip(advantages).filter_map(|(r, a)| a.and_then(|a| sample_of(&r.turn, a))).collect()
}

fn sample_of(turn: &Turn, advantage: f32) -> Option<PolicySample> {
    (!turn.generated_ids.is_empty()).then(|| PolicySample { prompt: turn.prompt_ids.clone(), response: turn.generated_ids.clone(), old_logprobs: turn.logprobs.clone(), advantage, stem: turn.stem.clone() })
}

/// Puts `samples` in the order micro-batches take them: by sequence length, shortest first, the
/// samples that share a prompt side by side (at their longest's place; ties keep their order).
/// Why: a micro-batch right-pads every row to its longest, and each padded position costs the
/// forward, the backward and, with recomputation, a kept layer input; a GRPO batch mixes memory
/// turns of hundreds of tokens with answers of a few dozen. Side by side, the copies of a
/// prompt (a group's first turns, a recall group) meet in one micro-batch, whose forward then
/// computes the prompt once ([`SharedPrompts`]). The loss is a sum over micro-batches, so the
/// order changes only the float summation order.
pub fn sort_by_length(samples: &mut Vec<PolicySample>) {
    let (group_of, groups) = prompt_groups(samples);
    let mut longest = vec![0; groups];
    for (s, &g) in samples.iter().zip(&group_of) {
        longest[g] = longest[g].max(s.prompt.len() + s.response.len());
    }
    let mut order: Vec<usize> = (0..samples.len()).collect();
    order.sort_by_key(|&i| (longest[group_of[i]], group_of[i]));
    let mut taken: Vec<Option<PolicySample>> = std::mem::take(samples).into_iter().map(Some).collect();
    *samples = order.into_iter().filter_map(|i| taken[i].take()).collect();
}

/// Each sample's prompt group (samples with identical prompts), numbered by first appearance,
/// and the number of groups.
fn prompt_groups(samples: &[PolicySample]) -> (Vec<usize>, usize) {
    let mut index: HashMap<&[u32], usize> = HashMap::new();
    let group_of: Vec<usize> = samples
        .iter()
        .map(|s| {
            let next = index.len();
            *index.entry(&s.prompt).or_insert(next)
        })
        .collect();
    (group_of, index.len())
}

/// `samples` (in [`sort_by_length`]'s order) cut into micro-batches: `micro` rows each, except
/// that when `share` a micro-batch whose rows share prompts takes more rows as long as it holds
/// no more than its first `micro` rows would as a plain batch. Why: the positions a micro-batch
/// computes are most of what its activations hold; a recall group's rest pass (a few tokens a
/// row) would otherwise run products of a hundred-odd rows.
pub fn micro_batches(samples: &[PolicySample], micro: usize, share: bool) -> Vec<&[PolicySample]> {
    let micro = micro.max(1);
    if !share {
        return samples.chunks(micro).collect();
    }
    let mut parts = Vec::new();
    let mut start = 0;
    while start < samples.len() {
        let mut end = (start + micro).min(samples.len());
        let budget = plain_positions(&samples[start..end]);
        while end < samples.len() && held_positions(&samples[start..end + 1]) <= budget {
            end += 1;
        }
        parts.push(&samples[start..end]);
        start = end;
    }
    parts
}

/// Positions the forward computes for `samples` in [`micro_batches`], padding included (rows ×
/// width of each [`TokenBatch`], or its two passes when `share` and it shares prompts).
pub fn padded_positions(samples: &[PolicySample], micro: usize, share: bool) -> usize {
    micro_batches(samples, micro, share).into_iter().map(|part| computed_positions(part, share)).sum()
}

/// Positions one micro-batch computes.
fn computed_positions(part: &[PolicySample], share: bool) -> usize {
    match PromptGroups::of(part).filter(|_| share) {
        Some(groups) => groups.positions(),
        None => plain_positions(part),
    }
}

/// What a micro-batch holds for its backward, in positions: those it computes, and with shared
/// prompts each row's copy of its prompt's keys and values (and our attention op's rotated
/// copy), counted as a quarter position per prompt column — 2 × 2 × the KV width against the
/// ~15 hidden widths a position keeps: ~1/10 for SmolLM2 (KV width 1/3 of hidden), ~1/4 for a
/// model whose KV width is its hidden size.
fn held_positions(part: &[PolicySample]) -> usize {
    match PromptGroups::of(part) {
        Some(groups) => groups.positions() + part.len() * groups.prompt_width / 4,
        None => plain_positions(part),
    }
}

/// Rows × width of `part` as one plain [`TokenBatch`].
fn plain_positions(part: &[PolicySample]) -> usize {
    part.len() * plain_width(part)
}

/// The width of `part` as one plain [`TokenBatch`]: the last response token is only ever a
/// target, never an input.
fn plain_width(part: &[PolicySample]) -> usize {
    part.iter().map(PolicySample::input_len).max().unwrap_or(0)
}

/// How the rows of a batch share prompts, when computing each prompt once pays: some share one,
/// and the two passes compute under 90 % of the plain positions (the rest pass also reads the
/// prompts' key columns). Only the sizes: [`SharedPrompts`] lays the tokens out.
struct PromptGroups {
    /// Each row's prompt, numbered by first appearance.
    group_of: Vec<usize>,
    groups: usize,
    /// The longest prompt but its last token.
    prompt_width: usize,
    /// The longest response.
    rest_width: usize,
}

impl PromptGroups {
    fn of(samples: &[PolicySample]) -> Option<Self> {
        if samples.iter().any(|s| s.prompt.is_empty() || s.response.is_empty()) {
            return None;
        }
        let (group_of, groups) = prompt_groups(samples);
        let prompt_width = samples.iter().map(|s| s.prompt.len() - 1).max()?;
        let rest_width = samples.iter().map(|s| s.response.len()).max()?;
        let sharing = PromptGroups { group_of, groups, prompt_width, rest_width };
        let pays = sharing.positions() * 10 < plain_positions(samples) * 9;
        (groups < samples.len() && prompt_width > 0 && pays).then_some(sharing)
    }

    /// Positions the two passes compute, padding included.
    fn positions(&self) -> usize {
        self.groups * self.prompt_width + self.group_of.len() * self.rest_width
    }
}

/// Samples laid out for one teacher-forced forward: right-padded inputs (causal attention never
/// looks right, so padding cannot leak into real positions) and, per response token, the flat
/// `row * width + column` of the hidden state that predicts it.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct TokenBatch {
    pub rows: usize,
    pub width: usize,
    pub inputs: Vec<i64>,
    pub positions: Vec<i64>,
    pub targets: Vec<i64>,
    pub old_logprobs: Vec<f32>,
    pub advantages: Vec<f32>,
    /// The same rows as a prompts' pass and a rest pass, when some share a prompt and that
    /// computes fewer positions.
    #[serde(skip)]
    pub shared: Option<SharedPrompts>,
    /// Every row's stem, when all rows have one ([`BatchStems::of`]).
    #[serde(skip)]
    pub stems: Option<BatchStems>,
}

/// The stems of a batch's rows, all entering one layer, each covering its row's inputs.
#[derive(Clone, Debug, PartialEq)]
pub struct BatchStems {
    pub layer: usize,
    /// Values per position.
    pub hidden: usize,
    pub rows: Vec<Arc<StemStates>>,
}

impl BatchStems {
    /// `samples`' stems, when every one has a stem entering the same layer with the same number
    /// of values for each of its inputs (prompt + response but the last token).
    pub fn of(samples: &[PolicySample]) -> Option<Self> {
        let first = samples.first()?;
        let (layer, hidden) = (first.stem.as_ref()?.layer, first.stem.as_ref()?.values.len() / first.input_len().max(1));
        let fits = |s: &PolicySample| s.stem.as_ref().is_some_and(|t| t.layer == layer && t.values.len() == s.input_len() * hidden);
        (hidden > 0 && samples.iter().all(fits)).then(|| BatchStems { layer, hidden, rows: samples.iter().filter_map(|s| s.stem.clone()).collect() })
    }

    /// The plain forward's start: each row's stream, right-padded to `width`.
    fn plain(&self, width: usize, device: &Device) -> Start {
        let rows: Vec<&[f32]> = self.rows.iter().map(|s| &s.values[..]).collect();
        Start::padded_stream(self.layer, &rows, width, self.hidden, device)
    }

    /// The two passes' starts: each distinct prompt's stream (but the last token's, from its
    /// first row: copies were prefilled once), then each row's from its prompt's last token.
    fn shared(&self, shared: &SharedPrompts, device: &Device) -> (Start, Start) {
        let h = self.hidden;
        let mut first_row = vec![0; shared.prompt_lens.len()];
        for (row, &p) in shared.prompt_of.iter().enumerate().rev() {
            first_row[p] = row;
        }
        let prompts: Vec<&[f32]> = first_row.iter().zip(&shared.prompt_lens).map(|(&row, &len)| &self.rows[row].values[..len * h]).collect();
        let rest: Vec<&[f32]> = shared.prompt_of.iter().zip(&self.rows).map(|(&p, s)| &s.values[shared.prompt_lens[p] * h..]).collect();
        (Start::padded_stream(self.layer, &prompts, shared.prompt_width, h, device), Start::padded_stream(self.layer, &rest, shared.rest_width, h, device))
    }
}

/// A batch laid out for [`Llama::forward_hidden_after_prompts`]: each distinct prompt but its
/// last token once, then per row the prompt's last token and the response but its last.
#[derive(Clone, Debug, PartialEq)]
pub struct SharedPrompts {
    /// `[prompts, prompt_width]`, right-padded.
    pub prompt_tokens: Vec<i64>,
    pub prompt_width: usize,
    pub prompt_lens: Vec<usize>,
    /// Each row's prompt.
    pub prompt_of: Vec<usize>,
    /// `[rows, rest_width]`, right-padded.
    pub rest_tokens: Vec<i64>,
    pub rest_width: usize,
    /// Per response token (in [`TokenBatch`]'s order), the flat `row * rest_width + column` of
    /// the hidden state that predicts it.
    pub positions: Vec<i64>,
}

impl SharedPrompts {
    /// The layout of `samples`, when computing each prompt once pays ([`PromptGroups::of`]).
    pub fn of(samples: &[PolicySample]) -> Option<Self> {
        let PromptGroups { group_of: prompt_of, groups, prompt_width, rest_width } = PromptGroups::of(samples)?;
        let mut prompt_tokens = vec![0; groups * prompt_width];
        let mut prompt_lens = vec![0; groups];
        for (s, &p) in samples.iter().zip(&prompt_of) {
            prompt_lens[p] = s.prompt.len() - 1;
            for (c, &t) in s.prompt[..s.prompt.len() - 1].iter().enumerate() {
                prompt_tokens[p * prompt_width + c] = t as i64;
            }
        }
        let mut rest_tokens = vec![0; samples.len() * rest_width];
        let mut positions = Vec::new();
        for (row, s) in samples.iter().enumerate() {
            let rest = s.prompt.last().into_iter().chain(&s.response[..s.response.len() - 1]);
            for (c, &t) in rest.enumerate() {
                rest_tokens[row * rest_width + c] = t as i64;
            }
            positions.extend((0..s.response.len()).map(|j| (row * rest_width + j) as i64));
        }
        Some(SharedPrompts { prompt_tokens, prompt_width, prompt_lens, prompt_of, rest_tokens, rest_width, positions })
    }

    /// Positions the two passes compute, padding included.
    pub fn positions(&self) -> usize {
        self.prompt_lens.len() * self.prompt_width + self.prompt_of.len() * self.rest_width
    }
}

impl TokenBatch {
    pub fn new(samples: &[PolicySample]) -> Result<Self> {
        if let Some(i) = samples.iter().position(|s| s.prompt.is_empty() || s.response.is_empty() || s.response.len() != s.old_logprobs.len()) {
            bail!("sample {i} needs a prompt, a response and one old log-prob per response token");
        }
        let width = plain_width(samples);
        let mut b = TokenBatch { rows: samples.len(), width, inputs: vec![0; samples.len() * width], positions: vec![], targets: vec![], old_logprobs: vec![], advantages: vec![], shared: SharedPrompts::of(samples), stems: BatchStems::of(samples) };
        for (row, s) in samples.iter().enumerate() {
            let sequence = s.prompt.iter().chain(&s.response).take(s.input_len());
            for (col, &t) in sequence.enumerate() {
                b.inputs[row * width + col] = t as i64;
            }
            for (j, &t) in s.response.iter().enumerate() {
                b.positions.push((row * width + s.prompt.len() - 1 + j) as i64);
                b.targets.push(t as i64);
            }
            b.old_logprobs.extend(&s.old_logprobs);
            b.advantages.extend(std::iter::repeat_n(s.advantage, s.response.len()));
        }
        Ok(b)
    }

    pub fn tokens(&self) -> usize {
        self.targets.len()
    }

    /// The batch padded to a few fixed shapes: rows to a power of two, width and response
    /// tokens to [`crate::device::shape_bucket`]. Why: wgpu compiles and autotunes kernels for every new
    /// shape; on an H100 a warm 8 × 384 forward-backward took 0.2 s and the first one at width
    /// 400 took 45 s, and GRPO conversations all differ in length. Padding rows are all zeros
    /// and never read; padding tokens predict token 0 from position 0 with advantage 0 and old
    /// log-prob 0, and the loss masks them (real tokens come first, in their original order).
    pub fn bucketed(&self) -> TokenBatch {
        let (rows, width, n) = (self.rows.next_power_of_two(), crate::device::shape_bucket(self.width), crate::device::shape_bucket(self.tokens()));
        let mut inputs = vec![0; rows * width];
        for r in 0..self.rows {
            inputs[r * width..r * width + self.width].copy_from_slice(&self.inputs[r * self.width..(r + 1) * self.width]);
        }
        // A flat index `row * width + col` moves with the wider rows.
        let mut positions: Vec<i64> = self.positions.iter().map(|&p| (p as usize / self.width * width + p as usize % self.width) as i64).collect();
        positions.resize(n, 0);
        let pad = |v: &[f32]| {
            let mut v = v.to_vec();
            v.resize(n, 0.0);
            v
        };
        let mut targets = self.targets.clone();
        targets.resize(n, 0);
        // Shapes that compile once matter more there than positions saved.
        TokenBatch { rows, width, inputs, positions, targets, old_logprobs: pad(&self.old_logprobs), advantages: pad(&self.advantages), shared: None, stems: None }
    }
}

/// Log-probs `[tokens]` of the batch's response tokens under `model` (differentiable on an
/// autodiff device).
pub fn token_logprobs(model: &Llama, inv_freq: &[f64], batch: &TokenBatch, device: &Device) -> Tensor<1> {
    recomputable_logprobs(model, inv_freq, batch, device, Forward::plain(device)).0
}

/// [`token_logprobs`] run as `forward` says; with `forward.recompute`, also the tape the
/// backward needs.
pub fn recomputable_logprobs(model: &Llama, inv_freq: &[f64], batch: &TokenBatch, device: &Device, forward: Forward) -> (Tensor<1>, Option<LayerTape>) {
    let n = batch.tokens();
    let (logp, tape) = padded_logprobs(model, inv_freq, batch, device, forward);
    (logp.narrow(0, 0, n), tape)
}

/// How a training forward runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Forward {
    /// Pad the batch to [`TokenBatch::bucketed`] (devices that compile kernels per shape).
    pub buckets: bool,
    /// Keep only each layer's input and recompute the layers in the backward
    /// ([`crate::model::recompute`]): memory for one more forward.
    pub recompute: bool,
    /// How the matmuls compute ([`Precision::MixedF16`]: f16, on wgpu).
    pub precision: Precision,
    /// Compute each prompt that rows share once ([`SharedPrompts`]), unless the batch is
    /// bucketed (not implemented for it). Every log-prob forward of a [`TokenBatch`] goes through
    /// it (GRPO, SFT, the KL reference, evaluation's likelihoods); GRPO batches repeat prompts.
    pub share_prompts: bool,
    /// Start above the frozen layers from the stems generation kept ([`BatchStems`]), where
    /// every row has one; not with `recompute` or `buckets` (not implemented there). Only for
    /// the model that generated (the policy): a KL reference or evaluation model runs from tokens.
    pub reuse_stems: bool,
}

impl Forward {
    /// Buckets where `device` compiles per shape (and shares no prompts there: not measured on
    /// a GPU yet); every activation kept; f32.
    pub fn plain(device: &Device) -> Self {
        let buckets = crate::device::compiles_per_shape(device);
        Forward { buckets, recompute: false, precision: Precision::F32, share_prompts: !buckets, reuse_stems: false }
    }

    /// Whether batches that share prompts run as [`SharedPrompts`].
    pub fn shares_prompts(&self) -> bool {
        self.share_prompts && !self.buckets
    }

    fn shares<'a>(&self, batch: &'a TokenBatch) -> Option<&'a SharedPrompts> {
        batch.shared.as_ref().filter(|_| self.shares_prompts())
    }

    /// Whether this forward of `batch` starts from its stems (above `model`'s frozen layers).
    pub fn starts_from_stem(&self, batch: &TokenBatch, model: &Llama) -> bool {
        self.stems(batch, model).is_some()
    }

    /// The batch's stems, when this forward starts from them for `model`.
    fn stems<'a>(&self, batch: &'a TokenBatch, model: &Llama) -> Option<&'a BatchStems> {
        let fits = |s: &&BatchStems| s.layer > 0 && s.layer < model.layers.len() && s.hidden == model.embed_tokens.weight.dims()[1];
        batch.stems.as_ref().filter(|_| self.reuse_stems && !self.recompute && !self.buckets).filter(fits)
    }
}

/// Like [`token_logprobs`], but on a device that compiles kernels per shape the batch runs
/// padded to [`TokenBatch::bucketed`] and the result keeps its padded tail (`[m]`, m ≥ tokens;
/// the tail is finite and meaningless): callers that reduce over it mask the tail instead of
/// slicing, so that their reductions see bucketed shapes too.
/// With `forward.recompute`, also the tape the backward needs ([`Loss::gradients`]).
fn padded_logprobs(model: &Llama, inv_freq: &[f64], batch: &TokenBatch, device: &Device, forward: Forward) -> (Tensor<1>, Option<LayerTape>) {
    if let Some(shared) = forward.shares(batch) {
        let rows = batch.rows;
        let prompts = Tensor::<2, Int>::from_data(TensorData::new(shared.prompt_tokens.clone(), [shared.prompt_lens.len(), shared.prompt_width]), device);
        let rest = Tensor::<2, Int>::from_data(TensorData::new(shared.rest_tokens.clone(), [rows, shared.rest_width]), device);
        let (hidden, tape) = if forward.recompute {
            let (hidden, tape) = model.forward_hidden_after_prompts_recomputed(inv_freq, prompts, &shared.prompt_lens, &shared.prompt_of, rest, forward.precision);
            (hidden, Some(tape))
        } else {
            let (prompts, rest) = match forward.stems(batch, model) {
                Some(stems) => stems.shared(shared, device),
                None => (Start::Tokens(prompts), Start::Tokens(rest)),
            };
            (model.forward_hidden_after_prompts(inv_freq, prompts, &shared.prompt_lens, &shared.prompt_of, rest, forward.precision), None)
        };
        return (picked_logprobs(model, hidden, &shared.positions, &batch.targets, device), tape);
    }
    let padded;
    let batch = if forward.buckets {
        padded = batch.bucketed();
        &padded
    } else {
        batch
    };
    let (rows, width) = (batch.rows, batch.width);
    let tokens = Tensor::<2, Int>::from_data(TensorData::new(batch.inputs.clone(), [rows, width]), device);
    let layout = StepLayout::new(inv_freq, &vec![0; rows], 0, width, device).with_precision(forward.precision);
    let (hidden, tape) = if forward.recompute {
        let (hidden, tape) = model.forward_hidden_recomputed(tokens, layout);
        (hidden, Some(tape))
    } else {
        let start = match forward.stems(batch, model) {
            Some(stems) => stems.plain(width, device),
            None => Start::Tokens(tokens),
        };
        (model.forward_hidden_from(start, &layout, None), None)
    };
    (picked_logprobs(model, hidden, &batch.positions, &batch.targets, device), tape)
}

/// Log-probs of `targets` from the hidden states `[rows, width, d]` at the flat `positions`
/// (`row * width + column`): hidden states are picked first, so the head and its log-softmax
/// cover those positions only.
fn picked_logprobs(model: &Llama, hidden: Tensor<3>, positions: &[i64], targets: &[i64], device: &Device) -> Tensor<1> {
    let [rows, width, d] = hidden.dims();
    let n = positions.len();
    let positions = Tensor::<1, Int>::from_data(TensorData::new(positions.to_vec(), [n]), device);
    let picked = hidden.reshape([rows * width, d]).select(0, positions);
    let targets: Vec<u32> = targets.iter().map(|&t| t as u32).collect();
    model.target_logprobs(picked, &targets)
}

/// Host copy of the response log-probs under a frozen model (the KL reference).
pub fn reference_logprobs(reference: &Llama, inv_freq: &[f64], batch: &TokenBatch) -> Result<Vec<f32>> {
    let device = reference.embed_tokens.weight.val().device();
    to_host(token_logprobs(reference, inv_freq, batch, &device).detach())
}

fn to_host(t: Tensor<1>) -> Result<Vec<f32>> {
    t.into_data().convert::<f32>().try_to_vec::<f32>().map_err(|e| anyhow::anyhow!("reading a tensor: {e:?}"))
}

/// Numbers of one loss evaluation, for metrics.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize)]
pub struct LossStats {
    pub loss: f32,
    pub policy_loss: f32,
    /// Mean k3 KL to the reference (0 without one).
    pub kl: f32,
    /// Share of tokens whose clipped term was the active one.
    pub clip_fraction: f32,
    pub mean_ratio: f32,
    pub tokens: usize,
}

impl LossStats {
    /// Token-weighted mean of the stats of several micro-batches.
    pub fn weighted_mean(parts: &[LossStats]) -> LossStats {
        let tokens: usize = parts.iter().map(|p| p.tokens).sum();
        let w = |f: fn(&LossStats) -> f32| if tokens == 0 { 0.0 } else { parts.iter().map(|p| f(p) * p.tokens as f32).sum::<f32>() / tokens as f32 };
        LossStats { loss: w(|p| p.loss), policy_loss: w(|p| p.policy_loss), kl: w(|p| p.kl), clip_fraction: w(|p| p.clip_fraction), mean_ratio: w(|p| p.mean_ratio), tokens }
    }
}

/// The GRPO loss as a scalar tensor `[1]` (token mean), from per-token log-probs.
pub fn clipped_policy_loss(new_logp: Tensor<1>, old_logp: Tensor<1>, advantages: Tensor<1>, ref_logp: Option<Tensor<1>>, cfg: &GrpoConfig) -> (Tensor<1>, LossStats) {
    let n = new_logp.dims()[0];
    masked_policy_loss(new_logp, old_logp, advantages, ref_logp, cfg, n)
}

/// [`clipped_policy_loss`] over the first `real` of the tokens; the tail (shape padding, with
/// advantage 0 and old/reference log-probs 0) adds exactly nothing to the loss or its gradient.
fn masked_policy_loss(new_logp: Tensor<1>, old_logp: Tensor<1>, advantages: Tensor<1>, ref_logp: Option<Tensor<1>>, cfg: &GrpoConfig, real: usize) -> (Tensor<1>, LossStats) {
    let n = new_logp.dims()[0];
    // Masking the log-ratios (not the terms) keeps the tail finite: exp(0) = 1, never inf · 0.
    let mask = (real < n).then(|| {
        let m: Vec<f32> = (0..n).map(|i| if i < real { 1.0 } else { 0.0 }).collect();
        Tensor::<1>::from_data(TensorData::new(m, [n]), &new_logp.device())
    });
    let masked = |t: Tensor<1>| match &mask {
        Some(m) => t * m.clone(),
        None => t,
    };
    let ratio = masked(new_logp.clone() - old_logp).exp();
    let unclipped = ratio.clone() * advantages.clone();
    let clipped = ratio.clone().clamp(1.0 - cfg.clip_low, 1.0 + cfg.clip_high) * advantages.clone();
    let policy = unclipped.min_pair(clipped).neg();
    let (per_token, kl) = match ref_logp {
        Some(r) if cfg.kl_beta != 0.0 => {
            let k3 = k3_of_log_ratio(masked(r - new_logp));
            (policy.clone() + k3.clone().mul_scalar(cfg.kl_beta), Some(k3))
        }
        _ => (policy.clone(), None),
    };
    let per_real = 1.0 / real.max(1) as f32;
    let loss = per_token.sum().mul_scalar(per_real);
    let stats = loss_stats(&loss, &policy, kl, &ratio, &advantages, cfg, real);
    (loss, stats)
}

/// k3 (low-variance, always ≥ 0) estimator of KL(π‖π_ref) per token.
pub fn k3_kl(logp: Tensor<1>, ref_logp: Tensor<1>) -> Tensor<1> {
    k3_of_log_ratio(ref_logp - logp)
}

fn k3_of_log_ratio(log_ratio: Tensor<1>) -> Tensor<1> {
    log_ratio.clone().exp() - log_ratio - 1.0
}

fn loss_stats(loss: &Tensor<1>, policy: &Tensor<1>, kl: Option<Tensor<1>>, ratio: &Tensor<1>, adv: &Tensor<1>, cfg: &GrpoConfig, n: usize) -> LossStats {
    // Only the first `n` values are real tokens; a padded tail is left out of every figure.
    let host = |t: Tensor<1>| {
        let mut v = to_host(t.detach()).unwrap_or_default();
        v.truncate(n);
        v
    };
    let ratios = host(ratio.clone());
    let advs = host(adv.clone());
    let clipped = ratios.iter().zip(&advs).filter(|&(&r, &a)| (a > 0.0 && r > 1.0 + cfg.clip_high) || (a < 0.0 && r < 1.0 - cfg.clip_low)).count();
    let mean = |v: Vec<f32>| if n == 0 { 0.0 } else { v.iter().sum::<f32>() / n as f32 };
    LossStats {
        loss: to_host(loss.clone().detach()).ok().and_then(|v| v.first().copied()).unwrap_or(0.0),
        policy_loss: mean(host(policy.clone())),
        kl: kl.map(|k| mean(host(k))).unwrap_or(0.0),
        clip_fraction: if n == 0 { 0.0 } else { clipped as f32 / n as f32 },
        mean_ratio: mean(ratios),
        tokens: n,
    }
}

/// The loss of `model` on `batch` (differentiable when `device` is an autodiff device).
pub fn batch_loss(model: &Llama, inv_freq: &[f64], batch: &TokenBatch, ref_logprobs: Option<&[f32]>, cfg: &GrpoConfig, device: &Device) -> (Tensor<1>, LossStats) {
    batch_loss_shaped(model, inv_freq, batch, ref_logprobs, cfg, device, crate::device::compiles_per_shape(device))
}

/// [`batch_loss`] with the shape padding chosen by the caller (`buckets`: pad to
/// [`TokenBatch::bucketed`]); the loss and its gradient do not depend on it.
pub fn batch_loss_shaped(model: &Llama, inv_freq: &[f64], batch: &TokenBatch, ref_logprobs: Option<&[f32]>, cfg: &GrpoConfig, device: &Device, buckets: bool) -> (Tensor<1>, LossStats) {
    let (loss, stats) = training_loss(model, inv_freq, batch, ref_logprobs, cfg, device, Forward { buckets, ..Forward::plain(device) });
    (loss.value, stats)
}

/// [`batch_loss`] for a training step, run as `forward` says.
pub fn training_loss(model: &Llama, inv_freq: &[f64], batch: &TokenBatch, ref_logprobs: Option<&[f32]>, cfg: &GrpoConfig, device: &Device, forward: Forward) -> (Loss, LossStats) {
    let (new_logp, tape) = padded_logprobs(model, inv_freq, batch, device, forward);
    let m = new_logp.dims()[0];
    let host = |v: &[f32]| {
        let mut v = v.to_vec();
        v.resize(m, 0.0);
        Tensor::<1>::from_data(TensorData::new(v, [m]), device)
    };
    let (value, stats) = masked_policy_loss(new_logp, host(&batch.old_logprobs), host(&batch.advantages), ref_logprobs.map(host), cfg, batch.tokens());
    (Loss { value, tape }, stats)
}

/// One optimizer step on `samples`: forward, backward, AdamW update. `model` must live on an
/// autodiff device; `reference` (used only when β > 0) on any device.
pub fn grpo_step(model: Llama, optim: &mut ModuleOptimizer, lr: f64, inv_freq: &[f64], samples: &[PolicySample], reference: Option<&Llama>, cfg: &GrpoConfig) -> Result<(Llama, LossStats)> {
    if samples.is_empty() {
        bail!("no samples to train on (every group may have been dropped): skip the step instead");
    }
    let device = model.embed_tokens.weight.val().device();
    if !device.is_autodiff() {
        bail!("grpo_step needs the model on an autodiff device (device.autodiff())");
    }
    let batch = TokenBatch::new(samples)?;
    let ref_logprobs = match reference {
        Some(r) if cfg.kl_beta != 0.0 => Some(reference_logprobs(r, inv_freq, &batch)?),
        _ => None,
    };
    let (loss, stats) = batch_loss(&model, inv_freq, &batch, ref_logprobs.as_deref(), cfg, &device);
    if !stats.loss.is_finite() {
        bail!("loss is {}: step skipped", stats.loss);
    }
    let grads = GradientsParams::from_grads(loss.backward(), &model);
    Ok((optim.step(lr, model, grads), stats))
}
