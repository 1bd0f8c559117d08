//! The stem: the frozen lower layers of a partly trained model, whose output generation has
//! already computed.
//!
//! Why: with `trainable_layers: Some(n)` (the CPU default trains the top 10 of SmolLM2's 30
//! layers) the embedding and the layers below `L − n` never change, so the residual stream
//! entering layer `L − n` at a rollout's tokens is the same in the update as when the rollout was
//! generated. The update used to run those layers again for every position: 20 of its 30 layer
//! forwards (their backward is not recorded). Generation keeps that stream for every token it
//! feeds ([`StemTap`], [`crate::generate::GenerateOptions::stem_layer`]) and the update starts at layer
//! `L − n` from it ([`Start::Stem`]).
//!
//! The arithmetic: generation's prefill and decode compute the same function as the training
//! forward in another summation order (f32), so the update's log-probs move by float rounding
//! (tests/stem.rs bounds it), not by a change of the model.

use super::kv_cache::KvCache;
use super::llama::{Llama, StepLayout};
use burn::prelude::*;

/// The residual stream entering one layer at each position a generation fed: the prompt's
/// tokens, then each generated token but the last (the inputs of a teacher-forced forward of
/// prompt + response).
#[derive(Clone, PartialEq)]
pub struct StemStates {
    /// The layer these are the input of.
    pub layer: usize,
    /// `[positions, hidden]`, row-major.
    pub values: Vec<f32>,
}

impl std::fmt::Debug for StemStates {
    /// The size, not the values (a turn's are ~10⁵ floats).
    fn fmt(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        write!(f, "StemStates {{ layer: {}, values: {} }}", self.layer, self.values.len())
    }
}

/// The layer whose input rollouts keep for the update, for a model of `layers` layers training
/// only its top `trainable` (the embedding and the layers below frozen); `None` when all layers
/// learn or the update recomputes layers (which starts from tokens).
pub fn stem_layer(layers: usize, trainable: Option<usize>, recompute: bool) -> Option<usize> {
    trainable.filter(|&n| n > 0 && n < layers && !recompute).map(|n| layers - n)
}

/// Asks a forward call to keep the stream entering `layer` ([`KvCache::stem_tap`]).
#[derive(Clone, Debug)]
pub struct StemTap {
    pub layer: usize,
    /// `[batch, seq, hidden]` of the last call.
    pub taken: Option<Tensor<3>>,
}

/// Keeps `x` (+ the layer's `pending` residual add) when `cache` taps `layer`.
pub(super) fn tap(cache: &mut KvCache, layer: usize, x: &Tensor<3>, pending: Option<&Tensor<3>>) {
    if let Some(t) = cache.stem_tap.as_mut().filter(|t| t.layer == layer) {
        t.taken = Some(match pending {
            Some(p) => x.clone() + p.clone(),
            None => x.clone(),
        });
    }
}

/// Where a forward starts.
#[derive(Clone, Debug)]
pub enum Start {
    /// Token ids `[rows, width]`: the embedding and every layer.
    Tokens(Tensor<2, Int>),
    /// The stream `[rows, width, hidden]` entering `layer` (see the module docs).
    Stem { layer: usize, stream: Tensor<3> },
}

impl Start {
    /// `[rows, width]`.
    pub fn dims(&self) -> [usize; 2] {
        match self {
            Start::Tokens(t) => t.dims(),
            Start::Stem { stream, .. } => {
                let [r, w, _] = stream.dims();
                [r, w]
            }
        }
    }

    /// The first layer the forward runs.
    pub fn layer(&self) -> usize {
        match self {
            Start::Tokens(_) => 0,
            Start::Stem { layer, .. } => *layer,
        }
    }

    /// `[rows, width, hidden]` of `rows` streams, each laid from column 0 and zero past its end.
    pub fn padded_stream(layer: usize, rows: &[&[f32]], width: usize, hidden: usize, device: &Device) -> Start {
        let mut values = vec![0.0f32; rows.len() * width * hidden];
        for (r, row) in rows.iter().enumerate() {
            assert!(row.len() <= width * hidden && row.len() % hidden == 0, "a stem row of {} values for {width} columns of {hidden}", row.len());
            values[r * width * hidden..][..row.len()].copy_from_slice(row);
        }
        Start::Stem { layer, stream: Tensor::from_data(TensorData::new(values, [rows.len(), width, hidden]), device) }
    }
}

impl Llama {
    /// Final hidden states `[rows, width, hidden]` (after the last norm) of a forward from `start`.
    pub fn forward_hidden_from(&self, start: Start, layout: &StepLayout, cache: Option<&mut KvCache>) -> Tensor<3> {
        match start {
            Start::Tokens(tokens) => self.forward_hidden(tokens, layout, cache),
            Start::Stem { layer, stream } => {
                assert!(layer < self.layers.len(), "a stem entering layer {layer} of a {}-layer model", self.layers.len());
                self.forward_layers_from(layer, stream, layout, cache, None)
            }
        }
    }

    /// The stream entering layer `layer` `[rows, width, hidden]` for `tokens`, by the training
    /// forward without a cache (what generation's tap stands in for; for tests and checks).
    pub fn stem_stream(&self, tokens: Tensor<2, Int>, layer: usize, layout: &StepLayout) -> Tensor<3> {
        assert!(layer < self.layers.len(), "layer {layer} of a {}-layer model", self.layers.len());
        let embedded = self.embed_tokens.forward(tokens);
        self.layers[..layer].iter().fold(embedded, |x, block| block.forward(x, layout, None, None))
    }
}
