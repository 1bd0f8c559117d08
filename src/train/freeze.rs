//! Partial fine-tuning: only the top N decoder layers (and the final norm, and an untied LM
//! head) learn; the embeddings and the layers below stay frozen.
//!
//! Why: on a CPU the backward pass costs about twice the forward. With the lower layers frozen,
//! no activation there needs a gradient (the token ids are not differentiable and no frozen
//! weight asks for one), so Burn's autodiff records nothing below layer L − N and the backward
//! pass stops there. For a pretrained model, the lower layers hold the general skills (reading,
//! copying) that the memory agent reuses; the top layers learn the format.
//!
//! Contract: [`freeze_below`] leaves `trainable` layers counted from the top with their
//! gradient state unchanged (so LoRA's frozen base weights stay frozen) and turns gradients off
//! for every tensor of `embed_tokens` and of `layers.0 .. layers.(L − N − 1)`.

use crate::model::Llama;
use anyhow::{Result, bail};
use burn::module::{Module, ParamGroup};

/// The module-path pattern of the frozen part: the embeddings and the lowest `layers − trainable`
/// layers.
pub fn frozen_pattern(layers: usize, trainable: usize) -> String {
    let frozen: Vec<String> = (0..layers.saturating_sub(trainable)).map(|i| i.to_string()).collect();
    if frozen.is_empty() { r"^embed_tokens\.".to_string() } else { format!(r"^(embed_tokens\.|layers\.({})\.)", frozen.join("|")) }
}

pub fn freeze_below(model: Llama, trainable: usize) -> Result<Llama> {
    let layers = model.layers.len();
    if trainable == 0 || trainable > layers {
        bail!("trainable_layers = {trainable}: the model has {layers} layers (choose 1..={layers})");
    }
    let group = ParamGroup::from_regex(frozen_pattern(layers, trainable)).map_err(|e| anyhow::anyhow!("freezing layers: {e:?}"))?;
    Ok(model.set_require_grad_group(group, false))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_pattern_covers_the_embeddings_and_exactly_the_lower_layers() {
        let group = |trainable| ParamGroup::from_regex(frozen_pattern(30, trainable)).unwrap();
        let matches = |g: &ParamGroup, path: &str| g.matches(&burn::module::ParamId::new(), Some(path));
        let re = group(8);
        assert!(matches(&re, "embed_tokens.weight"));
        assert!(matches(&re, "layers.0.self_attn.q_proj.weight") && matches(&re, "layers.21.mlp.up_proj.weight"));
        assert!(!matches(&re, "layers.22.mlp.up_proj.weight") && !matches(&re, "layers.29.input_layernorm.weight"));
        assert!(!matches(&re, "norm.weight") && !matches(&re, "lm_head.weight"));
        // Layer 2 must not match layers 20-29 by prefix.
        let re = group(27);
        assert!(matches(&re, "layers.2.mlp.up_proj.weight") && !matches(&re, "layers.20.mlp.up_proj.weight"));
    }
}
