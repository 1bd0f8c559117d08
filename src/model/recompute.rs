//! Layer-level activation recomputation (what Hugging Face calls gradient checkpointing): the
//! training forward keeps only each decoder layer's input, and the backward re-runs one layer
//! at a time to get its gradients.
//!
//! Why: on a 360M model at micro-batch 16, the activations autodiff keeps for the backward
//! (~13 GB) are most of a GRPO step's memory; Burn's balanced checkpointing recomputes only its
//! own memory-bound ops and keeps the inputs of our fused CPU ops, so it saved nothing.
//!
//! How, with Burn's autodiff as it is (one `backward()` per graph):
//! 1. forward without a tape: every layer runs on a copy of the model whose parameters ask for
//!    no gradient, so autodiff records nothing; each layer's input is kept (`[b, s, d]`);
//! 2. the last layer's output becomes a fresh leaf; the final norm, head and loss run taped
//!    from it, and the caller's `backward()` reaches that leaf's gradient `g`;
//! 3. from the top layer down, each layer is run again, taped, from its kept input (a leaf),
//!    and `sum(output · g)` is back-propagated: its gradient is exactly the chain rule's, giving
//!    the layer's parameter gradients and the next `g` (its input's gradient); the embedding
//!    lookup last, the same way.
//!
//! Contract: the summed parameter gradients equal one taped backward's (up to float summation
//! order); layers below the lowest one with a trainable parameter are not re-run, and the
//! embedding only when its table learns. Cost: one more forward of the trainable layers.

use super::llama::{Llama, StepLayout, normalize};
use super::parameters::parameter_counts;
use burn::optim::{GradientsAccumulator, GradientsParams};
use burn::prelude::*;

/// What the backward needs after a recomputable forward.
pub struct LayerTape {
    tokens: Tensor<2, Int>,
    layout: StepLayout,
    /// `(layer index, its input)`, lowest first, from the lowest layer that learns.
    inputs: Vec<(usize, Tensor<3>)>,
    /// The last layer's output as a leaf: where the caller's backward stops.
    top: Tensor<3>,
    embedding_learns: bool,
}

impl Llama {
    /// Final hidden states (after the last norm), as [`Llama::forward_hidden`] without a cache,
    /// differentiable only from the top layer's output up; [`LayerTape::backward`] does the rest.
    pub fn forward_hidden_recomputed(&self, tokens: Tensor<2, Int>, layout: StepLayout) -> (Tensor<3>, LayerTape) {
        let lowest = self.layers.iter().position(learns).unwrap_or(self.layers.len());
        let embedding_learns = learns(&self.embed_tokens);
        let untaped = self.clone().no_grad();
        let mut x = untaped.embed_tokens.forward(tokens.clone());
        let mut inputs = Vec::with_capacity(self.layers.len() - lowest);
        for (i, layer) in untaped.layers.iter().enumerate() {
            if i >= lowest || embedding_learns {
                inputs.push((i, x.clone()));
            }
            x = layer.forward(x, &layout, None, None);
        }
        let top = x.detach().require_grad();
        let hidden = normalize(&self.norm, top.clone(), &layout);
        (hidden, LayerTape { tokens, layout, inputs, top, embedding_learns })
    }
}

impl LayerTape {
    /// Adds to `acc` the parameter gradients of the loss whose `backward()` gave `grads`: the
    /// head's (from `grads`), then each recomputed layer's and the embedding's, one segment at a
    /// time, so that no more than one layer's gradients exist beside the accumulated ones.
    pub fn backward(self, model: &Llama, grads: burn::tensor::Gradients, acc: &mut GradientsAccumulator<Llama>) {
        let mut g = self.top.grad(&grads).map(Tensor::autodiff);
        acc.accumulate(model, GradientsParams::from_grads(grads, model));
        for (i, input) in self.inputs.into_iter().rev() {
            let Some(upstream) = g.take() else { break };
            let x = input.require_grad();
            let out = model.layers[i].forward(x.clone(), &self.layout, None, None);
            let grads = (out * upstream).sum().backward();
            g = x.grad(&grads).map(Tensor::autodiff);
            acc.accumulate(model, GradientsParams::from_grads(grads, model));
        }
        if let Some(upstream) = g.filter(|_| self.embedding_learns) {
            let grads = (model.embed_tokens.forward(self.tokens) * upstream).sum().backward();
            acc.accumulate(model, GradientsParams::from_grads(grads, model));
        }
    }
}

/// Whether any parameter of `module` asks for a gradient.
fn learns<M: burn::module::Module>(module: &M) -> bool {
    parameter_counts(module).1 > 0
}
