//! [`rms_norm`](super::rms_norm) as a Burn op for training on flex (see
//! [`target_logprobs_op`](super::target_logprobs_op) for how our ops plug into Burn): the forward
//! keeps x and each row's `1/rms`, the hand-written backward gives dx and dγ. Inference on
//! flex runs the same forward without a graph.

use super::flex_glue::{self as glue, contiguous, slice};
use super::rms_norm as kernel;
use burn::prelude::*;
use burn_dispatch::backends::Flex;
use burn_dispatch::backends::autodiff::checkpoint::base::Checkpointer;
use burn_dispatch::backends::autodiff::grads::Gradients;
use burn_dispatch::backends::autodiff::ops::{Backward, Ops};
use burn_dispatch::backends::flex::FlexTensor;
use std::sync::Arc;

/// `x / √(mean(x²) + eps) · γ` over the last dimension; `None` unless x and γ are f32 on flex
/// (training on the CPU: autodiff with the same checkpointing; inference: plain) and our
/// kernels are on: the caller then uses Burn's `RmsNorm`.
pub fn fused_rms_norm<const D: usize>(x: &Tensor<D>, gamma: &Tensor<1>, eps: f64) -> Option<Tensor<D>> {
    if !glue::enabled() || x.dims()[D - 1] != gamma.dims()[0] {
        return None;
    }
    if !(x.is_autodiff() || gamma.is_autodiff()) {
        let (x, gamma) = (glue::plain(x)?, glue::plain(gamma)?);
        let (y, _) = kernel::forward(slice(&x), slice(&gamma), eps as f32);
        return Some(Tensor::from_primitive::<Flex>(glue::tensor(y, x.layout().shape().clone())));
    }
    let (nodes, [x, gamma], strategy) = glue::autodiff_pair(x, gamma)?;
    let (y, rstd) = kernel::forward(slice(&x), slice(&gamma), eps as f32);
    let y = glue::tensor(y, x.layout().shape().clone());
    let state = || NormState { x, gamma, rstd: Arc::new(rstd) };
    Some(glue::lift(glue::record(NormBackward, nodes, strategy, state, y), strategy))
}

#[derive(Debug)]
struct NormBackward;

#[derive(Clone, Debug)]
struct NormState {
    x: FlexTensor,
    gamma: FlexTensor,
    rstd: Arc<Vec<f32>>,
}

impl Backward<Flex, 2> for NormBackward {
    type State = NormState;

    fn backward(self, ops: Ops<Self::State, 2>, grads: &mut Gradients, _: &mut Checkpointer) {
        let [parent_x, parent_gamma] = ops.parents;
        let dy = contiguous(grads.consume::<Flex>(&ops.node));
        let s = ops.state;
        let (dx, dgamma) = kernel::backward(slice(&s.x), slice(&s.gamma), &s.rstd, slice(&dy));
        if let Some(node) = parent_x {
            grads.register::<Flex>(node.id, glue::tensor(dx, s.x.layout().shape().clone()));
        }
        if let Some(node) = parent_gamma {
            grads.register::<Flex>(node.id, glue::tensor(dgamma, s.gamma.layout().shape().clone()));
        }
    }
}
