//! LoRA (issue 5 item 5) through Burn's built-in reparameterisation: every base weight is
//! frozen and the named projections get trainable low-rank adapters `base + α/r · A·B`.
//!
//! Contract: only the 2-D weights of the configured projections (e.g. `q_proj`, `v_proj`) in
//! every layer are adapted; embeddings, norms and the LM head stay frozen. Exports call
//! `materialize()`, which merges the adapters, so an exported model needs no adapter support.

use super::config::LoraConfig;
use crate::model::Llama;
use burn::module::{Lora, Module, ParamGroup};

/// Projections LoRA can target, with the sub-module that holds them.
pub const TARGETS: &[(&str, &str)] = &[
    ("q_proj", "self_attn"),
    ("k_proj", "self_attn"),
    ("v_proj", "self_attn"),
    ("o_proj", "self_attn"),
    ("gate_proj", "mlp"),
    ("up_proj", "mlp"),
    ("down_proj", "mlp"),
];

/// Module paths of the adapted weights, e.g. `layers.3.self_attn.q_proj.weight`.
pub fn target_paths(cfg: &LoraConfig, layers: usize) -> Vec<String> {
    let mut out = Vec::new();
    for i in 0..layers {
        for (name, parent) in TARGETS {
            if cfg.targets.iter().any(|t| t == name) {
                out.push(format!("layers.{i}.{parent}.{name}.weight"));
            }
        }
    }
    out
}

/// Attaches the adapters; `seed` seeds the device RNG that draws the `A` factors, so that two
/// runs with the same config start from the same adapters.
pub fn attach(model: Llama, cfg: &LoraConfig, layers: usize, seed: u64) -> Llama {
    model.embed_tokens.weight.val().device().seed(seed);
    model.apply_lora(Lora::new(cfg.rank, cfg.alpha as f64).set_param_group(ParamGroup::from_paths(target_paths(cfg, layers))))
}
