//! Mixed-precision training on wgpu (lavapipe in CI): f16 matmuls with f32 weights and dynamic
//! loss scaling (`model::precision`, `train::loss_scale`), against the same model trained in f32
//! on the same device (the reference: Burn's ops in f32, themselves checked against flex and
//! transformers elsewhere).

mod common;

use burn::module::{Module, ModuleVisitor, Param};
use burn::optim::{AdamWConfig, GradientsParams, ModuleOptimizer, SgdConfig};
use burn::prelude::*;
use common::tiny_model;
use memtrain::model::{Architecture, Llama, ModelConfig, rope};
use memtrain::model::precision::Precision;
use memtrain::train::grpo::Forward;
use memtrain::train::loss_scale::LossScale;
use memtrain::train::sft::{SftExample, SftWeighting, sft_training_loss};
use memtrain::train::update::{Update, accumulated_step};

fn examples() -> Vec<SftExample> {
    vec![
        SftExample::new(vec![3, 9, 27, 17], vec![5, 44, 12, 60, 2, 31, 8]),
        SftExample::new(vec![11, 4], vec![63, 7, 19]),
        SftExample::new(vec![40, 41, 42, 43, 44], vec![45, 46, 47, 48]),
    ]
}

fn values<const D: usize>(t: Tensor<D>) -> Vec<f32> {
    t.into_data().convert::<f32>().try_to_vec::<f32>().unwrap()
}

/// Every parameter (or, with `grads`, its gradient) in module order, flattened.
fn flat(model: &Llama, grads: Option<&GradientsParams>) -> Vec<f32> {
    struct Collect<'a>(Option<&'a GradientsParams>, Vec<f32>);
    impl ModuleVisitor for Collect<'_> {
        fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
            let t = match self.0 {
                Some(g) => g.get::<D>(param.id).expect("every weight has a gradient"),
                None => param.val().inner(),
            };
            self.1.extend(values(t));
        }
    }
    let mut c = Collect(grads, Vec::new());
    model.visit(&mut c);
    c.1
}

/// Largest |a − b| relative to the largest |b|.
fn relative(a: &[f32], b: &[f32]) -> f32 {
    let scale = b.iter().fold(0.0f32, |m, x| m.max(x.abs())).max(1e-12);
    common::max_abs_diff(a, b) / scale
}

fn forward(device: &Device, precision: Precision) -> Forward {
    Forward { precision, ..Forward::plain(device) }
}

fn loss_and_gradients(model: &Llama, inv_freq: &[f64], device: &Device, forward: Forward) -> (f32, Vec<f32>) {
    let loss = sft_training_loss(model, inv_freq, &examples(), SftWeighting::Token, device, forward).unwrap();
    let value = values(loss.value.clone())[0];
    (value, flat(model, Some(&loss.gradients(model))))
}

/// One accumulated step (micro-batches of 2) under `optim` and `scale`.
fn step(model: Llama, inv_freq: &[f64], device: &Device, optim: &mut ModuleOptimizer, scale: &mut LossScale, precision: Precision, lr: f64) -> (Llama, f32) {
    let all = examples();
    let mass = SftWeighting::Token.mass(&all);
    let update = accumulated_step(model, optim, scale, lr, &all, 2, |m, part| {
        let share = SftWeighting::Token.mass(part) / mass;
        Ok(sft_training_loss(m, inv_freq, part, SftWeighting::Token, device, forward(device, precision))?.scaled(share))
    })
    .unwrap();
    match update {
        Update::Applied(m, times) => (m, times.loss),
        Update::Skipped(_, why) => panic!("the step was skipped: {why}"),
    }
}

/// The f16 products move the loss and every gradient by f16 rounding only — and do move them:
/// the same model in f32 on wgpu matches flex to ~5e-7, so a difference over 1e-5 shows the
/// matmuls ran in f16. With the layers recomputed in the backward (gradient checkpointing) the
/// mixed gradients are the same again: the recomputation runs in f16 too. For each
/// architecture: Llama, Qwen2 (q/k/v biases, added to the fused projection's f16 product) and
/// Qwen3 (per-head q/k norms: the separate projections and their attention op, in f16).
#[test]
fn mixed_f16_gradients_are_the_f32_gradients_to_f16_rounding() {
    let Some(wgpu) = common::wgpu_device() else { return };
    let device = wgpu.autodiff();
    for architecture in [Architecture::Llama, Architecture::Qwen2, Architecture::Qwen3] {
        let config = ModelConfig { architecture, ..common::tiny_config() };
        let model = common::jittered_model(&config, &device, 7);
        let inv_freq = rope::inverse_frequencies(&config);
        let (full_loss, full) = loss_and_gradients(&model, &inv_freq, &device, forward(&device, Precision::F32));
        let (mixed_loss, mixed) = loss_and_gradients(&model, &inv_freq, &device, forward(&device, Precision::MixedF16));
        let (_, recomputed) = loss_and_gradients(&model, &inv_freq, &device, Forward { recompute: true, ..forward(&device, Precision::MixedF16) });
        let again = relative(&recomputed, &mixed);
        assert!(again < 1e-5, "{architecture:?}: recomputed mixed gradients differ from taped ones: {again}");
        let worst = relative(&mixed, &full);
        eprintln!("{architecture:?}: loss f32 {full_loss} vs mixed {mixed_loss}; worst relative gradient |Δ| {worst:.2e} over {} values", full.len());
        assert!((mixed_loss - full_loss).abs() < 2e-3 * full_loss.abs(), "{architecture:?} loss: mixed {mixed_loss} vs f32 {full_loss}");
        assert!(worst < 2e-2, "{architecture:?}: gradients differ beyond f16 rounding: {worst}");
        assert!(worst > 1e-5, "{architecture:?}: the mixed gradients equal the f32 ones ({worst}): the matmuls did not run in f16");
    }
}

/// A loss scale far too large overflows f16; the step is run again at smaller scales until its
/// gradients are finite, and the weights then move as the f32 step moves them. Plain SGD, whose
/// update is proportional to the gradient: a gradient left scaled (or scaled twice) would show
/// here, where AdamW's normalisation would hide it.
#[test]
fn an_overflowing_loss_scale_backs_off_and_the_step_matches_f32() {
    let Some(wgpu) = common::wgpu_device() else { return };
    let device = wgpu.autodiff();
    let (model, inv_freq) = tiny_model(&device, 11);
    let before = flat(&model, None);
    let (full, full_loss) = step(model.clone(), &inv_freq, &device, &mut SgdConfig::new().init(), &mut LossScale::off(), Precision::F32, 0.5);
    let start = 16_777_216.0; // 2²⁴: the logits' gradients times this are far past f16's 65,504
    let mut scale = LossScale::starting_at(start);
    let (mixed, mixed_loss) = step(model, &inv_freq, &device, &mut SgdConfig::new().init(), &mut scale, Precision::MixedF16, 0.5);
    assert!(scale.factor() < start, "the scale did not back off: {}", scale.factor());
    let moved = |after: &[f32]| after.iter().zip(&before).map(|(a, b)| a - b).collect::<Vec<f32>>();
    let (full_move, mixed_move) = (moved(&flat(&full, None)), moved(&flat(&mixed, None)));
    let worst = relative(&mixed_move, &full_move);
    eprintln!("scale {start} → {}; losses {full_loss} vs {mixed_loss}; worst relative update |Δ| {worst:.2e}", scale.factor());
    assert!(full_move.iter().any(|d| d.abs() > 1e-3), "the f32 step barely moved the weights");
    assert!((mixed_loss - full_loss).abs() < 2e-3 * full_loss.abs(), "the reported loss must be the unscaled one: {mixed_loss} vs {full_loss}");
    assert!(worst < 3e-2, "the mixed step moved the weights unlike the f32 step: {worst}");
}

/// Twenty AdamW steps in mixed f16 lower the loss as the same steps in f32 do.
#[test]
fn mixed_f16_training_lowers_the_loss_as_f32_does() {
    let Some(wgpu) = common::wgpu_device() else { return };
    let device = wgpu.autodiff();
    let run = |precision: Precision| {
        let (mut model, inv_freq) = tiny_model(&device, 5);
        let mut optim = AdamWConfig::new().init();
        let mut scale = if precision == Precision::MixedF16 { LossScale::dynamic() } else { LossScale::off() };
        let mut losses = Vec::new();
        for _ in 0..20 {
            let (m, loss) = step(model, &inv_freq, &device, &mut optim, &mut scale, precision, 1e-2);
            model = m;
            losses.push(loss);
        }
        losses
    };
    let (full, mixed) = (run(Precision::F32), run(Precision::MixedF16));
    eprintln!("f32 losses {full:?}\nmixed losses {mixed:?}");
    let (f0, f1, m1) = (full[0], *full.last().unwrap(), *mixed.last().unwrap());
    assert!((mixed[0] - f0).abs() < 2e-3 * f0, "first losses differ: {} vs {f0}", mixed[0]);
    assert!(f1 < 0.6 * f0, "f32 training should learn these few tokens: {f0} → {f1}");
    assert!((m1 - f1).abs() < 0.05 * f0, "mixed training ended at {m1}, f32 at {f1} (from {f0})");
}
