//! A `Linear` layer's forward that keeps LoRA low-rank: `x·W + s·(x·A)·B` with `W` frozen.
//!
//! Why: Burn's reparameterisation (`Param::val` on an adapted weight) materialises the dense
//! `W + s·A·B` at every forward, so autodiff keeps a merged weight per projection and the
//! backward computes a dense `[in, out]` weight gradient only to reduce it to `A` and `B` — a
//! SmolLM2-360M GRPO step held 16.3 GB with LoRA against 16.0 GB training every weight (README,
//! Performance, Memory). Here the frozen base is read raw (`Param::base`: no gradient, so its
//! product keeps no merged weight, and on wgpu, through `gpu_train_ops::linear`, neither a
//! copy of the base nor its input) and the adapters are two thin matmuls. The parameters are
//! Burn's own, so records, checkpoints, the optimizer and the merge on export are unchanged.

use super::precision::Precision;
use burn::nn::Linear;
use burn::prelude::*;

/// `lin.forward(x)` with its matmuls in `precision`, low-rank when `lin.weight` carries a LoRA
/// adapter; the weight's product through our wgpu training op where `kernels` allow it
/// ([`Precision::linear_of`]).
pub fn forward(lin: &Linear, x: Tensor<3>, precision: Precision, kernels: bool) -> Tensor<3> {
    let bias = lin.bias.as_ref().map(|b| b.val());
    let Some(adapter) = lin.weight.adapter() else { return precision.linear_of(x, &[lin.weight.val()], bias, kernels) };
    let base = precision.linear_of(x.clone(), &[lin.weight.base()], bias, kernels);
    let low = precision.linear(precision.linear(x, adapter.a.val(), None), adapter.b.val(), None);
    base + low.mul_scalar(adapter.scale)
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::module::{Lora, Module, ModuleMapper, Param};
    use burn::nn::LinearConfig;
    use burn::tensor::Distribution;

    /// Gives every adapter factor `B` (shape `[rank, out]`) random values: Burn starts it at 0,
    /// which would hide a wrong `B` term.
    struct RandomB(usize);
    impl ModuleMapper for RandomB {
        fn map_float<const D: usize>(&mut self, param: Param<Tensor<D>>) -> Param<Tensor<D>> {
            if D == 2 && param.lazy_shape()[0] == self.0 {
                param.map(|t| {
                    let req = t.is_require_grad();
                    Tensor::random(t.shape(), Distribution::Normal(0.0, 0.5), &t.device()).set_require_grad(req)
                })
            } else {
                param
            }
        }
    }

    fn values<const D: usize>(t: Tensor<D>) -> Vec<f32> {
        t.into_data().convert::<f32>().try_to_vec::<f32>().unwrap()
    }

    #[test]
    fn equals_burns_merged_forward_and_adapter_gradients_in_f32_and_mixed_f16() {
        let device = Device::flex().autodiff();
        device.seed(7);
        let lin = LinearConfig::new(12, 10).with_bias(true).init(&device).apply_lora(Lora::new(3, 6.0));
        let lin = lin.map(&mut RandomB(3));
        let x = Tensor::<3>::random([2, 5, 12], Distribution::Normal(0.0, 1.0), &device);
        let probe = Tensor::<3>::random([2, 5, 10], Distribution::Normal(0.0, 1.0), &device);
        let ours = forward(&lin, x.clone(), Precision::F32, true);
        let burns = lin.forward(x.clone());
        let (o, b) = (values(ours.clone()), values(burns.clone()));
        assert!(o.iter().zip(&b).all(|(p, q)| (p - q).abs() < 1e-4), "outputs differ: {:?} vs {:?}", &o[..4], &b[..4]);
        let adapter = lin.weight.adapter().unwrap();
        let grads = |y: Tensor<3>| {
            let g = (y * probe.clone()).sum().backward();
            (values(adapter.a.val().grad(&g).unwrap()), values(adapter.b.val().grad(&g).unwrap()), lin.weight.base().grad(&g).is_none())
        };
        let (oa, ob, o_frozen) = grads(ours);
        let (ba, bb, _) = grads(burns);
        assert!(o_frozen, "the frozen base got a gradient");
        let close = |p: &[f32], q: &[f32]| p.iter().zip(q).all(|(p, q)| (p - q).abs() < 1e-3 * (1.0 + q.abs()));
        assert!(close(&oa, &ba) && close(&ob, &bb), "adapter gradients differ");
        assert!(ob.iter().any(|v| v.abs() > 1e-3) && oa.iter().any(|v| v.abs() > 1e-3));
        // Mixed precision (flex computes f16 too): f16 rounding of the same output and adapter
        // gradients, the frozen base still without one.
        let mixed = forward(&lin, x, Precision::MixedF16, true);
        let m = values(mixed.clone());
        let worst = m.iter().zip(&o).map(|(p, q)| (p - q).abs()).fold(0.0f32, f32::max);
        assert!(worst > 0.0 && worst < 3e-2, "mixed output vs f32: {worst}");
        let (ma, mb, m_frozen) = grads(mixed);
        let near = |p: &[f32], q: &[f32]| p.iter().zip(q).all(|(p, q)| (p - q).abs() < 3e-2 * (1.0 + q.abs()));
        assert!(m_frozen && near(&ma, &oa) && near(&mb, &ob), "mixed adapter gradients differ");
    }
}
