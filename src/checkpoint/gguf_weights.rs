//! GGUF → model: the hyper-parameters from `{arch}.*` metadata and the weights under HF names.
//! llama.cpp's converter permutes Llama q/k rows for its interleaved RoPE; we undo that here so
//! the model sees exactly the HF layout (Qwen GGUFs are stored unpermuted).

use super::gguf::GgufFile;
use crate::model::{Architecture, ModelConfig, WeightSource, config::RopeScaling};
use anyhow::{Context, Result, bail};

/// Reads the model config from GGUF metadata.
pub fn config_from_gguf(g: &GgufFile) -> Result<ModelConfig> {
    let file = g.path.display().to_string();
    let arch_name = g.architecture().with_context(|| format!("{file}: no general.architecture"))?.to_string();
    let architecture = Architecture::parse(&arch_name)
        .with_context(|| format!("{file}: unsupported architecture {arch_name:?} (supported: llama, qwen2, qwen3)"))?;
    let key = |k: &str| format!("{arch_name}.{k}");
    let req = |k: &str| -> Result<usize> {
        g.meta_u64(&key(k)).map(|v| v as usize).with_context(|| format!("{file}: missing metadata {}", key(k)))
    };
    let hidden_size = req("embedding_length")?;
    let num_heads = req("attention.head_count")?;
    let vocab_size = match g.meta_u64(&key("vocab_size")) {
        Some(v) => v as usize,
        None => g.meta("tokenizer.ggml.tokens").and_then(|t| t.as_array()).map(|a| a.len())
            .or_else(|| g.tensor_info("token_embd.weight").map(|t| t.shape_row_major()[0]))
            .with_context(|| format!("{file}: cannot tell the vocabulary size"))?,
    };
    let rope_scaling = match g.meta_str(&key("rope.scaling.type")) {
        Some("linear") => Some(RopeScaling::Linear { factor: g.meta_f64(&key("rope.scaling.factor")).unwrap_or(1.0) }),
        Some("none") | None => None,
        Some(other) => bail!("{file}: unsupported rope scaling {other:?}"),
    };
    let cfg = ModelConfig {
        architecture,
        vocab_size,
        hidden_size,
        intermediate_size: req("feed_forward_length")?,
        num_layers: req("block_count")?,
        num_heads,
        num_kv_heads: g.meta_u64(&key("attention.head_count_kv")).map(|v| v as usize).unwrap_or(num_heads),
        head_dim: g.meta_u64(&key("attention.key_length")).map(|v| v as usize).unwrap_or(hidden_size / num_heads.max(1)),
        rms_norm_eps: g.meta_f64(&key("attention.layer_norm_rms_epsilon")).unwrap_or(1e-5),
        rope_theta: g.meta_f64(&key("rope.freq_base")).unwrap_or(10_000.0),
        rope_scaling,
        max_position_embeddings: g.meta_u64(&key("context_length")).unwrap_or(2048) as usize,
        tie_word_embeddings: g.tensor_info("output.weight").is_none(),
    };
    cfg.validate().with_context(|| format!("{file}: unusable model metadata"))?;
    Ok(cfg)
}

/// HF tensor name → GGUF tensor name.
pub fn gguf_name(hf: &str) -> Option<String> {
    let fixed = match hf {
        "model.embed_tokens.weight" => Some("token_embd.weight"),
        "model.norm.weight" => Some("output_norm.weight"),
        "lm_head.weight" => Some("output.weight"),
        _ => None,
    };
    if let Some(f) = fixed {
        return Some(f.to_string());
    }
    let rest = hf.strip_prefix("model.layers.")?;
    let (layer, tail) = rest.split_once('.')?;
    let mapped = match tail {
        "input_layernorm.weight" => "attn_norm.weight",
        "post_attention_layernorm.weight" => "ffn_norm.weight",
        "self_attn.q_proj.weight" => "attn_q.weight",
        "self_attn.k_proj.weight" => "attn_k.weight",
        "self_attn.v_proj.weight" => "attn_v.weight",
        "self_attn.o_proj.weight" => "attn_output.weight",
        "self_attn.q_proj.bias" => "attn_q.bias",
        "self_attn.k_proj.bias" => "attn_k.bias",
        "self_attn.v_proj.bias" => "attn_v.bias",
        "self_attn.q_norm.weight" => "attn_q_norm.weight",
        "self_attn.k_norm.weight" => "attn_k_norm.weight",
        "mlp.gate_proj.weight" => "ffn_gate.weight",
        "mlp.up_proj.weight" => "ffn_up.weight",
        "mlp.down_proj.weight" => "ffn_down.weight",
        _ => return None,
    };
    Some(format!("blk.{layer}.{mapped}"))
}

pub struct GgufWeights<'a> {
    pub file: &'a GgufFile,
    pub config: ModelConfig,
}

impl WeightSource for GgufWeights<'_> {
    fn take(&mut self, name: &str) -> Result<Option<(Vec<f32>, Vec<usize>)>> {
        let Some(gname) = gguf_name(name) else { return Ok(None) };
        if self.file.tensor_info(&gname).is_none() {
            return Ok(None);
        }
        let (mut data, shape) = self.file.dequantize(&gname)?;
        if self.config.architecture == Architecture::Llama {
            let heads = if gname.ends_with("attn_q.weight") {
                Some(self.config.num_heads)
            } else if gname.ends_with("attn_k.weight") {
                Some(self.config.num_kv_heads)
            } else {
                None
            };
            if let Some(h) = heads {
                data = unpermute_rope_rows(&data, h, shape[0], shape[1]);
            }
        }
        Ok(Some((data, shape)))
    }
}

/// Inverse of llama.cpp's `permute`: within each head, GGUF row `i*2 + j` (pair `i`, coord `j`)
/// is HF row `j*half + i`; put it back.
pub fn unpermute_rope_rows(data: &[f32], heads: usize, rows: usize, cols: usize) -> Vec<f32> {
    move_rope_rows(data, heads, rows, cols, true)
}

/// llama.cpp's `permute` (HF layout → GGUF layout), used when exporting a Llama model to GGUF.
pub fn permute_rope_rows(data: &[f32], heads: usize, rows: usize, cols: usize) -> Vec<f32> {
    move_rope_rows(data, heads, rows, cols, false)
}

fn move_rope_rows(data: &[f32], heads: usize, rows: usize, cols: usize, to_hf: bool) -> Vec<f32> {
    let hd = rows / heads;
    let half = hd / 2;
    let mut out = vec![0.0; data.len()];
    for h in 0..heads {
        for i in 0..half {
            for j in 0..2 {
                let gguf_row = h * hd + i * 2 + j;
                let hf_row = h * hd + j * half + i;
                let (src, dst) = if to_hf { (gguf_row, hf_row) } else { (hf_row, gguf_row) };
                out[dst * cols..(dst + 1) * cols].copy_from_slice(&data[src * cols..(src + 1) * cols]);
            }
        }
    }
    out
}
