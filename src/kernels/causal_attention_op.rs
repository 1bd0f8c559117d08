//! [`causal_attention`](super::causal_attention) as a Burn op for training on flex: the forward
//! keeps q, k, v, the output and each row's log-sum-exp, and the hand-written backward
//! recomputes the probabilities block by block (never the whole score matrix).

use super::causal_attention::{self as kernel, AttnShape};
use super::flex_glue::{self as glue, contiguous, slice};
use burn::prelude::*;
use burn_dispatch::backends::Flex;
use burn_dispatch::backends::autodiff::checkpoint::base::Checkpointer;
use burn_dispatch::backends::autodiff::grads::Gradients;
use burn_dispatch::backends::autodiff::ops::{Backward, Ops};
use burn_dispatch::backends::flex::FlexTensor;
use burn_std::Shape;

/// `softmax(scale · q · kᵀ + bias) · v` for q `[b, h, s, hd]`, k/v `[b, kvh, cols, hd]`, bias
/// `[b, 1, s, cols]` (no gradient flows to it), with `past` cached columns before the first
/// query row. `None` unless the tensors are f32 on flex autodiff (training on the CPU, with or
/// without gradient checkpointing): the caller then uses Burn's ops.
pub fn fused_causal_attention(q: &Tensor<4>, k: &Tensor<4>, v: &Tensor<4>, bias: &Tensor<4>, past: usize, scale: f32) -> Option<Tensor<4>> {
    if !glue::enabled() || !q.is_autodiff() {
        return None;
    }
    let [b, h, s, hd] = q.dims();
    let [kb, kvh, cols, khd] = k.dims();
    if kb != b || khd != hd || v.dims() != k.dims() || bias.dims() != [b, 1, s, cols] || kvh == 0 || h % kvh != 0 || past + s > cols {
        return None;
    }
    let shape = AttnShape { b, h, kvh, s, cols, hd, past, scale };
    let ((q, strategy), (k, sk), (v, sv), (bias, sb)) = (glue::autodiff(q)?, glue::autodiff(k)?, glue::autodiff(v)?, glue::autodiff(bias)?);
    if [sk, sv, sb] != [strategy; 3] {
        return None;
    }
    let nodes = [q.node(), k.node(), v.node()];
    let (q, k, v) = (contiguous(q.into_primitive()), contiguous(k.into_primitive()), contiguous(v.into_primitive()));
    let bias = contiguous(bias.into_primitive());
    let (out, lse) = kernel::forward(slice(&q), slice(&k), slice(&v), slice(&bias), shape);
    let out = glue::tensor(out, Shape::new([b, h, s, hd]));
    let state = || AttentionState { q, k, v, bias, out: out.clone(), lse: std::sync::Arc::new(lse), shape };
    Some(glue::lift(glue::record(AttentionBackward, nodes, strategy, state, out.clone()), strategy))
}

#[derive(Debug)]
struct AttentionBackward;

#[derive(Clone, Debug)]
struct AttentionState {
    q: FlexTensor,
    k: FlexTensor,
    v: FlexTensor,
    bias: FlexTensor,
    out: FlexTensor,
    lse: std::sync::Arc<Vec<f32>>,
    shape: AttnShape,
}

impl Backward<Flex, 3> for AttentionBackward {
    type State = AttentionState;

    fn backward(self, ops: Ops<Self::State, 3>, grads: &mut Gradients, _: &mut Checkpointer) {
        let [parent_q, parent_k, parent_v] = ops.parents;
        let dout = contiguous(grads.consume::<Flex>(&ops.node));
        let s = ops.state;
        let (dq, dk, dv) = kernel::backward(slice(&s.q), slice(&s.k), slice(&s.v), slice(&s.bias), slice(&s.out), &s.lse, slice(&dout), s.shape);
        for (parent, grad, like) in [(parent_q, dq, &s.q), (parent_k, dk, &s.k), (parent_v, dv, &s.v)] {
            if let Some(node) = parent {
                grads.register::<Flex>(node.id, glue::tensor(grad, like.layout().shape().clone()));
            }
        }
    }
}
