//! [`target_logprobs`](super::target_logprobs) as a Burn op on flex, with a hand-written
//! backward under autodiff, so training on the CPU runs the fused head instead of Burn's
//! composed logits → log-softmax → gather chain.
//!
//! Burn 0.22 routes every tensor through its dispatch layer; a tensor on flex (with or without
//! autodiff) can be taken down to its backend primitive (`Tensor::try_into_primitive`) and a
//! result lifted back (`Tensor::from_primitive`). Autodiff ops are registered the way Burn's
//! own are (`Backward::prepare` → `stateful` → `finish`). Any other device or dtype, or
//! `MEMTRAIN_NO_CPU_KERNELS`, gets `None`, and the caller runs the composed ops.

use super::flex_glue::{self as glue, AutodiffPrimitive, Checkpointing, contiguous, slice};
use super::target_logprobs::{self as kernel, HeadLayout, HeadShape, Saved};
use burn::prelude::*;
use burn_dispatch::backends::Flex;
use burn_dispatch::backends::autodiff::checkpoint::base::Checkpointer;
use burn_dispatch::backends::autodiff::grads::Gradients;
use burn_dispatch::backends::autodiff::ops::{Backward, NodeGuard, Ops};
use burn_dispatch::backends::flex::FlexTensor;
use burn_std::Shape;
use std::sync::Arc;

/// `log softmax(hidden · headᵀ)[targets]` as `[n]` for `hidden: [n, d]` and a head stored as
/// `layout` says; `None` where the fused path does not apply (not flex, not f32, our kernels
/// turned off), so that the caller falls back to Burn's ops.
pub fn fused_target_logprobs(hidden: &Tensor<2>, head: &Tensor<2>, layout: HeadLayout, targets: &[u32]) -> Option<Tensor<1>> {
    if !glue::enabled() {
        return None;
    }
    let shape = HeadShape::of(hidden.dims(), head.dims(), layout, targets)?;
    let n = shape.n;
    if hidden.is_autodiff() || head.is_autodiff() {
        let (nodes, [h, w], strategy) = glue::autodiff_pair(hidden, head)?;
        Some(glue::lift(tracked(nodes, h, w, strategy, targets, shape), strategy))
    } else {
        let (h, w) = (glue::plain(hidden)?, glue::plain(head)?);
        let (logp, _) = kernel::forward(slice(&h), slice(&w), targets, shape);
        Some(Tensor::from_primitive::<Flex>(glue::tensor(logp, Shape::new([n]))))
    }
}

fn tracked(nodes: [NodeGuard; 2], h: FlexTensor, w: FlexTensor, strategy: Checkpointing, targets: &[u32], shape: HeadShape) -> AutodiffPrimitive {
    let (logp, saved) = kernel::forward(slice(&h), slice(&w), targets, shape);
    let state = || HeadState { h, w, targets: Arc::new(targets.to_vec()), shape, saved: Arc::new(saved) };
    glue::record(HeadBackward, nodes, strategy, state, glue::tensor(logp, Shape::new([shape.n])))
}

#[derive(Debug)]
struct HeadBackward;

/// What the backward needs; the logits are shared, not copied, until the backward takes them.
#[derive(Clone, Debug)]
struct HeadState {
    h: FlexTensor,
    w: FlexTensor,
    targets: Arc<Vec<u32>>,
    shape: HeadShape,
    saved: Arc<Saved>,
}

impl Backward<Flex, 2> for HeadBackward {
    type State = HeadState;

    fn backward(self, ops: Ops<Self::State, 2>, grads: &mut Gradients, _: &mut Checkpointer) {
        let [parent_h, parent_w] = ops.parents;
        let g = contiguous(grads.consume::<Flex>(&ops.node));
        let s = ops.state;
        let saved = Arc::try_unwrap(s.saved).unwrap_or_else(|shared| (*shared).clone());
        let (dh, dw) = kernel::backward(slice(&s.h), slice(&s.w), &s.targets, s.shape, saved, slice(&g), parent_h.is_some(), parent_w.is_some());
        if let (Some(node), Some(dh)) = (parent_h, dh) {
            grads.register::<Flex>(node.id, glue::tensor(dh, s.h.layout().shape().clone()));
        }
        if let (Some(node), Some(dw)) = (parent_w, dw) {
            grads.register::<Flex>(node.id, glue::tensor(dw, s.w.layout().shape().clone()));
        }
    }
}
