//! Mixed precision for training on wgpu: the matmuls run in f16, everything else in f32 —
//! PyTorch autocast's policy (linear layers and batched matmuls in half precision; norms,
//! softmax, the loss and the residual stream in f32).
//!
//! Why: a matmul keeps its two inputs for the backward, and those inputs (the normed hidden
//! states, q/k/v, attention probabilities, the SwiGLU product) are most of what a training
//! forward keeps; in f16 they take half the memory, and a GPU's f16 matmuls read half the
//! bytes. The weights stay f32 (the optimizer's master copy, AdamW's moments in f32): each
//! forward casts them to f16 on the way into a matmul, and the cast's backward hands the
//! gradient back in f32. With our wgpu kernels the projections go through
//! [`Precision::linear_of`], which keeps no f16 copy of the weight for the backward (it casts
//! the f32 weight again there). Small gradients would underflow in f16, so the loss is scaled before
//! the backward and the gradients unscaled before the step ([`crate::train::loss_scale`]).
//!
//! Each product comes back in its input's dtype. The residual stream stays f32 (SmolLM2's
//! reaches values whose squares overflow f16, so RMSNorm stays f32), and on wgpu with our
//! kernels the layer's inside runs in f16 ([`Precision::activations`]): the normed input is
//! cast to f16 once for q/k/v (once for gate/up), RoPE, attention's softmax and SiLU·up read
//! and write f16 with their arithmetic in f32, and only the output projections' products are
//! cast back to f32 for the residual add. So what the backward keeps is f16 (attention's
//! probabilities once, not an f32 copy beside the matmul's f16 one, and only while small:
//! `gpu_train_ops::qkv_attention` and `gpu_train_ops::attention` recompute large ones), and the casts
//! between ops are gone. Without our kernels (Burn's composed ops) the products come back in f32 and
//! softmax and SiLU run in f32, as before.

use crate::device::DeviceInfo;
use crate::kernels::gpu_train_ops;
use anyhow::{Result, bail};
use burn::prelude::*;
use burn::tensor::{DType, FloatDType};
use burn::tensor::module::linear;

/// How a training forward computes its matmuls.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Precision {
    /// Everything in f32.
    #[default]
    F32,
    /// Matmuls in f16 (inputs cast, products cast back to f32), the rest in f32; wgpu only.
    MixedF16,
}

impl Precision {
    /// Refuses mixed precision on the CPU path (flex's kernels are f32), naming the device.
    pub fn check_device(self, device: &Device, info: &DeviceInfo) -> Result<()> {
        if self == Precision::MixedF16 && !crate::device::compiles_per_shape(device) {
            bail!("precision = MixedF16 runs on wgpu devices only, and {info} is the CPU path: use precision F32 there");
        }
        Ok(())
    }

    /// `x · w (+ b)` for `x: [.., in]`, `w: [in, out]` (Burn's `Linear` layout), in `x`'s dtype.
    pub fn linear<const D: usize>(self, x: Tensor<D>, w: Tensor<2>, b: Option<Tensor<1>>) -> Tensor<D> {
        match self {
            Precision::F32 => linear(x, w, b),
            // The bias is added after the product comes back.
            Precision::MixedF16 => {
                let dtype = float_dtype(&x);
                let y = linear(half(x), half(w), None).cast(dtype);
                match b {
                    Some(b) => y + b.cast(dtype).unsqueeze(),
                    None => y,
                }
            }
        }
    }

    /// [`Self::linear`] of the weight made of `parts` side by side (one part: the weight
    /// itself; on training tensors the concatenation's backward hands each part its gradient):
    /// in a training step on wgpu with our kernels (`kernels`) through
    /// [`gpu_train_ops::linear`], which keeps no copy of the weight for the backward.
    pub fn linear_of<const D: usize>(self, x: Tensor<D>, parts: &[Tensor<2>], b: Option<Tensor<1>>, kernels: bool) -> Tensor<D> {
        let weight = match parts {
            [one] => one.clone(),
            _ => Tensor::cat(parts.to_vec(), 1),
        };
        let compute = match self {
            Precision::F32 => float_dtype(&x),
            Precision::MixedF16 => FloatDType::F16,
        };
        match kernels.then(|| gpu_train_ops::linear(&x, &weight, parts, compute)).flatten() {
            Some(y) => match b {
                Some(b) => {
                    let dtype = float_dtype(&y);
                    y + b.cast(dtype).unsqueeze()
                }
                None => y,
            },
            None => self.linear(x, weight, b),
        }
    }

    /// `a · b` (batched over the leading dims), in `a`'s dtype.
    pub fn matmul<const D: usize>(self, a: Tensor<D>, b: Tensor<D>) -> Tensor<D> {
        match self {
            Precision::F32 => a.matmul(b),
            Precision::MixedF16 => {
                let dtype = float_dtype(&a);
                half(a).matmul(half(b)).cast(dtype)
            }
        }
    }

    /// The dtype a layer's inside runs in for this precision: f16 under mixed precision where
    /// our wgpu kernels take the ops between the matmuls (`kernels`: the layout allows them and
    /// they are on), which keeps their inputs f16 for the backward; else `residual`'s.
    pub fn activations(self, residual: DType, kernels: bool) -> FloatDType {
        match self == Precision::MixedF16 && kernels && crate::kernels::gpu::enabled() {
            true => FloatDType::F16,
            false => residual.into(),
        }
    }
}

fn half<const D: usize>(t: Tensor<D>) -> Tensor<D> {
    t.cast(FloatDType::F16)
}

fn float_dtype<const D: usize>(t: &Tensor<D>) -> FloatDType {
    t.dtype().into()
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::tensor::{DType, Distribution};

    /// The CPU device refuses mixed precision by name (what `Trainer::open` and `bench train`
    /// say when `device: Auto` found no GPU); f32 runs anywhere.
    #[test]
    fn mixed_precision_is_refused_on_the_cpu_path_by_name() {
        let (device, info) = crate::device::cpu();
        let e = Precision::MixedF16.check_device(&device, &info).unwrap_err().to_string();
        assert!(e.contains("wgpu devices only") && e.contains(&info.to_string()), "{e}");
        Precision::F32.check_device(&device, &info).unwrap();
    }

    /// On flex (which computes f16 too): the mixed products are f32 tensors within f16's
    /// rounding of the f32 ones, and the gradients reach the f32 inputs in f32.
    #[test]
    fn mixed_products_are_f32_and_close_to_f32_ones() {
        let device = Device::flex().autodiff();
        device.seed(3);
        let x = Tensor::<3>::random([2, 5, 16], Distribution::Normal(0.0, 1.0), &device).require_grad();
        let w = Tensor::<2>::random([16, 8], Distribution::Normal(0.0, 0.3), &device).require_grad();
        let b = Tensor::<1>::random([8], Distribution::Normal(0.0, 1.0), &device);
        let [full, mixed] = [Precision::F32, Precision::MixedF16].map(|p| p.linear(x.clone(), w.clone(), Some(b.clone())));
        assert_eq!(mixed.dtype(), DType::F32);
        let diff = (full.clone() - mixed.clone()).abs().max().into_scalar::<f32>();
        assert!(diff > 0.0 && diff < 2e-2, "f16 products should differ from f32 only by rounding: {diff}");
        let grads = mixed.sum().backward();
        let gw = w.grad(&grads).expect("the weight's gradient");
        assert_eq!(gw.dtype(), DType::F32);
        let full_gw = w.grad(&full.sum().backward()).unwrap();
        assert!((gw - full_gw).abs().max().into_scalar::<f32>() < 2e-2);
    }
}
