//! AdamW's step on wgpu in one launch per parameter tensor (`shaders/adamw.rs`), the
//! parameter and its moments updated in place.
//!
//! Why: GPU training steps are bound by launches (README, Performance), and Burn's AdamW runs
//! ~14 element-wise ops per parameter tensor (SmolLM2-135M has 273), which its fusion merges
//! into a few launches each.

use super::gpu::{self, fused, queue_outputs, strided_grid};
use burn::prelude::*;
use burn::tensor::DType;

#[path = "../../shaders/adamw.rs"]
mod adamw_shader;

/// AdamW's per-step constants `[β₁, β₂, 1 − β₁ᵗ, 1 − β₂ᵗ, ε, 1 − lr·λ, lr]`.
pub type Coefficients = [f32; 7];

/// A parameter's two moments.
pub type Moments<const D: usize> = (Tensor<D>, Tensor<D>);

/// One AdamW step of `param` with `grad` and its `moments` (`None` at the first step: they
/// start at zero and are written, never read), as `(param, moments)`; `Err` hands the inputs
/// back untouched where the kernel does not apply (another device, autodiff, not f32, shapes
/// that differ, our kernels turned off), and the caller runs its own step.
#[allow(clippy::type_complexity)]
pub fn adamw_step<const D: usize>(k: Coefficients, param: Tensor<D>, grad: &Tensor<D>, moments: Option<Moments<D>>) -> Result<(Tensor<D>, Moments<D>), (Tensor<D>, Option<Moments<D>>)> {
    let dims = param.dims();
    let len = dims.iter().product::<usize>();
    let f32_here = |t: &Tensor<D>| t.dtype() == DType::F32 && t.dims() == dims && fused(t).is_some();
    let fits = len > 0 && f32_here(&param) && f32_here(grad) && moments.as_ref().is_none_or(|(m, v)| f32_here(m) && f32_here(v));
    if !fits {
        return Err((param, moments));
    }
    let fresh = moments.is_none();
    // Handed over by value: the op must hold the buffers' only reference to write them in place.
    let cube = |t: Tensor<D>| t.try_into_primitive::<burn_dispatch::backends::Cube>().ok().expect("checked above: a cube tensor");
    let mut inputs = vec![cube(param), fused(grad).expect("checked above")];
    if let Some((m, v)) = moments {
        inputs.extend([cube(m), cube(v)]);
    }
    let mut outs = queue_outputs("memtrain::adamw_step", inputs, vec![dims; 3], move |t| {
        let mut t = t.into_iter();
        let (param, grad) = (gpu::writable(t.next().expect("param")), t.next().expect("grad"));
        let (m, v) = match fresh {
            true => (gpu::empty(&param, dims.to_vec()), gpu::empty(&param, dims.to_vec())),
            false => (gpu::writable(t.next().expect("m")), gpu::writable(t.next().expect("v"))),
        };
        let (cubes, units, stride) = strided_grid(len);
        let [b1, b2, c1, c2, eps, keep, lr] = k;
        adamw_shader::adamw_step::launch(&param.client, cubes, units, param.clone().into_buffer_arg(), grad.into_buffer_arg(), m.clone().into_buffer_arg(), v.clone().into_buffer_arg(), b1, b2, c1, c2, eps, keep, lr, len, stride, fresh);
        vec![param, m, v]
    });
    let v = outs.pop().expect("three outputs");
    let m = outs.pop().expect("three outputs");
    Ok((outs.pop().expect("three outputs"), (m, v)))
}
