//! The chunked LM head on wgpu under autodiff (`kernels::gpu_head_op`): its log-probs and the
//! gradients of hidden states and head against Burn's composed logits → log-softmax → gather on
//! the same wgpu device (lavapipe in CI), in both head layouts, over several chunks with a
//! ragged last one; then a whole tiny model's training gradients on wgpu (which now run through
//! it) against the same model's on flex (our separate CPU head kernel).

mod common;

use burn::module::{ModuleVisitor, Param};
use burn::optim::GradientsParams;
use burn::prelude::*;
use burn::tensor::Distribution;
use burn::tensor::activation::log_softmax;
use memtrain::kernels::gpu_head_op::chunked_with;
use memtrain::kernels::target_logprobs::HeadLayout;
use memtrain::model::{Architecture, Llama, ModelConfig, rope};
use memtrain::train::grpo::Forward;
use memtrain::train::sft::{SftExample, SftWeighting, sft_training_loss};

fn values<const D: usize>(t: Tensor<D>) -> Vec<f32> {
    t.into_data().convert::<f32>().try_to_vec::<f32>().unwrap()
}

/// Largest |a − b| relative to the largest |b|.
fn relative(a: &[f32], b: &[f32]) -> f32 {
    let scale = b.iter().fold(0.0f32, |m, x| m.max(x.abs())).max(1e-12);
    common::max_abs_diff(a, b) / scale
}

/// Log-probs and the gradients of `Σ cᵢ·logpᵢ` w.r.t. hidden and head, through `op` or, for
/// `None`, Burn's composed ops.
fn run(device: &Device, h: &Tensor<2>, w: &Tensor<2>, layout: HeadLayout, targets: &[u32], coef: &Tensor<1>, chunk: Option<usize>, head_learns: bool) -> (Vec<f32>, Vec<f32>, Option<Vec<f32>>) {
    let h = Tensor::<2>::from_data(h.to_data(), device).require_grad();
    let w = Tensor::<2>::from_data(w.to_data(), device);
    let w = if head_learns { w.require_grad() } else { w };
    let n = targets.len();
    let logp = match chunk {
        Some(elements) => chunked_with(&h, &w, layout, targets, elements).expect("the chunked head runs on wgpu autodiff"),
        None => {
            let z = match layout {
                HeadLayout::VocabMajor => h.clone().matmul(w.clone().transpose()),
                HeadLayout::DimMajor => h.clone().matmul(w.clone()),
            };
            let ids = Tensor::<2, Int>::from_data(TensorData::new(targets.iter().map(|&t| t as i64).collect::<Vec<_>>(), [n, 1]), device);
            log_softmax(z, 1).gather(1, ids).reshape([n])
        }
    };
    let grads = (logp.clone() * Tensor::from_data(coef.to_data(), device)).sum().backward();
    (values(logp), values(h.grad(&grads).expect("hidden gradient")), w.grad(&grads).map(values))
}

#[test]
fn chunked_head_matches_burns_log_softmax_and_gradients_on_wgpu() {
    let Some(wgpu) = common::wgpu_device() else { return };
    let device = wgpu.clone().autodiff();
    let (n, d, vocab) = (37, 24, 301);
    let h = Tensor::<2>::random([n, d], Distribution::Normal(0.0, 1.0), &device);
    let coef = Tensor::<1>::random([n], Distribution::Uniform(-1.0, 1.0), &device);
    let targets: Vec<u32> = (0..n).map(|i| ((i * 97 + 5) % vocab) as u32).collect();
    for layout in [HeadLayout::VocabMajor, HeadLayout::DimMajor] {
        let dims = match layout {
            HeadLayout::VocabMajor => [vocab, d],
            HeadLayout::DimMajor => [d, vocab],
        };
        let w = Tensor::<2>::random(dims, Distribution::Normal(0.0, 0.5), &device);
        let reference = run(&device, &h, &w, layout, &targets, &coef, None, true);
        // 5 rows per chunk: 8 chunks, the last of 2 rows; and everything in one chunk.
        for elements in [5 * vocab + 3, 1 << 20] {
            let ours = run(&device, &h, &w, layout, &targets, &coef, Some(elements), true);
            let errs = [relative(&ours.0, &reference.0), relative(&ours.1, &reference.1), relative(ours.2.as_ref().unwrap(), reference.2.as_ref().unwrap())];
            eprintln!("{layout:?}, {elements} logits per chunk: relative |Δ| logp {:.1e}, d hidden {:.1e}, d head {:.1e}", errs[0], errs[1], errs[2]);
            assert!(errs.iter().all(|&e| e < 1e-5), "{layout:?}, chunk {elements}: {errs:?}");
        }
        // A head that does not learn gets no gradient; the hidden states still do.
        let frozen = run(&device, &h, &w, layout, &targets, &coef, Some(5 * vocab), false);
        assert!(frozen.2.is_none(), "a frozen head got a gradient");
        assert!(relative(&frozen.1, &reference.1) < 1e-5);
    }
    // Other devices and untracked tensors keep their own paths.
    let targets = [1u32, 2];
    let plain = Tensor::<2>::ones([2, 4], &wgpu);
    assert!(chunked_with(&plain, &Tensor::ones([8, 4], &wgpu), HeadLayout::VocabMajor, &targets, 64).is_none(), "no autodiff: Burn's ops");
    let cpu = Device::flex().autodiff();
    let taped = Tensor::<2>::ones([2, 4], &cpu).require_grad();
    assert!(chunked_with(&taped, &Tensor::ones([8, 4], &cpu), HeadLayout::VocabMajor, &targets, 64).is_none(), "flex: the CPU head op");
}

/// Every parameter's gradient, in module order.
fn flat_gradients(model: &Llama, grads: &GradientsParams) -> Vec<Vec<f32>> {
    struct Collect<'a>(&'a GradientsParams, Vec<Vec<f32>>);
    impl ModuleVisitor for Collect<'_> {
        fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
            self.1.push(self.0.get::<D>(param.id).map(values).expect("every weight has a gradient"));
        }
    }
    let mut c = Collect(grads, Vec::new());
    model.visit(&mut c);
    c.1
}

/// A tiny model's training gradients on wgpu (our training ops: the fused q/k/v attention and
/// gate/up ops, RMSNorm, the LM head) against flex's, for each architecture: Llama, Qwen2
/// (q/k/v biases: the fused projection concatenates them) and Qwen3 (per-head q/k norms: the
/// separate projections' path).
#[test]
fn tiny_model_training_gradients_on_wgpu_match_flex() {
    let Some(wgpu) = common::wgpu_device() else { return };
    let examples = vec![SftExample::new(vec![3, 9, 27, 17], vec![5, 44, 12, 60, 2, 31, 8]), SftExample::new(vec![11, 4], vec![63, 7, 19])];
    for architecture in [Architecture::Llama, Architecture::Qwen2, Architecture::Qwen3] {
        let config = ModelConfig { architecture, ..common::tiny_config() };
        let [gpu, cpu] = [wgpu.clone().autodiff(), Device::flex().autodiff()].map(|device| {
            let model = common::jittered_model(&config, &device, 7);
            let inv_freq = rope::inverse_frequencies(&config);
            let loss = sft_training_loss(&model, &inv_freq, &examples, SftWeighting::Token, &device, Forward::plain(&device)).unwrap();
            let value = values(loss.value.clone())[0];
            (value, flat_gradients(&model, &loss.gradients(&model)))
        });
        assert!((gpu.0 - cpu.0).abs() < 1e-4, "{architecture:?} loss: wgpu {} vs flex {}", gpu.0, cpu.0);
        assert_eq!(gpu.1.len(), cpu.1.len());
        let worst = gpu.1.iter().zip(&cpu.1).map(|(a, b)| relative(a, b)).fold(0.0f32, f32::max);
        eprintln!("tiny {architecture:?} model: loss {} vs {}, worst relative gradient |Δ| {worst:.1e} over {} tensors", gpu.0, cpu.0, gpu.1.len());
        assert!(worst < 1e-3, "{architecture:?} gradients differ: {worst}");
    }
}
