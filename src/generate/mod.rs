//! Batched, KV-cached generation: many prompts of different lengths in one forward (left
//! padding + masks), sampled per sequence, with stop tokens, a token budget, a streaming
//! callback and cancellation. This is the rollout engine of GRPO, so batch > 1 is the norm.

pub mod sampler;
pub mod shared_prefix;
mod stem_recorder;

use crate::model::kv_cache::KvCache;
use crate::model::stem::{StemStates, StemTap};
use stem_recorder::StemRecorder;
use std::sync::Arc;
use crate::kernels::gpu;
use crate::model::packed::PackedLlama;
use crate::model::{Llama, StepLayout};
use anyhow::{Result, bail};
use burn::prelude::*;
use burn::tensor::DType;
use rand::Rng;
pub use sampler::SamplingParams;
use crate::device::shape_bucket;

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
    /// With [`GenerateOptions::stem_layer`] on the CPU: the stream entering the tapped layer at every token
    /// this sequence fed (its prompt, then its tokens but the last).
    pub stem: Option<Arc<StemStates>>,
}

/// What the streaming callback sees after each sampled token.
pub struct TokenEvent {
    pub sequence: usize,
    pub token: u32,
}

/// Generates for every prompt at once. `on_token` returns `false` to cancel the whole call.
/// `packed` (a copy of `model`'s weights repacked for its device: CPU decode panels or wgpu
/// fused projections, see [`PackedLlama::for_device`]) speeds up decode steps; without it
/// every step uses the model's own projections.
pub fn generate(
    model: &Llama,
    packed: Option<&PackedLlama>,
    inv_freq: &[f64],
    prompts: &[Vec<u32>],
    params: &SamplingParams,
    stop_ids: &[u32],
    on_token: &mut dyn FnMut(TokenEvent) -> bool,
) -> Result<Vec<Generation>> {
    generate_with(model, packed, inv_freq, prompts, params, stop_ids, GenerateOptions::default(), on_token)
}

/// How a call runs, beside what it samples. Neither option changes what is generated beyond
/// float rounding.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct GenerateOptions {
    /// Keep for each sequence the residual stream entering this layer at every token it feeds
    /// ([`Generation::stem`]; see [`crate::model::stem`]). On the CPU only: elsewhere (and for a
    /// layer the model does not have) no stem is kept.
    pub stem_layer: Option<usize>,
    /// Prefill the distinct prompts' common leading tokens once (the chat template's system
    /// turn and the instruction; see [`shared_prefix`]). On the CPU only.
    pub share_prefix: bool,
}

impl Default for GenerateOptions {
    fn default() -> Self {
        GenerateOptions { stem_layer: None, share_prefix: true }
    }
}

/// [`generate`] with [`GenerateOptions`].
#[allow(clippy::too_many_arguments)]
pub fn generate_with(
    model: &Llama,
    packed: Option<&PackedLlama>,
    inv_freq: &[f64],
    prompts: &[Vec<u32>],
    params: &SamplingParams,
    stop_ids: &[u32],
    options: GenerateOptions,
    on_token: &mut dyn FnMut(TokenEvent) -> bool,
) -> Result<Vec<Generation>> {
    if prompts.is_empty() {
        return Ok(vec![]);
    }
    if let Some(i) = prompts.iter().position(|p| p.is_empty()) {
        bail!("prompt {i} is empty: generation needs at least one token (e.g. BOS)");
    }
    let device = model.embed_tokens.weight.val().device();
    // On wgpu every new shape compiles and autotunes kernels (seconds each on an H100), so
    // prompts are left-padded to a shape bucket and finished rows stay in the batch as idle
    // rows until the live ones fit a smaller power of two. The CPU keeps exact shapes.
    let buckets = crate::device::compiles_per_shape(&device);
    let longest = prompts.iter().map(Vec::len).max().unwrap_or(0);
    let width = if buckets { shape_bucket(longest) } else { longest };
    // Identical prompts are prefilled once and their cache rows copied after the first step:
    // GRPO's rollouts of one document all start from the same first-turn prompt, and its
    // recall answers sample each prompt `group` times.
    let (distinct, mut copies) = distinct_prompts(prompts);
    let pad: Vec<usize> = distinct.iter().map(|&i| width - prompts[i].len()).collect();
    let mut cache = KvCache::new(model.layers.len(), pad);
    let tap = options.stem_layer.filter(|&l| !buckets && l > 0 && l < model.layers.len());
    cache.stem_tap = tap.map(|layer| StemTap { layer, taken: None });
    // The prompts' common leading tokens, prefilled once into every row's cache: the first step
    // then computes only the columns after them.
    let firsts: Vec<&[u32]> = distinct.iter().map(|&i| prompts[i].as_slice()).collect();
    let columns = if buckets || !options.share_prefix || params.max_new_tokens == 0 { 0 } else { shared_prefix::columns(&firsts) };
    let shared = if columns > 0 { on_cpu_workers(|| shared_prefix::prefill(model, packed, inv_freq, &firsts[0][..columns], &mut cache, width))? } else { None };
    let skip = shared.as_ref().map_or(0, |s| s.columns);
    let mut rows: Vec<i64> = Vec::with_capacity(distinct.len() * (width - skip));
    for (&i, &n) in distinct.iter().zip(&cache.pad) {
        let padded = std::iter::repeat_n(0i64, n).chain(prompts[i].iter().map(|&t| t as i64));
        rows.extend(padded.skip(skip));
    }
    let mut stems = StemRecorder::new(tap, prompts, copies.as_deref(), shared);
    let mut rngs: Vec<_> = (0..prompts.len()).map(|i| sampler::sequence_rng(params.seed, i)).collect();
    let mut out: Vec<Generation> =
        prompts.iter().map(|_| Generation { tokens: vec![], logprobs: vec![], stop: StopReason::MaxTokens, stem: None }).collect();
    // `batch[j]` is the prompt index of batch row j, `None` for a finished row kept for its shape.
    let mut batch: Vec<Option<usize>> = (0..prompts.len()).map(Some).collect();
    let mut input = Tensor::<2, Int>::from_data(TensorData::new(rows, [distinct.len(), width - skip]), &device);
    for _step in 0..params.max_new_tokens {
        let q_len = input.dims()[1];
        cache.reserve(q_len);
        let step = || {
            let layout = StepLayout::with_columns(inv_freq, &cache.pad, cache.len, q_len, cache.capacity, &device);
            let hidden = model.forward_hidden_packed(input, &layout, Some(&mut cache), packed);
            let last = hidden.narrow(1, q_len - 1, 1);
            let mut logits = model.logits_packed(last, packed);
            if let Some(rows) = copies.take() {
                let index = Tensor::<1, Int>::from_data(TensorData::new(rows.iter().map(|&r| r as i64).collect(), [rows.len()]), &device);
                logits = logits.select(0, index);
                cache.retain(&rows, &device);
            }
            if params.temperature <= 0.0 { greedy_without_repeats(logits, params.no_repeat_ngram, &batch, &out) } else { sample(logits, params, &batch, &mut rngs) }
        };
        let picks = if buckets { step()? } else { on_cpu_workers(step)? };
        if let Some(taken) = cache.stem_tap.as_mut().and_then(|t| t.taken.take()) {
            stems.keep(taken, &batch)?;
        }
        let mut next = Vec::with_capacity(batch.len());
        for (row, slot) in batch.iter_mut().enumerate() {
            let Some(seq) = *slot else {
                next.push(0);
                continue;
            };
            let (token, logprob) = picks[row];
            out[seq].tokens.push(token);
            out[seq].logprobs.push(logprob);
            if !on_token(TokenEvent { sequence: seq, token }) {
                for s in out.iter_mut().filter(|g| g.stop == StopReason::MaxTokens) {
                    s.stop = StopReason::Cancelled;
                }
                return Ok(out);
            }
            if stop_ids.contains(&token) {
                out[seq].stop = StopReason::StopToken;
                *slot = None;
            }
            next.push(token as i64);
        }
        let live: Vec<usize> = (0..batch.len()).filter(|&r| batch[r].is_some()).collect();
        if live.is_empty() {
            break;
        }
        // On the CPU finished rows leave once they are an eighth of the batch: each leaving
        // moves the live rows' caches down (up to gigabytes for a hundred rows), while an idle
        // row only costs its share of a step.
        let target = if buckets { live.len().next_power_of_two() } else if batch.len() - live.len() >= batch.len().div_ceil(8) { live.len() } else { batch.len() };
        if target < batch.len() {
            // The live rows, topped up with finished ones to the target size.
            let mut keep = live.clone();
            keep.extend((0..batch.len()).filter(|&r| batch[r].is_none()).take(target - live.len()));
            keep.sort_unstable();
            cache.retain(&keep, &device);
            batch = keep.iter().map(|&r| batch[r]).collect();
            next = keep.iter().map(|&r| next[r]).collect();
        }
        input = Tensor::<2, Int>::from_data(TensorData::new(next, [batch.len(), 1]), &device);
    }
    stems.attach(&mut out);
    Ok(out)
}

/// The first prompt of each distinct value, and — when some prompts repeat — each prompt's
/// row among those (`None` when all differ).
fn distinct_prompts(prompts: &[Vec<u32>]) -> (Vec<usize>, Option<Vec<usize>>) {
    let mut first: std::collections::HashMap<&[u32], usize> = std::collections::HashMap::new();
    let mut distinct = Vec::new();
    let rows: Vec<usize> = prompts
        .iter()
        .enumerate()
        .map(|(i, p)| {
            *first.entry(p).or_insert_with(|| {
                distinct.push(i);
                distinct.len() - 1
            })
        })
        .collect();
    let copies = (distinct.len() < prompts.len()).then_some(rows);
    (distinct, copies)
}

/// Runs `f` on one of rayon's worker threads (the calling thread waits). A CPU step makes
/// hundreds of parallel calls (the decode panels' matmuls, flex's ops); made from a thread
/// outside rayon's pool, each one queues a job and puts the caller to sleep on a futex until
/// it is done, while idle workers spin on `sched_yield` (half a batch-1 step's samples under
/// `perf` were in the kernel's scheduler). From a worker, the caller works on its own calls
/// and the other workers steal from it: a batch-1 step of SmolLM2-135M took 16–19 ms from the
/// main thread and 10–11 ms here (`examples/decode_probe.rs`, f16 panels, 2 cores).
fn on_cpu_workers<R: Send>(f: impl FnOnce() -> R + Send) -> R {
    rayon::scope(|_| f())
}

/// Greedy picks; a row whose pick would repeat an n-gram it generated (`no_repeat_ngram`) takes
/// its best allowed token instead, from that row's logits alone (rare: a looping row).
fn greedy_without_repeats(logits: Tensor<3>, no_repeat_ngram: usize, batch: &[Option<usize>], out: &[Generation]) -> Result<Vec<(u32, f32)>> {
    let mut picks = greedy_on_device(logits.clone())?;
    for (row, slot) in batch.iter().enumerate() {
        let Some(seq) = *slot else { continue };
        let banned = sampler::repeated_ngram_tokens(&out[seq].tokens, no_repeat_ngram);
        if !banned.contains(&picks[row].0) {
            continue;
        }
        let vocab = logits.dims()[2];
        let l: Vec<f32> = in_f32(logits.clone().narrow(0, row, 1)).into_data().try_to_vec().map_err(|e| anyhow::anyhow!("reading logits: {e:?}"))?;
        let best = (0..vocab).filter(|t| !banned.contains(&(*t as u32))).max_by(|&a, &b| l[a].total_cmp(&l[b]));
        if let Some(t) = best {
            picks[row] = (t as u32, sampler::log_prob(&l, t as u32));
        }
    }
    Ok(picks)
}

/// Greedy picks computed where the logits are, read back in one transfer: a token id and its
/// log-probability per row (`-log Σ exp(l - max)`: no vocabulary-wide log-softmax is written),
/// not the whole `[batch, vocab]` row (12 MB per step at batch 64).
fn greedy_on_device(logits: Tensor<3>) -> Result<Vec<(u32, f32)>> {
    // On wgpu: our sampling kernel at temperature 0, one launch instead of Burn's six.
    if sampling_kernel_runs(&logits.device()) {
        if let Some(picks) = kernel_picks(&logits, vec![0.0; logits.dims()[0]], 0.0, 0, 1.0)? {
            return Ok(picks);
        }
    }
    let logits = in_f32(logits);
    let ids = logits.clone().argmax(2);
    let max = logits.clone().max_dim(2);
    let logprob = (logits - max).exp().sum_dim(2).log().neg();
    let read = burn::tensor::Transaction::default().register(ids).register(logprob).try_execute().map_err(|e| anyhow::anyhow!("reading greedy picks: {e:?}"))?;
    let [ids, lps] = <[TensorData; 2]>::try_from(read).map_err(|_| anyhow::anyhow!("reading greedy picks: expected two tensors"))?;
    let ids: Vec<i64> = ids.convert::<i64>().try_to_vec().map_err(|e| anyhow::anyhow!("reading token ids: {e:?}"))?;
    let lps: Vec<f32> = lps.convert::<f32>().try_to_vec().map_err(|e| anyhow::anyhow!("reading log-probs: {e:?}"))?;
    Ok(ids.into_iter().zip(lps).map(|(t, l)| (t as u32, l)).collect())
}

/// `logits` in f32: a model run in f16 ([`crate::device::use_f16`]) would otherwise sum 49k
/// exponentials in f16 for each log-probability. One row per sequence: the cast costs nothing.
fn in_f32(logits: Tensor<3>) -> Tensor<3> {
    if logits.dtype() == burn::tensor::DType::F32 { logits } else { logits.cast(burn::tensor::DType::F32) }
}

/// Temperature / top-k / top-p sampling: where the logits are when our wgpu kernel applies,
/// else on the host.
fn sample(logits: Tensor<3>, params: &SamplingParams, batch: &[Option<usize>], rngs: &mut [rand_chacha::ChaCha8Rng]) -> Result<Vec<(u32, f32)>> {
    if let Some(picks) = sample_on_device(&logits, params, batch, rngs)? {
        return Ok(picks);
    }
    sample_on_host(logits, params, batch, rngs)
}

/// Sampling in one wgpu kernel ([`gpu::sample_rows`]: Gumbel-max over the tokens top-k / top-p
/// keep, found on the device), each live row seeded by one draw from its sequence's RNG; only
/// `[rows, 2]` (token, log-prob) comes back instead of the `[rows, vocab]` logits. `None` (and
/// no RNG advanced) where the kernel does not run.
pub fn sample_on_device(logits: &Tensor<3>, params: &SamplingParams, batch: &[Option<usize>], rngs: &mut [rand_chacha::ChaCha8Rng]) -> Result<Option<Vec<(u32, f32)>>> {
    if !sampling_kernel_runs(&logits.device()) {
        return Ok(None);
    }
    // Drawn from copies: committed only if the kernel runs, so the host path sees the same streams.
    let mut drawn = rngs.to_vec();
    let seeds: Vec<f32> = batch.iter().map(|slot| slot.map_or(0.0, |seq| (drawn[seq].random::<u32>() >> (32 - gpu::SEED_BITS)) as f32)).collect();
    let Some(picks) = kernel_picks(logits, seeds, params.temperature, params.top_k, params.top_p)? else { return Ok(None) };
    rngs.clone_from_slice(&drawn);
    Ok(Some(batch.iter().zip(picks).map(|(slot, pick)| if slot.is_some() { pick } else { (0, 0.0) }).collect()))
}

/// Whether our wgpu sampling kernel may run for logits on `device` (wgpu, kernels on): checked
/// before anything is prepared for it.
fn sampling_kernel_runs(device: &Device) -> bool {
    gpu::enabled() && crate::device::compiles_per_shape(device)
}

/// (token, log-prob) per row from our wgpu sampling kernel ([`gpu::sample_rows`]) with one
/// seed per row at `temperature` (0: greedy) under `top_k` / `top_p`; `None` where it declines.
fn kernel_picks(logits: &Tensor<3>, seeds: Vec<f32>, temperature: f32, top_k: usize, top_p: f32) -> Result<Option<Vec<(u32, f32)>>> {
    let [rows, _, vocab] = logits.dims();
    // f32 explicitly: seeds below 2²⁴ are exact in f32, and under `--f16` the device's default
    // float type is f16, which the kernel declines.
    let seeds = Tensor::<1>::from_data(TensorData::new(seeds, [rows]), (&logits.device(), DType::F32));
    let Some(picked) = gpu::sample_rows(&in_f32(logits.clone()).reshape([rows, vocab]), &seeds, temperature, top_k, top_p) else { return Ok(None) };
    let values: Vec<f32> = picked.into_data().try_to_vec().map_err(|e| anyhow::anyhow!("reading the sampled tokens: {e:?}"))?;
    // The clamp only guards the next step's embedding lookup against a broken row (NaN logits).
    Ok(Some(values.chunks_exact(2).map(|v| ((v[0] as u32).min(vocab as u32 - 1), v[1])).collect()))
}

/// Temperature / top-k / top-p sampling with each sequence's own seeded RNG, on the host, rows
/// in parallel (each row costs passes of exponentials over the vocabulary, one at temperature 1
/// without top-k or top-p, else two: the draw's and the log-prob's; see
/// [`sampler::sample_with_log_prob`]).
fn sample_on_host(logits: Tensor<3>, params: &SamplingParams, batch: &[Option<usize>], rngs: &mut [rand_chacha::ChaCha8Rng]) -> Result<Vec<(u32, f32)>> {
    use rayon::prelude::*;
    let vocab = logits.dims()[2];
    let host: Vec<f32> = in_f32(logits).into_data().try_to_vec().map_err(|e| anyhow::anyhow!("reading logits: {e:?}"))?;
    // Each live row borrows its own sequence's RNG (a sequence sits in one row at most).
    let mut by_seq: Vec<Option<&mut rand_chacha::ChaCha8Rng>> = rngs.iter_mut().map(Some).collect();
    let mut work: Vec<(usize, Option<&mut rand_chacha::ChaCha8Rng>)> = batch.iter().enumerate().map(|(row, slot)| (row, slot.and_then(|seq| by_seq[seq].take()))).collect();
    Ok(work
        .par_iter_mut()
        .map(|(row, rng)| {
            // A finished row draws nothing: every sequence's random stream stays its own.
            let Some(rng) = rng else { return (0, 0.0) };
            let l = &host[*row * vocab..(*row + 1) * vocab];
            sampler::sample_with_log_prob(l, params, rng)
        })
        .collect())
}
