//! Checkpoint formats: GGUF and Hugging Face folders in, a model and a tokenizer out.
//! Format readers never leak into model code: the model sees a `WeightSource` with HF names.

pub mod chat_template;
pub mod default_model;
pub mod dequant;
pub mod gguf;
pub mod gguf_weights;
pub mod safetensors;
pub mod tokenizer;

use crate::model::{Llama, ModelConfig, rope};
use anyhow::{Context, Result, bail};
use burn::prelude::*;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use tokenizer::TextTokenizer;

#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
pub enum ModelFormat {
    Gguf,
    HfFolder,
}

/// What `memtrain info` and the app's model card show.
#[derive(Clone, Debug, serde::Serialize)]
pub struct ModelInfo {
    pub path: PathBuf,
    pub format: ModelFormat,
    pub config: ModelConfig,
    pub parameters: usize,
    /// Tensor storage types with their counts, e.g. {"Q4_1": 120, "F32": 61}.
    pub tensor_types: BTreeMap<String, usize>,
    pub has_chat_template: bool,
    pub name: String,
}

pub struct LoadedModel {
    pub info: ModelInfo,
    pub model: Llama,
    pub tokenizer: TextTokenizer,
    pub inv_freq: Vec<f64>,
}

fn format_of(path: &Path) -> Result<ModelFormat> {
    if path.is_dir() {
        Ok(ModelFormat::HfFolder)
    } else if path.is_file() {
        Ok(ModelFormat::Gguf)
    } else {
        bail!("{}: no such file or folder", path.display())
    }
}

fn display_name(path: &Path, g: Option<&gguf::GgufFile>) -> String {
    g.and_then(|g| g.meta_str("general.name").map(str::to_string))
        .unwrap_or_else(|| path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default())
}

enum Source {
    Gguf(gguf::GgufFile),
    Hf(safetensors::SafetensorsWeights),
}

/// Reads headers, metadata and tokenizer; weights stay unconverted.
fn open(path: &Path) -> Result<(ModelInfo, Source, TextTokenizer)> {
    match format_of(path)? {
        ModelFormat::Gguf => {
            let g = gguf::GgufFile::open(path)?;
            let config = gguf_weights::config_from_gguf(&g)?;
            let tokenizer = TextTokenizer::from_gguf(&g)?;
            let mut types = BTreeMap::new();
            for t in &g.tensors {
                *types.entry(t.ggml_type.name()).or_insert(0) += 1;
            }
            let info = ModelInfo {
                path: path.to_path_buf(),
                format: ModelFormat::Gguf,
                parameters: config.parameter_count(),
                tensor_types: types,
                has_chat_template: tokenizer.chat_template.is_some(),
                name: display_name(path, Some(&g)),
                config,
            };
            Ok((info, Source::Gguf(g), tokenizer))
        }
        ModelFormat::HfFolder => {
            let config = ModelConfig::from_hf_json(&path.join("config.json"))?;
            let weights = safetensors::SafetensorsWeights::open_dir(path)?;
            let tokenizer = TextTokenizer::from_hf_dir(path)?;
            let info = ModelInfo {
                path: path.to_path_buf(),
                format: ModelFormat::HfFolder,
                parameters: config.parameter_count(),
                tensor_types: weights.dtypes(),
                has_chat_template: tokenizer.chat_template.is_some(),
                name: display_name(path, None),
                config,
            };
            Ok((info, Source::Hf(weights), tokenizer))
        }
    }
}

/// Describes a model without building it (for `memtrain info`).
pub fn inspect(path: &Path) -> Result<ModelInfo> {
    Ok(open(path)?.0)
}

/// Loads a `.gguf` file or an HF folder onto `device`.
pub fn load(path: &Path, device: &Device) -> Result<LoadedModel> {
    let (info, source, tokenizer) = open(path)?;
    let built = match source {
        Source::Gguf(g) => Llama::from_weights(&info.config, &mut gguf_weights::GgufWeights { file: &g, config: info.config.clone() }, device),
        Source::Hf(mut w) => Llama::from_weights(&info.config, &mut w, device),
    };
    let model = built.with_context(|| format!("{}: cannot build the model", path.display()))?;
    let inv_freq = rope::inverse_frequencies(&info.config);
    Ok(LoadedModel { info, model, tokenizer, inv_freq })
}

/// Loads only the weights of an HF folder (no tokenizer needed): the logit-parity tests use it.
pub fn load_hf_weights(dir: &Path, device: &Device) -> Result<(ModelConfig, Llama)> {
    let config = ModelConfig::from_hf_json(&dir.join("config.json"))?;
    let mut weights = safetensors::SafetensorsWeights::open_dir(dir)?;
    let model = Llama::from_weights(&config, &mut weights, device).with_context(|| format!("{}: cannot build the model", dir.display()))?;
    Ok((config, model))
}

