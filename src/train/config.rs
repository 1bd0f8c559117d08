//! The training configuration: one RON file (or a named preset) that says which model, which
//! device, which data, and every knob of the objectives, GRPO, SFT, LoRA, the schedule and the
//! checkpoint policy.
//!
//! Contract: [`TrainConfig::validate`] runs before any model is loaded and names the field and
//! the fix of every problem it finds (all of them, not just the first); a config that passes it
//! never fails later on a shape or divisibility error of its own making.

use super::grpo::GrpoConfig;
use super::sft::SftWeighting;
pub use super::ledger::MemoryStyle;
use crate::device::DeviceChoice;
use crate::model::precision::Precision;
use crate::model::{Architecture, ModelConfig};
use anyhow::{Context, Result, bail};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// Where the weights that training starts from come from.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum ModelSource {
    /// The default model (SmolLM2-135M-Instruct, `memtrain fetch-model`).
    Default,
    /// A GGUF file or a Hugging Face folder.
    Path(PathBuf),
    /// Seeded random weights of the given shape, with the tokenizer (and chat template) of
    /// `tokenizer_from`, a model file or folder (default: the default model).
    Scratch { config: ModelConfig, tokenizer_from: Option<PathBuf>, seed: u64 },
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Schedule {
    Constant,
    /// Cosine decay from the peak to `min_lr_ratio` × peak at the last step.
    Cosine { min_lr_ratio_percent: u32 },
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct OptimConfig {
    pub lr: f64,
    pub weight_decay: f32,
    pub beta1: f32,
    pub beta2: f32,
    /// Linear warm-up from 0 over this many steps of each phase.
    pub warmup_steps: usize,
    pub schedule: Schedule,
    /// Per-parameter gradient norm clipping (Burn's `GradientClipping::Norm`); `None` disables.
    pub grad_clip_norm: Option<f32>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct AgentKnobs {
    /// M: the memory budget in tokens (the cap of every memory turn).
    pub memory_tokens: usize,
    pub answer_tokens: usize,
    pub temperature: f32,
    pub top_p: f32,
    /// Sampling temperature of GRPO's recall answers (objective 2); `None` = `temperature`.
    /// Why lower: a small model's recall answers at temperature 1 can all be wrong (after the
    /// box-only SFT they were), so every recall group is dropped; a sharper sampler finds the
    /// answers greedy decoding already gets right (README, Training: no clear gain measured
    /// yet). The update still scores them with the temperature-1 log-probs that sampling
    /// recorded (one update per batch: the PPO ratio is 1), so this is a sharper proposal for
    /// the same policy-gradient step, not a different policy.
    #[serde(default)]
    pub recall_temperature: Option<f32>,
    /// Greedy turns (evaluation, the inspector, Ask) never repeat an n-gram of this many tokens
    /// of their own reply; 0 = off. GRPO's sampled rollouts are not constrained (their
    /// log-probs must stay the model's).
    #[serde(default)]
    pub no_repeat_ngram: usize,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ObjectiveConfig {
    /// Objective 2 on: sample recall answers from intermediate memories.
    pub recall: bool,
    /// λ: weight of the mean recall EM in the rollout reward.
    pub recall_weight: f32,
    /// G2: recall answers sampled per request (their own GRPO group).
    pub recall_group: usize,
    /// Weight of token F1 added to every EM reward (0 = the paper's pure EM). A denser reward
    /// for tiny models (method notes §8.2 item 3); EM and F1 are always reported separately.
    pub partial_credit: f32,
    /// Weight of the gold answer's likelihood given the memory (`exp(mean log p)` of the gold
    /// reply, [`super::gold_likelihood`]) added to each rollout's reward, for the final answer
    /// and for its recall question: a dense reward that ranks memories while every sampled
    /// answer is still wrong (method notes §8.2 item 3). 0 = off; reported separately.
    #[serde(default)]
    pub gold_likelihood: f32,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct GrpoKnobs {
    /// G1: rollouts per document.
    pub group: usize,
    /// Documents per step.
    pub batch_docs: usize,
    /// Conversations per forward-backward pass; gradients are accumulated over the step. Where
    /// rows share a prompt (computed once on the CPU), a pass takes more rows as long as it
    /// computes no more than this many rows would ([`super::grpo::micro_batches`]).
    pub micro_batch: usize,
    pub loss: GrpoConfig,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SftConfig {
    /// Supervised warm-start steps on reference traces, before any GRPO step (0 = none).
    pub steps: usize,
    /// Conversations per SFT step.
    pub batch: usize,
    pub lr: f64,
    /// Continued pre-training on the documents' own text instead of reference traces.
    pub documents_text: bool,
    /// Token mean (default) or conversation mean of the loss.
    #[serde(default)]
    pub weighting: SftWeighting,
    /// How much each token of an answer or recall turn (`\boxed{…}`, where the model must
    /// *use* its memory) weighs against a memory-turn token; 1 = plain token mean. Why: a
    /// 64-token memory turn otherwise outweighs a 6-token answer tenfold.
    #[serde(default = "one")]
    pub answer_weight: f32,
    /// How much each token of a memory turn whose reply keeps a `[MASK]` sentence weighs
    /// ([`super::reference::TurnWeights`]); 1 = like every memory turn.
    #[serde(default = "one")]
    pub mask_memory_weight: f32,
    /// Recall drills per recall probe ([`super::reference`]): the probe asked again from a small
    /// memory (the sentence holding the answer, then with 1, 2, … others of the teacher memory,
    /// shuffled). 0 = none. Why: trained models keep the fact but answer with the wrong entity.
    #[serde(default)]
    pub recall_drills: usize,
    /// Answer drills per masked-entity exercise ([`super::reference`]): the final question asked
    /// again from a small memory (a sentence naming the answer, a `[MASK]` sentence, then 1, 2, …
    /// other sentences of the document, shuffled). 0 = none. Why: the answer turn is one turn in
    /// four of the teacher's traces, and linking the blank to the remembered name is its skill.
    #[serde(default)]
    pub answer_drills: usize,
    /// Recall replies restore the section's `[TARGET]` sentence before the boxed answer
    /// ([`super::reference`]); needs `agent.answer_tokens` long enough for that sentence.
    #[serde(default)]
    pub recall_rationale: bool,
    /// Recall replies are the section's `[TARGET]` sentence with the boxed answer in the
    /// target's place ([`super::reference`]); excludes `recall_rationale`.
    #[serde(default)]
    pub recall_inline_box: bool,
    /// The answer turn's reply is a `[MASK]` sentence of the memory with the boxed answer in
    /// the mask's place ([`super::reference::answer_reply`]), as `recall_inline_box` does for
    /// recall turns.
    #[serde(default)]
    pub answer_inline_box: bool,
    /// Memory drills per masked-entity exercise ([`super::reference`]): a memory turn on a
    /// `[MASK]` chunk from a small memory (a sentence naming the answer, then 1, 2, … other
    /// sentences of the earlier chunks, shuffled), the teacher's reply keeping both the naming
    /// and the `[MASK]` sentences. 0 = none. Why: trained memories keep one or the other, almost
    /// never both, so the answer turn has nothing to link (README, Training).
    #[serde(default)]
    pub memory_drills: usize,
    /// The teacher's memory resolves the blank as soon as it can ([`super::reference`]): on the
    /// first chunk with `[MASK]` read while the memory names the masked answer, it adds the
    /// note "Note: [MASK] is ANSWER." at the memory's start (kept over every other sentence).
    /// Why: trained memory writers keep the naming sentence or the `[MASK]` sentence, almost never both, so the
    /// answer turn cannot link them; the memory turn has both in view (README, Training).
    #[serde(default)]
    pub resolve_mask: bool,
    /// What the teacher's memories are made of: whole sentences (default) or a ledger of short
    /// clauses, one per entity and `[MASK]` ([`super::ledger`]).
    #[serde(default)]
    pub memory_style: MemoryStyle,
    /// Training exercises the student reads greedily at every SFT step, each of its turns
    /// answered by the teacher from the student's own memory and added to the step's batch
    /// ([`super::corrections`], DAgger-style; 0 = off). Why: the teacher's trace never shows
    /// what to write from a memory that went wrong, which is what the student's are.
    #[serde(default)]
    pub student_rollouts: usize,
}

fn one() -> f32 {
    1.0
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct LoraConfig {
    pub rank: usize,
    pub alpha: f32,
    /// Module names to adapt, e.g. ["q_proj", "v_proj"].
    pub targets: Vec<String>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CheckpointPolicy {
    /// Save every this many steps (a checkpoint is also written on stop and on Ctrl-C).
    pub every: usize,
    /// Checkpoints kept on disk (the newest ones).
    pub keep: usize,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct EvalKnobs {
    /// Greedy held-out evaluation every this many steps (and at step 0 and at the end); 0 = never.
    pub every: usize,
    /// Held-out exercises per objective in each evaluation (0 = all).
    pub exercises: usize,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TrainConfig {
    pub model: ModelSource,
    pub device: DeviceChoice,
    pub seed: u64,
    /// GRPO steps after the SFT warm start.
    pub grpo_steps: usize,
    /// Only exercises of curriculum levels up to this one (None = all levels).
    pub max_level: Option<u32>,
    pub agent: AgentKnobs,
    pub objectives: ObjectiveConfig,
    pub grpo: GrpoKnobs,
    pub sft: SftConfig,
    pub optim: OptimConfig,
    pub lora: Option<LoraConfig>,
    pub checkpoint: CheckpointPolicy,
    pub eval: EvalKnobs,
    /// Training stops (last good checkpoint kept) after this many skipped non-finite steps in a row.
    pub max_bad_steps: usize,
    /// Keep only each decoder layer's input in the forward and recompute the layers one at a
    /// time in the backward ([`crate::model::recompute`]): the activation memory of one layer
    /// instead of all, for one more forward pass of the trainable layers.
    #[serde(default)]
    pub gradient_checkpointing: bool,
    /// Train only this many decoder layers counted from the top (plus the final norm); the
    /// embeddings and lower layers stay frozen, so the backward pass stops early: cheaper steps
    /// for a pretrained model on a CPU ([`super::freeze`]). `None` trains every layer.
    #[serde(default)]
    pub trainable_layers: Option<usize>,
    /// `MixedF16`: the training forward's matmuls in f16 (weights, gradients and AdamW stay
    /// f32; the loss is scaled against f16 underflow): less activation memory and faster
    /// matmuls on a GPU. wgpu devices only ([`crate::model::precision`]).
    #[serde(default)]
    pub precision: Precision,
}

pub const PRESETS: &[&str] = &["tiny-cpu", "scratch-cpu", "smollm2-135m"];

/// The least `agent.answer_tokens` a sentence-restoring reply style (recall rationale or inline
/// box, answer inline box) may run with: the synthetic documents' sentences are 16–38 SmolLM2
/// tokens (median 20), plus the box.
pub const MIN_SENTENCE_REPLY_TOKENS: usize = 32;

impl TrainConfig {
    pub fn preset(name: &str) -> Result<Self> {
        match name {
            "tiny-cpu" => Ok(Self::tiny_cpu()),
            "scratch-cpu" => Ok(Self::scratch_cpu()),
            "smollm2-135m" => Ok(Self::smollm2_135m()),
            _ => bail!("unknown preset {name:?} (expected one of: {})", PRESETS.join(", ")),
        }
    }

    /// The default model on 2 CPU cores, on the `tiny` curriculum's levels 1–2: SmolLM2-135M
    /// with only its top 10 layers learning (the backward pass stops there), a short SFT warm
    /// start on teacher traces, then a few GRPO steps with partial credit and the dense
    /// gold-likelihood reward. The pretrained model already copies text, so a few dozen steps
    /// teach it the memory format (see README, Training, for the measured curve).
    pub fn tiny_cpu() -> Self {
        TrainConfig {
            model: ModelSource::Default,
            device: DeviceChoice::Auto,
            seed: 0,
            grpo_steps: 4,
            max_level: Some(2),
            // 48 answer tokens: the inline-box recall reply restores a whole sentence.
            agent: AgentKnobs { memory_tokens: 96, answer_tokens: 48, temperature: 1.0, top_p: 1.0, recall_temperature: None, no_repeat_ngram: 0 },
            objectives: ObjectiveConfig { recall: true, recall_weight: 0.5, recall_group: 2, partial_credit: 0.5, gold_likelihood: 1.0 },
            grpo: GrpoKnobs { group: 4, batch_docs: 2, micro_batch: 8, loss: GrpoConfig { kl_beta: 0.0, ..GrpoConfig::default() } },
            // The ledger teacher (short clauses around each entity, 96 tokens) and box-only answers
            // with answer drills: what first raised objective 1 on held-out documents on CPU
            // (docs/bench/cpu-objective1-2026-11-29: masked EM 6/96 → 14/96, from the teacher's
            // memory 6/95 → 43/95); inline-box answers restored the wrong clause instead. One
            // student rollout per step, its memories corrected by the teacher, is what made the
            // memories keep the facts recall asks about (recall memories holding the fact 17 →
            // 25/38 at 40 steps, 19/38 without) for ~2.5× the step's time (9 → 22 s on 2 cores).
            sft: SftConfig { steps: 40, batch: 8, lr: 1e-4, documents_text: false, weighting: SftWeighting::Token, answer_weight: 1.0, mask_memory_weight: 1.0, recall_drills: 0, answer_drills: 3, recall_rationale: false, recall_inline_box: true, answer_inline_box: false, memory_drills: 0, resolve_mask: false, memory_style: MemoryStyle::Ledger, student_rollouts: 1 },
            optim: OptimConfig { lr: 1e-5, weight_decay: 0.0, beta1: 0.9, beta2: 0.999, warmup_steps: 3, schedule: Schedule::Cosine { min_lr_ratio_percent: 10 }, grad_clip_norm: Some(1.0) },
            lora: None,
            checkpoint: CheckpointPolicy { every: 5, keep: 2 },
            eval: EvalKnobs { every: 20, exercises: 12 },
            max_bad_steps: 5,
            gradient_checkpointing: false,
            trainable_layers: Some(10),
            precision: Precision::F32,
        }
    }

    /// A 7M-parameter model from scratch on 2 CPU cores: a long SFT warm start (it cannot start
    /// RL from nothing), then a few GRPO steps with partial credit, on the `tiny` curriculum's
    /// levels 1–2. It learns the agent's format (held-out teacher NLL) but not yet exact recall:
    /// a model this small has to learn copying first.
    pub fn scratch_cpu() -> Self {
        TrainConfig {
            model: ModelSource::Scratch {
                config: ModelConfig {
                    architecture: Architecture::Llama,
                    vocab_size: 49152,
                    hidden_size: 128,
                    intermediate_size: 384,
                    num_layers: 4,
                    num_heads: 4,
                    num_kv_heads: 2,
                    head_dim: 32,
                    rms_norm_eps: 1e-5,
                    rope_theta: 10_000.0,
                    rope_scaling: None,
                    max_position_embeddings: 2048,
                    tie_word_embeddings: true,
                },
                tokenizer_from: None,
                seed: 0,
            },
            device: DeviceChoice::Cpu,
            seed: 0,
            grpo_steps: 20,
            max_level: Some(2),
            agent: AgentKnobs { memory_tokens: 48, answer_tokens: 12, temperature: 1.0, top_p: 1.0, recall_temperature: None, no_repeat_ngram: 0 },
            objectives: ObjectiveConfig { recall: true, recall_weight: 0.5, recall_group: 2, partial_credit: 0.5, gold_likelihood: 1.0 },
            grpo: GrpoKnobs { group: 4, batch_docs: 2, micro_batch: 16, loss: GrpoConfig { kl_beta: 0.0, ..GrpoConfig::default() } },
            sft: SftConfig { steps: 300, batch: 16, lr: 2e-3, documents_text: false, weighting: SftWeighting::Token, answer_weight: 1.0, mask_memory_weight: 1.0, recall_drills: 0, answer_drills: 0, recall_rationale: false, recall_inline_box: false, answer_inline_box: false, memory_drills: 0, resolve_mask: false, memory_style: MemoryStyle::Sentences, student_rollouts: 0 },
            optim: OptimConfig { lr: 1e-4, weight_decay: 0.0, beta1: 0.9, beta2: 0.99, warmup_steps: 10, schedule: Schedule::Constant, grad_clip_norm: Some(1.0) },
            lora: None,
            checkpoint: CheckpointPolicy { every: 25, keep: 2 },
            eval: EvalKnobs { every: 50, exercises: 32 },
            max_bad_steps: 5,
            gradient_checkpointing: false,
            trainable_layers: None,
            precision: Precision::F32,
        }
    }

    /// The real default model on a GPU, with the small-model settings of the method notes §8.2.
    /// The SFT warm start is what an H100 run measured (docs/bench/h100-2026-11-28.md): every
    /// layer learning at 5e-5 for 200 steps took held-out recall EM from 6 % to 42 % (the top 10
    /// layers at 1e-4: 28 %), with the inline-box recall and answer replies.
    pub fn smollm2_135m() -> Self {
        TrainConfig {
            model: ModelSource::Default,
            device: DeviceChoice::Auto,
            seed: 0,
            grpo_steps: 300,
            max_level: None,
            agent: AgentKnobs { memory_tokens: 128, answer_tokens: 48, temperature: 1.0, top_p: 1.0, recall_temperature: None, no_repeat_ngram: 0 },
            objectives: ObjectiveConfig { recall: true, recall_weight: 0.5, recall_group: 4, partial_credit: 0.0, gold_likelihood: 0.0 },
            grpo: GrpoKnobs { group: 8, batch_docs: 4, micro_batch: 8, loss: GrpoConfig::default() },
            sft: SftConfig { steps: 200, batch: 8, lr: 5e-5, documents_text: false, weighting: SftWeighting::Token, answer_weight: 1.0, mask_memory_weight: 1.0, recall_drills: 0, answer_drills: 0, recall_rationale: false, recall_inline_box: true, answer_inline_box: true, memory_drills: 0, resolve_mask: false, memory_style: MemoryStyle::Sentences, student_rollouts: 0 },
            optim: OptimConfig { lr: 1e-5, weight_decay: 0.01, beta1: 0.9, beta2: 0.999, warmup_steps: 10, schedule: Schedule::Cosine { min_lr_ratio_percent: 10 }, grad_clip_norm: Some(1.0) },
            lora: None,
            checkpoint: CheckpointPolicy { every: 10, keep: 3 },
            eval: EvalKnobs { every: 25, exercises: 64 },
            max_bad_steps: 5,
            gradient_checkpointing: false,
            trainable_layers: None,
            precision: Precision::F32,
        }
    }

    pub fn total_steps(&self) -> usize {
        self.sft.steps + self.grpo_steps
    }

    pub fn from_ron(text: &str, origin: &Path) -> Result<Self> {
        ron::from_str(text).map_err(|e| anyhow::anyhow!("{}: not a training config: {e}", origin.display()))
    }

    pub fn load(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
        Self::from_ron(&text, path)
    }

    pub fn to_ron(&self) -> String {
        ron::ser::to_string_pretty(self, ron::ser::PrettyConfig::default()).expect("a config always serialises")
    }

    /// Every problem at once, one per line, each naming the field.
    pub fn validate(&self) -> Result<()> {
        let mut problems = Vec::new();
        let mut check = |ok: bool, msg: String| {
            if !ok {
                problems.push(msg);
            }
        };
        if let ModelSource::Scratch { config, .. } = &self.model
            && let Err(e) = config.validate()
        {
            check(false, format!("model.Scratch.config: {e}"));
        }
        if let ModelSource::Path(p) = &self.model {
            check(p.exists(), format!("model: {} does not exist", p.display()));
        }
        check(self.total_steps() > 0, "sft.steps + grpo_steps is 0: nothing to train".into());
        check(self.agent.memory_tokens > 0, "agent.memory_tokens must be at least 1".into());
        check(self.agent.answer_tokens > 0, "agent.answer_tokens must be at least 1".into());
        check(self.agent.temperature > 0.0, format!("agent.temperature = {}: GRPO needs sampling (> 0)", self.agent.temperature));
        if let Some(t) = self.agent.recall_temperature {
            check(t > 0.0, format!("agent.recall_temperature = {t}: GRPO needs sampling (> 0; leave it out to use agent.temperature)"));
        }
        check(self.agent.top_p > 0.0 && self.agent.top_p <= 1.0, format!("agent.top_p = {} must be in (0, 1]", self.agent.top_p));
        check(self.grpo.group >= 2, format!("grpo.group = {}: a group needs at least 2 rollouts to compare", self.grpo.group));
        check(self.grpo.batch_docs >= 1, "grpo.batch_docs must be at least 1".into());
        check(self.grpo.micro_batch >= 1, "grpo.micro_batch must be at least 1".into());
        let rollouts = self.grpo.group * self.grpo.batch_docs;
        check(
            rollouts % self.grpo.micro_batch == 0 || self.grpo.micro_batch >= rollouts,
            format!("grpo.micro_batch = {} does not divide the {rollouts} rollouts of a step (group {} × batch_docs {})", self.grpo.micro_batch, self.grpo.group, self.grpo.batch_docs),
        );
        if self.objectives.recall {
            check(self.objectives.recall_group >= 2, format!("objectives.recall_group = {}: recall groups need at least 2 answers", self.objectives.recall_group));
        }
        check((0.0..=10.0).contains(&self.objectives.recall_weight), format!("objectives.recall_weight = {} is outside [0, 10]", self.objectives.recall_weight));
        check((0.0..=10.0).contains(&self.objectives.gold_likelihood), format!("objectives.gold_likelihood = {} is outside [0, 10]", self.objectives.gold_likelihood));
        check((0.0..=1.0).contains(&self.objectives.partial_credit), format!("objectives.partial_credit = {} is outside [0, 1]", self.objectives.partial_credit));
        let l = &self.grpo.loss;
        check(l.clip_low > 0.0 && l.clip_low < 1.0, format!("grpo.loss.clip_low = {} must be in (0, 1)", l.clip_low));
        check(l.clip_high > 0.0, format!("grpo.loss.clip_high = {} must be positive", l.clip_high));
        check(l.kl_beta >= 0.0, format!("grpo.loss.kl_beta = {} must be ≥ 0", l.kl_beta));
        if self.sft.steps > 0 {
            check(self.sft.batch >= 1, "sft.batch must be at least 1".into());
            check(!(self.sft.documents_text && self.sft.student_rollouts > 0), "sft.student_rollouts corrects the agent's turns; sft.documents_text trains on plain text instead".into());
            check(self.sft.lr > 0.0, format!("sft.lr = {} must be positive", self.sft.lr));
            check(self.sft.answer_weight.is_finite() && self.sft.answer_weight > 0.0, format!("sft.answer_weight = {} must be positive", self.sft.answer_weight));
            check(self.sft.mask_memory_weight.is_finite() && self.sft.mask_memory_weight > 0.0, format!("sft.mask_memory_weight = {} must be positive", self.sft.mask_memory_weight));
            check(!(self.sft.recall_rationale && self.sft.recall_inline_box), "sft.recall_rationale and sft.recall_inline_box are two reply styles: pick one".into());
            // These styles write a whole sentence back; a shorter budget cuts it before the answer.
            if self.sft.recall_rationale || self.sft.recall_inline_box || self.sft.answer_inline_box {
                check(
                    self.agent.answer_tokens >= MIN_SENTENCE_REPLY_TOKENS,
                    format!("agent.answer_tokens = {} is too short for the sentence a reply restores (sft.recall_inline_box / sft.recall_rationale / sft.answer_inline_box): use at least {MIN_SENTENCE_REPLY_TOKENS}", self.agent.answer_tokens),
                );
            }
        }
        check(self.optim.lr > 0.0 && self.optim.lr < 1.0, format!("optim.lr = {} must be in (0, 1)", self.optim.lr));
        check((0.0..1.0).contains(&self.optim.beta1) && (0.0..1.0).contains(&self.optim.beta2), "optim.beta1 and optim.beta2 must be in [0, 1)".into());
        check(self.optim.grad_clip_norm.is_none_or(|c| c > 0.0), "optim.grad_clip_norm must be positive (or None)".into());
        if let Schedule::Cosine { min_lr_ratio_percent } = self.optim.schedule {
            check(min_lr_ratio_percent <= 100, format!("optim.schedule: min_lr_ratio_percent = {min_lr_ratio_percent} is over 100"));
        }
        if let Some(lora) = &self.lora {
            check(lora.rank >= 1, "lora.rank must be at least 1".into());
            check(!lora.targets.is_empty(), "lora.targets is empty: name the projections to adapt, e.g. [\"q_proj\", \"v_proj\"]".into());
            for t in &lora.targets {
                let known: Vec<&str> = super::lora::TARGETS.iter().map(|(n, _)| *n).collect();
                check(known.contains(&t.as_str()), format!("lora.targets: unknown projection {t:?} (known: {})", known.join(", ")));
            }
        }
        check(
            !(self.precision == Precision::MixedF16 && self.device == DeviceChoice::Cpu),
            "precision = MixedF16 runs on wgpu devices only (the CPU path's kernels are f32): use device Wgpu or Auto, or precision F32".into(),
        );
        check(self.trainable_layers != Some(0), "trainable_layers = Some(0): nothing would learn (None trains every layer)".into());
        if let (ModelSource::Scratch { config, .. }, Some(n)) = (&self.model, self.trainable_layers) {
            check(n <= config.num_layers, format!("trainable_layers = {n} is more than the model's {} layers", config.num_layers));
        }
        check(self.checkpoint.every >= 1, "checkpoint.every must be at least 1".into());
        check(self.checkpoint.keep >= 1, "checkpoint.keep must be at least 1".into());
        check(self.max_bad_steps >= 1, "max_bad_steps must be at least 1".into());
        if problems.is_empty() { Ok(()) } else { bail!("invalid training config:\n  - {}", problems.join("\n  - ")) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn presets_are_valid_and_round_trip_through_ron() {
        for name in PRESETS {
            let c = TrainConfig::preset(name).unwrap();
            c.validate().unwrap();
            assert_eq!(TrainConfig::from_ron(&c.to_ron(), Path::new("x.ron")).unwrap(), c);
        }
    }

    #[test]
    fn validation_lists_every_problem_with_its_field() {
        let mut c = TrainConfig::scratch_cpu();
        c.grpo.group = 3;
        c.grpo.batch_docs = 2;
        c.grpo.micro_batch = 4;
        c.optim.lr = 0.0;
        c.agent.recall_temperature = Some(0.0);
        let e = c.validate().unwrap_err().to_string();
        assert!(e.contains("grpo.micro_batch = 4 does not divide the 6 rollouts"), "{e}");
        assert!(e.contains("agent.recall_temperature = 0"), "{e}");
        assert!(e.contains("optim.lr = 0"), "{e}");
    }

    /// Mixed precision is refused on the CPU device by name, and a config without the field
    /// (every run before it existed) reads back as f32.
    #[test]
    fn mixed_precision_is_refused_on_the_cpu_and_defaults_to_f32() {
        let mut c = TrainConfig::tiny_cpu();
        c.device = DeviceChoice::Cpu;
        c.precision = Precision::MixedF16;
        let e = c.validate().unwrap_err().to_string();
        assert!(e.contains("precision = MixedF16") && e.contains("wgpu"), "{e}");
        c.device = DeviceChoice::Wgpu;
        c.validate().unwrap();
        let old = ron::to_string(&TrainConfig::tiny_cpu()).unwrap().replace(",precision:F32", "");
        assert!(!old.contains("precision"), "{old}");
        assert_eq!(ron::from_str::<TrainConfig>(&old).unwrap().precision, Precision::F32);
    }

    #[test]
    fn the_two_recall_sentence_styles_exclude_each_other_and_every_sentence_style_needs_room() {
        let mut c = TrainConfig::tiny_cpu();
        c.sft.recall_rationale = true;
        c.sft.recall_inline_box = true;
        c.agent.answer_tokens = 12;
        let e = c.validate().unwrap_err().to_string();
        assert!(e.contains("sft.recall_rationale and sft.recall_inline_box are two reply styles"), "{e}");
        assert!(e.contains("agent.answer_tokens = 12 is too short"), "{e}");
        c.sft.recall_rationale = false;
        c.agent.answer_tokens = MIN_SENTENCE_REPLY_TOKENS;
        c.validate().unwrap();
        c.sft.recall_inline_box = false;
        c.sft.answer_inline_box = true;
        c.agent.answer_tokens = 12;
        assert!(c.validate().unwrap_err().to_string().contains("sft.answer_inline_box"));
    }

    #[test]
    fn unknown_preset_names_the_known_ones() {
        let e = TrainConfig::preset("huge").unwrap_err().to_string();
        assert!(e.contains("tiny-cpu") && e.contains("smollm2-135m"), "{e}");
    }
}
