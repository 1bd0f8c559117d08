//! Held-out evaluation of the memory agent: greedy rollouts on exercises the model never trained
//! on, scored with the same exact match as the rewards (F1 beside it).
//!
//! Contract: objective 1 runs the full agent loop on each held-out masked-entity exercise and
//! scores the final answer; objective 2 asks each held-out recall probe from the memory the
//! agent wrote right after reading the probed section (in the rollout of the probe's parent
//! exercise), so recall measures what the memory kept, not what the answer turn guessed.
//! Greedy decoding makes an evaluation a pure function of the weights.

use crate::agent::{AgentInput, AgentParams, Policy, RecallInput, Trace, run_agent, run_recall};
use crate::exercises::jsonl::Exercise;
use crate::generate::SamplingParams;
use crate::train::rewards::score_answer;
use anyhow::Result;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

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
    pub seconds: f32,
}

/// Answers of one evaluation, for reports and the inspector.
pub struct EvalRun {
    pub summary: HeldOutEval,
    pub traces: Vec<Trace>,
}

/// Greedy agent parameters for evaluation.
pub fn greedy(memory_tokens: usize, answer_tokens: usize) -> AgentParams {
    AgentParams { sampling: SamplingParams { temperature: 0.0, ..Default::default() }, memory_tokens, answer_tokens }
}

/// Evaluates `masked` exercises and the `recall` probes whose parent is among them.
pub fn evaluate(policy: &Policy, step: usize, masked: &[Exercise], recall: &[Exercise], params: &AgentParams) -> Result<EvalRun> {
    let start = std::time::Instant::now();
    let inputs: Vec<AgentInput> = masked.iter().map(AgentInput::from).collect();
    let traces = if inputs.is_empty() { vec![] } else { run_agent(policy, &inputs, 1, params)? };
    let masked_scores: Vec<(f32, f32)> = traces.iter().zip(masked).map(|(t, e)| pair(&t.answer, &e.answer)).collect();
    let by_id: BTreeMap<&str, usize> = masked.iter().enumerate().map(|(i, e)| (e.id.as_str(), i)).collect();
    let mut requests = Vec::new();
    let mut golds = Vec::new();
    for probe in recall {
        let (Some(parent), Some(chunk), Some(text)) = (probe.parent.as_deref(), probe.probe_chunk, &probe.probe_text) else { continue };
        let Some(memory) = by_id.get(parent).and_then(|&i| traces[i].memories.get(chunk)) else { continue };
        requests.push(RecallInput { memory: memory.clone(), masked_section: text.clone() });
        golds.push(probe.answer.as_str());
    }
    let answers = if requests.is_empty() { vec![] } else { run_recall(policy, &requests, 1, &params.sampling, params.answer_tokens, usize::MAX / 2)? };
    let recall_scores: Vec<(f32, f32)> = answers.iter().map(|a| pair(&a.answer, golds[a.request])).collect();
    let summary = HeldOutEval { step, masked: ScoreSet::of(&masked_scores), recall: ScoreSet::of(&recall_scores), seconds: start.elapsed().as_secs_f32() };
    Ok(EvalRun { summary, traces })
}

fn pair(answer: &str, gold: &str) -> (f32, f32) {
    let s = score_answer(answer, gold);
    (s.exact, s.f1)
}
