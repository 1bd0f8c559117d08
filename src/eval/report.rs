//! `memtrain eval --compare`: a baseline and a trained model on the same held-out exercises,
//! with per-exercise records, breakdowns and bootstrap intervals, written as report.json, CSV
//! files and PNG charts (the charts the app's Evaluate panel shows).
//!
//! Contract: both models see exactly the same exercises and probes with greedy decoding.
//! Recall is asked at every *distance* d = 0.. (the memory written d chunks after the probed
//! chunk was read), so the curve shows how long the memory keeps a fact; objective 1 scores the
//! final answer. Scores are the rewards' exact match and token F1 (`rewards::score_answer`).

use super::stats::{Estimate, estimate, paired_gain};
use super::{greedy, pair};
use crate::agent::{AgentInput, AgentParams, AgentProgress, Policy, RecallInput, Trace, run_agent_observed, run_recall_observed};
use crate::exercises::jsonl::Exercise;
use crate::train::reference::TeacherStyle;
use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::Path;

/// The objective of records answered from the teacher's memory ([`super::teacher_memory`]).
pub const TEACHER_MEMORY: &str = "masked_from_teacher_memory";

/// One scored question.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Record {
    pub id: String,
    /// "masked" (objective 1), "recall" (objective 2) or [`TEACHER_MEMORY`].
    pub objective: String,
    pub entity_type: String,
    /// Chunks in the document.
    pub doc_chunks: usize,
    /// Recall only: memory updates between the probed chunk and the memory asked.
    pub distance: Option<usize>,
    pub question: String,
    pub gold: String,
    pub prediction: String,
    pub exact: f32,
    pub f1: f32,
    /// The memory the answer was made from.
    pub memory: String,
}

/// Scores of one group of records.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Scores {
    pub exact_match: Estimate,
    pub f1: Estimate,
}

impl Scores {
    fn of<'a>(records: impl Iterator<Item = &'a Record>, seed: u64) -> Self {
        let (em, f1): (Vec<f32>, Vec<f32>) = records.map(|r| (r.exact, r.f1)).unzip();
        Scores { exact_match: estimate(&em, seed), f1: estimate(&f1, seed + 1) }
    }
}

/// One model's report on the held-out split.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct ModelReport {
    pub model: String,
    pub masked: Scores,
    pub recall: Scores,
    /// Recall by distance (key: distance in chunks).
    pub recall_by_distance: BTreeMap<usize, Scores>,
    /// Recall by document length (key: chunks).
    pub recall_by_length: BTreeMap<usize, Scores>,
    /// Both objectives by entity type of the answer.
    pub by_entity_type: BTreeMap<String, Scores>,
    /// Objective 1 answered from the teacher's final memory instead of the model's own
    /// ([`super::teacher_memory`]): the answer turn's skill alone.
    #[serde(default)]
    pub masked_from_teacher_memory: Scores,
}

impl ModelReport {
    pub fn of(model: &str, records: &[Record]) -> Self {
        let objective = |o: &'static str| records.iter().filter(move |r| r.objective == o);
        let mut rep = ModelReport {
            model: model.to_string(),
            masked: Scores::of(objective("masked"), 1),
            recall: Scores::of(objective("recall"), 3),
            masked_from_teacher_memory: Scores::of(objective(TEACHER_MEMORY), 7),
            ..Default::default()
        };
        let mut by_distance: BTreeMap<usize, Vec<&Record>> = BTreeMap::new();
        let mut by_length: BTreeMap<usize, Vec<&Record>> = BTreeMap::new();
        let mut by_type: BTreeMap<String, Vec<&Record>> = BTreeMap::new();
        // The teacher-memory answers repeat objective 1's questions: kept out of the breakdowns.
        for r in records.iter().filter(|r| r.objective != TEACHER_MEMORY) {
            if let Some(d) = r.distance {
                by_distance.entry(d).or_default().push(r);
                by_length.entry(r.doc_chunks).or_default().push(r);
            }
            by_type.entry(r.entity_type.clone()).or_default().push(r);
        }
        let scores = |v: &Vec<&Record>| Scores::of(v.iter().copied(), 5);
        rep.recall_by_distance = by_distance.iter().map(|(k, v)| (*k, scores(v))).collect();
        rep.recall_by_length = by_length.iter().map(|(k, v)| (*k, scores(v))).collect();
        rep.by_entity_type = by_type.iter().map(|(k, v)| (k.clone(), scores(v))).collect();
        rep
    }
}

/// Trained minus baseline, paired over the same questions.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Gains {
    pub masked_exact_match: Estimate,
    pub masked_f1: Estimate,
    pub recall_exact_match: Estimate,
    pub recall_f1: Estimate,
    #[serde(default)]
    pub masked_from_teacher_memory_exact_match: Estimate,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CompareReport {
    pub data: String,
    pub held_out_exercises: usize,
    pub scorer: String,
    pub memory_tokens: usize,
    pub answer_tokens: usize,
    pub baseline: ModelReport,
    pub trained: Option<ModelReport>,
    pub gains: Option<Gains>,
}

/// Runs the agent on `masked` (one rollout each) and asks each probe of `recall` (whose parent
/// is among them) at every distance up to `max_distance`; returns the scored records and the
/// rollouts (the samples written beside an evaluation).
/// `observe` hears about the rollouts as they go and stops the whole evaluation by returning
/// `false` (recall answers report with the finished rollouts).
pub fn records(policy: &Policy, masked: &[Exercise], recall: &[Exercise], params: &AgentParams, max_distance: usize, observe: &mut dyn FnMut(&AgentProgress) -> bool) -> Result<(Vec<Record>, Vec<Trace>)> {
    let inputs: Vec<AgentInput> = masked.iter().map(AgentInput::from).collect();
    let traces = if inputs.is_empty() { vec![] } else { run_agent_observed(policy, &inputs, 1, params, observe)? };
    let mut out: Vec<Record> = traces
        .iter()
        .zip(masked)
        .map(|(t, e)| {
            let (exact, f1) = pair(&t.answer, &e.answer);
            Record {
                id: e.id.clone(),
                objective: "masked".into(),
                entity_type: e.entity_type.name().to_string(),
                doc_chunks: e.chunks.len(),
                distance: None,
                question: e.question.clone(),
                gold: e.answer.clone(),
                prediction: t.answer.clone(),
                exact,
                f1,
                memory: t.memories.last().cloned().unwrap_or_default(),
            }
        })
        .collect();
    let by_id: BTreeMap<&str, usize> = masked.iter().enumerate().map(|(i, e)| (e.id.as_str(), i)).collect();
    let mut asked: Vec<(&Exercise, usize, usize)> = vec![];
    let mut requests = vec![];
    for probe in recall {
        let (Some(&parent), Some(chunk), Some(text)) = (probe.parent.as_deref().and_then(|p| by_id.get(p)), probe.probe_chunk, &probe.probe_text) else { continue };
        let memories = &traces[parent].memories;
        for d in 0..=max_distance {
            let Some(memory) = memories.get(chunk + d) else { break };
            requests.push(RecallInput { memory: memory.clone(), masked_section: text.clone() });
            asked.push((probe, parent, d));
        }
    }
    let turns = inputs.iter().map(|i| i.chunks.len()).max().unwrap_or(0) + 1;
    let mut tokens = 0;
    let mut go_on = || {
        tokens += 1;
        observe(&AgentProgress { turns_done: turns, turns, tokens, traces: &traces })
    };
    let answers = if requests.is_empty() { vec![] } else { run_recall_observed(policy, &requests, 1, &params.sampling, params.answer_tokens, usize::MAX / 2, &mut go_on)? };
    for a in answers {
        let (probe, parent, d) = asked[a.request];
        let (exact, f1) = pair(&a.answer, &probe.answer);
        out.push(Record {
            id: probe.id.clone(),
            objective: "recall".into(),
            entity_type: probe.entity_type.name().to_string(),
            doc_chunks: masked[parent].chunks.len(),
            distance: Some(d),
            question: probe.probe_text.clone().unwrap_or_default(),
            gold: probe.answer.clone(),
            prediction: a.answer,
            exact,
            f1,
            memory: requests[a.request].memory.clone(),
        });
    }
    Ok((out, traces))
}

/// Paired gains over the records both models answered (matched by id, objective, distance).
pub fn gains(baseline: &[Record], trained: &[Record]) -> Gains {
    let key = |r: &Record| (r.id.clone(), r.objective.clone(), r.distance);
    let base: BTreeMap<_, &Record> = baseline.iter().map(|r| (key(r), r)).collect();
    let pairs = |objective: &str, f: fn(&Record) -> f32| -> (Vec<f32>, Vec<f32>) {
        trained.iter().filter(|r| r.objective == objective).filter_map(|t| base.get(&key(t)).map(|b| (f(b), f(t)))).unzip()
    };
    let gain = |objective: &str, f: fn(&Record) -> f32, seed| {
        let (b, t) = pairs(objective, f);
        paired_gain(&b, &t, seed)
    };
    Gains {
        masked_exact_match: gain("masked", |r| r.exact, 11),
        masked_f1: gain("masked", |r| r.f1, 12),
        recall_exact_match: gain("recall", |r| r.exact, 13),
        recall_f1: gain("recall", |r| r.f1, 14),
        masked_from_teacher_memory_exact_match: gain(TEACHER_MEMORY, |r| r.exact, 15),
    }
}

fn write_jsonl(path: &Path, records: &[Record]) -> Result<()> {
    let mut text = String::new();
    for r in records {
        text += &serde_json::to_string(r)?;
        text.push('\n');
    }
    std::fs::write(path, text).with_context(|| format!("cannot write {}", path.display()))
}

fn csv_row(model: &str, group: &str, key: &str, s: &Scores) -> String {
    let e = |x: &Estimate| format!("{:.4},{:.4},{:.4}", x.mean, x.low, x.high);
    format!("{model},{group},{key},{},{},{}\n", s.exact_match.n, e(&s.exact_match), e(&s.f1))
}

/// `scores.csv`: every breakdown of every model, one row per group.
pub fn scores_csv(models: &[&ModelReport]) -> String {
    let mut s = String::from("model,breakdown,key,n,exact_match,em_low,em_high,f1,f1_low,f1_high\n");
    for m in models {
        s += &csv_row(&m.model, "objective", "masked", &m.masked);
        s += &csv_row(&m.model, "objective", "recall", &m.recall);
        s += &csv_row(&m.model, "objective", TEACHER_MEMORY, &m.masked_from_teacher_memory);
        for (k, v) in &m.recall_by_distance {
            s += &csv_row(&m.model, "recall_distance", &k.to_string(), v);
        }
        for (k, v) in &m.recall_by_length {
            s += &csv_row(&m.model, "recall_doc_chunks", &k.to_string(), v);
        }
        for (k, v) in &m.by_entity_type {
            s += &csv_row(&m.model, "entity_type", k, v);
        }
    }
    s
}

/// Writes report.json, scores.csv, records-<role>.jsonl and the PNG charts into `out`.
pub fn write(out: &Path, report: &CompareReport, baseline: &[Record], trained: Option<&[Record]>) -> Result<()> {
    std::fs::create_dir_all(out).with_context(|| format!("cannot create {}", out.display()))?;
    std::fs::write(out.join("report.json"), serde_json::to_string_pretty(report)?).with_context(|| format!("cannot write {}", out.join("report.json").display()))?;
    write_jsonl(&out.join("records-baseline.jsonl"), baseline)?;
    if let Some(t) = trained {
        write_jsonl(&out.join("records-trained.jsonl"), t)?;
    }
    let mut models = vec![&report.baseline];
    models.extend(report.trained.as_ref());
    std::fs::write(out.join("scores.csv"), scores_csv(&models)).with_context(|| format!("cannot write {}", out.join("scores.csv").display()))?;
    super::charts::write_all(out, &models)
}

/// What a comparison asks of each model.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct CompareOptions {
    /// Held-out masked exercises (0: all); their recall probes come along.
    pub limit: usize,
    /// Recall is asked at every distance up to this.
    pub max_distance: usize,
    pub memory_tokens: usize,
    pub answer_tokens: usize,
    /// The teacher whose final memory objective 1 is also answered from (the run's).
    pub teacher: TeacherStyle,
    /// Greedy turns never repeat an n-gram of this many of their own tokens (0 = off).
    pub no_repeat_ngram: usize,
}

impl CompareOptions {
    /// The budgets, teacher and decoding a run was trained with (`cfg`, its `config.ron`): a
    /// model is judged with the memory it was trained to write.
    pub fn from_config(cfg: &crate::train::TrainConfig, limit: usize, max_distance: usize) -> Self {
        let a = &cfg.agent;
        CompareOptions { limit, max_distance, memory_tokens: a.memory_tokens, answer_tokens: a.answer_tokens, teacher: TeacherStyle::from_config(&cfg.sft), no_repeat_ngram: a.no_repeat_ngram }
    }
}

/// `memtrain eval --compare` and the Evaluate panel: `baseline` alone, or against `trained`, on
/// the held-out split of `data`. `progress` hears which model runs; `go_on` is asked between
/// tokens and stops the comparison with [`crate::agent::Cancelled`] when it says `false`.
pub fn compare(baseline: Option<&Path>, trained: Option<&Path>, data: &Path, out: &Path, options: CompareOptions, device: crate::device::DeviceChoice, progress: &mut dyn FnMut(&str), go_on: &dyn Fn() -> bool) -> Result<CompareReport> {
    let CompareOptions { limit, max_distance, memory_tokens, answer_tokens, teacher, no_repeat_ngram } = options;
    let (data_set, n) = super::held_out(data, limit)?;
    let params = greedy(memory_tokens, answer_tokens, no_repeat_ngram);
    let held_out = &data_set.held_out[..n];
    let mut run = |model: Option<&Path>, role: &str| -> Result<(String, Vec<Record>)> {
        let session = crate::session::Session::open(model, device)?;
        progress(&format!("{role}: {} on {} ({n} held-out exercises)", session.loaded.info.name, session.device_info));
        let policy = Policy::from_loaded(&session.loaded);
        let name = model.map(|p| p.display().to_string()).unwrap_or_else(|| session.loaded.info.name.clone());
        let mut records = records(&policy, held_out, &data_set.held_out_recall, &params, max_distance, &mut |_| go_on())?.0;
        if !go_on() {
            return Err(crate::agent::Cancelled.into());
        }
        records.extend(super::teacher_memory::answers_from_teacher_memories(&policy, held_out, memory_tokens, teacher, answer_tokens)?);
        Ok((name, records))
    };
    let (base_name, base_records) = run(baseline, "baseline")?;
    let trained_run = trained.map(|t| run(Some(t), "trained")).transpose()?;
    let report = CompareReport {
        data: data.display().to_string(),
        held_out_exercises: n,
        scorer: "exact match and token F1 after normalisation (lower case, no punctuation or articles): rewards::score_answer".into(),
        memory_tokens,
        answer_tokens,
        baseline: ModelReport::of(&base_name, &base_records),
        trained: trained_run.as_ref().map(|(name, r)| ModelReport::of(name, r)),
        gains: trained_run.as_ref().map(|(_, r)| gains(&base_records, r)),
    };
    write(out, &report, &base_records, trained_run.as_ref().map(|(_, r)| r.as_slice()))?;
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(id: &str, objective: &str, distance: Option<usize>, kind: &str, exact: f32) -> Record {
        Record {
            id: id.into(),
            objective: objective.into(),
            entity_type: kind.into(),
            doc_chunks: 3,
            distance,
            question: String::new(),
            gold: "Oslo".into(),
            prediction: if exact > 0.0 { "Oslo".into() } else { "Bergen".into() },
            exact,
            f1: exact,
            memory: String::new(),
        }
    }

    #[test]
    fn breakdowns_group_records_by_distance_length_and_type() {
        let records = vec![
            rec("a", "masked", None, "place", 1.0),
            rec("b", "masked", None, "person", 0.0),
            rec("p", "recall", Some(0), "place", 1.0),
            rec("p", "recall", Some(1), "place", 0.0),
            rec("q", "recall", Some(0), "date", 1.0),
            // Question "a" again, from the teacher's memory: its own score, no breakdown.
            rec("a", TEACHER_MEMORY, None, "place", 1.0),
        ];
        let m = ModelReport::of("m", &records);
        assert_eq!((m.masked_from_teacher_memory.exact_match.n, m.masked_from_teacher_memory.exact_match.mean), (1, 1.0));
        assert_eq!((m.masked.exact_match.n, m.masked.exact_match.mean), (2, 0.5));
        assert_eq!((m.recall.exact_match.n, m.recall.exact_match.mean), (3, 2.0 / 3.0));
        assert_eq!(m.recall_by_distance[&0].exact_match.mean, 1.0);
        assert_eq!(m.recall_by_distance[&1].exact_match.mean, 0.0);
        assert_eq!(m.recall_by_length[&3].exact_match.n, 3);
        assert_eq!(m.by_entity_type["place"].exact_match.n, 3);
        let csv = scores_csv(&[&m]);
        assert!(csv.contains("\nm,recall_distance,1,1,0.0000,0.0000,0.0000,"), "{csv}");
    }

    #[test]
    fn gains_pair_the_same_questions_only() {
        let base = vec![rec("a", "masked", None, "place", 0.0), rec("b", "masked", None, "place", 1.0), rec("p", "recall", Some(0), "place", 0.0)];
        // The trained side answered one more question ("c") that the baseline never saw.
        let trained = vec![rec("a", "masked", None, "place", 1.0), rec("b", "masked", None, "place", 1.0), rec("c", "masked", None, "place", 1.0), rec("p", "recall", Some(0), "place", 1.0)];
        let g = gains(&base, &trained);
        assert_eq!((g.masked_exact_match.n, g.masked_exact_match.mean), (2, 0.5));
        assert_eq!((g.recall_exact_match.n, g.recall_exact_match.mean), (1, 1.0));
    }
}
