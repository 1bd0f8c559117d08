//! Our wgpu kernels as Burn autodiff ops for training on the GPU: RMSNorm, SiLU·up (of two
//! tensors, or of one fused gate/up projection's halves), RoPE with
//! the move to head-major layout, and attention's scaled softmax over biased scores, each one launch
//! forward and one backward (plus a sum over rows for RMSNorm's dγ); attention from one fused
//! q/k/v projection ([`qkv_attention`]), whose inside is two of those kernels and Burn's matmuls,
//! and from separate ones ([`attention`]: its inside without the layout move); and the
//! projections' products ([`linear`]), Burn's matmuls with less kept.
//!
//! Why: a training step on wgpu ran Burn's composed ops, each element-wise op of them one
//! launch forward and more in the backward, and GPU steps are bound by launches (README,
//! Performance). Each op here takes its inputs apart into graph nodes and plain cube tensors
//! ([`super::gpu_glue`]), runs the inference kernel of [`super::gpu`] on them and records one
//! op whose backward runs [`super::gpu_backward`]'s kernel. What the backward keeps: RMSNorm
//! its input and γ, SiLU·up its two inputs (the halves op its one input), RoPE nothing (its
//! tables are constants), softmax its output (Burn's composed ops keep those and their
//! intermediates); attention q, k and v, and its probabilities only while small; a product its
//! input and the weight's own buffers, not a concatenated or cast copy of the weight. Each backward falls
//! back on the same formula in Burn's ops ([`composed`]) if its kernel declines, which the
//! forward's checks leave no case for.

use super::gpu;
use super::gpu_backward as kernels;
use super::gpu_glue::{self as glue, Checkpointing, CubeFloat};
use burn::prelude::*;
use burn::tensor::FloatDType;
use burn_dispatch::backends::Cube;
use burn_dispatch::backends::autodiff::checkpoint::base::Checkpointer;
use burn_dispatch::backends::autodiff::grads::Gradients;
use burn_dispatch::backends::autodiff::NodeId;
use burn_dispatch::backends::autodiff::ops::{Backward, Ops};

/// `x / √(mean(x²) + eps) · γ` over the last dimension of training tensors on wgpu, or `None`
/// (the caller runs Burn's ops).
pub fn rms_norm<const D: usize>(x: &Tensor<D>, gamma: &Tensor<1>, eps: f64) -> Option<Tensor<D>> {
    let strategy = glue::strategy(x)?;
    let ((x_node, x), (gamma_node, gamma)) = (glue::split(x, strategy)?, glue::split(gamma, strategy)?);
    let y = gpu::rms_norm(&x, &gamma, eps)?;
    let state = || NormState { x: glue::cube(&x), gamma: glue::cube(&gamma), eps };
    Some(glue::lift(glue::record(NormBackward::<D>, [x_node, gamma_node], strategy, state, glue::cube(&y)), strategy))
}

/// `silu(gate) · up` of training tensors on wgpu, or `None`.
pub fn swiglu<const D: usize>(gate: &Tensor<D>, up: &Tensor<D>) -> Option<Tensor<D>> {
    let strategy = glue::strategy(gate)?;
    let ((gate_node, gate), (up_node, up)) = (glue::split(gate, strategy)?, glue::split(up, strategy)?);
    let y = gpu::swiglu(&gate, &up)?;
    let state = || SwigluState { gate: glue::cube(&gate), up: glue::cube(&up) };
    Some(glue::lift(glue::record(SwigluBackward::<D>, [gate_node, up_node], strategy, state, glue::cube(&y)), strategy))
}

/// `silu(gate) · up` of a training tensor `x` `[.., 2·width]` on wgpu holding gate's columns
/// then up's (one fused gate/up projection), or `None`. Keeps `x` for the backward, which
/// returns one gradient for the one projection.
pub fn swiglu_halves(x: &Tensor<3>) -> Option<Tensor<3>> {
    let strategy = glue::strategy(x)?;
    let (node, x) = glue::split(x, strategy)?;
    let y = gpu::swiglu_halves(&x)?;
    Some(glue::lift(glue::record(SwigluHalvesBackward, [node], strategy, || glue::cube(&x), glue::cube(&y)), strategy))
}

/// RoPE on a training tensor `x` `[batch, seq, heads, head_dim]` on wgpu, returned head-major
/// (see [`gpu::rope_to_heads`]), or `None`.
pub fn rope_to_heads(x: &Tensor<4>, cos: &Tensor<4>, sin: &Tensor<4>) -> Option<Tensor<4>> {
    let strategy = glue::strategy(x)?;
    let (node, x) = glue::split(x, strategy)?;
    let (cos, sin) = (constant(cos, strategy)?, constant(sin, strategy)?);
    let y = gpu::rope_to_heads(&x, &cos, &sin)?;
    let state = || RopeState { cos: glue::cube(&cos), sin: glue::cube(&sin) };
    Some(glue::lift(glue::record(RopeBackward, [node], strategy, state, glue::cube(&y)), strategy))
}

/// `softmax(scale · scores + bias)` along the last axis for training `scores` `[batch, heads,
/// rows, cols]` on wgpu with a `bias` `[batch, 1, rows, cols]` that learns nothing, or `None`.
pub fn softmax_bias(scores: &Tensor<4>, bias: &Tensor<4>, scale: f32) -> Option<Tensor<4>> {
    let strategy = glue::strategy(scores)?;
    let (node, scores) = glue::split(scores, strategy)?;
    let p = kernels::softmax_bias(&scores, &constant(bias, strategy)?, scale)?;
    let state = || (glue::cube(&p), scale);
    Some(glue::lift(glue::record(SoftmaxBackward, [node], strategy, state, glue::cube(&p)), strategy))
}

/// Causal attention of a training step on wgpu straight from one fused q/k/v projection `qkv`
/// `[batch, seq, (heads + 2·kv_heads)·head_dim]` (q's heads, then k's, then v's): RoPE with
/// `cos`/`sin` `[batch, 1, seq, head_dim]`, then `softmax(scale · q·kᵀ + bias)·v` over grouped
/// KV heads, `bias` `[batch, 1, g·seq, seq]` with its rows repeated for the `g = heads /
/// kv_heads` query heads of a KV head (as the grouped layout stacks them). Returns head-major
/// `[batch, heads, seq, head_dim]`, or `None`.
///
/// One autodiff op whose inside is two of our kernels (the layout moves, softmax) and Burn's
/// plain matmuls each way: the layout moves of q, k and v are one launch instead of three
/// (RoPE twice and v's copy), and their gradients come back as one tensor for the one
/// projection's backward. Keeps scaled q, k and v, and the probabilities only when
/// `keep_probabilities` (see [`keeps_probabilities`]); else the backward recomputes them (one
/// more q·kᵀ and softmax), as FlashAttention's backward does.
pub fn qkv_attention(qkv: &Tensor<3>, heads: gpu::QkvHeads, cos: &Tensor<4>, sin: &Tensor<4>, bias: &Tensor<4>, scale: f32, keep_probabilities: bool) -> Option<Tensor<4>> {
    let strategy = glue::strategy(qkv)?;
    let (node, qkv) = glue::split(qkv, strategy)?;
    let (cos, sin, bias) = (constant(cos, strategy)?, constant(sin, strategy)?, constant(bias, strategy)?);
    let (q, k, v) = kernels::qkv_to_heads(&qkv, &cos, &sin, heads, scale)?;
    let [b, h, s, hd] = q.dims();
    let kvh = heads.kv_heads;
    // The g query heads of a KV head stacked along the rows: one matmul per KV head.
    let q = q.reshape([b, kvh, h / kvh * s, hd]);
    let p = kernels::softmax_bias(&q.clone().matmul(k.clone().swap_dims(2, 3)), &bias, 1.0)?;
    let out = p.clone().matmul(v.clone()).reshape([b, h, s, hd]);
    let products = || Products::keep(&q, &k, &v, keep_probabilities.then_some(&p), &bias, 1.0);
    let state = || AttentionState { products: products(), cos: glue::cube(&cos), sin: glue::cube(&sin), scale };
    Some(glue::lift(glue::record(AttentionBackward, [node], strategy, state, glue::cube(&out)), strategy))
}

/// `softmax(scale · q·kᵀ + bias)·v` of training tensors on wgpu, or `None`: `q` `[batch,
/// kv_heads, rows, head_dim]` (RoPE applied; the `g` query heads of a KV head stacked along
/// the rows), `k` and `v` `[batch, kv_heads, cols, head_dim]`, `bias` `[batch, 1, rows, cols]`
/// that learns nothing, all of one dtype, in which the products are computed. Returns `[batch,
/// kv_heads, rows, head_dim]`.
///
/// The attention of the separate q/k/v projections (LoRA adapters on them, Qwen3's q/k norms),
/// whose three inputs come from three ops: [`qkv_attention`]'s inside as its own op, keeping
/// q, k and v, and the probabilities only when `keep_probabilities` (Burn's matmul and softmax
/// keep them always).
pub fn attention(q: &Tensor<4>, k: &Tensor<4>, v: &Tensor<4>, bias: &Tensor<4>, scale: f32, keep_probabilities: bool) -> Option<Tensor<4>> {
    let strategy = glue::strategy(q)?;
    let [b, kvh, _, hd] = q.dims();
    let cols = k.dims()[2];
    let dtype = q.dtype();
    if k.dims() != [b, kvh, cols, hd] || v.dims() != k.dims() || [k.dtype(), v.dtype(), bias.dtype()] != [dtype; 3] {
        return None;
    }
    let ((q_node, q), (k_node, k), (v_node, v)) = (glue::split(q, strategy)?, glue::split(k, strategy)?, glue::split(v, strategy)?);
    let bias = constant(bias, strategy)?;
    let p = kernels::softmax_bias(&q.clone().matmul(k.clone().swap_dims(2, 3)), &bias, scale)?;
    let out = p.clone().matmul(v.clone());
    let state = || Products::keep(&q, &k, &v, keep_probabilities.then_some(&p), &bias, scale);
    Some(glue::lift(glue::record(ProductsBackward, [q_node, k_node, v_node], strategy, state, glue::cube(&out)), strategy))
}

/// `x · W` for a training `x` `[.., in]` on wgpu, where `W` `[in, out]` is `weight`, the
/// concatenation of `parts` along the columns (one part: the weight itself); the product in
/// `compute` (f16 under mixed precision, else `x`'s dtype) and returned in `x`'s dtype. Or
/// `None` (the caller runs Burn's linear).
///
/// What differs from Burn's linear: what the backward keeps. Burn's keeps the weight its
/// matmul read, which is a copy when the weight was concatenated (the fused q/k/v and gate/up
/// projections) or cast to f16 (mixed precision): for SmolLM2-135M ~280 MB of f32 copies, or
/// ~210 MB of f16 ones, kept from each forward to its backward. This op keeps `x` (in
/// `compute`) and the parts, which are the parameters' own buffers, and builds the weight
/// again in the backward: one concatenation and/or cast launch more per projection there.
pub fn linear<const D: usize>(x: &Tensor<D>, weight: &Tensor<2>, parts: &[Tensor<2>], compute: FloatDType) -> Option<Tensor<D>> {
    let strategy = glue::strategy(x)?;
    let [rows, cols] = weight.dims();
    let widths: usize = parts.iter().map(|p| p.dims()[1]).sum();
    if parts.is_empty() || x.dims()[D - 1] != rows || widths != cols || parts.iter().any(|p| p.dims()[0] != rows || p.dtype() != weight.dtype()) {
        return None;
    }
    // A plain weight (frozen, read raw) gets a node that wants nothing; under balanced
    // checkpointing its strategy differs from x's, and `split` declines (Burn's linear runs).
    let weight = match weight.is_autodiff() {
        true => weight.clone(),
        false => weight.clone().autodiff(),
    };
    // x is read only for the weight's gradient (a frozen weight's product keeps no x).
    let keep_x = glue::tracked(&weight, strategy).is_some_and(|w| w.is_tracked());
    let ((x_node, x), (w_node, w)) = (glue::split(x, strategy)?, glue::split(&weight, strategy)?);
    let parts = parts.iter().map(|p| constant(p, strategy).map(|p| glue::cube(&p))).collect::<Option<Vec<_>>>()?;
    let output = x.dtype();
    let x = x.cast(compute);
    let y = burn::tensor::module::linear(x.clone(), w.cast(compute), None).cast(output);
    let state = || LinearState { x: keep_x.then(|| glue::cube(&x)), parts, compute: x.dtype(), output };
    Some(glue::lift(glue::record(LinearBackward::<D>, [x_node, w_node], strategy, state, glue::cube(&y)), strategy))
}

/// Whether attention ([`qkv_attention`], [`attention`]) should keep its probabilities, of
/// shape `p` (`batch · heads · rows · cols` values a layer), for the backward: when they are
/// small (at most 1 MiB a layer, e.g. up to 170 tokens of one SmolLM2-135M sequence in f32, 241
/// in f16), where recomputing them would cost two launches a layer for nothing worth saving;
/// not when they are large, where they are the biggest thing a step keeps (SmolLM2-135M at
/// 1,024 tokens: 38 MB a layer, 1.1 GB of a 4.9 GB f32 step) and the recomputation about 3 %
/// more arithmetic.
pub fn keeps_probabilities(p: [usize; 4], dtype: burn::tensor::DType) -> bool {
    p.iter().product::<usize>() * dtype.size() <= 1 << 20
}

/// The plain cube tensor of an input that takes no gradient: a training tensor's (its node
/// dropped), or a plain one's.
fn constant<const D: usize>(t: &Tensor<D>, strategy: Checkpointing) -> Option<Tensor<D>> {
    match t.is_autodiff() {
        true => glue::split(t, strategy).map(|(_, plain)| plain),
        false => t.clone().try_into_primitive::<Cube>().ok().map(glue::plain),
    }
}

/// The upstream gradient of an op's output.
fn upstream<const D: usize, S, const N: usize>(ops: &Ops<S, N>, grads: &mut Gradients) -> Tensor<D> {
    glue::plain(grads.consume::<Cube>(&ops.node))
}

/// Registers `grad` for the parent behind `parent`, when one wants it.
fn give<const D: usize>(grads: &mut Gradients, parent: Option<NodeId>, grad: impl FnOnce() -> Tensor<D>) {
    if let Some(id) = parent {
        grads.register::<Cube>(id, glue::cube(&grad()));
    }
}

#[derive(Debug)]
struct LinearBackward<const D: usize>;

/// What [`linear`]'s backward reads: the input in the product's dtype (when the weight learns),
/// the weight's parts (the parameters' buffers, in the weight's dtype), the product's dtype and
/// the input's own.
#[derive(Clone, Debug)]
struct LinearState {
    x: Option<CubeFloat>,
    parts: Vec<CubeFloat>,
    compute: burn::tensor::DType,
    output: burn::tensor::DType,
}

impl<const D: usize> Backward<Cube, 2> for LinearBackward<D> {
    type State = LinearState;

    fn backward(self, ops: Ops<Self::State, 2>, grads: &mut Gradients, _: &mut Checkpointer) {
        let dy = upstream::<D, _, 2>(&ops, grads);
        let [parent_x, parent_w] = ops.parents;
        let s = ops.state;
        let compute: FloatDType = s.compute.into();
        let dy = dy.cast(compute);
        let parts: Vec<Tensor<2>> = s.parts.into_iter().map(glue::plain).collect();
        let master: FloatDType = parts[0].dtype().into();
        // Burn's linear backward, on the weight rebuilt: dx = dy·Wᵀ, dW = xᵀ·dy over all rows.
        give(grads, parent_x.map(|n| n.id), || {
            let w = match parts.len() {
                1 => parts[0].clone(),
                _ => Tensor::cat(parts.clone(), 1),
            };
            burn::tensor::module::linear(dy.clone(), w.cast(compute).transpose(), None).cast(FloatDType::from(s.output))
        });
        if let (Some(parent), Some(x)) = (parent_w, s.x) {
            let rows = |t: Tensor<D>| -> Tensor<2> {
                let width = t.dims()[D - 1] as i32;
                t.reshape([-1, width])
            };
            give(grads, Some(parent.id), || rows(glue::plain::<D>(x)).transpose().matmul(rows(dy)).cast(master));
        }
    }
}

#[derive(Debug)]
struct NormBackward<const D: usize>;

#[derive(Clone, Debug)]
struct NormState {
    x: CubeFloat,
    gamma: CubeFloat,
    eps: f64,
}

impl<const D: usize> Backward<Cube, 2> for NormBackward<D> {
    type State = NormState;

    fn backward(self, ops: Ops<Self::State, 2>, grads: &mut Gradients, _: &mut Checkpointer) {
        let dy = upstream::<D, _, 2>(&ops, grads);
        let [parent_x, parent_gamma] = ops.parents;
        let s = ops.state;
        let x = glue::plain::<D>(s.x);
        let dims = x.dims();
        // Rows of the last dimension: the backward sees any rank as `[rows, width]`.
        let rows = |t: Tensor<D>| -> Tensor<2> { t.reshape([-1, dims[D - 1] as i32]) };
        let (x, dy, gamma) = (rows(x), rows(dy), glue::plain::<1>(s.gamma));
        let (dx, dgamma) = kernels::rms_norm_backward(&x, &gamma, &dy, s.eps).unwrap_or_else(|| composed::rms_norm_backward(&x, &gamma, &dy, s.eps));
        give(grads, parent_x.map(|n| n.id), || dx.reshape(dims));
        give(grads, parent_gamma.map(|n| n.id), || dgamma);
    }
}

#[derive(Debug)]
struct SwigluBackward<const D: usize>;

#[derive(Clone, Debug)]
struct SwigluState {
    gate: CubeFloat,
    up: CubeFloat,
}

impl<const D: usize> Backward<Cube, 2> for SwigluBackward<D> {
    type State = SwigluState;

    fn backward(self, ops: Ops<Self::State, 2>, grads: &mut Gradients, _: &mut Checkpointer) {
        let dy = upstream::<D, _, 2>(&ops, grads);
        let [parent_gate, parent_up] = ops.parents;
        let (gate, up) = (glue::plain::<D>(ops.state.gate), glue::plain::<D>(ops.state.up));
        let (dgate, dup) = kernels::swiglu_backward(&gate, &up, &dy).unwrap_or_else(|| composed::swiglu_backward(&gate, &up, &dy));
        give(grads, parent_gate.map(|n| n.id), || dgate);
        give(grads, parent_up.map(|n| n.id), || dup);
    }
}

#[derive(Debug)]
struct SwigluHalvesBackward;

impl Backward<Cube, 1> for SwigluHalvesBackward {
    /// The fused projection's output.
    type State = CubeFloat;

    fn backward(self, ops: Ops<Self::State, 1>, grads: &mut Gradients, _: &mut Checkpointer) {
        let dy: Tensor<3> = upstream(&ops, grads);
        let [parent] = ops.parents;
        let x: Tensor<3> = glue::plain(ops.state);
        give(grads, parent.map(|n| n.id), || {
            kernels::swiglu_halves_backward(&x, &dy).unwrap_or_else(|| {
                let width = dy.dims()[2];
                let (gate, up) = (x.clone().narrow(2, 0, width), x.clone().narrow(2, width, width));
                let (dgate, dup) = composed::swiglu_backward(&gate, &up, &dy);
                Tensor::cat(vec![dgate, dup], 2)
            })
        });
    }
}

#[derive(Debug)]
struct RopeBackward;

#[derive(Clone, Debug)]
struct RopeState {
    cos: CubeFloat,
    sin: CubeFloat,
}

impl Backward<Cube, 1> for RopeBackward {
    type State = RopeState;

    fn backward(self, ops: Ops<Self::State, 1>, grads: &mut Gradients, _: &mut Checkpointer) {
        let dout: Tensor<4> = upstream(&ops, grads);
        let [parent] = ops.parents;
        let (cos, sin) = (glue::plain(ops.state.cos), glue::plain(ops.state.sin));
        give(grads, parent.map(|n| n.id), || kernels::rope_to_heads_backward(&dout, &cos, &sin).unwrap_or_else(|| composed::rope_to_heads_backward(&dout, &cos, &sin)));
    }
}

#[derive(Debug)]
struct SoftmaxBackward;

impl Backward<Cube, 1> for SoftmaxBackward {
    /// The output p and the scale.
    type State = (CubeFloat, f32);

    fn backward(self, ops: Ops<Self::State, 1>, grads: &mut Gradients, _: &mut Checkpointer) {
        let dp: Tensor<4> = upstream(&ops, grads);
        let [parent] = ops.parents;
        let (p, scale) = (glue::plain(ops.state.0), ops.state.1);
        give(grads, parent.map(|n| n.id), || kernels::softmax_backward(&p, &dp, scale).unwrap_or_else(|| composed::softmax_backward(&p, &dp, scale)));
    }
}

/// What attention's products need for the backward: q as the scores' matmul read it (grouped,
/// `[b, kvh, g·s, hd]`; in [`qkv_attention`] scaled by the layout kernel, in [`attention`]
/// scaled or not as its caller passed it), k, v, the probabilities when kept, the mask's bias
/// (shared by every layer) and the softmax's scale.
#[derive(Clone, Debug)]
struct Products {
    q: CubeFloat,
    k: CubeFloat,
    v: CubeFloat,
    p: Option<CubeFloat>,
    bias: CubeFloat,
    scale: f32,
}

impl Products {
    fn keep(q: &Tensor<4>, k: &Tensor<4>, v: &Tensor<4>, p: Option<&Tensor<4>>, bias: &Tensor<4>, scale: f32) -> Self {
        Products { q: glue::cube(q), k: glue::cube(k), v: glue::cube(v), p: p.map(glue::cube), bias: glue::cube(bias), scale }
    }

    /// `(dq, dk, dv)` from the output's gradient `dout` (q's elements, in q's or the heads'
    /// layout; dq comes back in q's).
    fn gradients(self, dout: Tensor<4>) -> (Tensor<4>, Tensor<4>, Tensor<4>) {
        let (q, k, v): (Tensor<4>, Tensor<4>, Tensor<4>) = (glue::plain(self.q), glue::plain(self.k), glue::plain(self.v));
        let dout = dout.reshape(q.dims());
        let scale = self.scale;
        // The forward's probabilities, kept or again from the same kernel on the same inputs.
        let p: Tensor<4> = match self.p {
            Some(p) => glue::plain(p),
            None => {
                let (scores, bias) = (q.clone().matmul(k.clone().swap_dims(2, 3)), glue::plain(self.bias));
                kernels::softmax_bias(&scores, &bias, scale).unwrap_or_else(|| composed::softmax_bias(&scores.mul_scalar(scale), &bias))
            }
        };
        let dv = p.clone().swap_dims(2, 3).matmul(dout.clone());
        let dp = dout.matmul(v.swap_dims(2, 3));
        let ds = kernels::softmax_backward(&p, &dp, scale).unwrap_or_else(|| composed::softmax_backward(&p, &dp, scale));
        let dq = ds.clone().matmul(k);
        let dk = ds.swap_dims(2, 3).matmul(q);
        (dq, dk, dv)
    }
}

#[derive(Debug)]
struct ProductsBackward;

impl Backward<Cube, 3> for ProductsBackward {
    type State = Products;

    fn backward(self, ops: Ops<Self::State, 3>, grads: &mut Gradients, _: &mut Checkpointer) {
        let dout: Tensor<4> = upstream(&ops, grads);
        let [parent_q, parent_k, parent_v] = ops.parents;
        let (dq, dk, dv) = ops.state.gradients(dout);
        give(grads, parent_q.map(|n| n.id), || dq);
        give(grads, parent_k.map(|n| n.id), || dk);
        give(grads, parent_v.map(|n| n.id), || dv);
    }
}

#[derive(Debug)]
struct AttentionBackward;

/// What [`qkv_attention`]'s backward reads: the products' state, the RoPE tables and the
/// scale the layout kernel applied to q.
#[derive(Clone, Debug)]
struct AttentionState {
    products: Products,
    cos: CubeFloat,
    sin: CubeFloat,
    scale: f32,
}

impl Backward<Cube, 1> for AttentionBackward {
    type State = AttentionState;

    fn backward(self, ops: Ops<Self::State, 1>, grads: &mut Gradients, _: &mut Checkpointer) {
        let dout: Tensor<4> = upstream(&ops, grads);
        let [parent] = ops.parents;
        let s = ops.state;
        let (cos, sin) = (glue::plain(s.cos), glue::plain(s.sin));
        let dims = dout.dims();
        let (dq, dk, dv) = s.products.gradients(dout);
        let dq = dq.reshape(dims);
        give(grads, parent.map(|n| n.id), || kernels::qkv_to_heads_backward(&dq, &dk, &dv, &cos, &sin, s.scale).unwrap_or_else(|| composed::qkv_to_heads_backward(&dq, &dk, &dv, &cos, &sin, s.scale)));
    }
}

/// The backward formulas in Burn's ops: the fallback if a kernel declines, and the reference
/// the kernels are tested against.
pub mod composed {
    use burn::prelude::*;

    /// `(dx, dγ)` of RMSNorm over rows `x` `[rows, width]`.
    pub fn rms_norm_backward(x: &Tensor<2>, gamma: &Tensor<1>, dy: &Tensor<2>, eps: f64) -> (Tensor<2>, Tensor<1>) {
        let width = x.dims()[1];
        let inv = (x.clone().powi_scalar(2).mean_dim(1) + eps).sqrt().recip();
        let gamma = gamma.clone().reshape([1, width]);
        let dot = (dy.clone() * gamma.clone() * x.clone()).sum_dim(1);
        let dx = dy.clone() * gamma * inv.clone() - x.clone() * (dot * inv.clone().powi_scalar(3) / width as f64);
        let dgamma = (dy.clone() * x.clone() * inv).sum_dim(0).reshape([width]);
        (dx, dgamma)
    }

    /// `(dgate, dup)` of `silu(gate) · up`.
    pub fn swiglu_backward<const D: usize>(gate: &Tensor<D>, up: &Tensor<D>, dy: &Tensor<D>) -> (Tensor<D>, Tensor<D>) {
        let s = burn::tensor::activation::sigmoid(gate.clone());
        let dup = dy.clone() * gate.clone() * s.clone();
        let dgate = dy.clone() * up.clone() * s.clone() * ((s.neg() + 1.0) * gate.clone() + 1.0);
        (dgate, dup)
    }

    /// The input gradient of RoPE + head-major move (`[b, h, s, d]` in, `[b, s, h, d]` out):
    /// the rotation's transpose is the rotation by −sin for tables whose two halves repeat
    /// (`sin[j] = sin[j + half]`, as `rope::cos_sin` builds them; the kernel needs no such
    /// assumption).
    pub fn rope_to_heads_backward(dout: &Tensor<4>, cos: &Tensor<4>, sin: &Tensor<4>) -> Tensor<4> {
        crate::model::rope::apply(dout.clone(), cos, &sin.clone().neg()).swap_dims(1, 2)
    }

    /// The gradient of the fused q/k/v projection's output from the gradients of
    /// [`super::qkv_attention`]'s head-major `scale · rope(q)`, `rope(k)`, `v`.
    pub fn qkv_to_heads_backward(dq: &Tensor<4>, dk: &Tensor<4>, dv: &Tensor<4>, cos: &Tensor<4>, sin: &Tensor<4>, scale: f32) -> Tensor<3> {
        let [b, _, s, _] = dq.dims();
        let tokens = |t: Tensor<4>| -> Tensor<3> { t.reshape([b as i32, s as i32, -1]) };
        let dq = rope_to_heads_backward(dq, cos, sin).mul_scalar(scale);
        let dk = rope_to_heads_backward(dk, cos, sin);
        Tensor::cat(vec![tokens(dq), tokens(dk), tokens(dv.clone().swap_dims(1, 2))], 2)
    }

    /// `softmax(scores + bias)` along the last axis, `bias` broadcast over the heads.
    pub fn softmax_bias(scores: &Tensor<4>, bias: &Tensor<4>) -> Tensor<4> {
        burn::tensor::activation::softmax(scores.clone() + bias.clone(), 3)
    }

    /// `scale · p·(dp − Σ p·dp)` along the last axis (the scores' gradient of
    /// `softmax(scale · scores + bias)`).
    pub fn softmax_backward<const D: usize>(p: &Tensor<D>, dp: &Tensor<D>, scale: f32) -> Tensor<D> {
        let dot = (p.clone() * dp.clone()).sum_dim(D - 1);
        p.clone() * (dp.clone() - dot) * scale
    }
}
