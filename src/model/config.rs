//! Model hyper-parameters for the Llama family (Llama / SmolLM2, Qwen2, Qwen3), read from a
//! Hugging Face `config.json` or filled in by the GGUF reader. Every value the math needs is here,
//! so the model never looks at a file.

use anyhow::{Context, Result, bail};
use serde::{Deserialize, Serialize};
use std::path::Path;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Architecture {
    /// Llama, SmolLM/SmolLM2, TinyLlama: no attention biases, no q/k norm.
    Llama,
    /// Qwen2 / Qwen2.5: biases on q, k and v projections.
    Qwen2,
    /// Qwen3: RMSNorm over each head of q and k, no biases.
    Qwen3,
}

impl Architecture {
    pub fn name(self) -> &'static str {
        match self {
            Architecture::Llama => "llama",
            Architecture::Qwen2 => "qwen2",
            Architecture::Qwen3 => "qwen3",
        }
    }
    pub fn parse(name: &str) -> Option<Self> {
        match name.to_ascii_lowercase().as_str() {
            "llama" | "llamaforcausallm" | "smollm" | "smollm2" => Some(Architecture::Llama),
            "qwen2" | "qwen2forcausallm" => Some(Architecture::Qwen2),
            "qwen3" | "qwen3forcausallm" => Some(Architecture::Qwen3),
            _ => None,
        }
    }
    pub fn has_qkv_bias(self) -> bool {
        self == Architecture::Qwen2
    }
    pub fn has_qk_norm(self) -> bool {
        self == Architecture::Qwen3
    }
}

/// RoPE frequency scaling, as in HF's `rope_scaling`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum RopeScaling {
    /// Positions divided by `factor` (HF "linear").
    Linear { factor: f64 },
    /// Llama 3.1 wavelength-dependent scaling (HF "llama3").
    Llama3 { factor: f64, low_freq_factor: f64, high_freq_factor: f64, original_max_position: f64 },
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ModelConfig {
    pub architecture: Architecture,
    pub vocab_size: usize,
    pub hidden_size: usize,
    pub intermediate_size: usize,
    pub num_layers: usize,
    pub num_heads: usize,
    pub num_kv_heads: usize,
    pub head_dim: usize,
    pub rms_norm_eps: f64,
    pub rope_theta: f64,
    pub rope_scaling: Option<RopeScaling>,
    pub max_position_embeddings: usize,
    pub tie_word_embeddings: bool,
}

impl ModelConfig {
    /// SmolLM2-135M's shape (for the random-weight twin used in benchmarks).
    pub fn smollm2_135m() -> Self {
        ModelConfig {
            architecture: Architecture::Llama,
            vocab_size: 49152,
            hidden_size: 576,
            intermediate_size: 1536,
            num_layers: 30,
            num_heads: 9,
            num_kv_heads: 3,
            head_dim: 64,
            rms_norm_eps: 1e-5,
            rope_theta: 100_000.0,
            rope_scaling: None,
            max_position_embeddings: 8192,
            tie_word_embeddings: true,
        }
    }

    /// SmolLM2-360M's shape (HF `config.json`: 960 wide, 32 layers, 15 heads over 5 KV heads),
    /// for the memory benchmark's random twin (issue 7 item 4); same tokenizer as the 135M.
    pub fn smollm2_360m() -> Self {
        ModelConfig { hidden_size: 960, intermediate_size: 2560, num_layers: 32, num_heads: 15, num_kv_heads: 5, ..Self::smollm2_135m() }
    }

    /// Parameter count of the float model (embeddings counted once when tied).
    pub fn parameter_count(&self) -> usize {
        let (d, f, hd) = (self.hidden_size, self.intermediate_size, self.head_dim);
        let q = d * self.num_heads * hd;
        let kv = 2 * d * self.num_kv_heads * hd;
        let o = self.num_heads * hd * d;
        let bias = if self.architecture.has_qkv_bias() { (self.num_heads + 2 * self.num_kv_heads) * hd } else { 0 };
        let qk_norm = if self.architecture.has_qk_norm() { 2 * hd } else { 0 };
        let layer = q + kv + o + bias + qk_norm + 3 * d * f + 2 * d;
        let emb = self.vocab_size * d;
        let head = if self.tie_word_embeddings { 0 } else { emb };
        emb + head + self.num_layers * layer + d
    }

    /// Checks the numbers a hostile or broken config could get wrong before anything is allocated.
    pub fn validate(&self) -> Result<()> {
        let dims = [
            ("vocab_size", self.vocab_size),
            ("hidden_size", self.hidden_size),
            ("intermediate_size", self.intermediate_size),
            ("num_hidden_layers", self.num_layers),
            ("num_attention_heads", self.num_heads),
            ("num_key_value_heads", self.num_kv_heads),
            ("head_dim", self.head_dim),
        ];
        for (name, v) in dims {
            if v == 0 || v > 1 << 24 {
                bail!("{name} = {v} is out of range");
            }
        }
        if self.num_heads % self.num_kv_heads != 0 {
            bail!("num_attention_heads ({}) is not a multiple of num_key_value_heads ({})", self.num_heads, self.num_kv_heads);
        }
        if self.head_dim % 2 != 0 {
            bail!("head_dim ({}) must be even for rotary embeddings", self.head_dim);
        }
        if !(self.rms_norm_eps > 0.0) || !(self.rope_theta > 0.0) {
            bail!("rms_norm_eps and rope_theta must be positive");
        }
        Ok(())
    }

    /// Reads a Hugging Face `config.json`.
    pub fn from_hf_json(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).with_context(|| format!("{}: cannot read", path.display()))?;
        let v: serde_json::Value =
            serde_json::from_str(&text).with_context(|| format!("{}: not valid JSON", path.display()))?;
        Self::from_hf_value(&v).with_context(|| format!("{}: unusable model config", path.display()))
    }

    pub fn from_hf_value(v: &serde_json::Value) -> Result<Self> {
        let model_type = v["model_type"].as_str().unwrap_or("llama");
        let architecture =
            Architecture::parse(model_type).with_context(|| format!("unsupported model_type {model_type:?} (supported: llama, qwen2, qwen3)"))?;
        let req = |k: &str| -> Result<usize> {
            v[k].as_u64().map(|x| x as usize).with_context(|| format!("missing or non-integer field {k:?}"))
        };
        let hidden_size = req("hidden_size")?;
        let num_heads = req("num_attention_heads")?;
        let head_dim = match v["head_dim"].as_u64() {
            Some(h) => h as usize,
            None => hidden_size / num_heads.max(1),
        };
        // transformers ≥ 5 writes `rope_parameters` (theta included); older files `rope_scaling`.
        let rope = if v["rope_parameters"].is_object() { &v["rope_parameters"] } else { &v["rope_scaling"] };
        let rope_scaling = parse_rope_scaling(rope)?;
        let rope_theta = v["rope_theta"].as_f64().or(rope["rope_theta"].as_f64()).unwrap_or(10_000.0);
        let cfg = ModelConfig {
            architecture,
            vocab_size: req("vocab_size")?,
            hidden_size,
            intermediate_size: req("intermediate_size")?,
            num_layers: req("num_hidden_layers")?,
            num_heads,
            num_kv_heads: v["num_key_value_heads"].as_u64().map(|x| x as usize).unwrap_or(num_heads),
            head_dim,
            rms_norm_eps: v["rms_norm_eps"].as_f64().unwrap_or(1e-6),
            rope_theta,
            rope_scaling,
            max_position_embeddings: v["max_position_embeddings"].as_u64().unwrap_or(2048) as usize,
            tie_word_embeddings: v["tie_word_embeddings"].as_bool().unwrap_or(false),
        };
        cfg.validate()?;
        Ok(cfg)
    }

    /// The HF `config.json` that describes this model (used by the safetensors export).
    pub fn to_hf_value(&self) -> serde_json::Value {
        let arch_class = match self.architecture {
            Architecture::Llama => "LlamaForCausalLM",
            Architecture::Qwen2 => "Qwen2ForCausalLM",
            Architecture::Qwen3 => "Qwen3ForCausalLM",
        };
        let rope_scaling = match &self.rope_scaling {
            None => serde_json::Value::Null,
            Some(RopeScaling::Linear { factor }) => serde_json::json!({"rope_type": "linear", "factor": factor}),
            Some(RopeScaling::Llama3 { factor, low_freq_factor, high_freq_factor, original_max_position }) => serde_json::json!({
                "rope_type": "llama3", "factor": factor, "low_freq_factor": low_freq_factor,
                "high_freq_factor": high_freq_factor, "original_max_position_embeddings": original_max_position
            }),
        };
        serde_json::json!({
            "architectures": [arch_class],
            "model_type": self.architecture.name(),
            "vocab_size": self.vocab_size,
            "hidden_size": self.hidden_size,
            "intermediate_size": self.intermediate_size,
            "num_hidden_layers": self.num_layers,
            "num_attention_heads": self.num_heads,
            "num_key_value_heads": self.num_kv_heads,
            "head_dim": self.head_dim,
            "rms_norm_eps": self.rms_norm_eps,
            "rope_theta": self.rope_theta,
            "rope_scaling": rope_scaling,
            "max_position_embeddings": self.max_position_embeddings,
            "tie_word_embeddings": self.tie_word_embeddings,
            "attention_bias": self.architecture.has_qkv_bias(),
            "hidden_act": "silu",
            "torch_dtype": "float32",
        })
    }
}

fn parse_rope_scaling(v: &serde_json::Value) -> Result<Option<RopeScaling>> {
    if v.is_null() {
        return Ok(None);
    }
    let kind = v["rope_type"].as_str().or(v["type"].as_str()).unwrap_or("default");
    let factor = v["factor"].as_f64().unwrap_or(1.0);
    Ok(match kind {
        "default" => None,
        "linear" => Some(RopeScaling::Linear { factor }),
        "llama3" => Some(RopeScaling::Llama3 {
            factor,
            low_freq_factor: v["low_freq_factor"].as_f64().unwrap_or(1.0),
            high_freq_factor: v["high_freq_factor"].as_f64().unwrap_or(4.0),
            original_max_position: v["original_max_position_embeddings"].as_f64().unwrap_or(8192.0),
        }),
        other => bail!("unsupported rope_scaling type {other:?} (supported: linear, llama3)"),
    })
}
