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
//! inputs as cube tensors, launches the kernel and publishes the output. Other devices,
//! autodiff tensors and other dtypes get `None` and keep Burn's ops.

use burn::prelude::*;
use burn::tensor::DType;
use burn_cubecl::kernel::into_contiguous;
use burn_cubecl::ops::numeric::empty_device_dtype;
use burn_cubecl::tensor::CubeTensor;
use burn_cubecl::CubeBackend;
use burn_dispatch::backends::Cube;
use burn_fusion::custom::{CustomOpIr, HandleContainer, OperationFn, OperationIr, StreamId, TensorIr};
use burn_fusion::{FusionBackend, FusionRuntime, FusionTensor};
use cubecl::prelude::{CubeCount, CubeDim};

#[path = "../../shaders/decode_attention.rs"]
mod decode_attention_shader;
#[path = "../../shaders/rms_norm.rs"]
mod rms_norm_shader;
#[path = "../../shaders/rope.rs"]
mod rope_shader;
#[path = "../../shaders/swiglu.rs"]
mod swiglu_shader;

/// Any value keeps Burn's ops on wgpu (before/after measurements).
pub const DISABLE_ENV: &str = "MEMTRAIN_NO_GPU_KERNELS";

/// Units per cube: a warp on NVIDIA, two on AMD's wave32; the kernels stride over any width.
const THREADS: usize = 64;

/// Units per cube of the element-wise kernels.
const ELEMENTS_PER_CUBE: usize = 256;

/// Cubes of a launch along one axis (WebGPU's guaranteed limit).
const MAX_CUBES: usize = 65_535;

type Runtime = <CubeBackend as FusionBackend>::FusionRuntime;
type Fused = FusionTensor<Runtime>;
type Handles = HandleContainer<<Runtime as FusionRuntime>::FusionHandle>;

/// Whether our wgpu kernels may run (see [`DISABLE_ENV`]).
pub fn enabled() -> bool {
    std::env::var_os(DISABLE_ENV).is_none()
}

/// `t` as a fusion tensor of the cube backend (wgpu, no autodiff, f32), or `None`.
fn fused<const D: usize>(t: &Tensor<D>) -> Option<Fused> {
    (enabled() && t.dtype() == DType::F32).then(|| t.clone().try_into_primitive::<Cube>().ok()).flatten()
}

/// Queues `run` in Burn's fusion stream as one op over `inputs` (handed over contiguous) whose
/// output has `shape`.
fn queue<const D: usize>(name: &'static str, inputs: Vec<Fused>, shape: [usize; D], run: impl Fn(Vec<CubeTensor>) -> CubeTensor + Send + Sync + 'static) -> Tensor<D> {
    let client = inputs[0].client.clone();
    let out = TensorIr::uninit(client.create_empty_handle(), Shape::new(shape), DType::F32);
    let irs: Vec<TensorIr> = inputs.into_iter().map(|t| t.into_ir()).collect();
    let desc = CustomOpIr::new(name, &irs, std::slice::from_ref(&out));
    let op = OperationFn(move |handles: &mut Handles| {
        let tensors = irs.iter().map(|t| into_contiguous(handles.get_float_tensor::<CubeBackend>(t))).collect();
        handles.register_float_tensor::<CubeBackend>(&out.id, run(tensors));
        Ok(())
    });
    let mut outputs = client.register(StreamId::current(), OperationIr::Custom(desc), op);
    Tensor::from_primitive::<Cube>(outputs.remove(0))
}

/// An uninitialised f32 tensor on `like`'s device.
fn empty(like: &CubeTensor, shape: Vec<usize>) -> CubeTensor {
    empty_device_dtype(like.client.clone(), like.device.clone(), Shape::from(shape), DType::F32)
}

/// The launch of an element-wise kernel over `len` elements whose units stride over them:
/// its cubes, the units per cube, and the stride (units in the launch).
fn strided_grid(len: usize) -> (CubeCount, CubeDim, usize) {
    let cubes = len.div_ceil(ELEMENTS_PER_CUBE).min(MAX_CUBES);
    (CubeCount::Static(cubes as u32, 1, 1), CubeDim::new_1d(ELEMENTS_PER_CUBE as u32), cubes * ELEMENTS_PER_CUBE)
}

/// `x / √(mean(x²) + eps) · γ` over the last dimension in one launch, for inference on wgpu;
/// `None` elsewhere (the caller uses Burn's `RmsNorm`).
pub fn rms_norm<const D: usize>(x: &Tensor<D>, gamma: &Tensor<1>, eps: f64) -> Option<Tensor<D>> {
    let dims = x.dims();
    let width = dims[D - 1];
    let rows = dims.iter().product::<usize>() / width.max(1);
    if width != gamma.dims()[0] || rows == 0 || rows > MAX_CUBES {
        return None;
    }
    let inputs = vec![fused(x)?, fused(gamma)?];
    let eps = eps as f32;
    Some(queue("memtrain::rms_norm", inputs, dims, move |t| {
        let [x, gamma]: [CubeTensor; 2] = t.try_into().expect("two inputs");
        let out = empty(&x, x.meta.shape().to_vec());
        rms_norm_shader::rms_norm_rows::launch(&x.client, CubeCount::Static(rows as u32, 1, 1), CubeDim::new_1d(THREADS as u32), x.clone().into_buffer_arg(), gamma.into_buffer_arg(), out.clone().into_buffer_arg(), width, eps, THREADS);
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
    let inputs = vec![fused(q)?, fused(keys)?, fused(values)?, fused(bias)?];
    Some(queue("memtrain::decode_attention", inputs, [b, heads, 1, head_dim], move |t| {
        let [q, keys, values, bias]: [CubeTensor; 4] = t.try_into().expect("four inputs");
        let scores = empty(&q, vec![b * heads, cols]);
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
    let inputs = vec![fused(gate)?, fused(up)?];
    Some(queue("memtrain::swiglu", inputs, dims, move |t| {
        let [gate, up]: [CubeTensor; 2] = t.try_into().expect("two inputs");
        let out = empty(&gate, gate.meta.shape().to_vec());
        let (cubes, units, stride) = strided_grid(len);
        swiglu_shader::swiglu::launch(&gate.client, cubes, units, gate.clone().into_buffer_arg(), up.into_buffer_arg(), out.clone().into_buffer_arg(), len, stride);
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
    let inputs = vec![fused(x)?, fused(cos)?, fused(sin)?];
    Some(queue("memtrain::rope_to_heads", inputs, [b, heads, seq, head_dim], move |t| {
        let [x, cos, sin]: [CubeTensor; 3] = t.try_into().expect("three inputs");
        let out = empty(&x, vec![b, heads, seq, head_dim]);
        let (cubes, units, stride) = strided_grid(len);
        rope_shader::rope_to_heads::launch(&x.client, cubes, units, x.clone().into_buffer_arg(), cos.into_buffer_arg(), sin.into_buffer_arg(), out.clone().into_buffer_arg(), seq, heads, head_dim, len, stride);
        out
    }))
}
