//! Our wgpu kernels (CubeCL `#[cube]` sources in `shaders/`) for inference on the GPU.
//!
//! Why: GPU decode is bound by kernel launches (README, Performance: ~1,300 per step, most of
//! them element-wise ops that Burn's fusion leaves unfused in the decode layer). Each kernel
//! here replaces a chain of Burn ops by one launch.
//!
//! How they plug in without Burn's `extension` feature: a tensor on wgpu without autodiff is a
//! fusion tensor of Burn's cube backend (`Tensor::try_into_primitive::<Cube>()`); the kernel is
//! queued in Burn's fusion stream as a custom op (as burn-linalg does), so it runs in order with
//! the ops around it and nothing is synchronised; when the stream executes it, the op gets the
//! inputs as cube tensors, launches the kernel and publishes the output. The kernels take f32
//! or f16 tensors (`--f16` generation; arithmetic in f32), all of one op's inputs the same
//! type. Other devices, autodiff tensors and other dtypes get `None` and keep Burn's ops.

use burn::prelude::*;
use burn::tensor::DType;
use burn_cubecl::kernel::into_contiguous;
use burn_cubecl::ops::numeric::empty_device_dtype;
use burn_cubecl::tensor::CubeTensor;
use burn_cubecl::CubeBackend;
use burn_dispatch::backends::Cube;
use burn_fusion::custom::{CustomOpIr, HandleContainer, OperationFn, OperationIr, StreamId, TensorIr};
use burn_fusion::{FusionBackend, FusionRuntime, FusionTensor};
use cubecl::ir::{ElemType, FloatKind};
use cubecl::prelude::{CubeCount, CubeDim};

#[path = "../../shaders/cube_sum.rs"]
mod cube_sum_shader;
#[path = "../../shaders/decode_attention.rs"]
mod decode_attention_shader;
#[path = "../../shaders/nucleus.rs"]
mod nucleus_shader;
#[path = "../../shaders/qkv_to_cache.rs"]
pub(super) mod qkv_to_cache_shader;
#[path = "../../shaders/qkv_heads.rs"]
pub(super) mod qkv_heads_shader;
#[path = "../../shaders/rms_norm.rs"]
pub(super) mod rms_norm_shader;
#[path = "../../shaders/rope.rs"]
pub(super) mod rope_shader;
#[path = "../../shaders/sample.rs"]
mod sample_shader;
#[path = "../../shaders/softmax.rs"]
pub(super) mod softmax_shader;
#[path = "../../shaders/swiglu.rs"]
pub(super) mod swiglu_shader;

/// Any value keeps Burn's ops on wgpu (before/after measurements).
pub const DISABLE_ENV: &str = "MEMTRAIN_NO_GPU_KERNELS";

/// Units per cube: a warp on NVIDIA, two on AMD's wave32; the kernels stride over any width.
pub(super) const THREADS: usize = 64;

/// Units per cube of the element-wise kernels.
const ELEMENTS_PER_CUBE: usize = 256;

/// Cubes of a launch along one axis (WebGPU's guaranteed limit).
const MAX_CUBES: usize = 65_535;

type Runtime = <CubeBackend as FusionBackend>::FusionRuntime;
pub(super) type Fused = FusionTensor<Runtime>;
type Handles = HandleContainer<<Runtime as FusionRuntime>::FusionHandle>;

/// Whether our wgpu kernels may run (see [`DISABLE_ENV`]).
pub fn enabled() -> bool {
    std::env::var_os(DISABLE_ENV).is_none()
}

/// `t` as a fusion tensor of the cube backend (wgpu, no autodiff, f32 or f16), or `None`.
pub(super) fn fused<const D: usize>(t: &Tensor<D>) -> Option<Fused> {
    let float = matches!(t.dtype(), DType::F32 | DType::F16);
    (enabled() && float).then(|| t.clone().try_into_primitive::<Cube>().ok()).flatten()
}

/// As [`fused`], f32 only.
fn fused_f32<const D: usize>(t: &Tensor<D>) -> Option<Fused> {
    (t.dtype() == DType::F32).then(|| fused(t)).flatten()
}

/// `inputs` when they share one float type.
pub(super) fn uniform(inputs: Vec<Option<Fused>>) -> Option<Vec<Fused>> {
    let inputs: Vec<Fused> = inputs.into_iter().collect::<Option<_>>()?;
    inputs.iter().all(|t| t.dtype == inputs[0].dtype).then_some(inputs)
}

/// The kernels' element type for a tensor's dtype (f32 or f16: what [`fused`] lets through).
pub(super) fn elem(t: &CubeTensor) -> ElemType {
    ElemType::Float(if t.dtype == DType::F16 { FloatKind::F16 } else { FloatKind::F32 })
}

/// Queues `run` in Burn's fusion stream as one op over `inputs` (handed over contiguous) whose
/// output has `shape` and the inputs' dtype.
pub(super) fn queue<const D: usize>(name: &'static str, inputs: Vec<Fused>, shape: [usize; D], run: impl Fn(Vec<CubeTensor>) -> CubeTensor + Send + Sync + 'static) -> Tensor<D> {
    queue_outputs(name, inputs, vec![shape], move |t| vec![run(t)]).remove(0)
}

/// As [`queue`], for an op with several outputs of rank `D` (`run` returns them in the order
/// of `shapes`).
pub(super) fn queue_outputs<const D: usize>(name: &'static str, inputs: Vec<Fused>, shapes: Vec<[usize; D]>, run: impl Fn(Vec<CubeTensor>) -> Vec<CubeTensor> + Send + Sync + 'static) -> Vec<Tensor<D>> {
    let client = inputs[0].client.clone();
    let dtype = inputs[0].dtype;
    let outs: Vec<TensorIr> = shapes.into_iter().map(|shape| TensorIr::uninit(client.create_empty_handle(), Shape::new(shape), dtype)).collect();
    let irs: Vec<TensorIr> = inputs.into_iter().map(|t| t.into_ir()).collect();
    let desc = CustomOpIr::new(name, &irs, &outs);
    let op = OperationFn(move |handles: &mut Handles| {
        let tensors = irs.iter().map(|t| into_contiguous(handles.get_float_tensor::<CubeBackend>(t))).collect();
        for (out, tensor) in outs.iter().zip(run(tensors)) {
            handles.register_float_tensor::<CubeBackend>(&out.id, tensor);
        }
        Ok(())
    });
    let outputs = client.register(StreamId::current(), OperationIr::Custom(desc), op);
    outputs.into_iter().map(Tensor::from_primitive::<Cube>).collect()
}

/// `t` itself when this op holds its only reference (written in place), else a copy.
fn writable(t: CubeTensor) -> CubeTensor {
    if t.can_mut() { t } else { t.copy() }
}

/// An uninitialised tensor of `like`'s dtype on its device.
pub(super) fn empty(like: &CubeTensor, shape: Vec<usize>) -> CubeTensor {
    empty_device_dtype(like.client.clone(), like.device.clone(), Shape::from(shape), like.dtype)
}

/// An uninitialised f32 tensor on `like`'s device (the kernels' f32 scratch).
fn empty_f32(like: &CubeTensor, shape: Vec<usize>) -> CubeTensor {
    empty_device_dtype(like.client.clone(), like.device.clone(), Shape::from(shape), DType::F32)
}

/// `(rows, width)` of a tensor of `dims` taken as rows of its last dimension.
pub(super) fn rows_and_width<const D: usize>(dims: [usize; D]) -> (usize, usize) {
    let width = dims[D - 1];
    (dims.iter().product::<usize>() / width.max(1), width)
}

/// Cubes for one per row of `rows`: a line up to the 65,535 cubes an axis takes, a grid past
/// it, as square as the axis allows (its few tail cubes have no row and stop at once: the
/// kernels compare their `CUBE_POS`).
pub(super) fn row_grid(rows: usize) -> CubeCount {
    let y = rows.div_ceil(MAX_CUBES).max(1);
    let x = rows.div_ceil(y).max(1);
    CubeCount::Static(x as u32, y as u32, 1)
}

/// The launch of an element-wise kernel over `len` elements whose units stride over them:
/// its cubes, the units per cube, and the stride (units in the launch).
pub(super) fn strided_grid(len: usize) -> (CubeCount, CubeDim, usize) {
    let cubes = len.div_ceil(ELEMENTS_PER_CUBE).min(MAX_CUBES);
    (CubeCount::Static(cubes as u32, 1, 1), CubeDim::new_1d(ELEMENTS_PER_CUBE as u32), cubes * ELEMENTS_PER_CUBE)
}

/// `x / √(mean(x²) + eps) · γ` over the last dimension in one launch, for inference on wgpu;
/// `None` elsewhere (the caller uses Burn's `RmsNorm`).
pub fn rms_norm<const D: usize>(x: &Tensor<D>, gamma: &Tensor<1>, eps: f64) -> Option<Tensor<D>> {
    let dims = x.dims();
    let (rows, width) = rows_and_width(dims);
    if width != gamma.dims()[0] || rows == 0 {
        return None;
    }
    let inputs = uniform(vec![fused(x), fused(gamma)])?;
    let eps = eps as f32;
    Some(queue("memtrain::rms_norm", inputs, dims, move |t| {
        let [x, gamma]: [CubeTensor; 2] = t.try_into().expect("two inputs");
        let out = empty(&x, x.meta.shape().to_vec());
        rms_norm_shader::rms_norm_rows::launch(&x.client, row_grid(rows), CubeDim::new_1d(THREADS as u32), x.clone().into_buffer_arg(), gamma.into_buffer_arg(), out.clone().into_buffer_arg(), rows, width, eps, THREADS, elem(&x));
        out
    }))
}

/// Attention of one query token per sequence over its KV cache, in one launch, for decoding
/// on wgpu: `q` `[batch, heads, 1, head_dim]` (after RoPE), `keys`/`values` `[batch, kv_heads,
/// cols, head_dim]`, `bias` `[batch, 1, 1, cols]` (0 or a large negative value); the result is
/// `[batch, heads, 1, head_dim]`. `None` elsewhere, or for more than one query row.
pub fn decode_attention(q: &Tensor<4>, keys: &Tensor<4>, values: &Tensor<4>, bias: &Tensor<4>, scale: f32) -> Option<Tensor<4>> {
    let [b, heads, rows, head_dim] = q.dims();
    let [kb, kv_heads, cols, kd] = keys.dims();
    let shapes_fit = rows == 1 && kb == b && kd == head_dim && values.dims() == keys.dims() && bias.dims() == [b, 1, 1, cols];
    if !shapes_fit || kv_heads == 0 || heads % kv_heads != 0 || b * heads > MAX_CUBES {
        return None;
    }
    let inputs = uniform(vec![fused(q), fused(keys), fused(values), fused(bias)])?;
    Some(queue("memtrain::decode_attention", inputs, [b, heads, 1, head_dim], move |t| {
        let [q, keys, values, bias]: [CubeTensor; 4] = t.try_into().expect("four inputs");
        let scores = empty_f32(&q, vec![b * heads, cols]);
        let out = empty(&q, vec![b, heads, 1, head_dim]);
        decode_attention_shader::decode_attention::launch(
            &q.client,
            CubeCount::Static((b * heads) as u32, 1, 1),
            CubeDim::new_1d(THREADS as u32),
            q.clone().into_buffer_arg(),
            keys.into_buffer_arg(),
            values.into_buffer_arg(),
            bias.into_buffer_arg(),
            scores.into_buffer_arg(),
            out.clone().into_buffer_arg(),
            heads,
            kv_heads,
            cols,
            head_dim,
            scale,
            THREADS,
            elem(&q),
        );
        out
    }))
}

/// `silu(gate) · up` in one launch, for inference on wgpu; `None` elsewhere (the caller uses
/// Burn's ops).
pub fn swiglu<const D: usize>(gate: &Tensor<D>, up: &Tensor<D>) -> Option<Tensor<D>> {
    let dims = gate.dims();
    let len = dims.iter().product::<usize>();
    if up.dims() != dims || len == 0 {
        return None;
    }
    let inputs = uniform(vec![fused(gate), fused(up)])?;
    Some(queue("memtrain::swiglu", inputs, dims, move |t| {
        let [gate, up]: [CubeTensor; 2] = t.try_into().expect("two inputs");
        let out = empty(&gate, gate.meta.shape().to_vec());
        let (cubes, units, stride) = strided_grid(len);
        swiglu_shader::swiglu::launch(&gate.client, cubes, units, gate.clone().into_buffer_arg(), up.into_buffer_arg(), out.clone().into_buffer_arg(), len, stride, elem(&gate));
        out
    }))
}

/// RoPE on `x` `[batch, seq, heads, head_dim]` (the projections' token-major layout) with the
/// layout's `cos`/`sin` `[batch, 1, seq, head_dim]`, returned head-major `[batch, heads, seq,
/// head_dim]`, in one launch, for inference on wgpu; `None` elsewhere.
pub fn rope_to_heads(x: &Tensor<4>, cos: &Tensor<4>, sin: &Tensor<4>) -> Option<Tensor<4>> {
    let [b, seq, heads, head_dim] = x.dims();
    let len = b * seq * heads * head_dim;
    if cos.dims() != [b, 1, seq, head_dim] || sin.dims() != cos.dims() || head_dim % 2 != 0 || len == 0 {
        return None;
    }
    let inputs = uniform(vec![fused(x), fused(cos), fused(sin)])?;
    Some(queue("memtrain::rope_to_heads", inputs, [b, heads, seq, head_dim], move |t| {
        let [x, cos, sin]: [CubeTensor; 3] = t.try_into().expect("three inputs");
        let out = empty(&x, vec![b, heads, seq, head_dim]);
        let (cubes, units, stride) = strided_grid(len);
        rope_shader::rope_to_heads::launch(&x.client, cubes, units, x.clone().into_buffer_arg(), cos.into_buffer_arg(), sin.into_buffer_arg(), out.clone().into_buffer_arg(), seq, heads, head_dim, len, stride, elem(&x));
        out
    }))
}

/// `(x + delta, rms_norm(x + delta))` in one launch (the residual add and the next layer's
/// norm), for inference on wgpu; `None` elsewhere.
pub fn add_rms_norm(x: &Tensor<3>, delta: &Tensor<3>, gamma: &Tensor<1>, eps: f64) -> Option<(Tensor<3>, Tensor<3>)> {
    let dims = x.dims();
    let width = dims[2];
    let rows = dims[0] * dims[1];
    if delta.dims() != dims || width != gamma.dims()[0] || rows == 0 || rows > MAX_CUBES {
        return None;
    }
    let inputs = uniform(vec![fused(x), fused(delta), fused(gamma)])?;
    let eps = eps as f32;
    let mut outs = queue_outputs("memtrain::add_rms_norm", inputs, vec![dims, dims], move |t| {
        let [x, delta, gamma]: [CubeTensor; 3] = t.try_into().expect("three inputs");
        let sum = empty(&x, x.meta.shape().to_vec());
        let out = empty(&x, x.meta.shape().to_vec());
        rms_norm_shader::add_rms_norm_rows::launch(&x.client, CubeCount::Static(rows as u32, 1, 1), CubeDim::new_1d(THREADS as u32), x.clone().into_buffer_arg(), delta.into_buffer_arg(), gamma.into_buffer_arg(), sum.clone().into_buffer_arg(), out.clone().into_buffer_arg(), width, eps, THREADS, elem(&x));
        vec![sum, out]
    });
    let normed = outs.pop()?;
    Some((outs.pop()?, normed))
}

/// `silu(gate) · up` for `x` `[.., 2·width]` holding gate's columns then up's (one fused
/// gate/up projection), in one launch, for inference on wgpu; `None` elsewhere.
pub fn swiglu_halves(x: &Tensor<3>) -> Option<Tensor<3>> {
    let [b, s, two_width] = x.dims();
    let width = two_width / 2;
    let len = b * s * width;
    if two_width % 2 != 0 || len == 0 {
        return None;
    }
    Some(queue("memtrain::swiglu_halves", vec![fused(x)?], [b, s, width], move |t| {
        let [x]: [CubeTensor; 1] = t.try_into().expect("one input");
        let out = empty(&x, vec![b, s, width]);
        let (cubes, units, stride) = strided_grid(len);
        swiglu_shader::swiglu_halves::launch(&x.client, cubes, units, x.clone().into_buffer_arg(), out.clone().into_buffer_arg(), width, len, stride, elem(&x));
        out
    }))
}

/// Heads of a fused q/k/v projection: query heads, KV heads, dims per head.
#[derive(Clone, Copy, Debug)]
pub struct QkvHeads {
    pub heads: usize,
    pub kv_heads: usize,
    pub head_dim: usize,
}

/// From one fused projection `qkv` `[batch, seq, (heads + 2·kv_heads)·head_dim]` (q's heads,
/// then k's, then v's) to attention's inputs in one launch, for inference on wgpu: RoPE with
/// the layout's `cos`/`sin` `[batch, 1, seq, head_dim]` on q and k, q returned head-major
/// `[batch, heads, seq, head_dim]`, k and v written into the cache buffers `keys`/`values`
/// `[batch, kv_heads, capacity, head_dim]` at columns `past..past + seq` (in place when this
/// op holds the buffers' only reference, which a [`crate::model::kv_cache::LayerCache`] gives
/// it). Returns `(q, keys, values)`; `Err` hands the buffers back untouched where it does not
/// apply (other devices, autodiff, other dtypes, shapes that do not fit).
pub fn qkv_to_cache(qkv: &Tensor<3>, cos: &Tensor<4>, sin: &Tensor<4>, keys: Tensor<4>, values: Tensor<4>, heads: QkvHeads, past: usize) -> Result<(Tensor<4>, Tensor<4>, Tensor<4>), (Tensor<4>, Tensor<4>)> {
    let QkvHeads { heads, kv_heads, head_dim } = heads;
    let [b, seq, width] = qkv.dims();
    let [kb, kh, capacity, kd] = keys.dims();
    let len = b * seq * width;
    let fits = width == (heads + 2 * kv_heads) * head_dim
        && [kb, kh, kd] == [b, kv_heads, head_dim]
        && values.dims() == keys.dims()
        && past + seq <= capacity
        && cos.dims() == [b, 1, seq, head_dim]
        && sin.dims() == cos.dims()
        && head_dim % 2 == 0
        && len > 0;
    // The buffers are checked on a clone, then handed over by value: the op must hold their
    // only reference to write them in place.
    let checked = fits.then(|| uniform(vec![fused(qkv), fused(cos), fused(sin), fused(&keys), fused(&values)])).flatten();
    let Some(mut inputs) = checked else { return Err((keys, values)) };
    inputs.truncate(3);
    let (Ok(keys), Ok(values)) = (keys.try_into_primitive::<Cube>(), values.try_into_primitive::<Cube>()) else {
        unreachable!("checked above: both buffers are cube tensors");
    };
    inputs.extend([keys, values]);
    let shapes = vec![[b, heads, seq, head_dim], [b, kv_heads, capacity, head_dim], [b, kv_heads, capacity, head_dim]];
    let mut outs = queue_outputs("memtrain::qkv_to_cache", inputs, shapes, move |t| {
        let [qkv, cos, sin, keys, values]: [CubeTensor; 5] = t.try_into().expect("five inputs");
        let (keys, values) = (writable(keys), writable(values));
        let q = empty(&qkv, vec![b, heads, seq, head_dim]);
        let (cubes, units, stride) = strided_grid(len);
        qkv_to_cache_shader::qkv_to_cache::launch(
            &qkv.client,
            cubes,
            units,
            qkv.clone().into_buffer_arg(),
            cos.into_buffer_arg(),
            sin.into_buffer_arg(),
            q.clone().into_buffer_arg(),
            keys.clone().into_buffer_arg(),
            values.clone().into_buffer_arg(),
            1.0,
            seq,
            heads,
            kv_heads,
            head_dim,
            capacity,
            past,
            len,
            stride,
            elem(&qkv),
        );
        vec![q, keys, values]
    });
    let values = outs.pop().expect("three outputs");
    let keys = outs.pop().expect("three outputs");
    Ok((outs.pop().expect("three outputs"), keys, values))
}

/// Seeds the sampling kernel takes: integers below 2²⁴ (held exactly in f32).
pub const SEED_BITS: u32 = 24;

/// Samples one token per row of `logits` `[rows, vocab]` from `softmax(logits / temperature)`
/// with the Gumbel-max trick, each row driven by its seed in `seeds` `[rows]` (integers below
/// 2^[`SEED_BITS`]), in one launch on wgpu; returns `[rows, 2]`: the token id (exact in f32)
/// and its log-probability at temperature 1. `top_k` (0: off) and `top_p` (≥ 1: off) restrict
/// the draw to the host sampler's kept tokens (`shaders/nucleus.rs`). Temperature 0 (or one so
/// small that 1/T is not finite) picks greedily, the seeds then ignored. `None` elsewhere, and
/// for a `top_p` that is NaN or not above 0 (the caller samples on the host).
pub fn sample_rows(logits: &Tensor<2>, seeds: &Tensor<1>, temperature: f32, top_k: usize, top_p: f32) -> Option<Tensor<2>> {
    let [rows, vocab] = logits.dims();
    if seeds.dims() != [rows] || !rows_fit(rows, vocab) || temperature.is_nan() || temperature < 0.0 || top_p.is_nan() || top_p <= 0.0 {
        return None;
    }
    let inputs = vec![fused_f32(logits)?, fused_f32(seeds)?];
    let inv_temperature = inverse_temperature(temperature);
    let top_k = effective_top_k(top_k, vocab);
    let restricted = inv_temperature > 0.0 && (top_k > 0 || top_p < 1.0);
    Some(queue("memtrain::sample_rows", inputs, [rows, 2], move |t| {
        let [logits, seeds]: [CubeTensor; 2] = t.try_into().expect("two inputs");
        let out = empty(&logits, vec![rows, 2]);
        // The boundary search makes 8 to 28 passes over a row: a wider cube per row pays there.
        let threads = if restricted { RESTRICTED_THREADS } else { THREADS };
        sample_shader::sample_rows::launch(&logits.client, CubeCount::Static(rows as u32, 1, 1), CubeDim::new_1d(threads as u32), logits.clone().into_buffer_arg(), seeds.into_buffer_arg(), out.clone().into_buffer_arg(), vocab, inv_temperature, top_k, top_p.min(1.0), threads);
        out
    }))
}

/// Units per cube of the sampling kernel under top-k / top-p: its radix passes keep 18 partial
/// sums per unit in shared memory, 18 × 128 × 4 B = 9 KB of the 16 KB WebGPU guarantees a cube
/// (with the draw's own reductions, 12 KB).
const RESTRICTED_THREADS: usize = 128;

/// Whether rows of this size fit our one-cube-per-row kernels (ids exact in f32).
fn rows_fit(rows: usize, vocab: usize) -> bool {
    rows > 0 && rows <= MAX_CUBES && vocab > 0 && vocab < 1 << 24
}

/// `top_k`, or 0 (off) where it keeps the whole row, as the host reads it: the kernels take it
/// as a u32, which a larger `--top-k` would overflow.
fn effective_top_k(top_k: usize, vocab: usize) -> usize {
    if top_k < vocab { top_k } else { 0 }
}

/// `1/temperature`, or 0 (greedy) where that is not finite.
fn inverse_temperature(temperature: f32) -> f32 {
    if temperature > 0.0 && (1.0 / temperature).is_finite() { 1.0 / temperature } else { 0.0 }
}

/// The boundary of each row's kept tokens under `top_k` / `top_p` at `temperature` (> 0), as
/// the sampling kernel finds it: `[rows, 3]` = (key's high 16 bits, low 16 bits, last kept id
/// of a tie), keys ordered as `f32::total_cmp` (`shaders/nucleus.rs`). For tests against the
/// host sampler's kept set; `None` off wgpu.
pub fn kept_boundaries(logits: &Tensor<2>, temperature: f32, top_k: usize, top_p: f32) -> Option<Tensor<2>> {
    let [rows, vocab] = logits.dims();
    let inv_temperature = inverse_temperature(temperature);
    if !rows_fit(rows, vocab) || inv_temperature <= 0.0 || top_p.is_nan() || top_p <= 0.0 {
        return None;
    }
    let top_k = effective_top_k(top_k, vocab);
    Some(queue("memtrain::kept_boundaries", vec![fused_f32(logits)?], [rows, 3], move |t| {
        let [logits]: [CubeTensor; 1] = t.try_into().expect("one input");
        let out = empty(&logits, vec![rows, 3]);
        nucleus_shader::kept_boundaries::launch(&logits.client, CubeCount::Static(rows as u32, 1, 1), CubeDim::new_1d(RESTRICTED_THREADS as u32), logits.clone().into_buffer_arg(), out.clone().into_buffer_arg(), vocab, top_k, top_p.min(1.0), inv_temperature, RESTRICTED_THREADS);
        out
    }))
}
