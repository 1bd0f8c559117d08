//! Difficulty and curricula: how big the reading task is, and presets for model sizes.
//!
//! A context is read in `chunks` chunks of at most `chunk_tokens` tokens, the agent keeps at
//! most `memory_tokens` of memory between chunks. Difficulty grows with the number of chunks,
//! the distance in chunks between where the answer's evidence sits and the end, the share of
//! distractor paragraphs (from other documents of the same split), and whether the pivot is in
//! the first chunk (the longest a memory must hold it). A [`Stage`] fixes a range of chunk
//! counts and a distractor share; every context is built for one stage, recorded as
//! `difficulty.level`, so a trainer can run the stages in order.
//!
//! `paper` follows MemTrain (5,000-token chunks, at most 8, 1,024-token memory, ~80 %
//! distractors like 120 of 150 passages); `tiny` and `small` follow the small-model notes.

use serde::{Deserialize, Serialize};

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Preset {
    Tiny,
    #[default]
    Small,
    Paper,
}

impl Preset {
    pub fn name(self) -> &'static str {
        match self {
            Preset::Tiny => "tiny",
            Preset::Small => "small",
            Preset::Paper => "paper",
        }
    }
}

impl std::str::FromStr for Preset {
    type Err = anyhow::Error;
    fn from_str(s: &str) -> anyhow::Result<Preset> {
        match s.to_ascii_lowercase().as_str() {
            "tiny" => Ok(Preset::Tiny),
            "small" => Ok(Preset::Small),
            "paper" => Ok(Preset::Paper),
            _ => anyhow::bail!("unknown preset {s:?} (expected tiny, small or paper)"),
        }
    }
}

/// One step of a curriculum.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Stage {
    /// 1 = easiest.
    pub level: u8,
    pub min_chunks: usize,
    pub max_chunks: usize,
    /// Share of the context's token budget given to distractor paragraphs, in percent. A short
    /// document is padded with more distractors so the context still has its chunk count.
    pub distractor_percent: u32,
}

/// Everything that shapes a dataset (recorded in the manifest).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Curriculum {
    pub preset: Preset,
    pub chunk_tokens: usize,
    pub memory_tokens: usize,
    pub stages: Vec<Stage>,
    /// Objective 1 exercises per context (different entities, different pivots when possible).
    pub masked_per_context: usize,
    /// Objective 2 probes stored per masked exercise, each from a different earlier chunk.
    pub probes_per_exercise: usize,
    /// Share of documents held out, in percent (at least one when there are two or more).
    pub held_out_percent: u32,
    /// Tokens kept free in each chunk for masks and `[TARGET]` (longer than most entities).
    pub mask_slack_tokens: usize,
    /// A document is read again, with fresh random choices, until it has this many objective-1
    /// exercises (short documents would otherwise give one or two)...
    pub min_masked_per_document: usize,
    /// ...but at most this many times.
    pub max_passes: usize,
    /// Where objective 1 hides its entity (manifests written before this field read as the
    /// paper's `Everywhere`).
    #[serde(default)]
    pub mask_scope: MaskScope,
}

/// Where objective 1 replaces its entity with `[MASK]`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MaskScope {
    /// Every occurrence in the whole context (the paper's): the answer can only be inferred from
    /// other passages or world knowledge, which fictional documents and tiny models lack.
    #[default]
    Everywhere,
    /// Only the occurrences after the pivot's chunk, where the entity is read first: the agent
    /// must carry it in memory to the chunks that mask it (method notes §8.2, a memory test).
    AfterPivot,
}

impl std::str::FromStr for MaskScope {
    type Err = anyhow::Error;
    fn from_str(s: &str) -> anyhow::Result<MaskScope> {
        match s.to_ascii_lowercase().as_str() {
            "everywhere" => Ok(MaskScope::Everywhere),
            "after-pivot" | "after_pivot" => Ok(MaskScope::AfterPivot),
            _ => anyhow::bail!("unknown mask scope {s:?} (expected everywhere or after-pivot)"),
        }
    }
}

impl Curriculum {
    pub fn preset(preset: Preset) -> Curriculum {
        let stage = |level, min_chunks, max_chunks, distractor_percent| Stage { level, min_chunks, max_chunks, distractor_percent };
        match preset {
            Preset::Tiny => Curriculum {
                preset,
                chunk_tokens: 128,
                memory_tokens: 64,
                stages: vec![stage(1, 2, 2, 0), stage(2, 3, 3, 25), stage(3, 4, 4, 40)],
                masked_per_context: 1,
                probes_per_exercise: 2,
                held_out_percent: 10,
                mask_slack_tokens: 12,
                min_masked_per_document: 16,
                max_passes: 8,
                mask_scope: MaskScope::Everywhere,
            },
            Preset::Small => Curriculum {
                preset,
                chunk_tokens: 384,
                memory_tokens: 192,
                stages: vec![stage(1, 2, 2, 0), stage(2, 3, 4, 25), stage(3, 5, 6, 40), stage(4, 7, 8, 50)],
                masked_per_context: 1,
                probes_per_exercise: 2,
                held_out_percent: 10,
                mask_slack_tokens: 16,
                min_masked_per_document: 8,
                max_passes: 8,
                mask_scope: MaskScope::Everywhere,
            },
            Preset::Paper => Curriculum {
                preset,
                chunk_tokens: 5000,
                memory_tokens: 1024,
                stages: vec![stage(1, 5, 8, 80)],
                masked_per_context: 1,
                probes_per_exercise: 2,
                held_out_percent: 10,
                mask_slack_tokens: 32,
                min_masked_per_document: 2,
                max_passes: 4,
                mask_scope: MaskScope::Everywhere,
            },
        }
    }

    pub fn max_chunks(&self) -> usize {
        self.stages.iter().map(|s| s.max_chunks).max().unwrap_or(1)
    }
}

/// How hard one exercise is (the `difficulty` object of each JSONL record).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Difficulty {
    /// The curriculum stage the context was built for.
    pub level: u8,
    /// Chunks the agent reads.
    pub chunks: usize,
    /// Chunks between the evidence and the end: for objective 1 from the pivot's chunk to the
    /// last chunk; for objective 2 from the probed chunk to the last chunk.
    pub distance: usize,
    /// Distractor paragraphs in the context.
    pub distractors: usize,
    /// The pivot (objective 1) or probed chunk (objective 2) is the first chunk.
    pub pivot_in_first_chunk: bool,
    /// Words in the answer.
    pub answer_words: usize,
    /// Occurrences replaced by the placeholder.
    pub masked_occurrences: usize,
}
