//! Model → tensors under Hugging Face names and shapes: the inverse of [`Llama::from_weights`],
//! used by every export and by the run folders (`initial/`, `final/`).
//!
//! Contract: `Llama::from_weights(cfg, &mut NamedTensors(hf_tensors(m)))` rebuilds a model with
//! bit-identical parameters; projections come back `[out, in]`, a tied LM head is not repeated.

use super::llama::{Llama, WeightSource, transpose};
use anyhow::{Result, anyhow};
use burn::nn::Linear;
use burn::prelude::*;
use std::collections::BTreeMap;

/// One tensor: HF name, row-major data, row-major shape.
pub type NamedTensor = (String, Vec<f32>, Vec<usize>);

/// A tensor's values on the host as f32 (weights the CPU decode kernels pack from, the stream
/// generation keeps for the update).
pub(crate) fn host<const D: usize>(t: Tensor<D>) -> Result<Vec<f32>> {
    t.into_data().convert::<f32>().try_to_vec::<f32>().map_err(|e| anyhow!("reading a tensor's values: {e:?}"))
}

fn linear(out: &mut Vec<NamedTensor>, prefix: &str, l: &Linear) -> Result<()> {
    let [d_in, d_out] = l.weight.val().dims();
    out.push((format!("{prefix}.weight"), transpose(&host(l.weight.val())?, d_in, d_out), vec![d_out, d_in]));
    if let Some(b) = &l.bias {
        out.push((format!("{prefix}.bias"), host(b.val())?, vec![d_out]));
    }
    Ok(())
}

fn vector(out: &mut Vec<NamedTensor>, name: String, t: Tensor<1>) -> Result<()> {
    let n = t.dims()[0];
    out.push((name, host(t)?, vec![n]));
    Ok(())
}

/// Every parameter of `model` under its HF name.
pub fn hf_tensors(model: &Llama) -> Result<Vec<NamedTensor>> {
    let mut out = Vec::new();
    let table = model.embed_tokens.weight.val();
    let shape = table.dims().to_vec();
    out.push(("model.embed_tokens.weight".to_string(), host(table)?, shape));
    for (i, b) in model.layers.iter().enumerate() {
        let p = format!("model.layers.{i}");
        vector(&mut out, format!("{p}.input_layernorm.weight"), b.input_layernorm.gamma.val())?;
        linear(&mut out, &format!("{p}.self_attn.q_proj"), &b.self_attn.q_proj)?;
        linear(&mut out, &format!("{p}.self_attn.k_proj"), &b.self_attn.k_proj)?;
        linear(&mut out, &format!("{p}.self_attn.v_proj"), &b.self_attn.v_proj)?;
        linear(&mut out, &format!("{p}.self_attn.o_proj"), &b.self_attn.o_proj)?;
        if let Some(n) = &b.self_attn.q_norm {
            vector(&mut out, format!("{p}.self_attn.q_norm.weight"), n.gamma.val())?;
        }
        if let Some(n) = &b.self_attn.k_norm {
            vector(&mut out, format!("{p}.self_attn.k_norm.weight"), n.gamma.val())?;
        }
        vector(&mut out, format!("{p}.post_attention_layernorm.weight"), b.post_attention_layernorm.gamma.val())?;
        linear(&mut out, &format!("{p}.mlp.gate_proj"), &b.mlp.gate_proj)?;
        linear(&mut out, &format!("{p}.mlp.up_proj"), &b.mlp.up_proj)?;
        linear(&mut out, &format!("{p}.mlp.down_proj"), &b.mlp.down_proj)?;
    }
    vector(&mut out, "model.norm.weight".to_string(), model.norm.gamma.val())?;
    if let Some(head) = &model.lm_head {
        linear(&mut out, "lm_head", head)?;
    }
    Ok(out)
}

/// Tensors in memory as a weight source (rebuilding a model from [`hf_tensors`]).
pub struct NamedTensors(pub BTreeMap<String, (Vec<f32>, Vec<usize>)>);

impl From<Vec<NamedTensor>> for NamedTensors {
    fn from(v: Vec<NamedTensor>) -> Self {
        NamedTensors(v.into_iter().map(|(n, d, s)| (n, (d, s))).collect())
    }
}

impl WeightSource for NamedTensors {
    fn take(&mut self, name: &str) -> Result<Option<(Vec<f32>, Vec<usize>)>> {
        Ok(self.0.remove(name))
    }
}
