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
//! With shared prompts ([`super::shared_prompts`]) both passes keep each layer's input, and the
//! backward re-runs a layer's prompts (recording their keys and values, taped) and its rest
//! together: `sum(rest output · g) + sum(prompts' output · g_prompts)` gives the layer's
//! gradients and both inputs' (the top layer's prompt output feeds nothing: only its keys).
//!
//! Contract: the summed parameter gradients equal one taped backward's (up to float summation
//! order); layers below the lowest one with a trainable parameter are not re-run, and the
//! embedding only when its table learns. Cost: one more forward of the trainable layers.

use super::llama::{Llama, StepLayout, normalize};
use super::parameters::parameter_counts;
use super::precision::Precision;
use super::shared_prompts::{Passes, recorded, recording};
use burn::optim::{GradientsAccumulator, GradientsParams};
use burn::prelude::*;

/// What the backward needs after a recomputable forward.
pub struct LayerTape {
    tokens: Tensor<2, Int>,
    pass: Pass,
    /// `(layer index, its input)`, lowest first, from the lowest layer that learns.
    inputs: Vec<(usize, Tensor<3>)>,
    /// The last layer's output as a leaf: where the caller's backward stops.
    top: Tensor<3>,
    embedding_learns: bool,
}

/// How the layers ran.
enum Pass {
    Plain(StepLayout),
    /// With shared prompts ([`super::shared_prompts`]): `tokens` and `inputs` are the rest
    /// pass's; the prompts' pass kept its tokens and each layer's input beside them.
    Shared { passes: Passes, prompt_tokens: Tensor<2, Int>, prompt_inputs: Vec<Tensor<3>> },
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
        (hidden, LayerTape { tokens, pass: Pass::Plain(layout), inputs, top, embedding_learns })
    }

    /// [`Llama::forward_hidden_after_prompts`] with the layers recomputed in the backward: both
    /// passes keep each layer's input, and [`LayerTape::backward`] re-runs a layer's prompts and
    /// rest together.
    pub fn forward_hidden_after_prompts_recomputed(&self, inv_freq: &[f64], prompts: Tensor<2, Int>, prompt_lens: &[usize], prompt_of: &[usize], rest: Tensor<2, Int>, precision: Precision) -> (Tensor<3>, LayerTape) {
        let ([n, lp], [rows, ls]) = (prompts.dims(), rest.dims());
        assert!(prompt_lens.len() == n && prompt_of.len() == rows, "{n} prompts and {rows} rows, for {} lengths and {} rows' prompts", prompt_lens.len(), prompt_of.len());
        let passes = Passes::new(inv_freq, prompt_lens, prompt_of, lp, ls, precision, &rest.device());
        let lowest = self.layers.iter().position(learns).unwrap_or(self.layers.len());
        let embedding_learns = learns(&self.embed_tokens);
        let keep = |i: usize| i >= lowest || embedding_learns;
        let untaped = self.clone().no_grad();
        let mut x = untaped.embed_tokens.forward(prompts.clone());
        let (mut prompt_inputs, mut keys) = (Vec::new(), Vec::with_capacity(self.layers.len()));
        for (i, layer) in untaped.layers.iter().enumerate() {
            if keep(i) {
                prompt_inputs.push(x.clone());
            }
            let mut cache = recording();
            x = layer.forward(x, &passes.prompts, Some(&mut cache), None);
            keys.push(recorded(&mut cache));
        }
        let mut x = untaped.embed_tokens.forward(rest.clone());
        let mut inputs = Vec::with_capacity(prompt_inputs.len());
        for ((i, layer), kv) in untaped.layers.iter().enumerate().zip(keys) {
            if keep(i) {
                inputs.push((i, x.clone()));
            }
            x = layer.forward(x, &passes.rest, Some(&mut passes.reading(kv)), None);
        }
        let top = x.detach().require_grad();
        let hidden = normalize(&self.norm, top.clone(), &passes.rest);
        (hidden, LayerTape { tokens: rest, pass: Pass::Shared { passes, prompt_tokens: prompts, prompt_inputs }, inputs, top, embedding_learns })
    }
}

impl LayerTape {
    /// Adds to `acc` the parameter gradients of the loss whose `backward()` gave `grads`: the
    /// head's (from `grads`), then each recomputed layer's and the embedding's, one segment at a
    /// time, so that no more than one layer's gradients exist beside the accumulated ones.
    pub fn backward(self, model: &Llama, grads: burn::tensor::Gradients, acc: &mut GradientsAccumulator<Llama>) {
        let LayerTape { tokens, pass, inputs, top, embedding_learns } = self;
        let mut g = top.grad(&grads).map(Tensor::autodiff);
        acc.accumulate(model, GradientsParams::from_grads(grads, model));
        // With shared prompts, the gradient at the prompts' pass's output of the layer above
        // (none at the top: only the prompts' keys and values are read).
        let mut g_prompts: Option<Tensor<3>> = None;
        for (k, (i, input)) in inputs.into_iter().enumerate().rev() {
            let Some(upstream) = g.take() else { break };
            let x = input.require_grad();
            let grads = match &pass {
                Pass::Plain(layout) => (model.layers[i].forward(x.clone(), layout, None, None) * upstream).sum().backward(),
                Pass::Shared { passes, prompt_inputs, .. } => {
                    let prompt_x = prompt_inputs[k].clone().require_grad();
                    let mut cache = recording();
                    let prompt_out = model.layers[i].forward(prompt_x.clone(), &passes.prompts, Some(&mut cache), None);
                    let out = model.layers[i].forward(x.clone(), &passes.rest, Some(&mut passes.reading(recorded(&mut cache))), None);
                    let mut loss = (out * upstream).sum();
                    if let Some(g) = g_prompts.take() {
                        loss = loss + (prompt_out * g).sum();
                    }
                    let grads = loss.backward();
                    g_prompts = prompt_x.grad(&grads).map(Tensor::autodiff);
                    grads
                }
            };
            g = x.grad(&grads).map(Tensor::autodiff);
            acc.accumulate(model, GradientsParams::from_grads(grads, model));
        }
        if let Some(upstream) = g.filter(|_| embedding_learns) {
            let mut loss = (model.embed_tokens.forward(tokens) * upstream).sum();
            if let (Pass::Shared { prompt_tokens, .. }, Some(g)) = (pass, g_prompts) {
                loss = loss + (model.embed_tokens.forward(prompt_tokens) * g).sum();
            }
            acc.accumulate(model, GradientsParams::from_grads(loss.backward(), model));
        }
    }
}

/// Whether any parameter of `module` asks for a gradient.
fn learns<M: burn::module::Module>(module: &M) -> bool {
    parameter_counts(module).1 > 0
}
