//! The decode layer's projections that read the same input, fused for inference on wgpu: q, k
//! and v as one matmul, gate and up as another, their weights concatenated once per set of
//! weights (a loaded model, a training step's policy).
//!
//! Why: GPU decode is bound by kernel launches (README, Performance), and each projection is a
//! launch whatever its width. One q/k/v matmul feeds our `qkv_to_cache` kernel (RoPE and the
//! cache writes in one launch) and one gate/up matmul feeds `swiglu_halves`: per layer 5
//! projections and 5 more kernels become 2 matmuls and 2 kernels. The cost is a copy of those
//! weights (for SmolLM2-135M 278 MB in f32, 139 MB in f16; half the model's), made per
//! generation phase.

use super::llama::Block;
use crate::kernels::gpu::QkvHeads;
use burn::prelude::*;
use burn::tensor::DType;

#[derive(Clone, Debug)]
pub struct FusedProjections {
    /// `[hidden, (heads + 2·kv_heads)·head_dim]`: q's columns, then k's, then v's.
    qkv: Tensor<2>,
    qkv_bias: Option<Tensor<1>>,
    /// `[hidden, 2·intermediate]`: gate's columns, then up's.
    gate_up: Tensor<2>,
    pub heads: QkvHeads,
}

impl FusedProjections {
    /// `block`'s weights as they are now (LoRA adapters merged by `Param::val`), or `None` where
    /// the fused path does not apply: autodiff weights or weights neither f32 nor f16 (our
    /// kernels are for inference, so the matmuls here are plain: mixed precision is for
    /// training), per-head q/k norms (they sit between the projection and RoPE).
    pub fn of(block: &Block) -> Option<Self> {
        let a = &block.self_attn;
        let m = &block.mlp;
        let qkv = a.qkv_weights();
        if qkv[0].is_autodiff() || !matches!(qkv[0].dtype(), DType::F32 | DType::F16) || a.q_norm.is_some() {
            return None;
        }
        let biased = [&a.q_proj, &a.k_proj, &a.v_proj].map(|l| l.bias.is_some());
        if biased.contains(&true) && biased.contains(&false) {
            return None; // some projections biased, some not: not a layout any model uses
        }
        if m.gate_proj.bias.is_some() || m.up_proj.bias.is_some() {
            return None; // the gate/up product below has no bias term
        }
        Some(FusedProjections {
            qkv: Tensor::cat(qkv, 1),
            qkv_bias: a.qkv_bias(),
            gate_up: Tensor::cat(m.gate_up_weights(), 1),
            heads: QkvHeads { heads: a.num_heads, kv_heads: a.num_kv_heads, head_dim: a.head_dim },
        })
    }

    /// `x · [Wq Wk Wv] (+ biases)`: `[batch, seq, (heads + 2·kv_heads)·head_dim]`.
    pub fn qkv(&self, x: Tensor<3>) -> Tensor<3> {
        let y = x.matmul(self.qkv.clone().unsqueeze());
        match &self.qkv_bias {
            Some(b) => y + b.clone().unsqueeze(),
            None => y,
        }
    }

    /// `x · [Wgate Wup]`: `[batch, seq, 2·intermediate]`.
    pub fn gate_up(&self, x: Tensor<3>) -> Tensor<3> {
        x.matmul(self.gate_up.clone().unsqueeze())
    }
}
