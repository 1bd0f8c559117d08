//! A forward call of few rows on the CPU (a decode step, a short prompt) run from the embedding
//! to the final norm on host buffers: our decode panels, RMSNorm, attention over the host KV
//! cache and SwiGLU on plain slices, with no Burn tensor between them.
//!
//! Why: through Burn's ops each of a layer's seven projections went out of a flex tensor and
//! back (`into_data`, `from_data`), and the norms, residual adds and reshapes were tensor ops of
//! their own: with f16 panels, about 28 % of a batch-1 decode step of SmolLM2-135M was outside
//! the matmuls (`examples/decode_probe.rs`: an 8.2–8.5 ms step, 5–5.5 ms of projections and
//! 1 ms of LM head). The arithmetic here is the same, in the same order, as the tensor path
//! with our CPU kernels (`tests/host_decode.rs` compares it with Burn's composed ops).

use super::kv_cache::KvCache;
use super::llama::{Block, Llama, StepLayout};
use super::packed::{CpuBlock, MAX_ROWS, PackedLlama};
use super::precision::Precision;
use super::weights_out::host;
use crate::kernels::cached_attention::{self, CachedStep};
use crate::kernels::cpu_matmul::PackedMatrix;
use crate::kernels::flex_glue::{self as glue, slice};
use crate::kernels::head_layout::Rope;
use crate::kernels::{rms_norm, swiglu};
use anyhow::Result;
use burn::nn::RmsNorm;
use burn::prelude::*;
use burn_dispatch::backends::Flex;
use burn_std::Shape;

/// An RMSNorm's γ and epsilon on the host.
#[derive(Clone, Debug)]
pub struct HostNorm {
    gamma: Vec<f32>,
    eps: f32,
}

impl HostNorm {
    pub fn of(norm: &RmsNorm) -> Result<Self> {
        Ok(HostNorm { gamma: host(norm.gamma.val())?, eps: norm.epsilon as f32 })
    }

    /// Values per row (γ's length).
    fn len(&self) -> usize {
        self.gamma.len()
    }

    /// The norm of each row of `x` (rows of γ's length).
    fn apply(&self, x: &[f32]) -> Vec<f32> {
        rms_norm::forward(x, &self.gamma, self.eps).0
    }
}

/// A layer's norms on the host, beside its panels.
#[derive(Clone, Debug)]
pub struct BlockNorms {
    input: HostNorm,
    post_attention: HostNorm,
    /// Per-head q and k norms (Qwen3).
    qk: Option<(HostNorm, HostNorm)>,
}

impl BlockNorms {
    pub fn of(b: &Block) -> Result<Self> {
        let a = &b.self_attn;
        let qk = match (&a.q_norm, &a.k_norm) {
            (Some(q), Some(k)) => Some((HostNorm::of(q)?, HostNorm::of(k)?)),
            _ => None,
        };
        Ok(BlockNorms { input: HostNorm::of(&b.input_layernorm)?, post_attention: HostNorm::of(&b.post_attention_layernorm)?, qk })
    }
}

/// `x += delta`, element-wise.
fn add(x: &mut [f32], delta: &[f32]) {
    x.iter_mut().zip(delta).for_each(|(x, d)| *x += d);
}

/// The final hidden states `[b, s, hidden]` of `x` (the embedded tokens, `[b, s, hidden]`), as
/// [`Llama::forward_hidden_packed`] computes them, with every layer's keys and values written
/// to `cache`'s host buffers; `None` when this path does not apply (the caller goes on with
/// Burn's tensors): more than [`MAX_ROWS`] rows, a layer without CPU panels, a cache already
/// holding Burn tensors, not f32 on plain flex, our kernels off, mixed precision.
pub fn forward(model: &Llama, packed: &PackedLlama, x: &Tensor<3>, layout: &StepLayout, cache: &mut KvCache) -> Option<Tensor<3>> {
    let [b, s, d] = x.dims();
    let (m, capacity) = (b * s, layout.k_cols);
    if !(glue::enabled() && layout.fused_kernels && layout.precision == Precision::F32 && m <= MAX_ROWS) {
        return None;
    }
    let blocks: Vec<&CpuBlock> = packed.layers.iter().map(|l| l.cpu()).collect::<Option<_>>()?;
    let final_norm = packed.final_norm.as_ref()?;
    let [cos, sin, bias] = [&layout.cos, &layout.sin, &layout.bias].map(glue::plain);
    let (cos, sin, bias, embedded) = (cos?, sin?, bias?, glue::plain(x)?);
    // Every check before the first layer runs: a layer's cache written and the next refused
    // would leave the cache half a step ahead. Shapes too (packing from one model cannot break
    // them, but a mismatch would otherwise be cut short silently by the slices' zips).
    let layer_fits = |(layer, block): (&Block, &&CpuBlock)| {
        let a = &layer.self_attn;
        let (h, kvh, hd) = (a.num_heads, a.num_kv_heads, a.head_dim);
        let shape = |w: &PackedMatrix, inputs: usize, outputs: usize| w.inputs() == inputs && w.outputs() == outputs;
        let f = block.gate.outputs();
        let norms = &block.norms;
        kvh > 0
            && h % kvh == 0
            && hd % 2 == 0
            && layout.cos.dims() == [b, 1, s, hd]
            && shape(&block.q, d, h * hd)
            && shape(&block.k, d, kvh * hd)
            && shape(&block.v, d, kvh * hd)
            && shape(&block.o, h * hd, d)
            && shape(&block.gate, d, f)
            && shape(&block.up, d, f)
            && shape(&block.down, f, d)
            && norms.input.len() == d
            && norms.post_attention.len() == d
            && norms.qk.as_ref().is_none_or(|(qn, kn)| qn.len() == hd && kn.len() == hd)
    };
    let applies = blocks.len() == model.layers.len()
        && cache.layers.len() == model.layers.len()
        && cache.layers.iter().all(|c| c.keys.is_none())
        && model.layers.iter().zip(&blocks).all(layer_fits)
        && final_norm.len() == d
        && layout.sin.dims() == layout.cos.dims()
        && layout.bias.dims() == [b, 1, s, capacity]
        && layout.past + s <= capacity;
    if !applies {
        return None;
    }
    let rope = Rope { cos: slice(&cos), sin: slice(&sin) };
    let mut x = slice(&embedded).to_vec();
    let tap = cache.stem_tap.as_ref().map(|t| t.layer);
    for (i, ((layer, block), layer_cache)) in model.layers.iter().zip(blocks).zip(&mut cache.layers).enumerate() {
        if tap == Some(i) {
            let stream = Tensor::from_primitive::<Flex>(glue::tensor(x.clone(), Shape::new([b, s, d])));
            cache.stem_tap.as_mut().expect("a tap").taken = Some(stream);
        }
        let a = &layer.self_attn;
        let normed = block.norms.input.apply(&x);
        let [mut q, mut k, v] = PackedMatrix::matmul_group([&block.q, &block.k, &block.v], &normed, m);
        if let Some((qn, kn)) = &block.norms.qk {
            (q, k) = (qn.apply(&q), kn.apply(&k));
        }
        let step = CachedStep { b, s, h: a.num_heads, kvh: a.num_kv_heads, hd: a.head_dim, past: layout.past, capacity, scale: a.scale() };
        let attended = cached_attention::attend(&q, &k, &v, rope, slice(&bias), &mut layer_cache.host, step);
        add(&mut x, &block.o.matmul(&attended, m));
        let normed = block.norms.post_attention.apply(&x);
        let [gate, up] = PackedMatrix::matmul_group([&block.gate, &block.up], &normed, m);
        let activated = swiglu::forward(&gate, &up);
        add(&mut x, &block.down.matmul(&activated, m));
    }
    Some(Tensor::from_primitive::<Flex>(glue::tensor(final_norm.apply(&x), Shape::new([b, s, d]))))
}
