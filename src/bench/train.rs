//! `memtrain bench train`: one GRPO step of the memory agent, timed by phase (generation,
//! rewards, forward-backward, optimizer) with tokens/s for each, on synthetic documents.
//!
//! Contract: the step is the trainer's (same rollouts, rewards, loss and accumulation); when
//! every group of the step has equal rewards (a random or untrained model scores 0 everywhere)
//! the advantages are replaced by ±1 so that the forward-backward still runs and is timed, and
//! the report says so. `--dump-batch` writes the exact token batch of the update as JSON for
//! `scripts/bench_train_torch.py`, which times the same forward-backward in PyTorch.

use crate::model::packed::{PackedLlama, PanelPrecision};
use crate::agent::{AgentInput, AgentParams, Policy, RecallInput, run_agent, run_recall};
use crate::device::DeviceChoice;
use crate::exercises::{DatasetOptions, Preset, build};
use crate::generate::{GenerateOptions, SamplingParams};
use crate::model::precision::Precision;
use crate::model::{Llama, ModelConfig, rope};
use crate::train::data::TrainData;
use crate::train::grpo::{Forward, GrpoConfig, micro_batches, sort_by_length, padded_positions, PolicySample, TokenBatch, group_advantages, training_loss, samples_from_recall, samples_from_traces};
use crate::train::rewards::score_answer;
use crate::train::loss_scale::LossScale;
use crate::train::update::{Update, accumulated_step_over};
use anyhow::{Result, bail};
use burn::module::Module;
use std::path::PathBuf;
use std::time::Instant;

#[derive(Clone, Debug)]
pub struct TrainBenchOptions {
    /// A model file/folder, `random:smollm2-135m` or `-360m`, or `None` for the default model.
    pub model: Option<PathBuf>,
    /// Tokenizer for a random model (default: the default model's).
    pub tokenizer: Option<PathBuf>,
    pub device: DeviceChoice,
    pub docs: usize,
    pub group: usize,
    pub recall_group: usize,
    pub memory_tokens: usize,
    pub answer_tokens: usize,
    pub micro_batch: usize,
    pub dump_batch: Option<PathBuf>,
    /// Run the whole step once untimed first (kernel compilation and autotuning on wgpu happen
    /// on first sight of a shape; a training run pays them once, not every step).
    pub warmup: bool,
    /// What learns (the run config's `trainable_layers` and `lora`); the default: every weight.
    pub learning: Learning,
    /// Recompute each layer in the backward pass (the run config's `gradient_checkpointing`).
    pub checkpointing: bool,
    /// The run config's `precision` (mixed f16: wgpu only).
    pub precision: Precision,
    /// Compute shared prompts once where the device does ([`Forward::share_prompts`]); off:
    /// every copy, for timing the difference.
    pub share_prompts: bool,
    /// With [`Learning::TopLayers`]: start the update above the frozen layers from the stream
    /// the rollouts kept ([`crate::model::stem`]); off: from tokens, for timing the difference.
    pub reuse_stems: bool,
    /// Prefill the prompts' common leading tokens once in generation (CPU;
    /// [`GenerateOptions::share_prefix`]); off: every prompt whole, for timing the difference.
    pub share_prefix: bool,
}

/// Which weights a step trains, as `memtrain train` can be configured to.
#[derive(Clone, Debug, Default, PartialEq)]
pub enum Learning {
    #[default]
    Full,
    /// Only the top N layers (and the final norm): `trainable_layers: Some(N)`.
    TopLayers(usize),
    /// Rank-r adapters on all seven projections of every layer, the base frozen: `lora`.
    Lora(usize),
}

impl std::fmt::Display for Learning {
    fn fmt(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        match self {
            Learning::Full => write!(f, "every weight"),
            Learning::TopLayers(n) => write!(f, "top {n} layers"),
            Learning::Lora(r) => write!(f, "LoRA rank {r}, all projections"),
        }
    }
}

#[derive(Debug, serde::Serialize)]
pub struct TrainBenchReport {
    pub model: String,
    pub device: String,
    pub rollouts: usize,
    pub recall_answers: usize,
    pub generated_tokens: usize,
    pub trained_conversations: usize,
    pub trained_tokens: usize,
    pub sequence_tokens: usize,
    /// Positions the forward computed: `sequence_tokens` plus the micro-batches' right padding
    /// (on wgpu, before its shape buckets pad further), less the copies of prompts that rows of a
    /// micro-batch share (computed once on the CPU, `grpo::SharedPrompts`).
    pub padded_positions: usize,
    pub seconds_generation: f64,
    pub seconds_reward: f64,
    pub seconds_forward_backward: f64,
    pub seconds_optimizer: f64,
    pub synthetic_advantages: bool,
    pub warmed_up: bool,
    /// What learned (see [`Learning`]), and whether activations were recomputed.
    pub learning: String,
    pub checkpointing: bool,
    /// Whether micro-batches computed the prompts their rows share once.
    pub shared_prompts: bool,
    /// The layer the update started at, from the stream the rollouts kept (`None`: from tokens).
    pub stem_layer: Option<usize>,
    /// Micro-batches that started there, of all.
    pub stem_micro_batches: (usize, usize),
    pub parameters: usize,
    pub trainable_parameters: usize,
    /// The process's peak resident memory over the timed step (on the CPU: every tensor).
    pub peak_host_mb: Option<f64>,
    /// The GPU allocator's bytes in use and reserved after the step (`None` on the CPU).
    pub device_in_use_mb: Option<f64>,
    pub device_reserved_mb: Option<f64>,
}

impl TrainBenchReport {
    pub fn text(&self) -> String {
        let total = self.seconds_generation + self.seconds_reward + self.seconds_forward_backward + self.seconds_optimizer;
        let pct = |s: f64| 100.0 * s / total.max(1e-9);
        format!(
            "model {} on {}\n{} rollouts + {} recall answers, {} generated tokens; update on {} conversations ({} response / {} total tokens, {} positions computed){}\n\
             generation       {:8.2} s ({:4.1} %)  {:8.1} generated tok/s\n\
             rewards          {:8.3} s ({:4.1} %)\n\
             forward-backward {:8.2} s ({:4.1} %)  {:8.1} tok/s (all positions)\n\
             optimizer        {:8.3} s ({:4.1} %)\n\
             step             {:8.2} s\n\
             learning         {}{}{}: {:.1} M of {:.1} M parameters\n\
             memory           {}",
            self.model, self.device, self.rollouts, self.recall_answers, self.generated_tokens, self.trained_conversations, self.trained_tokens, self.sequence_tokens, self.padded_positions,
            if self.synthetic_advantages { " [±1 advantages: every group had equal rewards]" } else { "" }.to_string() + if self.warmed_up { " [after one untimed warm-up step]" } else { "" },
            self.seconds_generation, pct(self.seconds_generation), self.generated_tokens as f64 / self.seconds_generation.max(1e-9),
            self.seconds_reward, pct(self.seconds_reward),
            self.seconds_forward_backward, pct(self.seconds_forward_backward), self.sequence_tokens as f64 / self.seconds_forward_backward.max(1e-9),
            self.seconds_optimizer, pct(self.seconds_optimizer), total,
            self.learning,
            if self.checkpointing { ", gradient checkpointing" } else { "" }.to_string() + if self.shared_prompts { ", shared prompts once" } else { "" },
            self.stem_layer.map_or(String::new(), |l| format!(", update from layer {l} in {} of {} micro-batches (the frozen layers' output kept by the rollouts)", self.stem_micro_batches.0, self.stem_micro_batches.1)),
            self.trainable_parameters as f64 / 1e6, self.parameters as f64 / 1e6,
            self.memory_line()
        )
    }

    fn memory_line(&self) -> String {
        let mb = |x: Option<f64>| x.map_or("n/a".to_string(), |v| format!("{:.0} MB", v));
        match self.device_reserved_mb {
            Some(_) => format!("GPU pools {} reserved ({} in use after the step); host peak {}", mb(self.device_reserved_mb), mb(self.device_in_use_mb), mb(self.peak_host_mb)),
            None => format!("host peak {} (the CPU backend's tensors included)", mb(self.peak_host_mb)),
        }
    }
}

fn open_model(opts: &TrainBenchOptions, device: &burn::prelude::Device) -> Result<(String, ModelConfig, Llama, crate::checkpoint::tokenizer::TextTokenizer, PathBuf)> {
    if let Some((name, config, model)) = super::open_random(opts.model.as_deref(), device)? {
        let tpath = crate::checkpoint::default_model::resolve(opts.tokenizer.as_deref())?;
        let tokenizer = crate::checkpoint::load_tokenizer(&tpath)?;
        return Ok((name, config, model, tokenizer, tpath));
    }
    let path = crate::checkpoint::default_model::resolve(opts.model.as_deref())?;
    let loaded = crate::checkpoint::load(&path, device)?;
    Ok((loaded.info.name.clone(), loaded.info.config.clone(), loaded.model, loaded.tokenizer, path))
}

pub fn train_step(opts: &TrainBenchOptions) -> Result<TrainBenchReport> {
    let (base, info) = crate::device::select(opts.device)?;
    opts.precision.check_device(&base, &info)?;
    let device = base.clone().autodiff();
    let (name, config, model, tokenizer, tokenizer_source) = open_model(opts, &device)?;
    let model = match opts.learning {
        Learning::Full => model,
        Learning::TopLayers(n) => crate::train::freeze::freeze_below(model, n)?,
        Learning::Lora(rank) => {
            let targets = crate::train::lora::TARGETS.iter().map(|(t, _)| t.to_string()).collect();
            crate::train::lora::attach(model, &crate::train::config::LoraConfig { rank, alpha: rank as f32, targets }, config.num_layers, 0)
        }
    };
    let (parameters, trainable_parameters) = crate::model::parameters::parameter_counts(&model);
    let trainable = match opts.learning {
        Learning::TopLayers(n) => Some(n),
        _ => None,
    };
    let stem_layer = crate::model::stem::stem_layer(config.num_layers, trainable, opts.checkpointing).filter(|_| opts.reuse_stems && !crate::device::compiles_per_shape(&device));
    let inv_freq = rope::inverse_frequencies(&config);
    eprintln!("bench train: {name} on {info}");

    // Synthetic documents → tiny-curriculum exercises, counted with the model's tokenizer.
    let dir = std::env::temp_dir().join(format!("memtrain-bench-train-{}", std::process::id()));
    let docs_dir = dir.join("docs");
    crate::exercises::synth::write_documents(&docs_dir, opts.docs.max(4) * 2, 0)?;
    let mut dopts = DatasetOptions::new(vec![docs_dir], dir.join("exercises"));
    dopts.preset = Preset::Tiny;
    dopts.counter = Some(crate::exercises::dataset::counter_from_model(&tokenizer_source)?);
    build(&dopts, &mut |_| true)?;
    let data = TrainData::load(&dir.join("exercises"), Some(2))?;
    let exercises: Vec<_> = data.batch(0, 0, opts.docs).into_iter().map(|i| data.train[i].clone()).collect();

    let sampling = SamplingParams { temperature: 1.0, seed: 1, ..Default::default() };
    let params = AgentParams { sampling: sampling.clone(), memory_tokens: opts.memory_tokens, answer_tokens: opts.answer_tokens };
    let inputs: Vec<AgentInput> = exercises.iter().map(AgentInput::from).collect();
    let mut model = model;
    let rounds = if opts.warmup { 2 } else { 1 };
    // One optimizer for both rounds: after the warm-up its AdamW moments exist, as in every step
    // of a run but the first, and count in the timed step's memory.
    let mut optim = crate::train::adamw::FusedAdamW::init(Default::default());
    let mut scale = LossScale::for_precision(opts.precision);
    let mut last = None;
    for round in 0..rounds {
        if round + 1 == rounds {
            super::memory::reset_peak();
        }
        let infer = model.valid();
        let packed = PackedLlama::for_device(&infer, PanelPrecision::F32);
        let policy = Policy { model: &infer, packed: packed.as_ref(), inv_freq: &inv_freq, tokenizer: &tokenizer, options: GenerateOptions { stem_layer, share_prefix: opts.share_prefix } };
        let t = Instant::now();
        let traces = run_agent(&policy, &inputs, opts.group, &params)?;
        // One recall request per rollout, from its last memory and the exercise's first probe.
        let mut requests = Vec::new();
        let mut golds = Vec::new();
        for tr in &traces {
            if let Some(p) = data.recall_probes(&exercises[tr.doc]).first()
                && let (Some(text), Some(memory)) = (&p.probe_text, tr.memories.last())
            {
                requests.push(RecallInput { memory: memory.clone(), masked_section: text.clone() });
                golds.push(p.answer.clone());
            }
        }
        let answers = if requests.is_empty() { vec![] } else { run_recall(&policy, &requests, opts.recall_group, &sampling, opts.answer_tokens, 1 << 20)? };
        let seconds_generation = t.elapsed().as_secs_f64();

        let t = Instant::now();
        let rewards: Vec<f32> = traces.iter().map(|tr| score_answer(&tr.answer, &exercises[tr.doc].answer).exact).collect();
        let recall_rewards: Vec<f32> = answers.iter().map(|a| score_answer(&a.answer, &golds[a.request]).exact).collect();
        let mut adv = group_advantages(&rewards, opts.group, false)?.per_rollout;
        let mut radv = if answers.is_empty() { vec![] } else { group_advantages(&recall_rewards, opts.recall_group, false)?.per_rollout };
        let seconds_reward = t.elapsed().as_secs_f64();
        let synthetic = adv.iter().chain(&radv).all(Option::is_none);
        if synthetic {
            adv = (0..adv.len()).map(|i| Some(if i % 2 == 0 { 1.0 } else { -1.0 })).collect();
            radv = (0..radv.len()).map(|i| Some(if i % 2 == 0 { 1.0 } else { -1.0 })).collect();
        }
        let mut samples: Vec<PolicySample> = samples_from_traces(&traces, &adv);
        samples.extend(samples_from_recall(&answers, &radv));
        if let Some(path) = opts.dump_batch.as_ref().filter(|_| round + 1 == rounds) {
            let batch = TokenBatch::new(&samples)?;
            std::fs::write(path, serde_json::to_vec(&serde_json::json!({ "model": name, "micro_batch": opts.micro_batch, "batch": batch }))?)?;
        }
        // As the trainer does: micro-batches of similar lengths.
        sort_by_length(&mut samples);
        let total: usize = samples.iter().map(|s| s.response.len()).sum();
        let sequence_tokens: usize = samples.iter().map(PolicySample::input_len).sum();
        let cfg = GrpoConfig { kl_beta: 0.0, ..GrpoConfig::default() };
        let plain = Forward::plain(&device);
        let forward = Forward { recompute: opts.checkpointing, precision: opts.precision, share_prompts: plain.share_prompts && opts.share_prompts, reuse_stems: stem_layer.is_some(), ..plain };
        let micro_batches = micro_batches(&samples, opts.micro_batch, forward.shares_prompts());
        let mut from_stem = 0;
        let update = accumulated_step_over(model, &mut optim, &mut scale, 1e-6, &micro_batches, |m, part| {
            let batch = TokenBatch::new(part)?;
            from_stem += usize::from(forward.starts_from_stem(&batch, m));
            let (loss, _) = training_loss(m, &inv_freq, &batch, None, &cfg, &device, forward);
            Ok(loss.scaled(batch.tokens() as f32 / total as f32))
        })?;
        let parts = micro_batches.len();
        drop(micro_batches);
        let Update::Applied(next, times) = update else { bail!("the loss was not finite") };
        model = next;
        if rounds > 1 {
            // The untimed warm-up round's own figures: what the first step of a run costs.
            eprintln!("bench train: round {} of {rounds}: generation {seconds_generation:.1} s, forward-backward {:.1} s, optimizer {:.2} s", round + 1, times.forward_backward, times.optimizer);
        }
        if round + 1 == rounds {
            last = Some((traces, answers, samples, total, sequence_tokens, seconds_generation, seconds_reward, times, synthetic, forward.shares_prompts(), (from_stem, parts)));
        }
    }
    let Some((traces, answers, samples, total, sequence_tokens, seconds_generation, seconds_reward, times, synthetic, shares, stem_micro_batches)) = last else { bail!("no round ran") };
    let peak_host_mb = super::memory::peak_host_mb();
    let pools = super::memory::device_pools_mb(&base);
    let _ = std::fs::remove_dir_all(&dir);
    Ok(TrainBenchReport {
        model: name,
        device: info.to_string(),
        rollouts: traces.len(),
        recall_answers: answers.len(),
        generated_tokens: traces.iter().map(|t| t.generated_tokens()).sum::<usize>() + answers.iter().map(|a| a.turn.generated_ids.len()).sum::<usize>(),
        trained_conversations: samples.len(),
        trained_tokens: total,
        sequence_tokens,
        padded_positions: padded_positions(&samples, opts.micro_batch, shares),
        seconds_generation,
        seconds_reward,
        seconds_forward_backward: times.forward_backward as f64,
        seconds_optimizer: times.optimizer as f64,
        synthetic_advantages: synthetic,
        warmed_up: opts.warmup,
        learning: opts.learning.to_string(),
        checkpointing: opts.checkpointing,
        shared_prompts: shares,
        stem_layer,
        stem_micro_batches,
        parameters,
        trainable_parameters,
        peak_host_mb,
        device_in_use_mb: pools.map(|p| p.0),
        device_reserved_mb: pools.map(|p| p.1),
    })
}
