//! The LM head's log-prob of each target token on wgpu under autodiff, in row chunks, never
//! keeping a `[tokens, vocab]` tensor for the backward.
//!
//! Why: training needs `log softmax(hidden · headᵀ)[target]` for every position. Burn's
//! composed ops (logits → log-softmax → gather) keep several `[tokens, vocab]` tensors alive
//! until the backward: with SmolLM2's 49,152-token vocabulary that is 197 KB per position per
//! tensor, ~0.9 GB per tensor for a GRPO micro-batch of 16 conversations, and more than
//! lavapipe's 128 MiB per-tensor limit past ~680 positions. This op keeps only each row's
//! log-sum-exp: the forward takes the rows in chunks (logits of one chunk at a time, its
//! log-sum-exp and the target's logit); the backward recomputes each chunk's logits and turns
//! them into `g · (onehot − softmax)` for the two gradient matmuls. One more head matmul per
//! chunk buys the memory (the recipe of fused cross-entropy kernels).
//!
//! The chunks are computed with Burn's ops on the plain cube backend (no graph inside), and the
//! whole is registered as one autodiff op ([`super::gpu_glue`]), as [`super::target_logprobs_op`] does on flex.

use super::target_logprobs::{HeadLayout, HeadShape};
use burn::prelude::*;
use super::gpu_glue::{self as glue, Checkpointing, CubeFloat, cube, plain};
use burn::tensor::{DType, IndexingUpdateOp};
use burn_dispatch::backends::Cube;
use burn_dispatch::backends::autodiff::checkpoint::base::Checkpointer;
use burn_dispatch::backends::autodiff::grads::Gradients;
use burn_dispatch::backends::autodiff::ops::{Backward, Ops};

/// Logits held at once, in elements (64 MiB in f32): the rows of a chunk are this over the vocabulary.
pub const CHUNK_ELEMENTS: usize = 16 << 20;

/// `log softmax(hidden · headᵀ)[targets]` as `[n]` for autodiff tensors `hidden: [n, d]` on
/// wgpu and a head stored as `layout` says, or `None` (not wgpu, not autodiff, not f32, our
/// GPU kernels turned off), and the caller runs Burn's ops.
pub fn chunked_target_logprobs(hidden: &Tensor<2>, head: &Tensor<2>, layout: HeadLayout, targets: &[u32]) -> Option<Tensor<1>> {
    chunked_with(hidden, head, layout, targets, CHUNK_ELEMENTS)
}

/// [`chunked_target_logprobs`] with `chunk_elements` logits per chunk (tests use small ones).
pub fn chunked_with(hidden: &Tensor<2>, head: &Tensor<2>, layout: HeadLayout, targets: &[u32], chunk_elements: usize) -> Option<Tensor<1>> {
    let strategy = glue::strategy(hidden)?;
    if head.dtype() != DType::F32 || hidden.dtype() != DType::F32 {
        return None;
    }
    let HeadShape { n, vocab, .. } = HeadShape::of(hidden.dims(), head.dims(), layout, targets)?;
    if n == 0 {
        return None;
    }
    let rows = (chunk_elements / vocab).clamp(1, n);
    tracked(hidden, head, targets, Shape { layout, rows }, strategy)
}

#[derive(Clone, Copy, Debug)]
struct Shape {
    layout: HeadLayout,
    /// Rows per chunk.
    rows: usize,
}

fn tracked(hidden: &Tensor<2>, head: &Tensor<2>, targets: &[u32], shape: Shape, strategy: Checkpointing) -> Option<Tensor<1>> {
    // A head that does not learn (frozen) is still an autodiff tensor, with no gradient wanted.
    let ((h_node, h), (w_node, w)) = (glue::split(hidden, strategy)?, glue::split(head, strategy)?);
    let device = h.device();
    let ids = Tensor::<2, Int>::from_data(TensorData::new(targets.iter().map(|&t| t as i64).collect::<Vec<_>>(), [targets.len(), 1]), &device);
    let (logp, lse) = forward(&h, &w, &ids, shape);
    let state = || HeadState { h: cube(&h), w: cube(&w), ids: ids.clone(), lse: cube(&lse), shape };
    Some(glue::lift(glue::record(HeadBackward, [h_node, w_node], strategy, state, cube(&logp)), strategy))
}

/// `hidden_rows · headᵀ`: `[rows, vocab]`.
fn logits(h: Tensor<2>, w: &Tensor<2>, layout: HeadLayout) -> Tensor<2> {
    match layout {
        HeadLayout::VocabMajor => h.matmul(w.clone().transpose()),
        HeadLayout::DimMajor => h.matmul(w.clone()),
    }
}

/// Row ranges of the chunks.
fn chunks(n: usize, rows: usize) -> impl Iterator<Item = std::ops::Range<usize>> {
    (0..n).step_by(rows).map(move |s| s..(s + rows).min(n))
}

/// Each row's target log-prob `[n]` and log-sum-exp `[n, 1]`, one chunk of logits at a time.
fn forward(h: &Tensor<2>, w: &Tensor<2>, ids: &Tensor<2, Int>, shape: Shape) -> (Tensor<1>, Tensor<2>) {
    let [n, _] = h.dims();
    let (mut logps, mut lses) = (Vec::new(), Vec::new());
    for r in chunks(n, shape.rows) {
        let z = logits(h.clone().slice(r.clone()), w, shape.layout);
        let max = z.clone().max_dim(1);
        let lse = (z.clone() - max.clone()).exp().sum_dim(1).log() + max;
        logps.push(z.gather(1, ids.clone().slice(r)) - lse.clone());
        lses.push(lse);
    }
    (Tensor::cat(logps, 0).reshape([n]), Tensor::cat(lses, 0))
}

#[derive(Debug)]
struct HeadBackward;

/// What the backward needs: the inputs (shared with the graph, not copied), the targets and one
/// log-sum-exp per row.
#[derive(Clone, Debug)]
struct HeadState {
    h: CubeFloat,
    w: CubeFloat,
    ids: Tensor<2, Int>,
    lse: CubeFloat,
    shape: Shape,
}

/// `(d hidden, d head)` for the upstream gradient `g: [n]`, the ones wanted, recomputing each
/// chunk's logits.
fn gradients(s: &HeadState, g: Tensor<1>, want_h: bool, want_w: bool) -> (Option<Tensor<2>>, Option<Tensor<2>>) {
    let (h, w, lse) = (plain(s.h.clone()), plain(s.w.clone()), plain(s.lse.clone()));
    let [n, _] = h.dims();
    let g = g.reshape([n, 1]);
    let mut dh = Vec::new();
    let mut dw: Option<Tensor<2>> = None;
    for r in chunks(n, s.shape.rows) {
        let hc = h.clone().slice(r.clone());
        let gc = g.clone().slice(r.clone());
        // d logits = g · (onehot(target) − softmax).
        let p = (logits(hc.clone(), &w, s.shape.layout) - lse.clone().slice(r.clone())).exp();
        let dz = (p * gc.clone().neg()).scatter(1, s.ids.clone().slice(r), gc, IndexingUpdateOp::Add);
        if want_h {
            dh.push(match s.shape.layout {
                HeadLayout::VocabMajor => dz.clone().matmul(w.clone()),
                HeadLayout::DimMajor => dz.clone().matmul(w.clone().transpose()),
            });
        }
        if want_w {
            let part = match s.shape.layout {
                HeadLayout::VocabMajor => dz.transpose().matmul(hc),
                HeadLayout::DimMajor => hc.transpose().matmul(dz),
            };
            dw = Some(match dw {
                Some(acc) => acc + part,
                None => part,
            });
        }
    }
    (want_h.then(|| Tensor::cat(dh, 0)), dw)
}

impl Backward<Cube, 2> for HeadBackward {
    type State = HeadState;

    fn backward(self, ops: Ops<Self::State, 2>, grads: &mut Gradients, _: &mut Checkpointer) {
        let [parent_h, parent_w] = ops.parents;
        let g = Tensor::<1>::from_primitive::<Cube>(grads.consume::<Cube>(&ops.node));
        let (dh, dw) = gradients(&ops.state, g, parent_h.is_some(), parent_w.is_some());
        if let (Some(node), Some(dh)) = (parent_h, dh) {
            grads.register::<Cube>(node.id, cube(&dh));
        }
        if let (Some(node), Some(dw)) = (parent_w, dw) {
            grads.register::<Cube>(node.id, cube(&dw));
        }
    }
}
