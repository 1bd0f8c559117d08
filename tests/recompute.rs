//! Layer recomputation (`gradient_checkpointing`, `memtrain::model::recompute`) must give the
//! gradients of one taped backward, for every parameter: every weight with a tied head (the
//! table gets gradients from the head and from the lookup), the top layer only (nothing below
//! it gets a gradient either way; that frozen layers are not re-run is not observable here) and
//! LoRA adapters; on flex (our fused CPU ops) and on wgpu (Burn's).

mod common;

use burn::prelude::*;
use memtrain::model::Llama;
use memtrain::train::grpo::{Forward, GrpoConfig, PolicySample, TokenBatch, training_loss};
use memtrain::train::sft::{SftExample, SftWeighting, sft_training_loss};
use common::{assert_same, value_and_gradients};

/// Old log-probs away from 0 and a reference, so that the ratio, both clip sides and the KL all
/// shape the gradient; prompts and responses of different lengths (right padding).
fn policy_batch() -> (TokenBatch, Vec<f32>) {
    let sample = |prompt: &[u32], response: &[u32], advantage: f32| PolicySample {
        prompt: prompt.to_vec(),
        response: response.to_vec(),
        old_logprobs: response.iter().enumerate().map(|(j, _)| -4.0 + 0.3 * j as f32).collect(),
        advantage,
        stem: None,
    };
    let batch = TokenBatch::new(&[sample(&[1, 2, 3], &[4, 5, 6, 7], 1.0), sample(&[8, 9, 10, 11, 12, 13], &[14, 15], -0.5), sample(&[16], &[17, 18, 19], 0.25)]).unwrap();
    let reference = batch.old_logprobs.iter().map(|l| l - 0.2).collect();
    (batch, reference)
}

/// The GRPO loss's value and gradients with and without recomputation.
fn grpo_both_ways(model: &Llama, inv_freq: &[f64], device: &Device) -> [(f32, Vec<Option<Vec<f32>>>); 2] {
    let (batch, reference) = policy_batch();
    let cfg = GrpoConfig { kl_beta: 0.1, ..Default::default() };
    [false, true].map(|recompute| {
        let (loss, _) = training_loss(model, inv_freq, &batch, Some(&reference), &cfg, device, Forward { recompute, ..Forward::plain(device) });
        value_and_gradients(model, loss)
    })
}

#[test]
fn recomputed_layers_give_the_taped_gradients_of_every_weight_on_flex() {
    let device = Device::flex().autodiff();
    let (model, inv_freq) = common::tiny_model(&device, 5);
    let [taped, recomputed] = grpo_both_ways(&model, &inv_freq, &device);
    let all = taped.1.len();
    assert_eq!(assert_same(&taped, &recomputed, 1e-4), all, "every parameter learns");

    // The SFT loss goes through the same forward.
    let examples = [SftExample::new(vec![3, 1, 4], vec![1, 5, 9, 2]), SftExample::new(vec![6], vec![5, 3])];
    let [taped, recomputed] = [false, true].map(|recompute| value_and_gradients(&model, sft_training_loss(&model, &inv_freq, &examples, SftWeighting::Token, &device, Forward { recompute, ..Forward::plain(&device) }).unwrap()));
    assert_eq!(assert_same(&taped, &recomputed, 1e-4), all);
}

#[test]
fn with_only_the_top_layer_learning_exactly_its_tensors_get_the_taped_gradients() {
    let device = Device::flex().autodiff();
    let (model, inv_freq) = common::tiny_model(&device, 6);
    let top = memtrain::train::freeze::freeze_below(model, 1).unwrap();
    let [taped, recomputed] = grpo_both_ways(&top, &inv_freq, &device);
    // The top layer's nine tensors and the final norm.
    assert_eq!(assert_same(&taped, &recomputed, 1e-4), 10);
}

#[test]
fn lora_adapters_get_the_taped_gradients() {
    let device = Device::flex().autodiff();
    let (model, inv_freq) = common::tiny_model(&device, 7);
    let targets = memtrain::train::lora::TARGETS.iter().map(|(t, _)| t.to_string()).collect();
    let cfg = memtrain::train::config::LoraConfig { rank: 2, alpha: 2.0, targets };
    let layers = model.layers.len();
    let lora = memtrain::train::lora::attach(model, &cfg, layers, 1);
    // B starts at zero, so A would get no gradient: one plain step first makes every adapter live.
    let mut optim = memtrain::train::adamw::FusedAdamW::init(Default::default());
    let (batch, reference) = policy_batch();
    let grpo = GrpoConfig { kl_beta: 0.1, ..Default::default() };
    let (loss, _) = training_loss(&lora, &inv_freq, &batch, Some(&reference), &grpo, &device, Forward::plain(&device));
    let lora = optim.step(1e-2, lora.clone(), loss.gradients(&lora));
    let [taped, recomputed] = grpo_both_ways(&lora, &inv_freq, &device);
    assert_eq!(assert_same(&taped, &recomputed, 1e-4), 2 * 7 * layers, "A and B of every projection of every layer");
}

#[test]
fn recomputed_layers_give_the_taped_gradients_on_wgpu() {
    let Some(base) = common::wgpu_device() else { return };
    let device = base.autodiff();
    let (model, inv_freq) = common::tiny_model(&device, 5);
    let [taped, recomputed] = grpo_both_ways(&model, &inv_freq, &device);
    assert_eq!(assert_same(&taped, &recomputed, 1e-4), taped.1.len());
}
