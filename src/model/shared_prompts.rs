//! A training forward for conversations that share their prompt, computing each distinct prompt
//! once.
//!
//! Why: in a GRPO step the rollouts of a group all start from the same first-turn prompt, and
//! each recall prompt is answered by a group of its own; a plain forward computes every copy. In
//! the default CPU step those copies were 46 % of the positions computed (forward and backward).
//!
//! How, in two passes over the layers:
//! 1. the prompts' pass: each distinct prompt but its last token, right-padded to `[prompts,
//!    lp]` (positions = columns, causal), keeping every layer's keys and values (token-major,
//!    before RoPE) as taped tensors ([`PromptKv::Record`]);
//! 2. the rest pass: each conversation's prompt's last token and its response (but the last
//!    token), right-padded to `[rows, ls]`. Each layer puts the keys and values of the row's
//!    prompt (selected per row) before the row's own: key columns `0..lp` are the prompt's (those
//!    at or past its length masked), columns `lp..lp + ls` the row's own, at RoPE positions
//!    `len + j` ([`PromptKv::Attend`]).
//!
//! The selection's backward sums the rows' key/value gradients into the prompt they share, so
//! the hidden states and every gradient equal a plain forward's up to float summation order
//! (tests/shared_prompts.rs). Only the last layer's prompt MLP and final norm are computed for
//! nothing.

use super::kv_cache::KvCache;
use super::llama::{Llama, StepLayout};
use super::precision::Precision;
use super::rope;
use burn::prelude::*;

/// What one layer's attention does with shared prompts in a training forward.
#[derive(Clone, Debug)]
pub enum PromptKv {
    /// The prompts' pass: attend as usual and keep this layer's keys and values here.
    Record(Option<(Tensor<4>, Tensor<4>)>),
    /// The rest pass: attend to the row's prompt's keys and values, then its own.
    Attend(PromptKeys),
}

/// A layer's prompt keys and values, and how the rest pass reads them.
#[derive(Clone, Debug)]
pub struct PromptKeys {
    /// `[prompts, lp, kv_heads, head_dim]`, token-major, before RoPE.
    keys: Tensor<4>,
    values: Tensor<4>,
    /// Each row's prompt.
    rows: Tensor<1, Int>,
    /// RoPE tables `[rows, 1, lp + ls, head_dim]` at the key columns (the prompt's, then the row's).
    pub cos: Tensor<4>,
    pub sin: Tensor<4>,
}

impl PromptKeys {
    /// Keys and values `[rows, lp + ls, kv_heads, head_dim]`: each row's prompt's, then `k` and
    /// `v` (this call's own, `[rows, ls, kv_heads, head_dim]`).
    pub fn before(&self, k: Tensor<4>, v: Tensor<4>) -> (Tensor<4>, Tensor<4>) {
        let keys = Tensor::cat(vec![self.keys.clone().select(0, self.rows.clone()), k], 1);
        let values = Tensor::cat(vec![self.values.clone().select(0, self.rows.clone()), v], 1);
        (keys, values)
    }
}

impl Llama {
    /// Final hidden states `[rows, ls]` of the rest pass (see the module docs): `prompts` `[n,
    /// lp]` holds the distinct prompts but their last token, right-padded, `prompt_lens` their
    /// lengths (≤ lp, at least one ≥ 1); row `i` of `rest` `[rows, ls]` continues prompt
    /// `prompt_of[i]`. Differentiable on an autodiff device.
    pub fn forward_hidden_after_prompts(&self, inv_freq: &[f64], prompts: Tensor<2, Int>, prompt_lens: &[usize], prompt_of: &[usize], rest: Tensor<2, Int>, precision: Precision) -> Tensor<3> {
        let device = rest.device();
        let ([n, lp], [rows, ls]) = (prompts.dims(), rest.dims());
        assert!(prompt_lens.len() == n && prompt_of.len() == rows && prompt_of.iter().all(|&p| p < n) && prompt_lens.iter().all(|&l| l <= lp), "prompt rows do not match");
        let mut cache = KvCache::new(self.layers.len(), vec![0; n]);
        for layer in &mut cache.layers {
            layer.prompts = Some(PromptKv::Record(None));
        }
        let layout = StepLayout::new(inv_freq, &vec![0; n], 0, lp, &device).with_precision(precision);
        // Only the keys and values are wanted: the hidden states of the prompts are not.
        drop(self.forward_hidden(prompts, &layout, Some(&mut cache)));

        let lens: Vec<usize> = prompt_of.iter().map(|&p| prompt_lens[p]).collect();
        let key_positions: Vec<Vec<usize>> = lens.iter().map(|&len| (0..lp).chain(len..len + ls).collect()).collect();
        let (cos, sin) = rope::cos_sin(inv_freq, &key_positions, &device);
        let index: Vec<i64> = prompt_of.iter().map(|&p| p as i64).collect();
        let index = Tensor::<1, Int>::from_data(TensorData::new(index, [rows]), &device);
        let mut rest_cache = KvCache::new(self.layers.len(), vec![0; rows]);
        for (from, to) in cache.layers.iter_mut().zip(&mut rest_cache.layers) {
            let Some(PromptKv::Record(Some((keys, values)))) = from.prompts.take() else { unreachable!("every layer records its keys") };
            to.prompts = Some(PromptKv::Attend(PromptKeys { keys, values, rows: index.clone(), cos: cos.clone(), sin: sin.clone() }));
        }
        self.forward_hidden(rest, &rest_layout(inv_freq, &lens, lp, ls, &device).with_precision(precision), Some(&mut rest_cache))
    }
}

/// The rest pass's layout: row `i`'s queries at RoPE positions `lens[i] + j`; query `j` sees the
/// prompt's key columns `..lens[i]` and its own `lp..=lp + j`.
fn rest_layout(inv_freq: &[f64], lens: &[usize], lp: usize, ls: usize, device: &Device) -> StepLayout {
    let cols = lp + ls;
    let positions: Vec<Vec<usize>> = lens.iter().map(|&len| (len..len + ls).collect()).collect();
    let mut bias = Vec::with_capacity(lens.len() * ls * cols);
    for &len in lens {
        for j in 0..ls {
            bias.extend((0..cols).map(|c| if c < len || (lp..=lp + j).contains(&c) { 0.0f32 } else { -1e9 }));
        }
    }
    StepLayout::from_parts(inv_freq, &positions, bias, lp, ls, cols, device)
}
