//! What survives a restart: the last model, the device choice, the chat settings and the
//! exercise preset and seed, the training precision.

use crate::device::DeviceChoice;
use crate::exercises::curriculum::{MaskScope, Preset};
use crate::model::precision::Precision;
use std::path::PathBuf;

#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
#[serde(default)]
pub struct Settings {
    pub model_path: Option<PathBuf>,
    pub device: DeviceChoice,
    pub temperature: f32,
    pub max_tokens: usize,
    pub recent_models: Vec<PathBuf>,
    /// Files and folders added to the Documents panel, newest first.
    pub recent_documents: Vec<PathBuf>,
    pub preset: Preset,
    pub seed: u64,
    /// Objective 1's masking for new datasets.
    pub mask_scope: MaskScope,
    /// The precision of new training runs on a GPU (the CPU path computes in f32).
    pub train_precision: Precision,
    /// A model loaded on the CPU keeps its decode kernels' weights in f16 (`--f16` there).
    pub cpu_f16_panels: bool,
}

impl Default for Settings {
    fn default() -> Self {
        Settings { model_path: None, device: DeviceChoice::Auto, temperature: 0.0, max_tokens: 256, recent_models: vec![], recent_documents: vec![], preset: Preset::Tiny, seed: 0, mask_scope: MaskScope::default(), train_precision: Precision::F32, cpu_f16_panels: false }
    }
}

impl Settings {
    pub fn remember_model(&mut self, path: PathBuf) {
        remember(&mut self.recent_models, std::slice::from_ref(&path));
        self.model_path = Some(path);
    }

    pub fn remember_documents(&mut self, paths: &[PathBuf]) {
        remember(&mut self.recent_documents, paths);
    }
}

/// Puts `paths` first in `list` (no duplicates), keeping the 8 newest.
fn remember(list: &mut Vec<PathBuf>, paths: &[PathBuf]) {
    list.retain(|p| !paths.contains(p));
    for p in paths.iter().rev() {
        list.insert(0, p.clone());
    }
    list.truncate(8);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recent_lists_put_the_newest_first_without_duplicates_and_keep_eight() {
        let mut s = Settings::default();
        let p = |i: usize| PathBuf::from(format!("/d/{i}"));
        s.remember_documents(&(0..6).map(p).collect::<Vec<_>>());
        s.remember_documents(&[p(9), p(2)]);
        assert_eq!(s.recent_documents, [p(9), p(2), p(0), p(1), p(3), p(4), p(5)]);
        s.remember_documents(&(10..20).map(p).collect::<Vec<_>>());
        assert_eq!(s.recent_documents.len(), 8);
        assert_eq!(s.recent_documents[0], p(10));
        s.remember_model(p(1));
        s.remember_model(p(2));
        s.remember_model(p(1));
        assert_eq!(s.recent_models, [p(1), p(2)]);
        assert_eq!(s.model_path, Some(p(1)));
    }
}
