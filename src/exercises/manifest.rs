//! `manifest.ron` and the human summary of a build.
//!
//! The manifest records everything needed to reproduce or audit a dataset: the curriculum,
//! seed, token counter and tagger, every source file with its SHA-256 and split, counts per
//! objective and split, entity types, and every file that failed with its reason.

use super::curriculum::{Curriculum, Preset};
use super::dataset::{EXERCISES_FILE, HELD_OUT, MANIFEST_FILE, MASKED, RECALL, TRAIN};
use crate::documents::{DocError, DocErrorKind};
use anyhow::{Context as _, Result};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// One source file in the manifest.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct SourceEntry {
    pub path: String,
    pub doc_id: String,
    pub sha256: String,
    pub format: String,
    pub title: String,
    pub split: String,
    pub bytes: u64,
    pub chars: usize,
    pub contexts: usize,
    pub masked_entity: usize,
    pub memory_recall: usize,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct FileError {
    pub path: String,
    pub kind: DocErrorKind,
    pub message: String,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct Duplicate {
    pub path: String,
    pub same_as: String,
}

/// `manifest.ron`.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct Manifest {
    pub format_version: u32,
    pub generator: String,
    pub seed: u64,
    pub curriculum: Curriculum,
    pub token_counter: String,
    pub entity_tagger: String,
    pub questions: BTreeMap<String, String>,
    pub scorers: Vec<String>,
    pub sources: Vec<SourceEntry>,
    /// objective → split → exercises.
    pub counts: BTreeMap<String, BTreeMap<String, usize>>,
    /// entity type → exercises (both objectives).
    pub entity_types: BTreeMap<String, usize>,
    pub errors: Vec<FileError>,
    pub duplicates: Vec<Duplicate>,
}

/// What the CLI prints and the app shows after a build.
#[derive(Clone, Debug)]
pub struct DatasetSummary {
    pub out: PathBuf,
    pub preset: Preset,
    pub token_counter: String,
    pub files_read: usize,
    pub files_failed: Vec<DocError>,
    pub duplicates: Vec<(PathBuf, PathBuf)>,
    /// Read fine but gave no exercise (no usable entity).
    pub without_exercises: Vec<PathBuf>,
    pub bytes_read: u64,
    pub chars_read: u64,
    /// objective → split → exercises.
    pub counts: BTreeMap<String, BTreeMap<String, usize>>,
    pub exercises: usize,
}

impl DatasetSummary {
    /// The human summary `memtrain exercises` prints.
    pub fn report(&self) -> String {
        let mut s = String::new();
        let total = self.files_read + self.files_failed.len() + self.duplicates.len();
        s += &format!(
            "Read {} of {} files ({:.1} MB, {} characters); {} failed.\n",
            self.files_read,
            total,
            self.bytes_read as f64 / 1e6,
            self.chars_read,
            self.files_failed.len()
        );
        for e in &self.files_failed {
            s += &format!("  failed: {e}\n");
        }
        for (d, o) in &self.duplicates {
            s += &format!("  skipped: {} (same content as {})\n", d.display(), o.display());
        }
        for p in &self.without_exercises {
            s += &format!("  no exercises: {} (no usable entity found)\n", p.display());
        }
        s += &format!("Exercises (preset {}, token counts: {}):\n", self.preset.name(), self.token_counter);
        s += &format!("  {:<15}{:>10}{:>10}\n", "", TRAIN, HELD_OUT);
        for obj in [MASKED, RECALL] {
            let c = self.counts.get(obj);
            let n = |split: &str| c.and_then(|m| m.get(split)).copied().unwrap_or(0);
            s += &format!("  {:<15}{:>10}{:>10}\n", obj, n(TRAIN), n(HELD_OUT));
        }
        s += &format!("Wrote {} and {}\n", self.out.join(EXERCISES_FILE).display(), self.out.join(MANIFEST_FILE).display());
        s
    }
}

/// Reads `manifest.ron` back.
pub fn read_manifest(path: &Path) -> Result<Manifest> {
    let text = std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    ron::from_str(&text).with_context(|| format!("{}: not a manifest", path.display()))
}
