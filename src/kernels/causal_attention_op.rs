//! [`causal_attention`](super::causal_attention) as a Burn op for training on flex, with RoPE and
//! the head layout folded in: the forward keeps the head-major q, k, v, the output and each row's
//! log-sum-exp, and the hand-written backward recomputes the probabilities block by block (never
//! the whole score matrix), then rotates the gradients back to the projections' layout.

use super::causal_attention::{self as kernel, AttnShape};
use super::flex_glue::{self as glue, contiguous, slice};
use super::head_layout::{self as layout, Dims, Rope};
use burn::prelude::*;
use burn_dispatch::backends::Flex;
use burn_dispatch::backends::autodiff::checkpoint::base::Checkpointer;
use burn_dispatch::backends::autodiff::grads::Gradients;
use burn_dispatch::backends::autodiff::ops::{Backward, Ops};
use burn_dispatch::backends::flex::FlexTensor;
use burn_std::Shape;
use std::sync::Arc;

/// Training attention from the projections' token-major outputs: q `[b, s, h, hd]`, k and v
/// `[b, s, kvh, hd]`, RoPE tables cos/sin `[b, 1, s, hd]` (`StepLayout`'s), bias `[b, 1, s, s]`
/// (no gradient flows to it or to the tables). Rotates q and k, computes
/// `softmax(scale · q · kᵀ + bias) · v` and returns it token-major, `[b, s, h, hd]` — the layout
/// moves and RoPE are one pass each way ([`head_layout`](super::head_layout)). No KV cache: the
/// keys are the queries' own positions. `None` unless the tensors are f32 on flex autodiff
/// (training on the CPU, with or without gradient checkpointing): the caller then uses Burn's ops.
pub fn fused_causal_attention(q: &Tensor<4>, k: &Tensor<4>, v: &Tensor<4>, (cos, sin): (&Tensor<4>, &Tensor<4>), bias: &Tensor<4>, scale: f32) -> Option<Tensor<4>> {
    if !glue::enabled() || !q.is_autodiff() {
        return None;
    }
    let [b, s, h, hd] = q.dims();
    let [kb, ks, kvh, khd] = k.dims();
    let table = [b, 1, s, hd];
    if [kb, ks, khd] != [b, s, hd] || v.dims() != k.dims() || cos.dims() != table || sin.dims() != table || bias.dims() != [b, 1, s, s] || kvh == 0 || h % kvh != 0 || hd % 2 != 0 {
        return None;
    }
    let shape = AttnShape { b, h, kvh, s, cols: s, hd, past: 0, scale };
    let ((q, strategy), (k, sk), (v, sv)) = (glue::autodiff(q)?, glue::autodiff(k)?, glue::autodiff(v)?);
    let ((cos, sc), (sin, ss), (bias, sb)) = (glue::autodiff(cos)?, glue::autodiff(sin)?, glue::autodiff(bias)?);
    if [sk, sv, sc, ss, sb] != [strategy; 5] {
        return None;
    }
    let nodes = [q.node(), k.node(), v.node()];
    let [q, k, v, cos, sin, bias] = [q, k, v, cos, sin, bias].map(|t| contiguous(t.into_primitive()));
    let (qd, kd) = head_dims(&shape);
    let rope = Rope { cos: slice(&cos), sin: slice(&sin) };
    let q = layout::to_heads(slice(&q), qd, Some(rope));
    let k = layout::to_heads(slice(&k), kd, Some(rope));
    let v = layout::to_heads(slice(&v), kd, None);
    let (out, lse) = kernel::forward(&q, &k, &v, slice(&bias), shape);
    let result = glue::tensor(layout::from_heads(&out, qd, None), Shape::new([b, s, h, hd]));
    let state = || AttentionState { q: Arc::new(q), k: Arc::new(k), v: Arc::new(v), out: Arc::new(out), lse: Arc::new(lse), bias, cos, sin, shape };
    Some(glue::lift(glue::record(AttentionBackward, nodes, strategy, state, result), strategy))
}

/// The token-major sizes of q and of k/v for `sh` (no cache: keys at the queries' positions).
fn head_dims(sh: &AttnShape) -> (Dims, Dims) {
    (Dims { b: sh.b, s: sh.s, n: sh.h, hd: sh.hd }, Dims { b: sh.b, s: sh.s, n: sh.kvh, hd: sh.hd })
}

#[derive(Debug)]
struct AttentionBackward;

/// Head-major q (rotated), k (rotated), v and output, kept from the forward.
#[derive(Clone, Debug)]
struct AttentionState {
    q: Arc<Vec<f32>>,
    k: Arc<Vec<f32>>,
    v: Arc<Vec<f32>>,
    out: Arc<Vec<f32>>,
    lse: Arc<Vec<f32>>,
    bias: FlexTensor,
    cos: FlexTensor,
    sin: FlexTensor,
    shape: AttnShape,
}

impl Backward<Flex, 3> for AttentionBackward {
    type State = AttentionState;

    fn backward(self, ops: Ops<Self::State, 3>, grads: &mut Gradients, _: &mut Checkpointer) {
        let [parent_q, parent_k, parent_v] = ops.parents;
        let dout = contiguous(grads.consume::<Flex>(&ops.node));
        let s = ops.state;
        let sh = s.shape;
        let (qd, kd) = head_dims(&sh);
        let dout = layout::to_heads(slice(&dout), qd, None);
        let (dq, dk, dv) = kernel::backward(&s.q, &s.k, &s.v, slice(&s.bias), &s.out, &s.lse, &dout, sh);
        let rope = Rope { cos: slice(&s.cos), sin: slice(&s.sin) };
        for (parent, grad, dims, rope) in [(parent_q, dq, qd, Some(rope)), (parent_k, dk, kd, Some(rope)), (parent_v, dv, kd, None)] {
            if let Some(node) = parent {
                let grad = layout::from_heads(&grad, dims, rope);
                grads.register::<Flex>(node.id, glue::tensor(grad, Shape::new([dims.b, dims.s, dims.n, dims.hd])));
            }
        }
    }
}
