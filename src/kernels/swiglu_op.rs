//! [`swiglu`](super::swiglu) as a Burn op for training on flex (see
//! [`target_logprobs_op`](super::target_logprobs_op) for how our ops plug into Burn): the forward
//! keeps only gate and up, the hand-written backward recomputes σ(gate). Inference on flex runs
//! the same forward without a graph.

use super::flex_glue::{self as glue, contiguous, slice};
use super::swiglu as kernel;
use burn::prelude::*;
use burn_dispatch::backends::Flex;
use burn_dispatch::backends::autodiff::checkpoint::base::Checkpointer;
use burn_dispatch::backends::autodiff::grads::Gradients;
use burn_dispatch::backends::autodiff::ops::{Backward, Ops};
use burn_dispatch::backends::flex::FlexTensor;

/// `silu(gate) · up`; `None` unless both are f32 on flex with the same shape (training on the
/// CPU: autodiff with the same checkpointing; inference: plain) and our kernels are on: the
/// caller then uses Burn's ops.
pub fn fused_swiglu<const D: usize>(gate: &Tensor<D>, up: &Tensor<D>) -> Option<Tensor<D>> {
    if !glue::enabled() || gate.dims() != up.dims() {
        return None;
    }
    if !(gate.is_autodiff() || up.is_autodiff()) {
        let (gate, up) = (glue::plain(gate)?, glue::plain(up)?);
        return Some(Tensor::from_primitive::<Flex>(glue::tensor(kernel::forward(slice(&gate), slice(&up)), gate.layout().shape().clone())));
    }
    let (nodes, [gate, up], strategy) = glue::autodiff_pair(gate, up)?;
    let out = glue::tensor(kernel::forward(slice(&gate), slice(&up)), gate.layout().shape().clone());
    Some(glue::lift(glue::record(SwigluBackward, nodes, strategy, || SwigluState { gate, up }, out), strategy))
}

#[derive(Debug)]
struct SwigluBackward;

#[derive(Clone, Debug)]
struct SwigluState {
    gate: FlexTensor,
    up: FlexTensor,
}

impl Backward<Flex, 2> for SwigluBackward {
    type State = SwigluState;

    fn backward(self, ops: Ops<Self::State, 2>, grads: &mut Gradients, _: &mut Checkpointer) {
        let [parent_gate, parent_up] = ops.parents;
        let dout = contiguous(grads.consume::<Flex>(&ops.node));
        let s = ops.state;
        let (dgate, dup) = kernel::backward(slice(&s.gate), slice(&s.up), slice(&dout));
        let shape = s.gate.layout().shape().clone();
        for (parent, grad) in [(parent_gate, dgate), (parent_up, dup)] {
            if let Some(node) = parent {
                grads.register::<Flex>(node.id, glue::tensor(grad, shape.clone()));
            }
        }
    }
}
