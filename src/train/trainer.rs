//! The training loop: SFT warm-start steps, then GRPO steps on both MemTrain objectives, with
//! held-out evaluation, metrics, checkpoints and exact resume (issue 5 items 2–9).
//!
//! Contract:
//! - step `s` (0-based, counted over both phases) reads the documents, sampling seeds and learning
//!   rate that are pure functions of (config, s); with the model and optimizer restored from a
//!   checkpoint, a resumed run therefore repeats an uninterrupted one exactly;
//! - a step whose loss is not finite changes nothing, is recorded with `skipped`, and after
//!   `max_bad_steps` of them in a row training stops with an error naming the last checkpoint;
//! - cancelling (Ctrl-C, the app's Stop) finishes the current step, writes a checkpoint and
//!   returns; nothing already written is lost.

use crate::model::packed::{PackedLlama, PanelPrecision};
use super::config::{ModelSource, TrainConfig};
use super::data::{TrainData, batch_indices};
use super::grpo::{Forward, PolicySample, TokenBatch, micro_batches, sort_by_length, group_advantages, training_loss, reference_logprobs, samples_from_recall, samples_from_traces};
use super::metrics::{MeanStd, StepRecord, append_record};
use super::run_dir::{RunDir, RunInfo, TrainState};
use super::schedule::lr_at;
use super::sft::{SftExample, sft_training_loss};
use super::loss_scale::LossScale;
use super::update::{Update, UpdateTimes, accumulated_step, accumulated_step_over};
use super::gold_likelihood::{GoldQuery, gold_likelihoods};
use crate::agent::{AgentInput, AgentParams, Policy, RecallInput, Trace, TurnKind, prompts, run_agent, run_recall};
use crate::checkpoint::{self, tokenizer::TextTokenizer};
use crate::device::{self, DeviceInfo};
use crate::eval::{self, HeldOutEval};
use crate::generate::{GenerateOptions, SamplingParams};
use crate::model::random::RandomWeights;
use crate::model::weights_out::{NamedTensors, hf_tensors};
use crate::model::{Llama, ModelConfig, rope};
use crate::train::rewards::score_answer;
use anyhow::{Context, Result, bail};
use super::adamw::{AdamWParams, FusedAdamW};
use burn::optim::ModuleOptimizer;
use burn::optim::grad_clipping::GradientClippingConfig;
use burn::module::Module;
use burn::prelude::*;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

/// What the loop reports as it goes (the CLI's progress bar, the app's charts).
pub enum TrainEvent<'a> {
    Step { record: &'a StepRecord, total: usize, lr: f64 },
    Evaluated(&'a HeldOutEval),
    Checkpoint { step: usize, path: &'a Path },
}

#[derive(Debug, PartialEq)]
pub enum Outcome {
    Finished,
    /// Stopped on request after `step` steps; a checkpoint of that step was written.
    Cancelled { step: usize },
}

pub struct Trainer {
    pub cfg: TrainConfig,
    pub run: RunDir,
    pub data: TrainData,
    pub model_config: ModelConfig,
    pub device_info: DeviceInfo,
    pub state: TrainState,
    model: Option<Llama>,
    reference: Option<Llama>,
    optim: ModuleOptimizer,
    tokenizer: TextTokenizer,
    inv_freq: Vec<f64>,
    sft_examples: Vec<SftExample>,
}

fn build_optimizer(cfg: &TrainConfig) -> ModuleOptimizer {
    let o = &cfg.optim;
    let optim = FusedAdamW::init(AdamWParams { beta_1: o.beta1, beta_2: o.beta2, weight_decay: o.weight_decay, ..Default::default() });
    match o.grad_clip_norm {
        Some(norm) => optim.with_grad_clipping(GradientClippingConfig::Norm(norm).init()),
        None => optim,
    }
}

/// The model to start from, on `device`, with its tokenizer and where that tokenizer came from.
fn load_start(source: &ModelSource, device: &Device) -> Result<(ModelConfig, Llama, TextTokenizer, PathBuf, String)> {
    match source {
        ModelSource::Default | ModelSource::Path(_) => {
            let path = checkpoint::default_model::resolve(match source {
                ModelSource::Path(p) => Some(p.as_path()),
                _ => None,
            })?;
            let loaded = checkpoint::load(&path, device)?;
            Ok((loaded.info.config.clone(), loaded.model, loaded.tokenizer, path, loaded.info.name))
        }
        ModelSource::Scratch { config, tokenizer_from, seed } => {
            let tpath = checkpoint::default_model::resolve(tokenizer_from.as_deref()).context("the from-scratch model borrows a tokenizer")?;
            let tokenizer = checkpoint::load_tokenizer(&tpath)?;
            if tokenizer.vocab_size() > config.vocab_size {
                bail!("model.Scratch.config.vocab_size = {} is smaller than the tokenizer of {} ({} ids)", config.vocab_size, tpath.display(), tokenizer.vocab_size());
            }
            let model = Llama::from_weights(config, &mut RandomWeights::new(config.clone(), *seed), device)?;
            Ok((config.clone(), model, tokenizer, tpath, format!("from scratch ({} parameters)", config.parameter_count())))
        }
    }
}

impl Trainer {
    /// Prepares a run in `out` (a new one, or the one there when `resume`), loading data, model
    /// and, when resuming, the newest checkpoint. `cfg` is validated before anything is loaded.
    /// To resume with the run's own settings pass [`Trainer::saved_config`] (possibly with more
    /// steps): anything else that changes the step function breaks exact resumption.
    pub fn open(cfg: TrainConfig, data_dir: &Path, out: &Path, resume: bool) -> Result<Self> {
        cfg.validate()?;
        let run = RunDir::new(out);
        if resume && !run.config().exists() {
            bail!("--resume: {} holds no run to resume", out.display());
        }
        if !resume && run.has_run() {
            bail!("{} already holds a run: pass --resume to continue it, or choose another --out", out.display());
        }
        let data = TrainData::load(data_dir, cfg.max_level)?;
        let (base, device_info) = device::select(cfg.device)?;
        cfg.precision.check_device(&base, &device_info)?;
        let device = base.clone().autodiff();
        let (model_config, model, tokenizer, tokenizer_source, model_name) = load_start(&cfg.model, &device)?;
        let inv_freq = rope::inverse_frequencies(&model_config);
        let model = match &cfg.lora {
            Some(l) => super::lora::attach(model, l, model_config.num_layers, cfg.seed),
            None => model,
        };
        let reference = if cfg.grpo.loss.kl_beta > 0.0 && cfg.grpo_steps > 0 {
            Some(Llama::from_weights(&model_config, &mut NamedTensors::from(hf_tensors(&model.clone().materialize())?), &base)?)
        } else {
            None
        };
        let mut optim = build_optimizer(&cfg);
        let mut model = model;
        let mut state = TrainState::default();
        std::fs::create_dir_all(out).with_context(|| format!("cannot create {}", out.display()))?;
        if resume {
            if let Some((m, o, s)) = run.load_latest(model.clone(), optim)? {
                (model, optim, state) = (m, o, s);
            } else {
                optim = build_optimizer(&cfg);
            }
            run.truncate_history(state.step)?;
        } else {
            RunDir::write_ron(&run.config(), &cfg)?;
            let info = RunInfo { model: model_name, tokenizer_source, data: data.source.clone(), device: device_info.to_string() };
            RunDir::write_ron(&run.info(), &info)?;
            checkpoint::hf_export::write_hf_folder(&run.initial(), &model_config, &hf_tensors(&model.clone().materialize())?, &tokenizer)?;
        }
        // After a resume too: a loaded record must not bring gradients back to frozen layers.
        let model = match cfg.trainable_layers {
            Some(n) => super::freeze::freeze_below(model, n)?,
            None => model,
        };
        let sft_examples = if cfg.sft.steps > 0 { build_sft_examples(&cfg, &data, &tokenizer)? } else { vec![] };
        // A fresh mixed-precision run (or one resumed from before the scale was saved) starts it.
        if !state.loss_scale.is_on() {
            state.loss_scale = LossScale::for_precision(cfg.precision);
        }
        Ok(Trainer { cfg, run, data, model_config, device_info, state, model: Some(model), reference, optim, tokenizer, inv_freq, sft_examples })
    }

    /// The config a run in `out` was started with.
    pub fn saved_config(out: &Path) -> Result<TrainConfig> {
        let path = RunDir::new(out).config();
        if !path.exists() {
            bail!("--resume: {} holds no run to resume", out.display());
        }
        TrainConfig::load(&path)
    }

    pub fn total_steps(&self) -> usize {
        self.cfg.total_steps()
    }

    fn model(&self) -> &Llama {
        self.model.as_ref().expect("the model is only taken during an update")
    }

    /// Runs until the configured number of steps, a cancel request or a fatal error.
    pub fn run(&mut self, cancel: &AtomicBool, on_event: &mut dyn FnMut(TrainEvent)) -> Result<Outcome> {
        let total = self.total_steps();
        while self.state.step < total {
            self.maybe_evaluate(on_event)?;
            if cancel.load(Ordering::Relaxed) {
                self.checkpoint(on_event)?;
                return Ok(Outcome::Cancelled { step: self.state.step });
            }
            let (record, lr) = self.step()?;
            append_record(&self.run.metrics(), &record)?;
            self.state.step += 1;
            self.state.bad_in_row = if record.skipped.as_deref().is_some_and(|s| s.starts_with("non-finite")) { self.state.bad_in_row + 1 } else { 0 };
            on_event(TrainEvent::Step { record: &record, total, lr });
            if self.state.bad_in_row >= self.cfg.max_bad_steps {
                let last = self.run.list_checkpoints().pop().map(|(_, p)| p.display().to_string()).unwrap_or_else(|| "none (initial/ holds the starting model)".into());
                bail!("training stopped: {} steps in a row had a non-finite loss (lower the learning rate?); the last good checkpoint is {last}", self.state.bad_in_row);
            }
            if self.state.step % self.cfg.checkpoint.every == 0 && self.state.step < total {
                self.checkpoint(on_event)?;
            }
        }
        self.maybe_evaluate(on_event)?;
        self.checkpoint(on_event)?;
        // LoRA adapters are merged into the exported weights.
        checkpoint::hf_export::write_hf_folder(&self.run.final_model(), &self.model_config, &hf_tensors(&self.model().clone().materialize())?, &self.tokenizer)?;
        Ok(Outcome::Finished)
    }

    fn checkpoint(&mut self, on_event: &mut dyn FnMut(TrainEvent)) -> Result<()> {
        let path = self.run.save_checkpoint(self.model(), &self.optim, &self.state, self.cfg.checkpoint.keep)?;
        on_event(TrainEvent::Checkpoint { step: self.state.step, path: &path });
        Ok(())
    }

    /// Greedy held-out evaluation at step 0, every `eval.every` steps and at the end.
    fn maybe_evaluate(&mut self, on_event: &mut dyn FnMut(TrainEvent)) -> Result<()> {
        let (every, step) = (self.cfg.eval.every, self.state.step);
        if every == 0 || (step % every != 0 && step != self.total_steps()) || self.data.held_out.is_empty() {
            return Ok(());
        }
        let run = self.evaluate()?;
        super::metrics::append_json(&self.run.eval(), &run.summary)?;
        eval::write_samples(&self.run.root.join("samples").join(format!("step-{step:06}.jsonl")), &self.data.held_out, &run)?;
        on_event(TrainEvent::Evaluated(&run.summary));
        Ok(())
    }

    /// Greedy evaluation of the current weights on the held-out split.
    pub fn evaluate(&self) -> Result<eval::EvalRun> {
        let n = match self.cfg.eval.exercises {
            0 => self.data.held_out.len(),
            n => n.min(self.data.held_out.len()),
        };
        let infer = self.model().valid();
        let packed = PackedLlama::for_device(&infer, PanelPrecision::F32);
        let policy = Policy { model: &infer, packed: packed.as_ref(), inv_freq: &self.inv_freq, tokenizer: &self.tokenizer, options: GenerateOptions::default() };
        let params = eval::greedy(self.cfg.agent.memory_tokens, self.cfg.agent.answer_tokens, self.cfg.agent.no_repeat_ngram);
        let mut run = eval::evaluate(&policy, self.state.step, &self.data.held_out[..n], &self.data.held_out_recall, &params)?;
        let references = eval::held_out_references(&self.data, n, self.cfg.agent.memory_tokens, &self.tokenizer)?;
        run.summary.reference_nll = Some(eval::reference_nll(&infer, &self.inv_freq, &references, self.cfg.grpo.micro_batch)?);
        let teacher = super::reference::TeacherStyle::from_config(&self.cfg.sft);
        run.add_teacher_memory_answers(eval::teacher_memory::answers_from_teacher_memories(&policy, &self.data.held_out[..n], self.cfg.agent.memory_tokens, teacher, self.cfg.agent.answer_tokens)?);
        Ok(run)
    }

    fn step(&mut self) -> Result<(StepRecord, f64)> {
        let step = self.state.step;
        if step < self.cfg.sft.steps {
            let lr = lr_at(self.cfg.sft.lr, step, self.cfg.sft.steps, self.cfg.optim.warmup_steps, self.cfg.optim.schedule);
            Ok((self.sft_step(step, lr)?, lr))
        } else {
            let k = step - self.cfg.sft.steps;
            let lr = lr_at(self.cfg.optim.lr, k, self.cfg.grpo_steps, self.cfg.optim.warmup_steps, self.cfg.optim.schedule);
            Ok((self.grpo_step(step, k, lr)?, lr))
        }
    }

    /// Applies `update` to the model, putting the model back whatever happens.
    fn update(&mut self, lr: f64, run: impl FnOnce(Llama, &mut ModuleOptimizer, &mut LossScale, f64) -> Result<Update>) -> Result<(UpdateTimes, Option<String>)> {
        let model = self.model.take().expect("model present between steps");
        let backup = model.clone();
        match run(model, &mut self.optim, &mut self.state.loss_scale, lr) {
            Ok(Update::Applied(m, times)) => {
                self.model = Some(m);
                Ok((times, None))
            }
            Ok(Update::Skipped(m, why)) => {
                self.model = Some(m);
                Ok((UpdateTimes::default(), Some(format!("non-finite: {why}"))))
            }
            Err(e) => {
                self.model = Some(backup);
                Err(e)
            }
        }
    }

    fn sft_step(&mut self, step: usize, lr: f64) -> Result<StepRecord> {
        let mut picked: Vec<SftExample> = batch_indices(self.cfg.seed, step, self.cfg.sft.batch, self.sft_examples.len()).into_iter().map(|i| self.sft_examples[i].clone()).collect();
        let t = Instant::now();
        let corrected = self.student_corrections(step)?;
        let seconds_generation = t.elapsed().as_secs_f32();
        picked.extend(corrected);
        // Micro-batches of similar lengths pad less (see `grpo::sort_by_length`).
        picked.sort_by_key(|e| e.prompt.len() + e.target.len());
        let total_tokens: usize = picked.iter().map(|e| e.target.len()).sum();
        let inv_freq = self.inv_freq.clone();
        let (micro, weighting) = (self.cfg.grpo.micro_batch, self.cfg.sft.weighting);
        let (recompute, precision) = (self.cfg.gradient_checkpointing, self.cfg.precision);
        let (times, skipped) = self.update(lr, |model, optim, scale, lr| {
            accumulated_step(model, optim, scale, lr, &picked, micro, |m, part| {
                let device = m.embed_tokens.weight.val().device();
                // Each micro-batch's share of the step's loss, so accumulation equals one big batch.
                let share = weighting.mass(part) / weighting.mass(&picked);
                let forward = Forward { recompute, precision, ..Forward::plain(&device) };
                Ok(sft_training_loss(m, &inv_freq, part, weighting, &device, forward)?.scaled(share))
            })
        })?;
        Ok(StepRecord {
            step: step as u64,
            phase: Some("sft".into()),
            loss: skipped.is_none().then_some(times.loss),
            trained_tokens: Some(total_tokens),
            seconds_generation,
            seconds_forward_backward: times.forward_backward,
            seconds_optimizer: times.optimizer,
            tokens_per_second: (times.forward_backward > 0.0).then(|| total_tokens as f32 / times.forward_backward),
            rss_mb: super::metrics::rss_mb(),
            skipped,
            ..Default::default()
        })
    }

    /// The teacher's corrections of the student's greedy turns on `sft.student_rollouts`
    /// training exercises ([`super::corrections`]).
    fn student_corrections(&self, step: usize) -> Result<Vec<SftExample>> {
        let n = self.cfg.sft.student_rollouts;
        if n == 0 {
            return Ok(vec![]);
        }
        // Its own stream of exercises, apart from the SFT batch's.
        let docs = self.data.batch(self.cfg.seed ^ 0x5354_5544_454e_54, step, n);
        let inputs: Vec<AgentInput> = docs.iter().map(|&i| AgentInput::from(&self.data.train[i])).collect();
        let infer = self.model().valid();
        let packed = PackedLlama::for_device(&infer, PanelPrecision::F32);
        let policy = Policy { model: &infer, packed: packed.as_ref(), inv_freq: &self.inv_freq, tokenizer: &self.tokenizer, options: GenerateOptions::default() };
        let traces = run_agent(&policy, &inputs, 1, &eval::greedy(self.cfg.agent.memory_tokens, self.cfg.agent.answer_tokens, self.cfg.agent.no_repeat_ngram))?;
        let teacher = super::reference::TeacherStyle::from_config(&self.cfg.sft);
        let weights = super::reference::TurnWeights::from_config(&self.cfg.sft);
        let count = super::reference::token_counter(&self.tokenizer);
        let mut out = Vec::new();
        for trace in &traces {
            let e = &self.data.train[docs[trace.doc]];
            for c in super::corrections::corrections(e, self.data.recall_probes(e), &trace.memories, self.cfg.agent.memory_tokens, teacher, &count) {
                out.push(super::reference::tokenized_conversation(&c, weights, &self.tokenizer)?);
            }
        }
        Ok(out)
    }

    /// The layer whose input the rollouts keep for the update ([`crate::model::stem`]).
    fn stem_layer(&self) -> Option<usize> {
        crate::model::stem::stem_layer(self.model().layers.len(), self.cfg.trainable_layers, self.cfg.gradient_checkpointing)
    }

    fn grpo_step(&mut self, step: usize, k: usize, lr: f64) -> Result<StepRecord> {
        let cfg = self.cfg.clone();
        let (group, g2) = (cfg.grpo.group, cfg.objectives.recall_group);
        let docs: Vec<usize> = self.data.batch(cfg.seed, k, cfg.grpo.batch_docs);
        let inputs: Vec<AgentInput> = docs.iter().map(|&i| AgentInput::from(&self.data.train[i])).collect();
        let seed = cfg.seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ step as u64;
        let sampling = SamplingParams { temperature: cfg.agent.temperature, top_p: cfg.agent.top_p, top_k: 0, seed, max_new_tokens: 0, no_repeat_ngram: 0 };
        let params = AgentParams { sampling: sampling.clone(), memory_tokens: cfg.agent.memory_tokens, answer_tokens: cfg.agent.answer_tokens };

        let t = Instant::now();
        let infer = self.model().valid();
        let packed = PackedLlama::for_device(&infer, PanelPrecision::F32);
        let policy = Policy { model: &infer, packed: packed.as_ref(), inv_freq: &self.inv_freq, tokenizer: &self.tokenizer, options: GenerateOptions { stem_layer: self.stem_layer(), ..GenerateOptions::default() } };
        let traces = run_agent(&policy, &inputs, group, &params)?;
        let (requests, recall_golds, request_of_trace) = if cfg.objectives.recall { self.recall_requests(&traces, &docs, seed) } else { (vec![], vec![], vec![]) };
        let recall_sampling = SamplingParams { temperature: cfg.agent.recall_temperature.unwrap_or(cfg.agent.temperature), ..sampling.clone() };
        let answers = if requests.is_empty() { vec![] } else { run_recall(&policy, &requests, g2, &recall_sampling, cfg.agent.answer_tokens, usize::MAX / 4)? };
        let seconds_generation = t.elapsed().as_secs_f32();

        let t = Instant::now();
        let partial = cfg.objectives.partial_credit;
        let scores: Vec<_> = traces.iter().map(|tr| score_answer(&tr.answer, &self.data.train[docs[tr.doc]].answer)).collect();
        let recall_scores: Vec<_> = answers.iter().map(|a| score_answer(&a.answer, &recall_golds[a.request])).collect();
        let recall_rewards: Vec<f32> = recall_scores.iter().map(|s| s.exact + partial * s.f1).collect();
        let (final_likelihood, recall_likelihood) = self.gold_likelihoods(&infer, &traces, &docs, &requests, &recall_golds)?;
        let dense = cfg.objectives.gold_likelihood;
        let end_to_end: Vec<f32> = scores.iter().zip(&final_likelihood).map(|(s, l)| s.exact + partial * s.f1 + dense * l).collect();
        // The recall likelihood is the same for every answer of a recall group (one memory), so
        // it ranks rollouts (whose memory it scores), not the answers of the group.
        let blended: Vec<f32> = end_to_end
            .iter()
            .enumerate()
            .map(|(r, &e)| match request_of_trace.get(r).copied().flatten() {
                Some(q) => e + cfg.objectives.recall_weight * (recall_rewards[q * g2..(q + 1) * g2].iter().sum::<f32>() / g2 as f32 + dense * recall_likelihood[q]),
                None => e,
            })
            .collect();
        let adv = group_advantages(&blended, group, cfg.grpo.loss.scale_by_std)?;
        let recall_adv = if answers.is_empty() { None } else { Some(group_advantages(&recall_rewards, g2, cfg.grpo.loss.scale_by_std)?) };
        let mut samples = samples_from_traces(&traces, &adv.per_rollout);
        if let Some(ra) = &recall_adv {
            samples.extend(samples_from_recall(&answers, &ra.per_rollout));
        }
        let seconds_reward = t.elapsed().as_secs_f32();

        let mut record = StepRecord {
            step: step as u64,
            phase: Some("grpo".into()),
            reward_end_to_end: MeanStd::of(&end_to_end),
            reward_blended: cfg.objectives.recall.then(|| MeanStd::of(&blended)),
            exact_match: mean(scores.iter().map(|s| s.exact)),
            f1: mean(scores.iter().map(|s| s.f1)),
            recall: (!recall_scores.is_empty()).then(|| mean(recall_scores.iter().map(|s| s.exact))),
            gold_likelihood: (dense > 0.0).then(|| mean(final_likelihood.iter().copied())),
            recall_gold_likelihood: (dense > 0.0 && !recall_likelihood.is_empty()).then(|| mean(recall_likelihood.iter().copied())),
            entropy: Some(-mean(traces.iter().flat_map(|t| t.turns.iter().flat_map(|u| u.logprobs.iter().copied())))),
            memory_tokens: MeanStd::of(&turn_lengths(&traces, true)),
            answer_tokens: MeanStd::of(&turn_lengths(&traces, false)),
            groups: adv.groups + recall_adv.as_ref().map_or(0, |r| r.groups),
            dropped_groups: adv.dropped_groups + recall_adv.as_ref().map_or(0, |r| r.dropped_groups),
            seconds_generation,
            seconds_reward,
            tokens_per_second: Some(traces.iter().map(Trace::generated_tokens).sum::<usize>() as f32 / seconds_generation.max(1e-6)),
            rss_mb: super::metrics::rss_mb(),
            ..Default::default()
        };
        if samples.is_empty() {
            record.skipped = Some("every group had equal rewards: nothing to learn from".into());
            return Ok(record);
        }
        sort_by_length(&mut samples);
        let (stats, times, skipped, from_stem) = self.grpo_update(&samples, lr)?;
        record.update_from_layer = self.stem_layer().filter(|_| from_stem && skipped.is_none());
        record.loss = skipped.is_none().then_some(stats.loss);
        record.kl = (cfg.grpo.loss.kl_beta > 0.0 && skipped.is_none()).then_some(stats.kl);
        record.clip_fraction = skipped.is_none().then_some(stats.clip_fraction);
        record.trained_tokens = Some(stats.tokens);
        record.seconds_forward_backward = times.forward_backward;
        record.seconds_optimizer = times.optimizer;
        record.skipped = skipped;
        Ok(record)
    }

    /// The dense reward's likelihoods of the gold answers: per rollout given its final memory,
    /// per recall request given its memory; zeros (nothing computed) when the weight is 0.
    fn gold_likelihoods(&self, infer: &Llama, traces: &[Trace], docs: &[usize], requests: &[RecallInput], recall_golds: &[String]) -> Result<(Vec<f32>, Vec<f32>)> {
        if self.cfg.objectives.gold_likelihood == 0.0 {
            return Ok((vec![0.0; traces.len()], vec![0.0; requests.len()]));
        }
        let finals = traces.iter().map(|tr| {
            let e = &self.data.train[docs[tr.doc]];
            let memory = tr.memories.last().map(String::as_str).unwrap_or(prompts::INITIAL_MEMORY);
            GoldQuery { prompt: prompts::final_answer(&e.question, memory), gold: e.answer.clone() }
        });
        let recalls = requests.iter().zip(recall_golds).map(|(q, gold)| GoldQuery { prompt: prompts::memory_recall(&q.memory, &q.masked_section), gold: gold.clone() });
        let queries: Vec<GoldQuery> = finals.chain(recalls).collect();
        let mut all = gold_likelihoods(infer, &self.inv_freq, &self.tokenizer, &queries, self.cfg.grpo.micro_batch)?;
        let recall = all.split_off(traces.len());
        Ok((all, recall))
    }

    /// One recall request per trace that has a probe: the probe (seeded choice among the
    /// exercise's probes) asked from an intermediate memory written at or after its section.
    fn recall_requests(&self, traces: &[Trace], docs: &[usize], seed: u64) -> (Vec<RecallInput>, Vec<String>, Vec<Option<usize>>) {
        let mut requests = Vec::new();
        let mut golds = Vec::new();
        let mut of_trace = Vec::new();
        for (r, tr) in traces.iter().enumerate() {
            let probes = self.data.recall_probes(&self.data.train[docs[tr.doc]]);
            let n = tr.memories.len();
            let usable: Vec<_> = probes.iter().filter(|p| p.probe_chunk.is_some_and(|c| c < n) && p.probe_text.is_some()).collect();
            if usable.is_empty() {
                of_trace.push(None);
                continue;
            }
            let mut rng = ChaCha8Rng::seed_from_u64(seed ^ (r as u64 + 1).wrapping_mul(0xD6E8_FEB8_6659_FD93));
            let probe = usable[rng.random_range(0..usable.len())];
            let l = probe.probe_chunk.unwrap_or(0);
            // An intermediate memory (the input of a later memory turn) when there is one.
            let k = if l + 1 < n { rng.random_range(l..n - 1) } else { n - 1 };
            of_trace.push(Some(requests.len()));
            requests.push(RecallInput { memory: tr.memories[k].clone(), masked_section: probe.probe_text.clone().unwrap_or_default() });
            golds.push(probe.answer.clone());
        }
        (requests, golds, of_trace)
    }

    /// The update over `samples`: its loss statistics, times, why it was skipped (if it was), and
    /// whether every micro-batch started from the rollouts' kept stream.
    fn grpo_update(&mut self, samples: &[PolicySample], lr: f64) -> Result<(super::grpo::LossStats, UpdateTimes, Option<String>, bool)> {
        let total_tokens: usize = samples.iter().map(|s| s.response.len()).sum();
        let (inv_freq, loss_cfg, micro) = (self.inv_freq.clone(), self.cfg.grpo.loss.clone(), self.cfg.grpo.micro_batch);
        let (recompute, precision) = (self.cfg.gradient_checkpointing, self.cfg.precision);
        let reference = self.reference.clone();
        let mut parts: Vec<(super::grpo::LossStats, bool)> = Vec::new();
        let mut micro_batch_count = 0;
        let (times, skipped) = self.update(lr, |model, optim, scale, lr| {
            let device = model.embed_tokens.weight.val().device();
            let forward = Forward { recompute, precision, reuse_stems: true, ..Forward::plain(&device) };
            let micro_batches = micro_batches(samples, micro, forward.shares_prompts());
            micro_batch_count = micro_batches.len();
            accumulated_step_over(model, optim, scale, lr, &micro_batches, |m, part| {
                let batch = TokenBatch::new(part)?;
                let refs = match &reference {
                    Some(r) => Some(reference_logprobs(r, &inv_freq, &batch)?),
                    None => None,
                };
                let (loss, stats) = training_loss(m, &inv_freq, &batch, refs.as_deref(), &loss_cfg, &device, forward);
                parts.push((stats, forward.starts_from_stem(&batch, m)));
                Ok(loss.scaled(batch.tokens() as f32 / total_tokens as f32))
            })
        })?;
        // A step re-run at a smaller loss scale called the closure again: the last run's parts.
        let last_run = &parts[parts.len().saturating_sub(micro_batch_count)..];
        let stats: Vec<_> = last_run.iter().map(|&(s, _)| s).collect();
        let from_stem = !last_run.is_empty() && last_run.iter().all(|&(_, stem)| stem);
        Ok((super::grpo::LossStats::weighted_mean(&stats), times, skipped, from_stem))
    }
}

fn mean(values: impl Iterator<Item = f32>) -> f32 {
    let (sum, n) = values.fold((0.0, 0usize), |(s, n), v| (s + v, n + 1));
    if n == 0 { 0.0 } else { sum / n as f32 }
}

fn turn_lengths(traces: &[Trace], memory: bool) -> Vec<f32> {
    traces
        .iter()
        .flat_map(|t| t.turns.iter())
        .filter(|u| matches!(u.kind, TurnKind::Memory { .. }) == memory && u.kind != TurnKind::Recall)
        .map(|u| u.generated_ids.len() as f32)
        .collect()
}

/// Token ids of every reference conversation (or of the documents' text, for continued
/// pre-training) of the training split.
fn build_sft_examples(cfg: &TrainConfig, data: &TrainData, tokenizer: &TextTokenizer) -> Result<Vec<SftExample>> {
    let mut out = Vec::new();
    let teacher = super::reference::TeacherStyle::from_config(&cfg.sft);
    let weights = super::reference::TurnWeights::from_config(&cfg.sft);
    for e in &data.train {
        if cfg.sft.documents_text {
            for chunk in &e.chunks {
                let ids = tokenizer.encode(chunk, true)?;
                if ids.len() >= 2 {
                    out.push(SftExample::new(ids[..1].to_vec(), ids[1..].to_vec()));
                }
            }
        } else {
            out.extend(super::reference::tokenized(e, data.recall_probes(e), cfg.agent.memory_tokens, teacher, weights, tokenizer)?);
        }
    }
    if out.is_empty() {
        bail!("no SFT examples could be built from {}", data.source.display());
    }
    Ok(out)
}
