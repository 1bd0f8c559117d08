//! Held-out evaluation of the memory agent: greedy rollouts on exercises the model never trained
//! on, scored with the same exact match as the rewards (F1 beside it).
//!
//! Contract: objective 1 runs the full agent loop on each held-out masked-entity exercise and
//! scores the final answer; objective 2 asks each held-out recall probe from the memory the
//! agent wrote right after reading the probed section (in the rollout of the probe's parent
//! exercise), so recall measures what the memory kept, not what the answer turn guessed.
//! Greedy decoding makes an evaluation a pure function of the weights.

use crate::agent::{AgentParams, Policy, Trace};
use crate::exercises::jsonl::Exercise;
use crate::generate::SamplingParams;
use crate::train::rewards::score_answer;
use anyhow::Result;
use serde::{Deserialize, Serialize};

pub mod charts;
pub mod inspect;
pub mod report;
pub mod stats;
pub mod teacher_memory;

/// Exact match and F1 over `n` questions.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct ScoreSet {
    pub n: usize,
    pub exact_match: f32,
    pub f1: f32,
}

impl ScoreSet {
    fn of(pairs: &[(f32, f32)]) -> Self {
        let n = pairs.len();
        if n == 0 {
            return ScoreSet::default();
        }
        ScoreSet { n, exact_match: pairs.iter().map(|p| p.0).sum::<f32>() / n as f32, f1: pairs.iter().map(|p| p.1).sum::<f32>() / n as f32 }
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct HeldOutEval {
    /// Training steps completed when the evaluation ran.
    pub step: usize,
    pub masked: ScoreSet,
    pub recall: ScoreSet,
    /// Mean negative log-likelihood per token of the reference (teacher) conversations of the
    /// same exercises: how well the model predicts what a good memory agent writes.
    #[serde(default)]
    pub reference_nll: Option<f32>,
    /// Fraction of the recall questions whose memory (the one the question is asked from)
    /// contains the gold entity, with the scorer's normalisation: whether the memory *kept* the
    /// fact, apart from whether the answer turn then finds it.
    #[serde(default)]
    pub memory_holds: Option<f32>,
    /// The same for objective 1: fraction of the masked-entity exercises whose final memory
    /// names the answer. Under everywhere masking no chunk names it, so this stays near 0; under
    /// after-pivot masking it says whether the memory kept the pivot sentence.
    #[serde(default)]
    pub masked_memory_holds: Option<f32>,
    /// Objective 1 answered from the teacher's final memory instead of the model's own, on the
    /// exercises where that memory holds the answer's name and a `[MASK]` ([`teacher_memory`]):
    /// the answer turn's skill alone.
    #[serde(default)]
    pub masked_from_teacher_memory: Option<ScoreSet>,
    pub seconds: f32,
}

impl HeldOutEval {
    /// One line for logs and the CLI: both objectives' scores, what the memories held, NLL, time.
    pub fn summary_line(&self) -> String {
        let opt = |v: Option<f32>| v.map_or("-".into(), |v| format!("{v:.3}"));
        let teacher = self.masked_from_teacher_memory.map_or("-".into(), |s| format!("{:.3} of {}", s.exact_match, s.n));
        format!(
            "masked-entity EM {:.3} (F1 {:.3}, n={}, final memory holds the answer {}, EM from the teacher's memory {}) | recall EM {:.3} (F1 {:.3}, n={}, memory holds the answer {}) | reference NLL {} [{:.0} s]",
            self.masked.exact_match, self.masked.f1, self.masked.n, opt(self.masked_memory_holds), teacher, self.recall.exact_match, self.recall.f1, self.recall.n, opt(self.memory_holds), opt(self.reference_nll), self.seconds
        )
    }
}

/// Answers of one evaluation, for reports and the inspector.
pub struct EvalRun {
    pub summary: HeldOutEval,
    pub traces: Vec<Trace>,
    /// Every scored answer (masked and recall), with the memory it was made from.
    pub records: Vec<report::Record>,
    /// Objective 1 answered from the teacher's final memories ([`teacher_memory`]).
    pub from_teacher_memory: Vec<report::Record>,
}

impl EvalRun {
    /// Adds objective 1's answers from the teacher's final memories (records and summary).
    pub fn add_teacher_memory_answers(&mut self, records: Vec<report::Record>) {
        self.summary.masked_from_teacher_memory = (!records.is_empty()).then(|| ScoreSet::of(&records.iter().map(|r| (r.exact, r.f1)).collect::<Vec<_>>()));
        self.from_teacher_memory = records;
    }
}

/// Greedy agent parameters for evaluation.
pub fn greedy(memory_tokens: usize, answer_tokens: usize, no_repeat_ngram: usize) -> AgentParams {
    AgentParams { sampling: SamplingParams { temperature: 0.0, no_repeat_ngram, ..Default::default() }, memory_tokens, answer_tokens }
}

/// Evaluates `masked` exercises and the `recall` probes whose parent is among them, each probe
/// asked from the memory written right after its chunk (distance 0).
pub fn evaluate(policy: &Policy, step: usize, masked: &[Exercise], recall: &[Exercise], params: &AgentParams) -> Result<EvalRun> {
    let start = std::time::Instant::now();
    let (records, traces) = report::records(policy, masked, recall, params, 0, &mut |_| true)?;
    let scores = |objective: &str| ScoreSet::of(&records.iter().filter(|r| r.objective == objective).map(|r| (r.exact, r.f1)).collect::<Vec<_>>());
    let holds = |objective: &str| {
        let of: Vec<&report::Record> = records.iter().filter(|r| r.objective == objective).collect();
        (!of.is_empty()).then(|| of.iter().filter(|r| inspect::holds(&r.memory, &r.gold)).count() as f32 / of.len() as f32)
    };
    let summary = HeldOutEval { step, masked: scores("masked"), recall: scores("recall"), reference_nll: None, memory_holds: holds("recall"), masked_memory_holds: holds("masked"), masked_from_teacher_memory: None, seconds: start.elapsed().as_secs_f32() };
    Ok(EvalRun { summary, traces, records, from_teacher_memory: vec![] })
}

/// The exercises of `data` and how many held-out ones to use (`limit` 0 = all); fails when
/// there are none.
fn held_out(data: &std::path::Path, limit: usize) -> Result<(crate::train::data::TrainData, usize)> {
    let set = crate::train::data::TrainData::read(data, None)?;
    if set.held_out.is_empty() {
        anyhow::bail!("{}: no held-out exercises to evaluate on", set.source.display());
    }
    let n = if limit == 0 { set.held_out.len() } else { limit.min(set.held_out.len()) };
    Ok((set, n))
}

fn pair(answer: &str, gold: &str) -> (f32, f32) {
    let s = score_answer(answer, gold);
    (s.exact, s.f1)
}

/// Token-weighted mean NLL of `examples` (teacher-forced, no gradients kept).
pub fn reference_nll(model: &crate::model::Llama, inv_freq: &[f64], examples: &[crate::train::sft::SftExample], micro: usize) -> Result<f32> {
    let device = model.embed_tokens.weight.val().device();
    let total: usize = examples.iter().map(|e| e.target.len()).sum();
    let mut sum = 0.0f32;
    for part in examples.chunks(micro.max(1)) {
        let tokens: usize = part.iter().map(|e| e.target.len()).sum();
        let loss = crate::train::sft::sft_loss(model, inv_freq, part, &device)?;
        sum += crate::train::update::scalar(&loss)? * tokens as f32;
    }
    Ok(if total == 0 { f32::NAN } else { sum / total as f32 })
}

/// One JSON line per evaluated exercise: gold, answer, and the memory after every chunk (the
/// inspector's material); then one per recall question: the `[TARGET]` section, the memory it
/// was asked from, gold and answer — what shows *why* a recall failed (memory lost the fact, or
/// the answer turn picked another one).
pub fn write_samples(path: &std::path::Path, exercises: &[Exercise], run: &EvalRun) -> Result<()> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let mut text = String::new();
    for (e, t) in exercises.iter().zip(&run.traces) {
        text += &serde_json::to_string(&serde_json::json!({ "id": e.id, "objective": "masked", "gold": e.answer, "answer": t.answer, "memories": t.memories }))?;
        text.push('\n');
    }
    for r in run.records.iter().filter(|r| r.objective == "recall") {
        text += &serde_json::to_string(&serde_json::json!({ "id": r.id, "objective": "recall", "section": r.question, "memory": r.memory, "gold": r.gold, "answer": r.prediction }))?;
        text.push('\n');
    }
    for r in &run.from_teacher_memory {
        text += &serde_json::to_string(&serde_json::json!({ "id": r.id, "objective": r.objective, "memory": r.memory, "gold": r.gold, "answer": r.prediction }))?;
        text.push('\n');
    }
    crate::checkpoint::atomic_write(path, |f| std::io::Write::write_all(f, text.as_bytes()))
}

/// `memtrain eval`: a model (a run's `final/`, `initial/`, any GGUF or HF folder) on the held-out
/// split of an exercises folder, with the teacher-trace NLL beside EM and F1.
pub fn evaluate_model(model: Option<&std::path::Path>, data: &std::path::Path, limit: usize, params: &AgentParams, teacher: crate::train::reference::TeacherStyle, device: crate::device::DeviceChoice) -> Result<HeldOutEval> {
    let (memory_tokens, answer_tokens) = (params.memory_tokens, params.answer_tokens);
    let session = crate::session::Session::open(model, device)?;
    let (data, n) = held_out(data, limit)?;
    eprintln!("evaluating {} on {} ({n} held-out exercises)", session.loaded.info.name, session.device_info);
    let policy = Policy::from_loaded(&session.loaded);
    let mut run = evaluate(&policy, 0, &data.held_out[..n], &data.held_out_recall, params)?;
    let references = held_out_references(&data, n, memory_tokens, &session.loaded.tokenizer)?;
    run.summary.reference_nll = Some(reference_nll(&session.loaded.model, &session.loaded.inv_freq, &references, 8)?);
    run.add_teacher_memory_answers(teacher_memory::answers_from_teacher_memories(&policy, &data.held_out[..n], memory_tokens, teacher, answer_tokens)?);
    Ok(run.summary)
}

/// The teacher conversations of the first `n` held-out exercises and their recall probes.
pub fn held_out_references(data: &crate::train::data::TrainData, n: usize, memory_tokens: usize, tokenizer: &crate::checkpoint::tokenizer::TextTokenizer) -> Result<Vec<crate::train::sft::SftExample>> {
    let mut out = Vec::new();
    for e in &data.held_out[..n.min(data.held_out.len())] {
        let probes: Vec<_> = data.held_out_recall.iter().filter(|p| p.parent.as_deref() == Some(e.id.as_str())).cloned().collect();
        out.extend(crate::train::reference::tokenized(e, &probes, memory_tokens, Default::default(), Default::default(), tokenizer)?);
    }
    Ok(out)
}
