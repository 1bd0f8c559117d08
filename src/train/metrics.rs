//! One record per training step, appended to `RUN/metrics.jsonl` (issue 5 item 7).
//!
//! Contract: each call to [`append_record`] writes exactly one JSON object and a newline, so a
//! run killed mid-way leaves every completed step readable; fields the step did not measure
//! are written as `null` rather than a fake 0.

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};
use std::io::Write;
use std::path::Path;

/// Mean and standard deviation of a set of values.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct MeanStd {
    pub mean: f32,
    pub std: f32,
}

impl MeanStd {
    /// Population statistics; empty input gives zeros.
    pub fn of(values: &[f32]) -> Self {
        if values.is_empty() {
            return MeanStd::default();
        }
        let n = values.len() as f32;
        let mean = values.iter().sum::<f32>() / n;
        let std = (values.iter().map(|v| (v - mean).powi(2)).sum::<f32>() / n).sqrt();
        MeanStd { mean, std }
    }
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct StepRecord {
    pub step: u64,
    /// "sft" or "grpo".
    #[serde(default)]
    pub phase: Option<String>,
    /// Objective-1 reward (exact match) over rollouts.
    pub reward_end_to_end: MeanStd,
    /// Objective-2 blended reward, when recall is enabled.
    pub reward_blended: Option<MeanStd>,
    pub exact_match: f32,
    pub f1: f32,
    pub recall: Option<f32>,
    /// Mean likelihood of the gold final answer given the rollouts' memories (the dense reward),
    /// when `objectives.gold_likelihood` is on.
    #[serde(default)]
    pub gold_likelihood: Option<f32>,
    /// The same for the recall questions.
    #[serde(default)]
    pub recall_gold_likelihood: Option<f32>,
    pub loss: Option<f32>,
    pub kl: Option<f32>,
    pub clip_fraction: Option<f32>,
    pub entropy: Option<f32>,
    pub memory_tokens: MeanStd,
    pub answer_tokens: MeanStd,
    pub groups: usize,
    pub dropped_groups: usize,
    /// Response tokens the update trained on.
    #[serde(default)]
    pub trained_tokens: Option<usize>,
    /// Generated tokens per second of generation (GRPO) or trained tokens per second of
    /// forward-backward (SFT).
    pub tokens_per_second: Option<f32>,
    /// Resident memory of the process after the step.
    #[serde(default)]
    pub rss_mb: Option<f32>,
    pub seconds_generation: f32,
    pub seconds_reward: f32,
    pub seconds_forward_backward: f32,
    pub seconds_optimizer: f32,
    /// Why the update was skipped (no groups left, non-finite loss), if it was.
    pub skipped: Option<String>,
    /// The layer every micro-batch of the GRPO update started at, from the stream its rollouts
    /// kept ([`crate::model::stem`]); `None`: from tokens.
    #[serde(default)]
    pub update_from_layer: Option<usize>,
}

/// Appends one record as a JSON line, creating the file if needed.
pub fn append_record(path: &Path, record: &StepRecord) -> Result<()> {
    append_json(path, record)
}

/// Resident set size of this process in MiB (Linux; `None` elsewhere).
pub fn rss_mb() -> Option<f32> {
    proc_status_mb("VmRSS")
}

/// A memory field of `/proc/self/status` (`VmRSS`, `VmHWM`, …) in MB (Linux; `None` elsewhere).
pub fn proc_status_mb(field: &str) -> Option<f32> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let kb: f32 = status.lines().find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))?.trim().trim_end_matches("kB").trim().parse().ok()?;
    Some(kb / 1024.0)
}

/// Appends any serialisable value as one JSON line.
pub fn append_json<T: Serialize>(path: &Path, value: &T) -> Result<()> {
    let mut line = serde_json::to_string(value)?;
    line.push('\n');
    let mut f = std::fs::OpenOptions::new().create(true).append(true).open(path).with_context(|| format!("cannot open {}", path.display()))?;
    // One write per line, so a concurrent reader never sees half a record from us.
    f.write_all(line.as_bytes()).with_context(|| format!("cannot write {}", path.display()))
}

/// Reads every complete record back (the app's charts, resume).
pub fn read_records(path: &Path) -> Result<Vec<StepRecord>> {
    let text = std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .enumerate()
        .map(|(i, l)| serde_json::from_str(l).with_context(|| format!("{}:{}: not a step record", path.display(), i + 1)))
        .collect()
}
