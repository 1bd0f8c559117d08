//! What survives a restart: the last model, the device choice, the chat settings and the
//! exercise preset and seed.

use crate::device::DeviceChoice;
use crate::exercises::curriculum::Preset;
use std::path::PathBuf;

#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
#[serde(default)]
pub struct Settings {
    pub model_path: Option<PathBuf>,
    pub device: DeviceChoice,
    pub temperature: f32,
    pub max_tokens: usize,
    pub recent_models: Vec<PathBuf>,
    pub preset: Preset,
    pub seed: u64,
}

impl Default for Settings {
    fn default() -> Self {
        Settings { model_path: None, device: DeviceChoice::Auto, temperature: 0.0, max_tokens: 256, recent_models: vec![], preset: Preset::Tiny, seed: 0 }
    }
}

impl Settings {
    pub fn remember_model(&mut self, path: PathBuf) {
        self.recent_models.retain(|p| p != &path);
        self.recent_models.insert(0, path.clone());
        self.recent_models.truncate(8);
        self.model_path = Some(path);
    }
}
