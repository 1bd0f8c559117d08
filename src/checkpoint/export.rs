//! `memtrain export`: a trained run (or any model we can load) out as a Hugging Face folder or
//! a GGUF file (F16 or Q8_0) that our loader and llama.cpp both read.
//!
//! Contract: `from` is a run folder (its `final/` model is exported, and its `run.ron` names the
//! GGUF whose tokenizer metadata the GGUF export copies), an HF folder or a GGUF file. Weights
//! are read on the CPU; nothing is written unless the export completes.

use super::gguf::GgufFile;
use super::gguf_writer::{MatrixType, write_gguf};
use crate::model::weights_out::hf_tensors;
use anyhow::{Context, Result, bail};
use burn::prelude::*;
use std::path::{Path, PathBuf};

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum ExportFormat {
    /// Hugging Face folder: config.json, model.safetensors (F32), tokenizer files.
    Safetensors,
    #[value(name = "gguf-f16")]
    GgufF16,
    #[value(name = "gguf-q8_0")]
    GgufQ8_0,
}

/// The model folder/file to export and the model file whose tokenizer metadata a GGUF needs.
fn resolve(from: &Path) -> Result<(PathBuf, PathBuf)> {
    let run = crate::train::run_dir::RunDir::new(from);
    if run.info().exists() {
        let model = run.final_model();
        if !model.exists() {
            bail!("{}: the run has no final/ model yet (it is still training or was stopped: resume it to finish)", from.display());
        }
        return Ok((model, run.read_info()?.tokenizer_source));
    }
    if !from.exists() {
        bail!("{}: no such run, model folder or GGUF file", from.display());
    }
    Ok((from.to_path_buf(), from.to_path_buf()))
}

pub fn export(from: &Path, format: ExportFormat, out: &Path) -> Result<()> {
    let (model_path, tokenizer_source) = resolve(from)?;
    let loaded = super::load(&model_path, &Device::flex())?;
    let tensors = hf_tensors(&loaded.model)?;
    let cfg = &loaded.info.config;
    match format {
        ExportFormat::Safetensors => super::hf_export::write_hf_folder(out, cfg, &tensors, &loaded.tokenizer),
        ExportFormat::GgufF16 | ExportFormat::GgufQ8_0 => {
            if tokenizer_source.is_dir() {
                bail!("GGUF export copies the tokenizer metadata of a GGUF model, but {} is a Hugging Face folder; export as safetensors, or train from a GGUF model", tokenizer_source.display());
            }
            let source = GgufFile::open(&tokenizer_source).with_context(|| "reading the tokenizer metadata for the GGUF export")?;
            let matrix = if format == ExportFormat::GgufF16 { MatrixType::F16 } else { MatrixType::Q8_0 };
            write_gguf(out, cfg, &format!("{} (MemTrain)", loaded.info.name), &tensors, &source.metadata, matrix)
        }
    }
}
