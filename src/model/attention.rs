//! Scaled dot-product attention over grouped KV heads: on the CPU without autodiff (generation)
//! through flex's fused attention kernel; in a training step on wgpu with our kernels as one op
//! (`gpu_train_ops::attention`); otherwise as tensor ops, in blocks of query rows on the CPU.
//!
//! Why blocks: attention is causal, so the queries of rows `r0..r1` never see key columns at or
//! past `past + r1`. Cutting the queries into blocks and giving each block only the key columns
//! it can see skips the masked upper triangle: at 2,048 tokens in blocks of 256, 56 % of the
//! score entries of one full `[seq, seq]` matrix. On the CPU every score entry costs several
//! single-threaded passes (bias, max, exp, sum, divide, and their backward) over a tensor that
//! also stays alive for the backward, so this cuts both time and peak memory of long training
//! sequences. The arithmetic of an entry is unchanged (masked entries contributed exp(-1e9) = 0).
//! Devices that compile kernels per shape (wgpu) keep one block: more shapes mean more kernel
//! compilation and autotuning there, and that trade-off has not been measured on a GPU yet.

use std::cell::OnceCell;
use std::ops::Range;

use burn::prelude::*;
use burn::tensor::activation::softmax;
use burn::tensor::module::attention;
use burn::tensor::ops::AttentionModuleOptions;

use super::precision::Precision;
use crate::kernels::{gpu, gpu_backward, gpu_train_ops};
use burn::tensor::{DType, FloatDType};

/// Query rows per block on the CPU (flex).
pub const CPU_QUERY_BLOCK: usize = 256;

/// The query-row blocks of a call with `q_len` rows: one block unless `block < q_len`.
pub fn query_blocks(q_len: usize, block: usize) -> Vec<Range<usize>> {
    let block = block.max(1);
    (0..q_len).step_by(block).map(|r0| r0..(r0 + block).min(q_len)).collect()
}

/// Additive attention biases per query block, built once per forward call and shared by all
/// layers: `[batch, 1, g · rows, past + r1]` (a single block keeps all the bias's columns) with
/// the rows of each block repeated for the `g` query heads that share a KV head (see
/// [`grouped_attention`]; `g` = 1 for flex's kernel, which broadcasts the bias itself).
#[derive(Default)]
pub struct BlockBiases {
    cell: OnceCell<(usize, Vec<Tensor<4>>)>,
    /// The same in f16 for f16 scores (mixed precision), masked entries at −60,000 instead of
    /// −1e9 (beyond f16's range; either gives exp(·) = 0).
    half: OnceCell<Vec<Tensor<4>>>,
}

impl BlockBiases {
    /// The bias of a layout with one query block (the whole bias), rows repeated for `g`
    /// grouped query heads, in `dtype`.
    pub(super) fn whole(&self, bias: &Tensor<4>, g: usize, dtype: DType) -> Tensor<4> {
        let rows = bias.dims()[2];
        self.get_as(bias, &[0..rows], 0, g, dtype)[0].clone()
    }

    /// [`Self::get`] in `dtype` (f32 or f16).
    fn get_as(&self, bias: &Tensor<4>, blocks: &[Range<usize>], past: usize, g: usize, dtype: DType) -> &[Tensor<4>] {
        let biases = self.get(bias, blocks, past, g);
        if dtype != DType::F16 || biases.first().is_none_or(|b| b.dtype() == DType::F16) {
            return biases;
        }
        self.half.get_or_init(|| biases.iter().map(|b| b.clone().clamp_min(-60_000.0).cast(FloatDType::F16)).collect())
    }

    fn get(&self, bias: &Tensor<4>, blocks: &[Range<usize>], past: usize, g: usize) -> &[Tensor<4>] {
        let (cached_g, biases) = self.cell.get_or_init(|| {
            let [b, _, _, _] = bias.dims();
            let per_block = blocks
                .iter()
                .map(|r| {
                    let part = if blocks.len() == 1 { bias.clone() } else { bias.clone().slice([0..b, 0..1, r.clone(), 0..past + r.end]) };
                    if g == 1 { part } else { part.repeat_dim(2, g) }
                })
                .collect();
            (g, per_block)
        });
        assert_eq!(*cached_g, g, "one StepLayout serves one model on one attention path (bias repeats per KV head)");
        biases
    }
}

/// Attention of `q` `[b, h, s, hd]` (RoPE applied) over `k`, `v` `[b, kvh, k_cols, hd]` with
/// the additive `bias` `[b, 1, s, k_cols]`, query rows in `blocks`, `past` columns before the
/// first query. Returns `[b, h, s, hd]`. `precision` says how the two matmuls of the tensor-op
/// path compute (softmax stays f32). `fused_kernels`: softmax through our kernel on wgpu (see
/// [`crate::model::StepLayout::fused_kernels`]).
///
/// Grouped-query attention without copying K/V: the `g = h / kvh` query heads that share a KV
/// head are stacked along the row axis, so one matmul per KV head serves them all.
pub fn grouped_attention(q: Tensor<4>, k: Tensor<4>, v: Tensor<4>, bias: &Tensor<4>, biases: &BlockBiases, blocks: &[Range<usize>], past: usize, precision: Precision, fused_kernels: bool) -> Tensor<4> {
    if !q.is_autodiff() && !crate::device::compiles_per_shape(&q.device()) {
        // Inference on the CPU: flex's own attention kernel computes softmax(q·kᵀ·scale + bias)·v
        // in one multi-threaded pass per head (grouped heads and a bias broadcast over heads
        // supported) instead of ~8 single-threaded tensor ops; still in query blocks, because
        // the kernel cannot know which key columns the bias masks. It has no backward, so
        // training keeps the tensor ops below.
        let options = AttentionModuleOptions { scale: None, softcap: None, is_causal: false };
        let biases = biases.get(bias, blocks, past, 1);
        return in_blocks(q, k, v, blocks, past, |i, q, k, v| attention(q, k, v, None, Some(biases[i].clone()), options));
    }
    let [b, h, _, hd] = q.dims();
    let kvh = k.dims()[1];
    let g = h / kvh;
    let scale = 1.0 / (hd as f32).sqrt();
    let biases = biases.get_as(bias, blocks, past, g, q.dtype());
    in_blocks(q, k, v, blocks, past, |i, q, k, v| {
        let n = q.dims()[2];
        attend(q.reshape([b, kvh, g * n, hd]), k, v, biases[i].clone(), scale, precision, fused_kernels).reshape([b, h, n, hd])
    })
}

/// `attend(block index, q rows, k, v)` per query block, the outputs stacked along the rows:
/// block `rows` gets the key columns `0..past + rows.end`. A single block gets all key columns
/// (a cache's whole capacity), so that its shapes do not change from call to call.
fn in_blocks(q: Tensor<4>, k: Tensor<4>, v: Tensor<4>, blocks: &[Range<usize>], past: usize, mut attend: impl FnMut(usize, Tensor<4>, Tensor<4>, Tensor<4>) -> Tensor<4>) -> Tensor<4> {
    if blocks.len() == 1 {
        return attend(0, q, k, v);
    }
    let [b, h, _, hd] = q.dims();
    let kvh = k.dims()[1];
    let outputs: Vec<Tensor<4>> = blocks
        .iter()
        .enumerate()
        .map(|(i, rows)| {
            let cols = past + rows.end;
            let qb = q.clone().slice([0..b, 0..h, rows.clone(), 0..hd]);
            let kb = k.clone().slice([0..b, 0..kvh, 0..cols, 0..hd]);
            let vb = v.clone().slice([0..b, 0..kvh, 0..cols, 0..hd]);
            attend(i, qb, kb, vb)
        })
        .collect();
    Tensor::cat(outputs, 2)
}

/// softmax(q · kᵀ · scale + bias) · v for `q` `[b, kvh, rows, hd]`.
fn attend(q: Tensor<4>, k: Tensor<4>, v: Tensor<4>, bias: Tensor<4>, scale: f32, precision: Precision, fused_kernels: bool) -> Tensor<4> {
    // On wgpu one kernel for the scale, the bias add and softmax (each way in training) instead
    // of Burn's seven element-wise ops and reductions. Elsewhere q is scaled: a pass over q
    // (rows × hd) instead of one over the scores (rows × k_cols).
    if fused_kernels && gpu::enabled() && crate::device::compiles_per_shape(&q.device()) {
        // Scores held in f16 (mixed precision, `--f16`) keep q scaled: unscaled they would have
        // √head_dim times less room before overflowing.
        let (q, kernel_scale) = match precision == Precision::F32 && q.dtype() == DType::F32 {
            true => (q, scale),
            false => (q.mul_scalar(scale), 1.0),
        };
        // Training: one op keeping q, k and v, and the probabilities only while small (it
        // recomputes them in the backward, as the fused q/k/v path does), when the products
        // would run in q's dtype anyway (f16 under mixed precision).
        let in_dtype = precision == Precision::F32 || q.dtype() == DType::F16;
        if q.is_autodiff() && in_dtype {
            let [b, kvh, rows, _] = q.dims();
            let keep = gpu_train_ops::keeps_probabilities([b, kvh, rows, k.dims()[2]], q.dtype());
            if let Some(out) = gpu_train_ops::attention(&q, &k, &v, &bias, kernel_scale, keep) {
                return out;
            }
        }
        // Inference, or a case the op declines (mixed precision with an f32 q): Burn's matmuls
        // around our softmax kernel, scores and probabilities in the products' dtype.
        let scores = precision.matmul(q, k.swap_dims(2, 3));
        let fused = gpu_backward::softmax_bias(&scores, &bias, kernel_scale).or_else(|| gpu_train_ops::softmax_bias(&scores, &bias, kernel_scale));
        let p = fused.unwrap_or_else(|| {
            let dtype = FloatDType::from(scores.dtype());
            softmax(scores.cast(FloatDType::F32).mul_scalar(kernel_scale) + bias.cast(FloatDType::F32), 3).cast(dtype)
        });
        return precision.matmul(p, v);
    }
    let scores = precision.matmul(q.mul_scalar(scale), k.swap_dims(2, 3));
    precision.matmul(softmax(scores + bias, 3), v)
}
