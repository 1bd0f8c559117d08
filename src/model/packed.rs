//! The model's projections repacked for generation, a copy of the current weights built once
//! per set of weights (a loaded model, a training step's policy):
//! - on the CPU, panels for our decode matmul ([`crate::kernels::cpu_matmul`]), used by forward
//!   calls with few rows (prefill and training keep the backend's gemm: with hundreds of rows
//!   the kernel measured no faster than it). The copy costs as much memory as the f32
//!   projections again (≈ 540 MB for SmolLM2-135M; half in f16, [`PanelPrecision::F16`]); it
//!   made decode 1.3× (batch 1) to 1.7× (batch 16) faster in the same benchmark run (README,
//!   Performance);
//! - on wgpu, q/k/v and gate/up concatenated so each group is one matmul
//!   ([`super::fused_projections`]), for every forward call through a KV cache.

use super::fused_projections::FusedProjections;
use super::host_decode::{BlockNorms, HostNorm};
use super::llama::{Block, Llama, StepLayout};
use super::weights_out::host;
use crate::kernels::cpu_matmul::PackedMatrix;
use anyhow::{Context, Result};
use burn::nn::Linear;
use burn::prelude::*;

/// Forward calls with more rows than this (batch × new tokens) use the backend's gemm.
pub const MAX_ROWS: usize = 64;

/// Set to any value to run on Burn's ops only — generation without these panels, training without
/// the fused LM head and attention (`crate::kernels`) — for before/after measurements.
pub const DISABLE_ENV: &str = "MEMTRAIN_NO_CPU_KERNELS";

/// One layer's repacked projections: CPU panels or wgpu fused groups.
#[derive(Clone, Debug)]
pub enum PackedBlock {
    Cpu(CpuBlock),
    Gpu(FusedProjections),
}

impl PackedBlock {
    pub fn cpu(&self) -> Option<&CpuBlock> {
        match self {
            PackedBlock::Cpu(b) => Some(b),
            PackedBlock::Gpu(_) => None,
        }
    }

    pub fn gpu(&self) -> Option<&FusedProjections> {
        match self {
            PackedBlock::Gpu(f) => Some(f),
            PackedBlock::Cpu(_) => None,
        }
    }
}

#[derive(Clone, Debug)]
pub struct CpuBlock {
    pub q: PackedMatrix,
    pub k: PackedMatrix,
    pub v: PackedMatrix,
    pub o: PackedMatrix,
    pub gate: PackedMatrix,
    pub up: PackedMatrix,
    pub down: PackedMatrix,
    /// The layer's norms, for [`super::host_decode`].
    pub norms: BlockNorms,
}

#[derive(Clone, Debug)]
pub struct PackedLlama {
    pub layers: Vec<PackedBlock>,
    /// The LM head's CPU panels (`None` on wgpu, where the head is one matmul anyway).
    pub lm_head: Option<PackedMatrix>,
    /// The final norm on the host (`None` on wgpu), for [`super::host_decode`].
    pub final_norm: Option<HostNorm>,
}

/// What the CPU panels store. f16 (`--f16` on the CPU) halves the bytes a decode step streams
/// and the copy's memory; each product is then that of the weights rounded to f16, still
/// summed in f32. (wgpu's fused groups follow the device's float type instead.)
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum PanelPrecision {
    #[default]
    F32,
    F16,
}

impl PanelPrecision {
    fn apply(self, m: PackedMatrix) -> PackedMatrix {
        match self {
            PanelPrecision::F32 => m,
            PanelPrecision::F16 => m.to_f16(),
        }
    }

    /// "f32" or "f16".
    pub fn name(self) -> &'static str {
        match self {
            PanelPrecision::F32 => "f32",
            PanelPrecision::F16 => "f16",
        }
    }
}

fn pack_linear(lin: &Linear, precision: PanelPrecision) -> Result<PackedMatrix> {
    let w = lin.weight.val();
    let [k, n] = w.dims();
    let packed = PackedMatrix::from_in_out(&host(w)?, k, n);
    let packed = match &lin.bias {
        Some(b) => packed.with_bias(host(b.val())?),
        None => packed,
    };
    // Rounded one matrix at a time, so the f32 panels never all exist at once.
    Ok(precision.apply(packed))
}

fn pack_block(b: &Block, precision: PanelPrecision) -> Result<PackedBlock> {
    let a = &b.self_attn;
    let pack = |lin: &Linear| pack_linear(lin, precision);
    Ok(PackedBlock::Cpu(CpuBlock {
        q: pack(&a.q_proj)?,
        k: pack(&a.k_proj)?,
        v: pack(&a.v_proj)?,
        o: pack(&a.o_proj)?,
        gate: pack(&b.mlp.gate_proj)?,
        up: pack(&b.mlp.up_proj)?,
        down: pack(&b.mlp.down_proj)?,
        norms: BlockNorms::of(b)?,
    }))
}

impl PackedLlama {
    /// Packs every projection and the LM head of `model` (its weights as they are now) for the
    /// CPU decode kernels, in `precision`.
    pub fn pack(model: &Llama, precision: PanelPrecision) -> Result<Self> {
        let layers = model.layers.iter().enumerate().map(|(i, b)| pack_block(b, precision).with_context(|| format!("packing layer {i}"))).collect::<Result<_>>()?;
        let lm_head = match &model.lm_head {
            Some(head) => pack_linear(head, precision)?,
            None => {
                let table = model.embed_tokens.weight.val();
                let [vocab, d] = table.dims();
                precision.apply(PackedMatrix::from_out_in(&host(table)?, vocab, d))
            }
        };
        Ok(PackedLlama { layers, lm_head: Some(lm_head), final_norm: Some(HostNorm::of(&model.norm)?) })
    }

    /// Fuses every layer's q/k/v and gate/up for wgpu inference; `None` where a layer cannot
    /// be fused (see [`FusedProjections::of`]) or the model is not on wgpu.
    pub fn fuse(model: &Llama) -> Option<Self> {
        if !crate::device::compiles_per_shape(&model.embed_tokens.weight.val().device()) {
            return None;
        }
        let layers = model.layers.iter().map(|b| FusedProjections::of(b).map(PackedBlock::Gpu)).collect::<Option<_>>()?;
        Some(PackedLlama { layers, lm_head: None, final_norm: None })
    }

    /// Whether [`Self::for_device`] packs CPU panels for `model` (without packing them).
    pub fn used_for(model: &Llama) -> bool {
        model.embed_tokens.weight.val().device() == Device::flex() && std::env::var_os(DISABLE_ENV).is_none()
    }

    /// The repacked weights for `model`'s device: CPU panels in `precision` on flex unless
    /// [`DISABLE_ENV`] is set, fused projections on wgpu unless our GPU kernels are off
    /// ([`crate::kernels::gpu::DISABLE_ENV`]); `None` elsewhere.
    pub fn for_device(model: &Llama, precision: PanelPrecision) -> Option<Self> {
        if !Self::used_for(model) {
            return crate::kernels::gpu::enabled().then(|| Self::fuse(model)).flatten();
        }
        match Self::pack(model, precision) {
            Ok(p) => Some(p),
            Err(e) => {
                // Only a speed-up: fall back to the backend's ops rather than fail generation.
                eprintln!("warning: CPU decode kernels unavailable ({e:#}); using the backend's matmul");
                None
            }
        }
    }
}

/// `x · W (+ b)` for `x: [batch, seq, in]` through `packed` when the call has at most
/// [`MAX_ROWS`] rows; `None` when it does not apply (the caller uses the backend's matmul).
pub fn apply(packed: &PackedMatrix, x: Tensor<3>) -> Option<Tensor<3>> {
    let [b, s, d] = x.dims();
    if b * s > MAX_ROWS || packed.inputs() != d {
        return None;
    }
    let device = x.device();
    let rows = x.into_data().convert::<f32>().try_to_vec::<f32>().ok()?;
    Some(Tensor::from_data(TensorData::new(packed.matmul(&rows, b * s), [b, s, packed.outputs()]), &device))
}

/// A `Linear` layer through its packed copy when one is given and applies (LoRA adapters kept
/// low-rank otherwise: [`super::lora_linear`]), its matmuls in `layout`'s precision.
pub fn project(lin: &Linear, packed: Option<&PackedMatrix>, x: Tensor<3>, layout: &StepLayout) -> Tensor<3> {
    match packed.and_then(|p| apply(p, x.clone())) {
        Some(y) => y,
        None => super::lora_linear::forward(lin, x, layout.precision, layout.fused_kernels),
    }
}
