//! The decoder-only Llama family in Burn: RMSNorm, rotate_half RoPE, grouped-query attention
//! (optionally with q/k/v biases or per-head q/k RMSNorm), SwiGLU MLP, tied or untied LM head.
//! One forward serves training (no cache, autodiff device) and generation (KV cache, left-padded
//! batches). The model is built from a config and a weight source; it never reads files.

use super::attention::{BlockBiases, CPU_QUERY_BLOCK, grouped_attention, query_blocks};
use super::config::ModelConfig;
use super::kv_cache::{KvCache, LayerCache};
use super::fused_projections::FusedProjections;
use super::packed::{CpuBlock, PackedBlock, PackedLlama, apply, project};
use super::precision::Precision;
use super::rope;
use super::shared_prompts::{PromptKeys, PromptKv};
use anyhow::{Result, bail};
use burn::module::Param;
use burn::nn::{Embedding, Linear, RmsNorm};
use burn::prelude::*;
use burn::tensor::activation::{log_softmax, silu};
use crate::kernels::target_logprobs::HeadLayout;
use crate::kernels::gpu_head_op::chunked_target_logprobs;
use crate::kernels::target_logprobs_op::fused_target_logprobs;
use crate::kernels::causal_attention_op::{fused_attention_after, fused_causal_attention};
use crate::kernels::cached_attention::cached_attention;
use crate::kernels::{gpu, gpu_train_ops};
use crate::kernels::gpu::QkvHeads;
use crate::kernels::rms_norm_op::fused_rms_norm;
use crate::kernels::swiglu_op::fused_swiglu;
use std::cell::OnceCell;
use std::ops::Range;
use burn::tensor::{DType, FloatDType};

/// Tensors by Hugging Face name (`model.layers.0.self_attn.q_proj.weight`), with HF shapes
/// (`[out, in]` for projections). Checkpoint readers implement it.
pub trait WeightSource {
    fn take(&mut self, name: &str) -> Result<Option<(Vec<f32>, Vec<usize>)>>;
}

#[derive(Module, Debug)]
pub struct Attention {
    pub q_proj: Linear,
    pub k_proj: Linear,
    pub v_proj: Linear,
    pub o_proj: Linear,
    pub q_norm: Option<RmsNorm>,
    pub k_norm: Option<RmsNorm>,
    pub num_heads: usize,
    pub num_kv_heads: usize,
    pub head_dim: usize,
}

#[derive(Module, Debug)]
pub struct Mlp {
    pub gate_proj: Linear,
    pub up_proj: Linear,
    pub down_proj: Linear,
}

#[derive(Module, Debug)]
pub struct Block {
    pub input_layernorm: RmsNorm,
    pub self_attn: Attention,
    pub post_attention_layernorm: RmsNorm,
    pub mlp: Mlp,
}

#[derive(Module, Debug)]
pub struct Llama {
    pub embed_tokens: Embedding,
    pub layers: Vec<Block>,
    pub norm: RmsNorm,
    /// `None` when the LM head is tied to the embedding table.
    pub lm_head: Option<Linear>,
}

/// Where each token of a forward call sits: RoPE positions and the additive attention bias.
pub struct StepLayout {
    pub cos: Tensor<4>,
    pub sin: Tensor<4>,
    /// `[batch, 1, q_len, k_cols]`: 0 where attention is allowed, a large negative value elsewhere.
    pub bias: Tensor<4>,
    /// Columns written before this call: where a KV cache writes this call's keys/values.
    pub past: usize,
    /// Key columns attention reads: `past + q_len`, or a cache's whole capacity.
    pub k_cols: usize,
    /// Query-row blocks of attention (see [`super::attention`]): one block on devices that
    /// compile kernels per shape.
    pub query_blocks: Vec<Range<usize>>,
    /// The bias cut and repeated per block, built by the first layer, reused by the others.
    block_biases: BlockBiases,
    /// `(cos, sin)` in f16, cast by the first layer that asks ([`Self::rope_tables`]).
    half_tables: OnceCell<(Tensor<4>, Tensor<4>)>,
    /// Whether our fused ops may run (true unless [`Self::with_composed_ops`]; tests compare
    /// them against Burn's ops through this): on the CPU attention (with or without a KV
    /// cache), RMSNorm and SwiGLU, in training and inference; on wgpu RMSNorm, SwiGLU, RoPE and
    /// the fused projections in inference and training, decode attention in inference, and
    /// in training attention's softmax, the fused q/k/v attention op and the projections'
    /// products (`gpu_train_ops`).
    pub fused_kernels: bool,
    /// How the projections and attention's matmuls compute ([`Precision::MixedF16`]: training
    /// on wgpu, when asked).
    pub precision: Precision,
}

impl StepLayout {
    /// Layout for `q_len` new columns after `past` cached ones, with per-sequence left padding.
    /// Padding columns are masked for every query; a padding query attends only to itself so
    /// its softmax stays finite (its output is never used).
    pub fn new(inv_freq: &[f64], pad: &[usize], past: usize, q_len: usize, device: &Device) -> Self {
        Self::with_columns(inv_freq, pad, past, q_len, past + q_len, device)
    }

    /// As [`StepLayout::new`], for attention over `k_cols ≥ past + q_len` key columns (a
    /// preallocated cache): columns not written yet are masked like padding.
    pub fn with_columns(inv_freq: &[f64], pad: &[usize], past: usize, q_len: usize, k_cols: usize, device: &Device) -> Self {
        assert!(k_cols >= past + q_len, "attention columns {k_cols} < {past} + {q_len}");
        let b = pad.len();
        let mut positions = Vec::with_capacity(b);
        let mut bias = Vec::with_capacity(b * q_len * k_cols);
        for &p in pad {
            positions.push((0..q_len).map(|i| (past + i).saturating_sub(p)).collect::<Vec<_>>());
            for i in 0..q_len {
                let qc = past + i;
                for kc in 0..k_cols {
                    let allowed = if qc < p { kc == qc } else { kc >= p && kc <= qc };
                    bias.push(if allowed { 0.0f32 } else { -1e9 });
                }
            }
        }
        Self::from_parts(inv_freq, &positions, bias, past, q_len, k_cols, device)
    }

    /// A layout from each query's RoPE position (`positions[row][i]`, `q_len` per row) and the
    /// additive bias `[rows, 1, q_len, k_cols]` (row-major, 0 allowed, −1e9 masked), the queries
    /// at columns `past..`. Query `i` must not need key columns past `past + i` (blocked
    /// attention never shows them to it).
    pub fn from_parts(inv_freq: &[f64], positions: &[Vec<usize>], bias: Vec<f32>, past: usize, q_len: usize, k_cols: usize, device: &Device) -> Self {
        let b = positions.len();
        let (cos, sin) = rope::cos_sin(inv_freq, positions, device);
        let bias = Tensor::from_data(TensorData::new(bias, [b, 1, q_len, k_cols]), device);
        let block = if crate::device::compiles_per_shape(device) { q_len } else { CPU_QUERY_BLOCK };
        StepLayout { cos, sin, bias, past, k_cols, query_blocks: query_blocks(q_len, block), block_biases: BlockBiases::default(), half_tables: OnceCell::new(), fused_kernels: true, precision: Precision::F32 }
    }

    /// The same layout with attention in query blocks of `rows` (tests compare block sizes).
    pub fn with_query_block(mut self, rows: usize) -> Self {
        self.query_blocks = query_blocks(self.query_blocks.last().map_or(0, |r| r.end), rows);
        self.block_biases = BlockBiases::default();
        self
    }

    /// The same layout with its matmuls in `precision`.
    pub fn with_precision(mut self, precision: Precision) -> Self {
        self.precision = precision;
        self
    }

    /// The same layout on Burn's ops only (the reference our fused ops are tested against).
    pub fn with_composed_ops(mut self) -> Self {
        self.fused_kernels = false;
        self
    }

    /// The dtype the inside of a layer runs in for the residual stream `x`
    /// ([`Precision::activations`]: f16 under mixed precision with our wgpu kernels).
    pub fn activations(&self, x: &Tensor<3>) -> FloatDType {
        let kernels = self.fused_kernels && crate::device::compiles_per_shape(&x.device());
        self.precision.activations(x.dtype(), kernels)
    }

    /// RoPE's `(cos, sin)` tables in `dtype` (f16 activations read f16 tables, as the
    /// kernels take one float type per op; Hugging Face's Llama casts them the same way): the
    /// f16 ones cast once per layout, any other cast per call.
    pub fn rope_tables(&self, dtype: DType) -> (Tensor<4>, Tensor<4>) {
        if dtype == self.cos.dtype() {
            return (self.cos.clone(), self.sin.clone());
        }
        if dtype == DType::F16 {
            let (cos, sin) = self.half_tables.get_or_init(|| (self.cos.clone().cast(FloatDType::F16), self.sin.clone().cast(FloatDType::F16)));
            return (cos.clone(), sin.clone());
        }
        (self.cos.clone().cast(FloatDType::from(dtype)), self.sin.clone().cast(FloatDType::from(dtype)))
    }
}

impl Attention {
    fn forward(&self, x: Tensor<3>, layout: &StepLayout, cache: Option<&mut LayerCache>, packed: Option<&PackedBlock>) -> Tensor<3> {
        let [b, s, _] = x.dims();
        let cpu = packed.and_then(PackedBlock::cpu);
        let heads = match (packed.and_then(PackedBlock::gpu), cache) {
            (Some(fused), Some(c)) if layout.fused_kernels => self.heads_fused(fused, x, layout, c),
            (_, None) if self.trains_fused(&x, layout) => self.heads_training(x, layout),
            (_, cache) => self.heads(x, layout, cache, cpu),
        };
        project(&self.o_proj, cpu.map(|p| &p.o), heads.reshape([b, s, self.num_heads * self.head_dim]), layout)
    }

    /// Attention's output in the projections' token-major layout `[b, s, heads, hd]`, before
    /// the output projection, from separate q/k/v projections.
    fn heads(&self, x: Tensor<3>, layout: &StepLayout, cache: Option<&mut LayerCache>, packed: Option<&CpuBlock>) -> Tensor<4> {
        let [b, s, _] = x.dims();
        let (h, kvh, hd) = (self.num_heads, self.num_kv_heads, self.head_dim);
        // Token-major `[b, s, heads, hd]`: a free reshape of the projections' output.
        let q = project(&self.q_proj, packed.map(|p| &p.q), x.clone(), layout).reshape([b, s, h, hd]);
        let k = project(&self.k_proj, packed.map(|p| &p.k), x.clone(), layout).reshape([b, s, kvh, hd]);
        let v = project(&self.v_proj, packed.map(|p| &p.v), x, layout).reshape([b, s, kvh, hd]);
        self.heads_from(q, k, v, layout, cache)
    }

    /// [`Self::heads`] from token-major q, k, v `[b, s, heads, hd]` (before RoPE).
    fn heads_from(&self, mut q: Tensor<4>, mut k: Tensor<4>, v: Tensor<4>, layout: &StepLayout, mut cache: Option<&mut LayerCache>) -> Tensor<4> {
        if let (Some(qn), Some(kn)) = (&self.q_norm, &self.k_norm) {
            // In γ's dtype (f16 activations are normed in f32, as the residual stream is).
            let (inside, gamma): (FloatDType, FloatDType) = (q.dtype().into(), qn.gamma.val().dtype().into());
            q = normalize(qn, q.cast(gamma), layout).cast(inside);
            k = normalize(kn, k.cast(gamma), layout).cast(inside);
        }
        // A training forward over shared prompts: keep the prompts' keys and values (then attend
        // as without a cache), or attend to them before the row's own.
        match cache.as_deref_mut().and_then(|c| c.prompts.as_mut()) {
            Some(PromptKv::Record(kept)) => {
                *kept = Some((k.clone(), v.clone()));
                cache = None;
            }
            Some(PromptKv::Attend(prompts)) => return self.attend_after_prompts(q, k, v, prompts, layout),
            None => {}
        }
        let scale = self.scale();
        // Training on the CPU: our fused op (RoPE and layout moves in one pass each way, blocks,
        // causal skipping, no score matrix kept), straight back in the projections' layout.
        if layout.fused_kernels && cache.is_none() && layout.past == 0 {
            if let Some(out) = fused_causal_attention(&q, &k, &v, (&layout.cos, &layout.sin), &layout.bias, scale) {
                return out;
            }
        }
        // Inference on the CPU: our op (RoPE, the cache write into host buffers and attention in
        // one pass each, straight back in the projections' layout).
        if let Some(c) = cache.as_deref_mut().filter(|c| layout.fused_kernels && c.keys.is_none()) {
            if let Some(out) = cached_attention(&q, &k, &v, (&layout.cos, &layout.sin), &layout.bias, &mut c.host, layout.past, layout.k_cols, scale) {
                return out;
            }
        }
        // RoPE and the move to head-major layout: one kernel each on wgpu (each way in training).
        let (cos, sin) = layout.rope_tables(q.dtype());
        let rotate = |x: Tensor<4>| match layout.fused_kernels.then(|| gpu::rope_to_heads(&x, &cos, &sin).or_else(|| gpu_train_ops::rope_to_heads(&x, &cos, &sin))).flatten() {
            Some(rotated) => rotated,
            None => rope::apply(x.swap_dims(1, 2), &cos, &sin),
        };
        let (q, k) = (rotate(q), rotate(k));
        let v = v.swap_dims(1, 2);
        let (k, v) = match cache {
            Some(c) => c.write(k, v, layout.past, layout.k_cols),
            None => (k, v),
        };
        self.attend(q, k, v, layout)
    }

    /// Attention of token-major q, k, v (this call's, before RoPE) over `prompts`' keys and
    /// values then k and v ([`super::shared_prompts`]): our op on the CPU in training, else
    /// RoPE and attention from Burn's ops.
    fn attend_after_prompts(&self, q: Tensor<4>, k: Tensor<4>, v: Tensor<4>, prompts: &PromptKeys, layout: &StepLayout) -> Tensor<4> {
        let (k, v) = prompts.before(k, v);
        let key_tables = (&prompts.cos, &prompts.sin);
        if let Some(out) = layout.fused_kernels.then(|| fused_attention_after(&q, &k, &v, (&layout.cos, &layout.sin), key_tables, &layout.bias, layout.past, self.scale())).flatten() {
            return out;
        }
        let dtype = FloatDType::from(q.dtype());
        let (cos, sin) = layout.rope_tables(q.dtype());
        let q = rope::apply(q.swap_dims(1, 2), &cos, &sin);
        let k = rope::apply(k.swap_dims(1, 2), &key_tables.0.clone().cast(dtype), &key_tables.1.clone().cast(dtype));
        self.attend(q, k, v.swap_dims(1, 2), layout)
    }

    /// [`Self::heads`] through a KV cache from the fused q/k/v projection (inference on wgpu):
    /// one matmul, then one kernel for RoPE, q's layout move and both cache writes.
    fn heads_fused(&self, fused: &FusedProjections, x: Tensor<3>, layout: &StepLayout, cache: &mut LayerCache) -> Tensor<4> {
        let b = x.dims()[0];
        let qkv = fused.qkv(x);
        let (keys, values) = cache.take_buffers([b, self.num_kv_heads, self.head_dim], layout.k_cols, &qkv.device());
        let (q, k, v) = match gpu::qkv_to_cache(&qkv, &layout.cos, &layout.sin, keys, values, fused.heads, layout.past) {
            Ok(written) => written,
            Err((keys, values)) => {
                // Not our kernel's case after all: split the projection, then the separate path.
                cache.put(keys, values);
                let (q, k, v) = self.split_qkv(qkv);
                return self.heads_from(q, k, v, layout, Some(cache));
            }
        };
        cache.put(k.clone(), v.clone());
        self.attend(q, k, v, layout)
    }

    /// Whether [`Self::heads_training`] applies: a training forward on wgpu with our kernels,
    /// no KV cache, one query block, and projections that concatenate (no LoRA adapter, q/k/v
    /// all biased or none, no per-head q/k norm between the projection and RoPE).
    fn trains_fused(&self, x: &Tensor<3>, layout: &StepLayout) -> bool {
        let lins = [&self.q_proj, &self.k_proj, &self.v_proj];
        layout.fused_kernels
            && layout.past == 0
            && layout.k_cols == x.dims()[1]
            && layout.query_blocks.len() == 1
            && self.q_norm.is_none()
            && crate::device::compiles_per_shape(&x.device())
            && crate::kernels::gpu_glue::strategy(x).is_some()
            && lins.iter().all(|l| l.weight.adapter().is_none())
            && (lins.iter().all(|l| l.bias.is_some()) || lins.iter().all(|l| l.bias.is_none()))
    }

    /// [`Self::heads`] in a training step on wgpu: one q/k/v projection (the three weights
    /// concatenated in the graph, so each still gets its own gradient) feeding our attention op
    /// ([`gpu_train_ops::qkv_attention`]). Per layer and step: two matmuls fewer forward, four
    /// backward, RoPE and v's layout copy one launch each way instead of three, and no sum of
    /// three input gradients; for three small concatenation launches.
    fn heads_training(&self, x: Tensor<3>, layout: &StepLayout) -> Tensor<4> {
        let (h, kvh, hd) = (self.num_heads, self.num_kv_heads, self.head_dim);
        let qkv = layout.precision.linear_of(x, &self.qkv_weights(), self.qkv_bias(), layout.fused_kernels);
        let (cos, sin) = layout.rope_tables(qkv.dtype());
        let bias = layout.block_biases.whole(&layout.bias, h / kvh, qkv.dtype());
        let heads = QkvHeads { heads: h, kv_heads: kvh, head_dim: hd };
        let [batch, seq, _] = qkv.dims();
        let keep = gpu_train_ops::keeps_probabilities([batch, h, seq, seq], qkv.dtype());
        match gpu_train_ops::qkv_attention(&qkv, heads, &cos, &sin, &bias, self.scale(), keep) {
            Some(out) => out.swap_dims(1, 2),
            None => {
                // Not our op's case after all: split the projection, then the separate path.
                let (q, k, v) = self.split_qkv(qkv);
                self.heads_from(q, k, v, layout, None)
            }
        }
    }

    /// q's, k's and v's weights, in the order of a fused projection's columns, `[hidden,
    /// (heads + 2·kv_heads)·head_dim]` once concatenated (the order [`Self::split_qkv`] and
    /// our layout kernels read). `Param::val` merges LoRA adapters; on training tensors the
    /// concatenation's backward hands each weight its own gradient.
    pub(super) fn qkv_weights(&self) -> Vec<Tensor<2>> {
        [&self.q_proj, &self.k_proj, &self.v_proj].iter().map(|l| l.weight.val()).collect()
    }

    /// The q, k and v biases side by side, when all three have one.
    pub(super) fn qkv_bias(&self) -> Option<Tensor<1>> {
        let biases = [&self.q_proj, &self.k_proj, &self.v_proj].iter().map(|l| l.bias.as_ref().map(|b| b.val())).collect::<Option<Vec<_>>>();
        biases.map(|b| Tensor::cat(b, 0))
    }

    /// Token-major q, k, v `[b, s, heads, hd]` of a fused projection's output (see
    /// [`Self::qkv_weights`]).
    fn split_qkv(&self, qkv: Tensor<3>) -> (Tensor<4>, Tensor<4>, Tensor<4>) {
        let [b, s, _] = qkv.dims();
        let (h, kvh, hd) = (self.num_heads, self.num_kv_heads, self.head_dim);
        let q = qkv.clone().narrow(2, 0, h * hd).reshape([b, s, h, hd]);
        let k = qkv.clone().narrow(2, h * hd, kvh * hd).reshape([b, s, kvh, hd]);
        let v = qkv.narrow(2, (h + kvh) * hd, kvh * hd).reshape([b, s, kvh, hd]);
        (q, k, v)
    }

    pub(super) fn scale(&self) -> f32 {
        1.0 / (self.head_dim as f32).sqrt()
    }

    /// Attention of head-major `q` `[b, h, s, hd]` (RoPE applied) over `k`, `v` (a cache's
    /// whole buffers, or this call's columns), back in token-major layout `[b, s, h, hd]`.
    fn attend(&self, q: Tensor<4>, k: Tensor<4>, v: Tensor<4>, layout: &StepLayout) -> Tensor<4> {
        // Decoding on wgpu: one kernel over the cache instead of Burn's matmuls and softmax.
        let decoded = (layout.fused_kernels && q.dims()[2] == 1).then(|| gpu::decode_attention(&q, &k, &v, &layout.bias, self.scale())).flatten();
        let out = decoded.unwrap_or_else(|| grouped_attention(q, k, v, &layout.bias, &layout.block_biases, &layout.query_blocks, layout.past, layout.precision, layout.fused_kernels));
        out.swap_dims(1, 2)
    }
}

impl Mlp {
    /// Whether the training forward on wgpu fuses gate and up (see [`Attention::trains_fused`]):
    /// our kernels on, neither projection adapted nor biased.
    fn trains_fused(&self, x: &Tensor<3>, layout: &StepLayout) -> bool {
        let lins = [&self.gate_proj, &self.up_proj];
        layout.fused_kernels
            && crate::device::compiles_per_shape(&x.device())
            && crate::kernels::gpu_glue::strategy(x).is_some()
            && lins.iter().all(|l| l.weight.adapter().is_none() && l.bias.is_none())
    }

    /// Gate's weight and up's, in the order of a fused projection's columns (see
    /// [`Attention::qkv_weights`]).
    pub(super) fn gate_up_weights(&self) -> Vec<Tensor<2>> {
        vec![self.gate_proj.weight.val(), self.up_proj.weight.val()]
    }

    fn forward(&self, x: Tensor<3>, layout: &StepLayout, packed: Option<&PackedBlock>) -> Tensor<3> {
        let cpu = packed.and_then(PackedBlock::cpu);
        let (gate, up) = match packed.and_then(PackedBlock::gpu).filter(|_| layout.fused_kernels) {
            // Inference on wgpu: one gate/up matmul, then one kernel for silu(gate) · up.
            Some(fused) => {
                let both = fused.gate_up(x);
                if let Some(activated) = gpu::swiglu_halves(&both) {
                    return project(&self.down_proj, None, activated, layout);
                }
                let width = both.dims()[2] / 2;
                (both.clone().narrow(2, 0, width), both.narrow(2, width, width))
            }
            None if self.trains_fused(&x, layout) => {
                // Training on wgpu: one gate/up matmul (the two weights concatenated in the
                // graph, each still getting its gradient), then our op on its halves.
                let both = layout.precision.linear_of(x, &self.gate_up_weights(), None, layout.fused_kernels);
                if let Some(activated) = gpu_train_ops::swiglu_halves(&both) {
                    return project(&self.down_proj, None, activated, layout);
                }
                let width = both.dims()[2] / 2;
                (both.clone().narrow(2, 0, width), both.narrow(2, width, width))
            }
            None => (project(&self.gate_proj, cpu.map(|p| &p.gate), x.clone(), layout), project(&self.up_proj, cpu.map(|p| &p.up), x, layout)),
        };
        // One fused pass instead of Burn's sigmoid and products, each way in training: on the
        // CPU, on wgpu.
        let fused = layout.fused_kernels.then(|| fused_swiglu(&gate, &up).or_else(|| gpu::swiglu(&gate, &up)).or_else(|| gpu_train_ops::swiglu(&gate, &up))).flatten();
        let activated = fused.unwrap_or_else(|| silu(gate) * up);
        project(&self.down_proj, cpu.map(|p| &p.down), activated, layout)
    }
}

/// `norm(x)`, through our fused op on the CPU or our kernel on wgpu in inference (see
/// [`StepLayout::fused_kernels`]).
pub(super) fn normalize<const D: usize>(norm: &RmsNorm, x: Tensor<D>, layout: &StepLayout) -> Tensor<D> {
    if !layout.fused_kernels {
        return norm.forward(x);
    }
    let gamma = norm.gamma.val();
    let eps = norm.epsilon;
    match fused_rms_norm(&x, &gamma, eps).or_else(|| gpu::rms_norm(&x, &gamma, eps)).or_else(|| gpu_train_ops::rms_norm(&x, &gamma, eps)) {
        Some(y) => y,
        None => norm.forward(x),
    }
}

/// `(x + delta, norm(x + delta))` — or `(x, norm(x))` without a delta: the residual add and
/// the next norm, in one kernel on wgpu in inference.
fn add_normalize(norm: &RmsNorm, x: Tensor<3>, delta: Option<Tensor<3>>, layout: &StepLayout) -> (Tensor<3>, Tensor<3>) {
    let Some(delta) = delta else { return (x.clone(), normalize(norm, x, layout)) };
    if let Some(both) = layout.fused_kernels.then(|| gpu::add_rms_norm(&x, &delta, &norm.gamma.val(), norm.epsilon)).flatten() {
        return both;
    }
    let sum = x + delta;
    (sum.clone(), normalize(norm, sum, layout))
}

impl Block {
    pub(super) fn forward(&self, x: Tensor<3>, layout: &StepLayout, cache: Option<&mut LayerCache>, packed: Option<&PackedBlock>) -> Tensor<3> {
        let (stream, mlp) = self.forward_pending(x, None, layout, cache, packed);
        stream + mlp
    }

    /// The layer with its last residual add left to the caller, who fuses it with the next
    /// norm: takes the residual stream and the previous layer's pending output, returns the
    /// stream after attention and this layer's MLP output.
    fn forward_pending(&self, x: Tensor<3>, pending: Option<Tensor<3>>, layout: &StepLayout, cache: Option<&mut LayerCache>, packed: Option<&PackedBlock>) -> (Tensor<3>, Tensor<3>) {
        // The attention and MLP insides in their dtype (f16 under mixed precision with our
        // kernels, see `Precision::activations`), their outputs back in the residual's.
        let residual = x.dtype();
        let inside = layout.activations(&x);
        let (x, normed) = add_normalize(&self.input_layernorm, x, pending, layout);
        let attended = self.self_attn.forward(normed.cast(inside), layout, cache, packed).cast(residual);
        let (h, normed) = add_normalize(&self.post_attention_layernorm, x, Some(attended), layout);
        (h, self.mlp.forward(normed.cast(inside), layout, packed).cast(residual))
    }
}

impl Llama {
    /// Final hidden states `[batch, seq, hidden]` (after the last norm).
    pub fn forward_hidden(&self, tokens: Tensor<2, Int>, layout: &StepLayout, cache: Option<&mut KvCache>) -> Tensor<3> {
        self.forward_hidden_packed(tokens, layout, cache, None)
    }

    /// [`Self::forward_hidden`], with the projections going through `packed` (a copy of these
    /// same weights: CPU decode panels for small calls, or wgpu fused projections).
    pub fn forward_hidden_packed(&self, tokens: Tensor<2, Int>, layout: &StepLayout, mut cache: Option<&mut KvCache>, packed: Option<&PackedLlama>) -> Tensor<3> {
        let x = self.embed_tokens.forward(tokens);
        // Few rows on the CPU: the whole call on host buffers.
        if let (Some(p), Some(c)) = (packed, cache.as_deref_mut()) {
            if let Some(hidden) = super::host_decode::forward(self, p, &x, layout, c) {
                c.len += x.dims()[1];
                return hidden;
            }
        }
        self.forward_layers_from(0, x, layout, cache, packed)
    }

    /// Final hidden states of `x`, the residual stream `[batch, seq, hidden]` entering layer
    /// `from`, through that layer and those above it (the embedding and the layers below are
    /// not run: see [`super::stem`]). Keeps the stream entering the layer `cache.stem_tap` asks for.
    pub(super) fn forward_layers_from(&self, from: usize, mut x: Tensor<3>, layout: &StepLayout, mut cache: Option<&mut KvCache>, packed: Option<&PackedLlama>) -> Tensor<3> {
        let mut pending = None;
        for (i, layer) in self.layers.iter().enumerate().skip(from) {
            if let Some(c) = cache.as_deref_mut() {
                super::stem::tap(c, i, &x, pending.as_ref());
            }
            let layer_cache = cache.as_deref_mut().map(|c| &mut c.layers[i]);
            let (stream, mlp) = layer.forward_pending(x, pending, layout, layer_cache, packed.map(|p| &p.layers[i]));
            (x, pending) = (stream, Some(mlp));
        }
        if let Some(c) = cache {
            c.len += x.dims()[1];
        }
        add_normalize(&self.norm, x, pending, layout).1
    }

    /// [`Self::logits`] through the packed LM head when given (small calls only).
    pub fn logits_packed(&self, hidden: Tensor<3>, packed: Option<&PackedLlama>) -> Tensor<3> {
        match packed.and_then(|p| p.lm_head.as_ref()).and_then(|head| apply(head, hidden.clone())) {
            Some(logits) => logits,
            None => self.logits(hidden),
        }
    }

    /// `log softmax(logits)[target]` `[n]` for hidden states `[n, hidden]`: the log-prob of each
    /// position's target token, differentiable on an autodiff device. On flex (f32) it runs the
    /// fused head kernel ([`crate::kernels::target_logprobs`]), which never builds Burn's
    /// log-softmax over the whole `[n, vocab]` logits; on wgpu under autodiff the chunked head
    /// ([`crate::kernels::gpu_head_op`]), which keeps no `[n, vocab]` tensor for the backward;
    /// elsewhere Burn's ops.
    pub fn target_logprobs(&self, hidden: Tensor<2>, targets: &[u32]) -> Tensor<1> {
        let (head, layout) = match &self.lm_head {
            None => (Some(self.embed_tokens.weight.val()), HeadLayout::VocabMajor),
            Some(head) if head.bias.is_none() => (Some(head.weight.val()), HeadLayout::DimMajor),
            Some(_) => (None, HeadLayout::DimMajor),
        };
        let fused = head.and_then(|w| fused_target_logprobs(&hidden, &w, layout, targets).or_else(|| chunked_target_logprobs(&hidden, &w, layout, targets)));
        if let Some(logp) = fused {
            return logp;
        }
        let [n, d] = hidden.dims();
        let device = hidden.device();
        let logp = log_softmax(self.logits(hidden.reshape([1, n, d])), 2);
        let ids: Vec<i64> = targets.iter().map(|&t| t as i64).collect();
        logp.gather(2, Tensor::<3, Int>::from_data(TensorData::new(ids, [1, n, 1]), &device)).reshape([n])
    }

    /// Logits `[batch, seq, vocab]` for hidden states.
    pub fn logits(&self, hidden: Tensor<3>) -> Tensor<3> {
        match &self.lm_head {
            Some(head) => head.forward(hidden),
            None => {
                // table · hiddenᵀ, then transpose the small result: transposing the
                // [vocab, d] table instead would copy it on every call.
                let [b, s, d] = hidden.dims();
                let table = self.embed_tokens.weight.val(); // [vocab, d]
                let vocab = table.dims()[0];
                table.matmul(hidden.reshape([b * s, d]).transpose()).transpose().reshape([b, s, vocab])
            }
        }
    }

    /// Full-sequence logits without a cache, all sequences starting at column 0 (training path).
    pub fn forward(&self, tokens: Tensor<2, Int>, inv_freq: &[f64]) -> Tensor<3> {
        let [b, s] = tokens.dims();
        let layout = StepLayout::new(inv_freq, &vec![0; b], 0, s, &tokens.device());
        let hidden = self.forward_hidden(tokens, &layout, None);
        self.logits(hidden)
    }

    /// Builds the model from HF-named weights, checking every shape against the config.
    pub fn from_weights(cfg: &ModelConfig, src: &mut dyn WeightSource, device: &Device) -> Result<Self> {
        cfg.validate()?;
        let mut w = Loader { src, device };
        let (d, hd) = (cfg.hidden_size, cfg.head_dim);
        let bias = cfg.architecture.has_qkv_bias();
        let mut layers = Vec::with_capacity(cfg.num_layers);
        for i in 0..cfg.num_layers {
            let p = format!("model.layers.{i}");
            let qk_norm = cfg.architecture.has_qk_norm();
            layers.push(Block {
                input_layernorm: w.norm(&format!("{p}.input_layernorm.weight"), d, cfg.rms_norm_eps)?,
                self_attn: Attention {
                    q_proj: w.linear(&format!("{p}.self_attn.q_proj"), d, cfg.num_heads * hd, bias)?,
                    k_proj: w.linear(&format!("{p}.self_attn.k_proj"), d, cfg.num_kv_heads * hd, bias)?,
                    v_proj: w.linear(&format!("{p}.self_attn.v_proj"), d, cfg.num_kv_heads * hd, bias)?,
                    o_proj: w.linear(&format!("{p}.self_attn.o_proj"), cfg.num_heads * hd, d, false)?,
                    q_norm: if qk_norm { Some(w.norm(&format!("{p}.self_attn.q_norm.weight"), hd, cfg.rms_norm_eps)?) } else { None },
                    k_norm: if qk_norm { Some(w.norm(&format!("{p}.self_attn.k_norm.weight"), hd, cfg.rms_norm_eps)?) } else { None },
                    num_heads: cfg.num_heads,
                    num_kv_heads: cfg.num_kv_heads,
                    head_dim: hd,
                },
                post_attention_layernorm: w.norm(&format!("{p}.post_attention_layernorm.weight"), d, cfg.rms_norm_eps)?,
                mlp: Mlp {
                    gate_proj: w.linear(&format!("{p}.mlp.gate_proj"), d, cfg.intermediate_size, false)?,
                    up_proj: w.linear(&format!("{p}.mlp.up_proj"), d, cfg.intermediate_size, false)?,
                    down_proj: w.linear(&format!("{p}.mlp.down_proj"), cfg.intermediate_size, d, false)?,
                },
            });
        }
        let table = w.tensor2("model.embed_tokens.weight", [cfg.vocab_size, d])?;
        let lm_head = if cfg.tie_word_embeddings {
            None
        } else {
            Some(w.linear("lm_head", d, cfg.vocab_size, false)?)
        };
        Ok(Llama {
            embed_tokens: Embedding { weight: Param::from_tensor(table) },
            layers,
            norm: w.norm("model.norm.weight", d, cfg.rms_norm_eps)?,
            lm_head,
        })
    }
}

struct Loader<'a> {
    src: &'a mut dyn WeightSource,
    device: &'a Device,
}

impl Loader<'_> {
    fn raw(&mut self, name: &str, shape: &[usize]) -> Result<Vec<f32>> {
        let Some((data, got)) = self.src.take(name)? else { bail!("missing tensor {name}") };
        if got != shape {
            bail!("tensor {name} has shape {got:?}, the config implies {shape:?}");
        }
        Ok(data)
    }

    fn tensor2(&mut self, name: &str, shape: [usize; 2]) -> Result<Tensor<2>> {
        let data = self.raw(name, &shape)?;
        Ok(Tensor::from_data(TensorData::new(data, shape), self.device))
    }

    fn norm(&mut self, name: &str, d: usize, eps: f64) -> Result<RmsNorm> {
        let data = self.raw(name, &[d])?;
        Ok(RmsNorm { gamma: Param::from_tensor(Tensor::from_data(TensorData::new(data, [d]), self.device)), epsilon: eps })
    }

    /// HF stores projections as `[out, in]`; Burn's `Linear` wants `[in, out]`.
    fn linear(&mut self, prefix: &str, d_in: usize, d_out: usize, bias: bool) -> Result<Linear> {
        let w = self.raw(&format!("{prefix}.weight"), &[d_out, d_in])?;
        let weight = Tensor::from_data(TensorData::new(transpose(&w, d_out, d_in), [d_in, d_out]), self.device);
        let bias = if bias {
            let b = self.raw(&format!("{prefix}.bias"), &[d_out])?;
            Some(Param::from_tensor(Tensor::from_data(TensorData::new(b, [d_out]), self.device)))
        } else {
            None
        };
        Ok(Linear { weight: Param::from_tensor(weight), bias })
    }
}

/// Row-major `[rows, cols]` → `[cols, rows]`.
pub fn transpose(data: &[f32], rows: usize, cols: usize) -> Vec<f32> {
    let mut out = vec![0.0; data.len()];
    for r in 0..rows {
        for c in 0..cols {
            out[c * rows + r] = data[r * cols + c];
        }
    }
    out
}
