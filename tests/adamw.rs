//! The fused CPU AdamW against Burn's AdamW (the independent implementation): the same weights
//! after several steps with weight decay, and the same optimizer state, so that a checkpoint
//! written with Burn's AdamW resumes under the fused one (and back).

mod common;

use burn::optim::{AdamWConfig, GradientsParams, ModuleOptimizer};
use burn::prelude::*;
use common::{max_abs_diff as worst, tiny_model};
use memtrain::model::Llama;
use memtrain::train::adamw::{AdamWParams, FusedAdamW};

const HYPER: AdamWParams = AdamWParams { beta_1: 0.8, beta_2: 0.95, epsilon: 1e-6, weight_decay: 0.1 };

fn burn_adamw() -> ModuleOptimizer {
    AdamWConfig::new().with_beta_1(HYPER.beta_1).with_beta_2(HYPER.beta_2).with_epsilon(HYPER.epsilon).with_weight_decay(HYPER.weight_decay).init()
}

fn weights(model: &Llama) -> Vec<f32> {
    let mut all: Vec<f32> = model.embed_tokens.weight.val().into_data().try_to_vec().unwrap();
    for l in &model.layers {
        all.extend(l.self_attn.q_proj.weight.val().into_data().try_to_vec::<f32>().unwrap());
        all.extend(l.mlp.down_proj.weight.val().into_data().try_to_vec::<f32>().unwrap());
        all.extend(l.input_layernorm.gamma.val().into_data().try_to_vec::<f32>().unwrap());
    }
    all
}

/// `steps` optimizer steps at a decreasing learning rate on a next-token loss of fixed tokens.
fn train(mut model: Llama, optim: &mut ModuleOptimizer, inv: &[f64], steps: std::ops::Range<usize>, device: &Device) -> Llama {
    for step in steps {
        let ids: Vec<i64> = (0..24).map(|i| ((i * 13 + step * 5) % 64) as i64).collect();
        let tokens = Tensor::<2, Int>::from_data(TensorData::new(ids, [2, 12]), device);
        let logits = model.forward(tokens, inv);
        let loss = burn::tensor::activation::log_softmax(logits, 2).slice([0..2, 0..12, 0..8]).mean().neg();
        let grads = GradientsParams::from_grads(loss.backward(), &model);
        model = optim.step(3e-2 / (1 + step) as f64, model, grads);
    }
    model
}

#[test]
fn fused_adamw_matches_burns_adamw_and_shares_its_state() {
    // Opened before anything else: restoring an optimizer record below creates its tensors on
    // Burn's default device, which would initialise wgpu without our settings (and then opening
    // it fails with "Service already initialized").
    let gpu = common::wgpu_device();
    let device = Device::flex().autodiff();
    let (start, inv) = tiny_model(&device, 2);

    let mut reference_optim = burn_adamw();
    let reference = train(start.clone(), &mut reference_optim, &inv, 0..4, &device);
    let mut fused_optim = FusedAdamW::init(HYPER);
    let fused = train(start.clone(), &mut fused_optim, &inv, 0..4, &device);
    let moved = worst(&weights(&start), &weights(&reference));
    assert!(moved > 1e-2, "the steps must move the weights (moved {moved})");
    let err = worst(&weights(&reference), &weights(&fused));
    assert!(err < 1e-5, "fused AdamW differs from Burn's after 4 steps by {err}");

    // Resume across implementations: Burn's state after 2 steps, then 2 fused steps (and back).
    let mut first = burn_adamw();
    let half = train(start.clone(), &mut first, &inv, 0..2, &device);
    let mut resumed = FusedAdamW::init(HYPER).load_record(first.to_record());
    let across = train(half.clone(), &mut resumed, &inv, 2..4, &device);
    let err = worst(&weights(&reference), &weights(&across));
    assert!(err < 1e-5, "Burn state resumed by the fused step differs by {err}");
    let mut first = FusedAdamW::init(HYPER);
    let half = train(start, &mut first, &inv, 0..2, &device);
    let mut resumed = burn_adamw().load_record(first.to_record());
    let back = train(half, &mut resumed, &inv, 2..4, &device);
    let err = worst(&weights(&reference), &weights(&back));
    assert!(err < 1e-5, "fused state resumed by Burn's step differs by {err}");
    if let Some(gpu) = gpu {
        adamw_on_wgpu_matches_the_fused_cpu_step(gpu);
    }
}

/// On wgpu the optimizer keeps Burn's device-side step: 4 steps there (lavapipe in CI) land on
/// the same weights as the fused host step on the CPU.
fn adamw_on_wgpu_matches_the_fused_cpu_step(gpu: Device) {
    let run = |device: Device| {
        let (start, inv) = tiny_model(&device, 2);
        weights(&train(start, &mut FusedAdamW::init(HYPER), &inv, 0..4, &device))
    };
    let cpu = run(Device::flex().autodiff());
    let gpu = run(gpu.autodiff());
    let err = worst(&cpu, &gpu);
    assert!(err < 1e-4, "AdamW on wgpu differs from the fused CPU step by {err}");
}
