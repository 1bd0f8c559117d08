//! Model → Hugging Face folder: `config.json`, `model.safetensors` (F32, lossless),
//! `tokenizer.json`, `tokenizer_config.json` (special tokens, BOS policy, chat template) and
//! `generation_config.json` (stop ids). Our loader and transformers both read it back.
//!
//! Contract: the folder appears whole or not at all: it is written under a temporary name next to
//! the target, every file is fsynced, and only then renamed into place (an older folder of the
//! same name is replaced).

use super::tokenizer::TextTokenizer;
use crate::model::ModelConfig;
use crate::model::weights_out::NamedTensor;
use anyhow::{Context, Result, anyhow};
use safetensors::{Dtype, tensor::TensorView};
use std::path::Path;

pub fn write_hf_folder(dir: &Path, cfg: &ModelConfig, tensors: &[NamedTensor], tokenizer: &TextTokenizer) -> Result<()> {
    super::atomic_dir(dir, |tmp| {
        let json = |v: &serde_json::Value| serde_json::to_vec_pretty(v).expect("JSON values serialise");
        super::write_synced(&tmp.join("config.json"), &json(&cfg.to_hf_value()))?;
        let bytes: Vec<Vec<u8>> = tensors.iter().map(|(_, d, _)| d.iter().flat_map(|v| v.to_le_bytes()).collect()).collect();
        let views = tensors
            .iter()
            .zip(&bytes)
            .map(|((name, _, shape), b)| Ok((name.as_str(), TensorView::new(Dtype::F32, shape.clone(), b).map_err(|e| anyhow!("tensor {name}: {e}"))?)))
            .collect::<Result<Vec<_>>>()?;
        let st = safetensors::serialize(views, Some([("format".to_string(), "pt".to_string())].into())).map_err(|e| anyhow!("safetensors: {e}"))?;
        super::write_synced(&tmp.join("model.safetensors"), &st)?;
        let tok = tokenizer.inner.to_string(false).map_err(|e| anyhow!("tokenizer.json: {e}"))?;
        super::write_synced(&tmp.join("tokenizer.json"), tok.as_bytes())?;
        let mut tc = serde_json::json!({
            "bos_token": tokenizer.bos_token,
            "eos_token": tokenizer.eos_token,
            "add_bos_token": tokenizer.add_bos,
            "model_max_length": cfg.max_position_embeddings,
        });
        if let Some(t) = &tokenizer.chat_template {
            tc["chat_template"] = serde_json::Value::String(t.clone());
        }
        super::write_synced(&tmp.join("tokenizer_config.json"), &json(&tc))?;
        let gen_cfg = serde_json::json!({ "bos_token_id": tokenizer.bos_id, "eos_token_id": tokenizer.stop_ids });
        super::write_synced(&tmp.join("generation_config.json"), &json(&gen_cfg))
            .with_context(|| format!("writing {}", dir.display()))
    })
}
