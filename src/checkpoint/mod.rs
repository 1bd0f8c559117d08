//! Checkpoint formats: GGUF and Hugging Face folders in, a model and a tokenizer out.
//! Format readers never leak into model code: the model sees a `WeightSource` with HF names.

pub mod chat_template;
pub mod default_model;
pub mod dequant;
pub mod export;
pub mod gguf;
pub mod gguf_weights;
pub mod gguf_writer;
pub mod hf_export;
pub mod safetensors;
pub mod tokenizer;

use crate::model::packed::{PackedLlama, PanelPrecision};
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
    /// `model`'s weights repacked for generation (CPU decode panels, or wgpu fused
    /// projections), made on first use (see [`Self::packed`]); `model` is never replaced after
    /// loading, so the copy stays valid.
    packed: std::sync::OnceLock<Option<PackedLlama>>,
    /// What the CPU copy stores (f16 under `--f16` on the CPU: [`crate::device::use_f16`]).
    panels: PanelPrecision,
}

impl LoadedModel {
    /// The repacked copy of the weights for this device ([`PackedLlama::for_device`]), made once.
    pub fn packed(&self) -> Option<&PackedLlama> {
        self.packed.get_or_init(|| PackedLlama::for_device(&self.model, self.panels)).as_ref()
    }

    /// Packs the CPU copy in `precision` from now on (the copy made so far, if any, is dropped).
    pub fn set_panel_precision(&mut self, precision: PanelPrecision) {
        if precision != self.panels {
            self.panels = precision;
            self.packed = Default::default();
        }
    }

    /// `--f16` on the CPU: the decode kernels' copy in f16, where those kernels run at all (not
    /// on wgpu, nor with [`crate::model::packed::DISABLE_ENV`] set); returns whether they do.
    pub fn use_f16_decode_panels(&mut self) -> bool {
        let runs = PackedLlama::used_for(&self.model);
        if runs {
            self.set_panel_precision(PanelPrecision::F16);
        }
        runs
    }
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

/// The tokenizer of a GGUF file or HF folder, without its weights.
pub fn load_tokenizer(path: &Path) -> Result<TextTokenizer> {
    match format_of(path)? {
        ModelFormat::Gguf => TextTokenizer::from_gguf(&gguf::GgufFile::open(path)?),
        ModelFormat::HfFolder => TextTokenizer::from_hf_dir(path),
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
    Ok(LoadedModel { info, model, tokenizer, inv_freq, packed: Default::default(), panels: PanelPrecision::F32 })
}

/// Loads only the weights of an HF folder (no tokenizer needed): the logit-parity tests use it.
pub fn load_hf_weights(dir: &Path, device: &Device) -> Result<(ModelConfig, Llama)> {
    let config = ModelConfig::from_hf_json(&dir.join("config.json"))?;
    let mut weights = safetensors::SafetensorsWeights::open_dir(dir)?;
    let model = Llama::from_weights(&config, &mut weights, device).with_context(|| format!("{}: cannot build the model", dir.display()))?;
    Ok((config, model))
}


/// Writes `bytes` to `path` and flushes them to disk.
pub fn write_synced(path: &Path, bytes: &[u8]) -> Result<()> {
    use std::io::Write;
    let mut f = std::fs::File::create(path).with_context(|| format!("cannot create {}", path.display()))?;
    f.write_all(bytes).and_then(|_| f.sync_all()).with_context(|| format!("cannot write {}", path.display()))
}

/// Writes a file through `fill` under a temporary name, fsyncs it and renames it to `path`, so a
/// crash leaves either the old file or the new one, never half of one.
pub fn atomic_write(path: &Path, fill: impl FnOnce(&mut std::io::BufWriter<std::fs::File>) -> std::io::Result<()>) -> Result<()> {
    let tmp = temp_name(path);
    let result = (|| {
        let f = std::fs::File::create(&tmp)?;
        let mut w = std::io::BufWriter::new(f);
        fill(&mut w)?;
        let f = w.into_inner().map_err(|e| e.into_error())?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result.with_context(|| format!("cannot write {}", path.display()))?;
    sync_parent(path);
    Ok(())
}

/// Fills a temporary folder through `fill`, then swaps it in for `dir` (a folder of that name is
/// replaced); on error the temporary folder is removed and `dir` is untouched.
pub fn atomic_dir(dir: &Path, fill: impl FnOnce(&Path) -> Result<()>) -> Result<()> {
    let tmp = temp_name(dir);
    let _ = std::fs::remove_dir_all(&tmp);
    std::fs::create_dir_all(&tmp).with_context(|| format!("cannot create {}", tmp.display()))?;
    if let Err(e) = fill(&tmp) {
        let _ = std::fs::remove_dir_all(&tmp);
        return Err(e);
    }
    let old = dir.with_file_name(format!("{}.old", dir.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default()));
    if dir.exists() {
        let _ = std::fs::remove_dir_all(&old);
        std::fs::rename(dir, &old).with_context(|| format!("cannot replace {}", dir.display()))?;
    }
    std::fs::rename(&tmp, dir).with_context(|| format!("cannot move {} to {}", tmp.display(), dir.display()))?;
    let _ = std::fs::remove_dir_all(&old);
    sync_parent(dir);
    Ok(())
}

fn temp_name(path: &Path) -> PathBuf {
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    path.with_file_name(format!(".{name}.tmp-{}", std::process::id()))
}

/// Makes a rename durable (best effort: not every platform can open a folder).
fn sync_parent(path: &Path) {
    if let Some(parent) = path.parent()
        && let Ok(d) = std::fs::File::open(if parent.as_os_str().is_empty() { Path::new(".") } else { parent })
    {
        let _ = d.sync_all();
    }
}
