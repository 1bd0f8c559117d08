//! Training data from an exercises folder (`exercises.jsonl`, issue 4): objective-1 exercises
//! to roll out, their objective-2 recall probes, and the held-out split for evaluation.
//!
//! Contract: the batch of step `s` is a pure function of (seed, s): each epoch is a seeded
//! permutation of the training exercises, so resuming at step `s` reads exactly the documents an
//! uninterrupted run would have read, with no data-loader state to save.

use crate::exercises::jsonl::{Exercise, read_exercises};
use anyhow::{Result, bail};
use rand::SeedableRng;
use rand::seq::SliceRandom;
use rand_chacha::ChaCha8Rng;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

pub const MASKED: &str = "masked_entity";
pub const RECALL: &str = "memory_recall";

pub struct TrainData {
    pub source: PathBuf,
    /// Objective-1 training exercises (what rollouts read).
    pub train: Vec<Exercise>,
    pub held_out: Vec<Exercise>,
    pub held_out_recall: Vec<Exercise>,
    /// Objective-2 probes of each objective-1 exercise, by parent id.
    pub recall_of: BTreeMap<String, Vec<Exercise>>,
}

impl TrainData {
    /// Reads `dir/exercises.jsonl` (or a `.jsonl` file given directly) for training, keeping
    /// curriculum levels up to `max_level`; fails when nothing is left to train on.
    pub fn load(path: &Path, max_level: Option<u32>) -> Result<Self> {
        let data = Self::read(path, max_level)?;
        if data.train.is_empty() {
            bail!("{}: no training exercises{} (add documents, or raise the level limit)", data.source.display(), max_level.map(|m| format!(" at curriculum level ≤ {m}")).unwrap_or_default());
        }
        Ok(data)
    }

    /// As [`TrainData::load`] without requiring training exercises (evaluation reads only the
    /// held-out split).
    pub fn read(path: &Path, max_level: Option<u32>) -> Result<Self> {
        let file = if path.is_dir() { path.join("exercises.jsonl") } else { path.to_path_buf() };
        if !file.exists() {
            bail!("{}: no exercises.jsonl here (make one with `memtrain exercises --docs DOCS --out {}`)", file.display(), path.display());
        }
        let all = read_exercises(&file)?;
        let keep = |e: &Exercise| max_level.is_none_or(|m| u32::from(e.difficulty.level) <= m);
        let (mut train, mut held_out, mut held_out_recall) = (vec![], vec![], vec![]);
        let mut recall_of: BTreeMap<String, Vec<Exercise>> = BTreeMap::new();
        for e in all.into_iter().filter(keep) {
            match (e.objective.as_str(), e.split.as_str()) {
                (MASKED, "train") => train.push(e),
                (MASKED, _) => held_out.push(e),
                (RECALL, "train") => {
                    if let Some(parent) = e.parent.clone() {
                        recall_of.entry(parent).or_default().push(e);
                    }
                }
                (RECALL, _) => held_out_recall.push(e),
                (other, _) => bail!("{}: exercise {} has unknown objective {other:?}", file.display(), e.id),
            }
        }
        Ok(TrainData { source: file, train, held_out, held_out_recall, recall_of })
    }

    /// Indices into `train` of the `n` exercises of step `step`.
    pub fn batch(&self, seed: u64, step: usize, n: usize) -> Vec<usize> {
        batch_indices(seed, step, n, self.train.len())
    }

    pub fn recall_probes(&self, exercise: &Exercise) -> &[Exercise] {
        self.recall_of.get(&exercise.id).map(Vec::as_slice).unwrap_or(&[])
    }
}

/// Items `step*n .. (step+1)*n` of the endless sequence of seeded epoch permutations of `0..len`.
pub fn batch_indices(seed: u64, step: usize, n: usize, len: usize) -> Vec<usize> {
    let mut cached: Option<(usize, Vec<usize>)> = None;
    (step * n..(step + 1) * n)
        .map(|k| {
            let (epoch, at) = (k / len, k % len);
            if cached.as_ref().is_none_or(|(e, _)| *e != epoch) {
                cached = Some((epoch, epoch_order(seed, epoch, len)));
            }
            cached.as_ref().map_or(0, |(_, order)| order[at])
        })
        .collect()
}

fn epoch_order(seed: u64, epoch: usize, len: usize) -> Vec<usize> {
    let mut order: Vec<usize> = (0..len).collect();
    order.shuffle(&mut ChaCha8Rng::seed_from_u64(seed ^ (epoch as u64).wrapping_mul(0xA076_1D64_78BD_642F)));
    order
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn epochs_cover_every_exercise_once_and_differ() {
        let (a, b) = (epoch_order(1, 0, 50), epoch_order(1, 1, 50));
        let mut sorted = a.clone();
        sorted.sort();
        assert_eq!(sorted, (0..50).collect::<Vec<_>>());
        assert_ne!(a, b);
        assert_eq!(a, epoch_order(1, 0, 50));
    }
}
