//! Batched, KV-cached generation: many prompts of different lengths in one forward (left
//! padding + masks), sampled per sequence, with stop tokens, a token budget, a streaming
//! callback and cancellation. This is the rollout engine of GRPO, so batch > 1 is the norm.

pub mod sampler;

use crate::model::kv_cache::KvCache;
use crate::model::packed::PackedLlama;
use crate::model::{Llama, StepLayout};
use anyhow::{Result, bail};
use burn::prelude::*;
pub use sampler::SamplingParams;

#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
pub enum StopReason {
    StopToken,
    MaxTokens,
    Cancelled,
}

/// One sequence's output: generated tokens (a final stop token included) and, per token, its
/// log-probability under the model at temperature 1.
#[derive(Clone, Debug)]
pub struct Generation {
    pub tokens: Vec<u32>,
    pub logprobs: Vec<f32>,
    pub stop: StopReason,
}

/// What the streaming callback sees after each sampled token.
pub struct TokenEvent {
    pub sequence: usize,
    pub token: u32,
}

/// Generates for every prompt at once. `on_token` returns `false` to cancel the whole call.
/// `packed` (a copy of `model`'s weights for the CPU decode kernels, see
/// [`PackedLlama::for_cpu`]) speeds up decode steps; without it every step uses the backend.
pub fn generate(
    model: &Llama,
    packed: Option<&PackedLlama>,
    inv_freq: &[f64],
    prompts: &[Vec<u32>],
    params: &SamplingParams,
    stop_ids: &[u32],
    on_token: &mut dyn FnMut(TokenEvent) -> bool,
) -> Result<Vec<Generation>> {
    if prompts.is_empty() {
        return Ok(vec![]);
    }
    if let Some(i) = prompts.iter().position(|p| p.is_empty()) {
        bail!("prompt {i} is empty: generation needs at least one token (e.g. BOS)");
    }
    let device = model.embed_tokens.weight.val().device();
    let longest = prompts.iter().map(Vec::len).max().unwrap_or(0);
    let pad: Vec<usize> = prompts.iter().map(|p| longest - p.len()).collect();
    let mut rows: Vec<i64> = Vec::with_capacity(prompts.len() * longest);
    for (p, &n) in prompts.iter().zip(&pad) {
        rows.extend(std::iter::repeat_n(0i64, n));
        rows.extend(p.iter().map(|&t| t as i64));
    }
    let mut cache = KvCache::new(model.layers.len(), pad);
    let mut rngs: Vec<_> = (0..prompts.len()).map(|i| sampler::sequence_rng(params.seed, i)).collect();
    let mut out: Vec<Generation> =
        prompts.iter().map(|_| Generation { tokens: vec![], logprobs: vec![], stop: StopReason::MaxTokens }).collect();
    // `active[j]` is the prompt index of batch row j; finished rows leave the batch.
    let mut active: Vec<usize> = (0..prompts.len()).collect();
    let mut input = Tensor::<2, Int>::from_data(TensorData::new(rows, [prompts.len(), longest]), &device);
    for _step in 0..params.max_new_tokens {
        let q_len = input.dims()[1];
        cache.reserve(q_len);
        let layout = StepLayout::with_columns(inv_freq, &cache.pad, cache.len, q_len, cache.capacity, &device);
        let hidden = model.forward_hidden_packed(input, &layout, Some(&mut cache), packed);
        let last = hidden.narrow(1, q_len - 1, 1);
        let logits = model.logits_packed(last, packed);
        let picks = if params.temperature <= 0.0 { greedy_on_device(logits)? } else { sample_on_host(logits, params, &active, &mut rngs)? };
        let mut next = Vec::with_capacity(active.len());
        let mut keep = Vec::with_capacity(active.len());
        for (row, &seq) in active.iter().enumerate() {
            let (token, logprob) = picks[row];
            out[seq].tokens.push(token);
            out[seq].logprobs.push(logprob);
            if !on_token(TokenEvent { sequence: seq, token }) {
                for &s in &active {
                    out[s].stop = StopReason::Cancelled;
                }
                return Ok(out);
            }
            if stop_ids.contains(&token) {
                out[seq].stop = StopReason::StopToken;
            } else {
                keep.push(row);
                next.push(token as i64);
            }
        }
        if keep.is_empty() {
            break;
        }
        if keep.len() < active.len() {
            cache.retain(&keep, &device);
            active = keep.iter().map(|&r| active[r]).collect();
        }
        input = Tensor::<2, Int>::from_data(TensorData::new(next, [active.len(), 1]), &device);
    }
    Ok(out)
}

/// Greedy picks computed where the logits are: only a token id and its log-probability per row
/// come back to the host, not the whole `[batch, vocab]` row (12 MB per step at batch 64).
fn greedy_on_device(logits: Tensor<3>) -> Result<Vec<(u32, f32)>> {
    let logp = burn::tensor::activation::log_softmax(logits, 2);
    let ids = logp.clone().argmax(2);
    let picked = logp.gather(2, ids.clone());
    let ids: Vec<i64> = ids.into_data().convert::<i64>().try_to_vec().map_err(|e| anyhow::anyhow!("reading token ids: {e:?}"))?;
    let lps: Vec<f32> = picked.into_data().convert::<f32>().try_to_vec().map_err(|e| anyhow::anyhow!("reading log-probs: {e:?}"))?;
    Ok(ids.into_iter().zip(lps).map(|(t, l)| (t as u32, l)).collect())
}

/// Temperature / top-k / top-p sampling with each sequence's own seeded RNG, on the host.
fn sample_on_host(logits: Tensor<3>, params: &SamplingParams, active: &[usize], rngs: &mut [rand_chacha::ChaCha8Rng]) -> Result<Vec<(u32, f32)>> {
    let vocab = logits.dims()[2];
    let host: Vec<f32> = logits.into_data().try_to_vec().map_err(|e| anyhow::anyhow!("reading logits: {e:?}"))?;
    Ok(active
        .iter()
        .enumerate()
        .map(|(row, &seq)| {
            let l = &host[row * vocab..(row + 1) * vocab];
            let token = sampler::sample(l, params, &mut rngs[seq]);
            (token, sampler::log_prob(l, token))
        })
        .collect())
}
