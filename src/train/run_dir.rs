//! The run folder: what `memtrain train --out RUN` writes and `--resume` reads back.
//!
//! ```text
//! RUN/config.ron          the training config (resume reads it back)
//! RUN/run.ron             where the model, tokenizer and data came from
//! RUN/metrics.jsonl       one StepRecord per step
//! RUN/eval.jsonl          one held-out evaluation per line
//! RUN/initial/            the model as training started (HF folder): every comparison's baseline
//! RUN/final/              the trained model (HF folder)
//! RUN/checkpoints/step-N/ model.bpk, optim.bpk, state.ron
//! ```
//!
//! Contract: a checkpoint folder appears whole or not at all (written under a temporary name,
//! fsynced, renamed); the newest `keep` are kept; resuming from step N truncates the metric
//! files to the steps before N so the history reads as if the run had never stopped.

use crate::model::Llama;
use anyhow::{Context, Result};
use burn::module::Module;
use burn::optim::ModuleOptimizer;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// Everything besides weights and optimizer moments that resuming needs: the batch order, the
/// sampling seeds and the LR schedule are pure functions of the step.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct TrainState {
    /// Steps completed.
    pub step: usize,
    /// Non-finite steps skipped in a row (the stop rule survives a restart).
    pub bad_in_row: usize,
    /// Mixed precision's loss scale (off in f32 runs), so that a resumed run scales as the
    /// uninterrupted one did.
    #[serde(default)]
    pub loss_scale: super::loss_scale::LossScale,
}

/// Provenance of a run, for export and for people reading the folder.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RunInfo {
    pub model: String,
    /// The GGUF file or HF folder whose tokenizer (and GGUF tokenizer metadata) the run uses.
    pub tokenizer_source: PathBuf,
    pub data: PathBuf,
    pub device: String,
}

pub struct RunDir {
    pub root: PathBuf,
}

impl RunDir {
    pub fn new(root: &Path) -> Self {
        RunDir { root: root.to_path_buf() }
    }
    pub fn config(&self) -> PathBuf {
        self.root.join("config.ron")
    }
    pub fn info(&self) -> PathBuf {
        self.root.join("run.ron")
    }
    pub fn metrics(&self) -> PathBuf {
        self.root.join("metrics.jsonl")
    }
    pub fn eval(&self) -> PathBuf {
        self.root.join("eval.jsonl")
    }
    pub fn initial(&self) -> PathBuf {
        self.root.join("initial")
    }
    pub fn final_model(&self) -> PathBuf {
        self.root.join("final")
    }
    pub fn checkpoints(&self) -> PathBuf {
        self.root.join("checkpoints")
    }

    /// True when the folder already holds a run (so a fresh start would overwrite it).
    pub fn has_run(&self) -> bool {
        self.config().exists() || self.metrics().exists() || self.checkpoints().exists()
    }

    pub fn read_info(&self) -> Result<RunInfo> {
        let p = self.info();
        let text = std::fs::read_to_string(&p).with_context(|| format!("cannot read {}", p.display()))?;
        ron::from_str(&text).map_err(|e| anyhow::anyhow!("{}: {e}", p.display()))
    }

    pub fn write_ron<T: Serialize>(path: &Path, value: &T) -> Result<()> {
        let text = ron::ser::to_string_pretty(value, ron::ser::PrettyConfig::default())?;
        super::super::checkpoint::atomic_write(path, |f| std::io::Write::write_all(f, text.as_bytes()))
    }

    /// Saves a checkpoint of step `state.step` and prunes old ones.
    pub fn save_checkpoint(&self, model: &Llama, optim: &ModuleOptimizer, state: &TrainState, keep: usize) -> Result<PathBuf> {
        let dir = self.checkpoints().join(format!("step-{:06}", state.step));
        std::fs::create_dir_all(self.checkpoints()).with_context(|| format!("cannot create {}", self.checkpoints().display()))?;
        crate::checkpoint::atomic_dir(&dir, |tmp| {
            let (m, o) = (tmp.join("model.bpk"), tmp.join("optim.bpk"));
            model.clone().save_file(&m).map_err(|e| anyhow::anyhow!("saving the model to {}: {e:?}", m.display()))?;
            optim.save(&o).map_err(|e| anyhow::anyhow!("saving the optimizer to {}: {e:?}", o.display()))?;
            for f in [&m, &o] {
                std::fs::File::open(f).and_then(|f| f.sync_all()).with_context(|| format!("cannot sync {}", f.display()))?;
            }
            let text = ron::ser::to_string_pretty(state, ron::ser::PrettyConfig::default())?;
            crate::checkpoint::write_synced(&tmp.join("state.ron"), text.as_bytes())
        })?;
        let all = self.list_checkpoints();
        for (_, old) in all.iter().take(all.len().saturating_sub(keep)) {
            let _ = std::fs::remove_dir_all(old);
        }
        Ok(dir)
    }

    /// Complete checkpoints, oldest first.
    pub fn list_checkpoints(&self) -> Vec<(usize, PathBuf)> {
        let mut out: Vec<(usize, PathBuf)> = std::fs::read_dir(self.checkpoints())
            .into_iter()
            .flatten()
            .flatten()
            .filter_map(|e| {
                let name = e.file_name().to_string_lossy().into_owned();
                let step = name.strip_prefix("step-")?.parse().ok()?;
                e.path().join("state.ron").exists().then(|| (step, e.path()))
            })
            .collect();
        out.sort();
        out
    }

    /// Loads the newest checkpoint into `model` (same architecture) and `optim`.
    pub fn load_latest(&self, model: Llama, optim: ModuleOptimizer) -> Result<Option<(Llama, ModuleOptimizer, TrainState)>> {
        let Some((_, dir)) = self.list_checkpoints().pop() else { return Ok(None) };
        let text = std::fs::read_to_string(dir.join("state.ron")).with_context(|| format!("cannot read {}", dir.join("state.ron").display()))?;
        let state: TrainState = ron::from_str(&text).map_err(|e| anyhow::anyhow!("{}: {e}", dir.join("state.ron").display()))?;
        let model = model.try_load_file(dir.join("model.bpk")).map_err(|e| anyhow::anyhow!("{}: cannot load the model: {e:?}", dir.display()))?;
        let optim = optim.load(dir.join("optim.bpk")).map_err(|e| anyhow::anyhow!("{}: cannot load the optimizer: {e:?}", dir.display()))?;
        Ok(Some((model, optim, state)))
    }

    /// Drops metric lines of steps at or after `step` (a resumed run rewrites them).
    pub fn truncate_history(&self, step: usize) -> Result<()> {
        for path in [self.metrics(), self.eval()] {
            let Ok(text) = std::fs::read_to_string(&path) else { continue };
            let kept: String = text
                .lines()
                .filter(|l| serde_json::from_str::<serde_json::Value>(l).ok().and_then(|v| v["step"].as_u64()).is_some_and(|s| (s as usize) < step))
                .map(|l| format!("{l}\n"))
                .collect();
            crate::checkpoint::atomic_write(&path, |f| std::io::Write::write_all(f, kept.as_bytes()))?;
        }
        Ok(())
    }
}
