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
//! (tests/shared_prompts.rs). Computed for nothing: the prompts' pass past the last layer's keys
//! and values (its attention output, MLP and the final norm), ~1/30 of that pass for SmolLM2.

use super::kv_cache::{KvCache, LayerCache};
use super::llama::{Llama, StepLayout};
use super::precision::Precision;
use super::rope;
use super::stem::Start;
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

/// A layer cache that records the prompts' keys and values ([`recorded`] takes them out).
pub(super) fn recording() -> LayerCache {
    LayerCache { prompts: Some(PromptKv::Record(None)), ..Default::default() }
}

/// The keys and values a [`recording`] cache kept.
pub(super) fn recorded(cache: &mut LayerCache) -> (Tensor<4>, Tensor<4>) {
    match cache.prompts.take() {
        Some(PromptKv::Record(Some(kv))) => kv,
        _ => unreachable!("the layer ran with a recording cache"),
    }
}

/// The prompts' pass and the rest pass of one batch: layouts and how the rest reads the prompts.
pub(super) struct Passes {
    pub prompts: StepLayout,
    pub rest: StepLayout,
    /// Each rest row's prompt.
    rows: Tensor<1, Int>,
    /// RoPE tables `[rows, 1, lp + ls, head_dim]` at the rest pass's key columns.
    cos: Tensor<4>,
    sin: Tensor<4>,
}

impl Passes {
    /// For `prompts` distinct prompts of lengths `prompt_lens` right-padded to `lp`, and rest rows
    /// of `ls` columns continuing prompts `prompt_of`.
    pub fn new(inv_freq: &[f64], prompt_lens: &[usize], prompt_of: &[usize], lp: usize, ls: usize, precision: Precision, device: &Device) -> Self {
        let n = prompt_lens.len();
        assert!(lp > 0, "no prompt columns: run the plain forward");
        assert!(prompt_of.iter().all(|&p| p < n) && prompt_lens.iter().all(|&l| l <= lp), "prompt rows do not match");
        let prompts = StepLayout::new(inv_freq, &vec![0; n], 0, lp, device).with_precision(precision);
        let lens: Vec<usize> = prompt_of.iter().map(|&p| prompt_lens[p]).collect();
        let key_positions: Vec<Vec<usize>> = lens.iter().map(|&len| (0..lp).chain(len..len + ls).collect()).collect();
        let (cos, sin) = rope::cos_sin(inv_freq, &key_positions, device);
        let index: Vec<i64> = prompt_of.iter().map(|&p| p as i64).collect();
        let rows = Tensor::<1, Int>::from_data(TensorData::new(index, [prompt_of.len()]), device);
        Passes { prompts, rest: rest_layout(inv_freq, &lens, lp, ls, device).with_precision(precision), rows, cos, sin }
    }

    /// A rest-pass layer cache that reads one layer's prompt `keys` and `values`.
    pub fn reading(&self, (keys, values): (Tensor<4>, Tensor<4>)) -> LayerCache {
        let keys = PromptKeys { keys, values, rows: self.rows.clone(), cos: self.cos.clone(), sin: self.sin.clone() };
        LayerCache { prompts: Some(PromptKv::Attend(keys)), ..Default::default() }
    }
}

impl Llama {
    /// Final hidden states `[rows, ls, hidden]` of the rest pass (see the module docs): `prompts`
    /// `[n, lp]` starts the distinct prompts but their last token, right-padded, `prompt_lens`
    /// their lengths (≤ lp, at least one ≥ 1); row `i` of `rest` `[rows, ls]` continues prompt
    /// `prompt_of[i]`. Both start at the same layer (token ids, or the frozen stem's output:
    /// [`super::stem`]). Differentiable on an autodiff device.
    pub fn forward_hidden_after_prompts(&self, inv_freq: &[f64], prompts: Start, prompt_lens: &[usize], prompt_of: &[usize], rest: Start, precision: Precision) -> Tensor<3> {
        let ([n, lp], [rows, ls]) = (prompts.dims(), rest.dims());
        let from = prompts.layer();
        assert!(rest.layer() == from, "the prompts start at layer {from} and the rest at layer {}", rest.layer());
        assert!(prompt_lens.len() == n && prompt_of.len() == rows, "{n} prompts and {rows} rows, for {} lengths and {} rows' prompts", prompt_lens.len(), prompt_of.len());
        let device = self.embed_tokens.weight.val().device();
        let passes = Passes::new(inv_freq, prompt_lens, prompt_of, lp, ls, precision, &device);
        let mut cache = KvCache::new(0, vec![0; n]);
        // Layers below `from` do not run in either pass.
        cache.layers = (0..self.layers.len()).map(|i| if i < from { LayerCache::default() } else { recording() }).collect();
        // Only the keys and values are wanted: the hidden states of the prompts are not.
        drop(self.forward_hidden_from(prompts, &passes.prompts, Some(&mut cache)));
        let mut rest_cache = KvCache::new(0, vec![0; rows]);
        rest_cache.layers = cache.layers.iter_mut().enumerate().map(|(i, layer)| if i < from { LayerCache::default() } else { passes.reading(recorded(layer)) }).collect();
        self.forward_hidden_from(rest, &passes.rest, Some(&mut rest_cache))
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
