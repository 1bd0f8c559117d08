//! The shared-prompt training forward (`memtrain::model::shared_prompts`): a micro-batch whose
//! rows repeat prompts computes each prompt once, and must give the plain forward's log-probs,
//! GRPO loss and the gradient of every weight — on flex with our attention op, on flex without
//! autodiff (Burn's RoPE and flex's attention kernel), and on wgpu (Burn's ops under autodiff).
//! With layer recomputation too. The batch mixes prompts shared by three and by two rows, a one-token prompt shared by two
//! (nothing before the rest pass), a long prompt alone, and responses of different lengths.

mod common;

use burn::prelude::*;
use common::{assert_same, value_and_gradients};
use memtrain::model::Llama;
use memtrain::train::grpo::{Forward, GrpoConfig, PolicySample, TokenBatch, micro_batches, padded_positions, sort_by_length, token_logprobs, training_loss};

fn sample(prompt: &[u32], response: &[u32], advantage: f32) -> PolicySample {
    PolicySample { prompt: prompt.to_vec(), response: response.to_vec(), old_logprobs: response.iter().enumerate().map(|(j, _)| -4.0 + 0.3 * j as f32).collect(), advantage }
}

fn shared_samples() -> Vec<PolicySample> {
    let a: Vec<u32> = (1..=7).collect();
    let long: Vec<u32> = (40..53).collect();
    vec![
        sample(&a, &[8, 9, 10], 1.0),
        sample(&[20, 21, 22], &[23, 24, 25, 26], -0.5),
        sample(&a, &[11, 12, 13, 14, 15], -0.5),
        sample(&[30], &[31, 32, 33], 0.25),
        sample(&long, &[54, 55], 0.75),
        sample(&a, &[16], 0.5),
        sample(&[20, 21, 22], &[27, 28], 1.0),
        sample(&[30], &[34, 35], -1.0),
    ]
}

fn shared_batch() -> (TokenBatch, Vec<f32>) {
    let batch = TokenBatch::new(&shared_samples()).unwrap();
    let shared = batch.shared.as_ref().expect("rows share prompts: the batch runs as two passes");
    assert_eq!((shared.prompt_lens.clone(), shared.prompt_of.clone()), (vec![6, 2, 0, 12], vec![0, 1, 0, 2, 3, 0, 1, 2]));
    // 4 prompts × 12 + 8 rows × 5, against 8 rows × 14.
    assert_eq!((shared.positions(), batch.rows * batch.width), (88, 112));
    let reference = batch.old_logprobs.iter().map(|l| l - 0.2).collect();
    (batch, reference)
}

fn forward(device: &Device, share_prompts: bool) -> Forward {
    Forward { buckets: false, share_prompts, ..Forward::plain(device) }
}

/// The GRPO loss (clipping and a KL term active) and every gradient, plain then shared.
fn grpo_both_ways(model: &Llama, inv_freq: &[f64], device: &Device) -> [(f32, Vec<Option<Vec<f32>>>); 2] {
    grpo_plain_and(model, inv_freq, device, forward(device, true))
}

/// The same, plain (every activation kept) then as `other` runs.
fn grpo_plain_and(model: &Llama, inv_freq: &[f64], device: &Device, other: Forward) -> [(f32, Vec<Option<Vec<f32>>>); 2] {
    let (batch, reference) = shared_batch();
    let cfg = GrpoConfig { kl_beta: 0.1, ..Default::default() };
    [forward(device, false), other].map(|f| {
        let (loss, stats) = training_loss(model, inv_freq, &batch, Some(&reference), &cfg, device, f);
        assert!(stats.kl > 0.0 && stats.tokens == 22, "{stats:?}");
        value_and_gradients(model, loss)
    })
}

fn logprobs(model: &Llama, inv_freq: &[f64], device: &Device, share: bool) -> Vec<f32> {
    let (batch, _) = shared_batch();
    let f = forward(device, share);
    assert_eq!(f.shares_prompts(), share);
    let logp = memtrain::train::grpo::recomputable_logprobs(model, inv_freq, &batch, device, f).0;
    logp.into_data().convert::<f32>().try_to_vec::<f32>().unwrap()
}

#[test]
fn shared_prompts_give_the_plain_loss_and_every_gradient_on_flex() {
    let device = Device::flex().autodiff();
    // Random biases and norm weights too: a norm applied twice or skipped would show.
    let model = common::jittered_model(&common::tiny_config(), &device, 11);
    let inv_freq = memtrain::model::rope::inverse_frequencies(&common::tiny_config());
    let (plain, shared) = (logprobs(&model, &inv_freq, &device, false), logprobs(&model, &inv_freq, &device, true));
    assert!(common::max_abs_diff(&plain, &shared) < 1e-5, "log-probs {plain:?} vs {shared:?}");
    let [plain, shared] = grpo_both_ways(&model, &inv_freq, &device);
    assert_eq!(assert_same(&plain, &shared, 1e-4), plain.1.len(), "every parameter learns");
}

#[test]
fn shared_prompts_with_recomputed_layers_give_the_plain_gradients() {
    let device = Device::flex().autodiff();
    let model = common::jittered_model(&common::tiny_config(), &device, 14);
    let inv_freq = memtrain::model::rope::inverse_frequencies(&common::tiny_config());
    let recomputed = Forward { recompute: true, ..forward(&device, true) };
    assert!(recomputed.shares_prompts());
    // Every weight (the tied table through the head and both passes' lookups) …
    let [plain, shared] = grpo_plain_and(&model, &inv_freq, &device, recomputed);
    assert_eq!(assert_same(&plain, &shared, 1e-4), plain.1.len(), "every parameter learns");
    // … and the top layer only (the layers below are not re-run).
    let top = memtrain::train::freeze::freeze_below(model, 1).unwrap();
    let [plain, shared] = grpo_plain_and(&top, &inv_freq, &device, recomputed);
    assert_eq!(assert_same(&plain, &shared, 1e-4), 10);
}

#[test]
fn shared_prompts_give_the_plain_logprobs_without_autodiff() {
    let device = Device::flex();
    let (model, inv_freq) = common::tiny_model(&device, 12);
    let (batch, _) = shared_batch();
    let plain = token_logprobs(&model, &inv_freq, &TokenBatch { shared: None, ..batch }, &device).into_data().convert::<f32>().try_to_vec::<f32>().unwrap();
    let shared = logprobs(&model, &inv_freq, &device, true);
    assert!(common::max_abs_diff(&plain, &shared) < 1e-5, "log-probs {plain:?} vs {shared:?}");
}

#[test]
fn shared_prompts_give_the_plain_loss_and_every_gradient_on_wgpu() {
    let Some(base) = common::wgpu_device() else { return };
    let device = base.autodiff();
    let (model, inv_freq) = common::tiny_model(&device, 13);
    let [plain, shared] = grpo_both_ways(&model, &inv_freq, &device);
    assert_eq!(assert_same(&plain, &shared, 1e-4), plain.1.len());
}

#[test]
fn copies_of_a_prompt_sit_side_by_side_and_micro_batches_count_them_once() {
    let mut samples = shared_samples();
    sort_by_length(&mut samples);
    let order: Vec<(u32, usize)> = samples.iter().map(|s| (s.prompt[0], s.response.len())).collect();
    // By each prompt's longest conversation (4, 7, 12, 15), copies together in their order.
    assert_eq!(order, [(30, 3), (30, 2), (20, 4), (20, 2), (1, 3), (1, 5), (1, 1), (40, 2)]);
    // Micro-batches of 4: [30, 30, 20, 20] shares (2 prompts × 2 + 4 rows × 4 = 20 < 4 × 6);
    // a fifth row, (1, 3), would make it 3 × 6 + 5 × 4 = 38 > 24: it stops there.
    // [1, 1, 1, 40] shares too (2 × 12 + 4 × 5 = 44 < 4 × 14).
    let rows = |share| micro_batches(&samples, 4, share).iter().map(|p| p.len()).collect::<Vec<_>>();
    assert_eq!(rows(true), [4, 4]);
    assert_eq!(padded_positions(&samples, 4, true), 20 + 44);
    assert_eq!(padded_positions(&samples, 4, false), 4 * 6 + 4 * 14);
    // Micro-batches of 2: [30, 30] (plain 2 × 3 = 6) takes [20] (2 × 2 + 3 × 4 = 16 > 6: no);
    // [20, 20] (2 × 6 = 12) alone; [1, 1] (2 × 11 = 22) takes the third copy (6 + 3 × 5 = 21)
    // but not [40] (2 × 12 + 4 × 5 = 44); [40] alone.
    let rows_of_2 = micro_batches(&samples, 2, true).iter().map(|p| p.len()).collect::<Vec<_>>();
    assert_eq!(rows_of_2, [2, 2, 3, 1]);
    assert_eq!(rows(false), [4, 4]);
    assert_eq!(micro_batches(&samples, 2, false).len(), 4);
    // Alone, a row shares nothing.
    assert_eq!(padded_positions(&samples, 1, true), padded_positions(&samples, 1, false));
}
