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
pub fn fused_causal_attention(q: &Tensor<4>, k: &Tensor<4>, v: &Tensor<4>, tables: (&Tensor<4>, &Tensor<4>), bias: &Tensor<4>, scale: f32) -> Option<Tensor<4>> {
    fused_attention_after(q, k, v, tables, tables, bias, 0, scale)
}

/// [`fused_causal_attention`] for queries that follow `past` key columns: q `[b, s, h, hd]` with
/// its tables `[b, 1, s, hd]`, k and v `[b, cols, kvh, hd]` (`cols ≥ past + s`, the last `s`
/// at the queries' own columns) with theirs `[b, 1, cols, hd]`, bias `[b, 1, s, cols]`. Query
/// row `r` sees at most the key columns `..=past + r`; the bias masks the rest. Gradients flow
/// to q, k and v (all `cols` key columns). Used by the shared-prompt training forward
/// ([`crate::model::shared_prompts`]), whose keys are a prompt's and then the response's own.
#[allow(clippy::too_many_arguments)]
pub fn fused_attention_after(q: &Tensor<4>, k: &Tensor<4>, v: &Tensor<4>, (q_cos, q_sin): (&Tensor<4>, &Tensor<4>), (k_cos, k_sin): (&Tensor<4>, &Tensor<4>), bias: &Tensor<4>, past: usize, scale: f32) -> Option<Tensor<4>> {
    if !glue::enabled() || !q.is_autodiff() {
        return None;
    }
    let [b, s, h, hd] = q.dims();
    let [kb, cols, kvh, khd] = k.dims();
    let (q_table, k_table) = ([b, 1, s, hd], [b, 1, cols, hd]);
    let tables_fit = q_cos.dims() == q_table && q_sin.dims() == q_table && k_cos.dims() == k_table && k_sin.dims() == k_table;
    if [kb, khd] != [b, hd] || past + s > cols || v.dims() != k.dims() || !tables_fit || bias.dims() != [b, 1, s, cols] || kvh == 0 || h % kvh != 0 || hd % 2 != 0 {
        return None;
    }
    let shape = AttnShape { b, h, kvh, s, cols, hd, past, scale };
    let ((q, strategy), (k, sk), (v, sv)) = (glue::autodiff(q)?, glue::autodiff(k)?, glue::autodiff(v)?);
    let ((q_cos, s1), (q_sin, s2), (k_cos, s3), (k_sin, s4), (bias, sb)) = (glue::autodiff(q_cos)?, glue::autodiff(q_sin)?, glue::autodiff(k_cos)?, glue::autodiff(k_sin)?, glue::autodiff(bias)?);
    if [sk, sv, s1, s2, s3, s4, sb] != [strategy; 7] {
        return None;
    }
    let nodes = [q.node(), k.node(), v.node()];
    let [q, k, v, q_cos, q_sin, k_cos, k_sin, bias] = [q, k, v, q_cos, q_sin, k_cos, k_sin, bias].map(|t| contiguous(t.into_primitive()));
    let (qd, kd) = head_dims(&shape);
    let q = layout::to_heads(slice(&q), qd, Some(Rope { cos: slice(&q_cos), sin: slice(&q_sin) }));
    let k = layout::to_heads(slice(&k), kd, Some(Rope { cos: slice(&k_cos), sin: slice(&k_sin) }));
    let v = layout::to_heads(slice(&v), kd, None);
    let (out, lse) = kernel::forward(&q, &k, &v, slice(&bias), shape);
    let result = glue::tensor(layout::from_heads(&out, qd, None), Shape::new([b, s, h, hd]));
    let state = || AttentionState { q: Arc::new(q), k: Arc::new(k), v: Arc::new(v), out: Arc::new(out), lse: Arc::new(lse), bias, q_tables: (q_cos, q_sin), k_tables: (k_cos, k_sin), shape };
    Some(glue::lift(glue::record(AttentionBackward, nodes, strategy, state, result), strategy))
}

/// The token-major sizes of q and of k/v for `sh`.
fn head_dims(sh: &AttnShape) -> (Dims, Dims) {
    (Dims { b: sh.b, s: sh.s, n: sh.h, hd: sh.hd }, Dims { b: sh.b, s: sh.cols, n: sh.kvh, hd: sh.hd })
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
    /// RoPE's `(cos, sin)` at the query rows and at the key columns.
    q_tables: (FlexTensor, FlexTensor),
    k_tables: (FlexTensor, FlexTensor),
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
        let q_rope = Rope { cos: slice(&s.q_tables.0), sin: slice(&s.q_tables.1) };
        let k_rope = Rope { cos: slice(&s.k_tables.0), sin: slice(&s.k_tables.1) };
        for (parent, grad, dims, rope) in [(parent_q, dq, qd, Some(q_rope)), (parent_k, dk, kd, Some(k_rope)), (parent_v, dv, kd, None)] {
            if let Some(node) = parent {
                let grad = layout::from_heads(&grad, dims, rope);
                grads.register::<Flex>(node.id, glue::tensor(grad, Shape::new([dims.b, dims.s, dims.n, dims.hd])));
            }
        }
    }
}
