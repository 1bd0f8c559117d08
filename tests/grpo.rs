//! GRPO math against hand-computed numbers (advantages, both clip sides, k3 KL, dropped groups,
//! prompt masking), teacher-forced log-probs against generation's, and one AdamW step on a tiny
//! random model that must move the weights and lower the loss on its batch.

mod common;

use memtrain::model::packed::{PackedLlama, PanelPrecision};
use burn::prelude::*;
use memtrain::agent::{RecallAnswer, Trace, Turn, TurnKind};
use memtrain::generate::{SamplingParams, StopReason, generate};
use memtrain::model::Llama;
use memtrain::train::grpo::*;

fn close(a: f32, b: f32) -> bool {
    (a - b).abs() < 1e-5
}

fn t1(v: &[f32], device: &Device) -> Tensor<1> {
    Tensor::from_data(TensorData::new(v.to_vec(), [v.len()]), device)
}

fn scalar(t: Tensor<1>) -> f32 {
    t.into_data().try_to_vec::<f32>().unwrap()[0]
}

#[test]
fn advantage_is_reward_minus_group_mean_and_flat_groups_are_dropped() {
    let a = group_advantages(&[1.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 0.0, 1.0, 1.0, 0.0, 0.5], 4, false).unwrap();
    let expect = [Some(0.5), Some(-0.5), Some(-0.5), Some(0.5), None, None, None, None, Some(0.375), Some(0.375), Some(-0.625), Some(-0.125)];
    assert_eq!(a.per_rollout, expect);
    assert_eq!((a.groups, a.dropped_groups), (3, 1));
}

#[test]
fn all_correct_and_all_wrong_groups_are_both_dropped() {
    let a = group_advantages(&[1.0, 1.0, 0.0, 0.0, 1.5, 0.5], 2, false).unwrap();
    assert_eq!(a.per_rollout, [None, None, None, None, Some(0.5), Some(-0.5)]);
    assert_eq!(a.dropped_groups, 2);
}

#[test]
fn std_scaling_divides_by_the_unbiased_group_std() {
    let a = group_advantages(&[1.0, 0.0, 0.0, 1.0], 4, true).unwrap();
    // std = sqrt((4 · 0.25) / 3) = 0.57735
    let expect = 0.5 / (1.0f32 / 3.0).sqrt();
    assert!(a.per_rollout.iter().all(|x| close(x.unwrap().abs(), expect)), "{:?}", a.per_rollout);
}

#[test]
fn rewards_that_do_not_fill_whole_groups_are_an_error() {
    assert!(group_advantages(&[1.0, 0.0, 1.0], 2, false).is_err());
    assert!(group_advantages(&[1.0], 0, false).is_err());
}

/// Four tokens with ratio r and advantage A: (1.5, +1) clipped to 1.2; (1.5, −1) unclipped
/// (pessimistic side); (0.5, −1) clipped to 0.8; (0.5, +1) unclipped.
fn four_token_case(cfg: &GrpoConfig) -> (f32, LossStats) {
    let device = Device::flex();
    let new = t1(&[1.5f32.ln(), 1.5f32.ln(), 0.5f32.ln(), 0.5f32.ln()], &device);
    let old = t1(&[0.0; 4], &device);
    let adv = t1(&[1.0, -1.0, -1.0, 1.0], &device);
    let (loss, stats) = clipped_policy_loss(new, old, adv, None, cfg);
    (scalar(loss), stats)
}

#[test]
fn ppo_clip_caps_gains_on_both_sides_but_never_caps_losses() {
    let cfg = GrpoConfig { kl_beta: 0.0, ..Default::default() };
    let (loss, stats) = four_token_case(&cfg);
    // per token: −1.2, +1.5, +0.8, −0.5 → mean 0.15
    assert!(close(loss, 0.15), "{loss}");
    assert!(close(stats.clip_fraction, 0.5), "{stats:?}");
    assert!(close(stats.mean_ratio, 1.0));
}

#[test]
fn asymmetric_clip_uses_eps_low_below_and_eps_high_above() {
    let cfg = GrpoConfig { clip_low: 0.1, clip_high: 0.3, kl_beta: 0.0, ..Default::default() };
    let (loss, _) = four_token_case(&cfg);
    // per token: −1.3, +1.5, +0.9, −0.5 → mean 0.15
    assert!(close(loss, 0.15), "{loss}");
    let cfg = GrpoConfig { clip_low: 0.3, clip_high: 0.1, kl_beta: 0.0, ..Default::default() };
    let (loss, _) = four_token_case(&cfg);
    // per token: −1.1, +1.5, +0.7, −0.5 → mean 0.15
    assert!(close(loss, 0.15), "{loss}");
    let (loss_wide, stats) = four_token_case(&GrpoConfig { clip_low: 0.6, clip_high: 0.6, kl_beta: 0.0, ..Default::default() });
    // nothing clipped: −1.5, +1.5, +0.5, −0.5 → 0
    assert!(close(loss_wide, 0.0) && stats.clip_fraction == 0.0, "{loss_wide} {stats:?}");
}

#[test]
fn k3_kl_matches_its_closed_form_and_is_zero_at_the_reference() {
    let device = Device::flex();
    // log_ratio = ln(0.25) − ln(0.5) = −ln 2 → k3 = 0.5 + ln 2 − 1
    let k = scalar(k3_kl(t1(&[0.5f32.ln()], &device), t1(&[0.25f32.ln()], &device)));
    assert!(close(k, 0.5 + 2f32.ln() - 1.0), "{k}");
    assert!(close(scalar(k3_kl(t1(&[-1.3], &device), t1(&[-1.3], &device))), 0.0));
}

#[test]
fn kl_enters_the_loss_scaled_by_beta_and_beta_zero_ignores_the_reference() {
    let device = Device::flex();
    let p = || t1(&[0.5f32.ln(), 0.5f32.ln()], &device);
    let r = || Some(t1(&[0.25f32.ln(), 0.5f32.ln()], &device));
    let zero_adv = || t1(&[0.0, 0.0], &device);
    let k3 = 0.5 + 2f32.ln() - 1.0;
    let (loss, stats) = clipped_policy_loss(p(), p(), zero_adv(), r(), &GrpoConfig { kl_beta: 0.1, ..Default::default() });
    assert!(close(scalar(loss), 0.1 * k3 / 2.0));
    assert!(close(stats.kl, k3 / 2.0), "{stats:?}");
    let (loss, stats) = clipped_policy_loss(p(), p(), zero_adv(), r(), &GrpoConfig { kl_beta: 0.0, ..Default::default() });
    assert!(close(scalar(loss), 0.0) && stats.kl == 0.0);
}

fn sample(prompt: &[u32], response: &[u32], advantage: f32) -> PolicySample {
    PolicySample { prompt: prompt.to_vec(), response: response.to_vec(), old_logprobs: vec![-1.0; response.len()], advantage, stem: None }
}

#[test]
fn only_response_tokens_are_scored_and_each_is_predicted_by_the_previous_position() {
    let b = TokenBatch::new(&[sample(&[5, 6, 7], &[8, 9], 0.5), sample(&[1], &[2, 3, 4], -1.0)]).unwrap();
    assert_eq!((b.rows, b.width), (2, 4));
    assert_eq!(b.inputs, [5, 6, 7, 8, 1, 2, 3, 0]);
    // row 0: positions 2 (sees …7, predicts 8) and 3 (predicts 9); row 1: 4, 5, 6.
    assert_eq!(b.positions, [2, 3, 4, 5, 6]);
    assert_eq!(b.targets, [8, 9, 2, 3, 4]);
    assert_eq!(b.advantages, [0.5, 0.5, -1.0, -1.0, -1.0]);
    assert_eq!(b.tokens(), 5);
}

#[test]
fn samples_without_a_response_or_with_mismatched_logprobs_are_rejected() {
    assert!(TokenBatch::new(&[sample(&[1], &[], 1.0)]).is_err());
    let mut s = sample(&[1], &[2, 3], 1.0);
    s.old_logprobs.pop();
    assert!(TokenBatch::new(&[s]).is_err());
}

fn turn(kind: TurnKind, prompt: Vec<u32>, generated: Vec<u32>) -> Turn {
    let n = generated.len();
    Turn { kind, prompt_ids: prompt, generated_ids: generated, logprobs: vec![-0.5; n], stop: StopReason::StopToken, text: String::new(), stem: None }
}

#[test]
fn every_turn_of_a_kept_rollout_carries_its_advantage_and_dropped_rollouts_give_nothing() {
    let trace = |doc, rollout| Trace {
        doc,
        rollout,
        memories: vec!["m".into()],
        turns: vec![turn(TurnKind::Memory { chunk: 0 }, vec![1, 2], vec![3, 4]), turn(TurnKind::Answer, vec![5], vec![6])],
        answer: "x".into(),
    };
    let traces = [trace(0, 0), trace(0, 1), trace(1, 0)];
    let samples = samples_from_traces(&traces, &[Some(0.25), None, Some(-0.75)]);
    assert_eq!(samples.len(), 4);
    assert_eq!(samples.iter().map(|s| s.advantage).collect::<Vec<_>>(), [0.25, 0.25, -0.75, -0.75]);
    assert_eq!(samples[1].prompt, [5]);
    assert_eq!(samples[1].response, [6]);
}

#[test]
fn recall_answers_train_with_their_own_group_advantage() {
    let answer = |request, id| RecallAnswer { request, turn: turn(TurnKind::Recall, vec![7], vec![id]), answer: String::new() };
    let answers = [answer(0, 1), answer(0, 2), answer(1, 3), answer(1, 4)];
    let adv = group_advantages(&[1.0, 0.0, 0.0, 0.0], 2, false).unwrap();
    let samples = samples_from_recall(&answers, &adv.per_rollout);
    assert_eq!(samples.iter().map(|s| (s.response[0], s.advantage)).collect::<Vec<_>>(), [(1, 0.5), (2, -0.5)]);
}

fn tiny_model(device: &Device) -> (Llama, Vec<f64>) {
    common::tiny_model(device, 11)
}

/// Samples generated by `model` itself, so their old log-probs are the model's own. Generated
/// as the trainer does, through the CPU decode kernels, while the update scores tokens with the
/// backend's ops: the log-probs must agree across the two paths.
fn self_generated_samples(model: &Llama, inv_freq: &[f64], advantages: &[f32]) -> Vec<PolicySample> {
    let prompts: Vec<Vec<u32>> = vec![vec![1, 2, 3], vec![4, 5, 6, 7, 8], vec![9, 10]];
    let params = SamplingParams { temperature: 1.0, seed: 3, max_new_tokens: 6, ..Default::default() };
    let packed = PackedLlama::for_device(model, PanelPrecision::F32);
    assert!(packed.is_some(), "a flex model gets the CPU decode kernels");
    let gens = generate(model, packed.as_ref(), inv_freq, &prompts[..advantages.len()], &params, &[], &mut |_| true).unwrap();
    prompts.into_iter().zip(gens).zip(advantages).map(|((prompt, g), &advantage)| PolicySample { prompt, response: g.tokens, old_logprobs: g.logprobs, advantage, stem: None }).collect()
}

#[test]
fn teacher_forced_logprobs_equal_the_logprobs_recorded_during_generation() {
    let device = Device::flex();
    let (model, inv_freq) = tiny_model(&device);
    let samples = self_generated_samples(&model, &inv_freq, &[1.0, -1.0, 0.5]);
    let batch = TokenBatch::new(&samples).unwrap();
    let forced = scalar_vec(token_logprobs(&model, &inv_freq, &batch, &device));
    let worst = forced.iter().zip(&batch.old_logprobs).map(|(a, b)| (a - b).abs()).fold(0.0f32, f32::max);
    assert!(worst < 1e-4, "teacher-forced log-probs differ from generation's by {worst}");
}

fn scalar_vec(t: Tensor<1>) -> Vec<f32> {
    t.into_data().try_to_vec::<f32>().unwrap()
}

#[test]
fn one_adamw_step_moves_the_weights_and_lowers_the_loss_on_its_batch() {
    let device = Device::flex().autodiff();
    let (model, inv_freq) = tiny_model(&device);
    let reference = model.valid();
    let samples = self_generated_samples(&reference, &inv_freq, &[1.0, -1.0, 0.5]);
    let cfg = GrpoConfig::default();
    let mut optim = burn::optim::AdamWConfig::new().init();
    let before_weights = scalar_vec(model.embed_tokens.weight.val().reshape([64 * 32]).detach());
    let (model, before) = grpo_step(model, &mut optim, 5e-3, &inv_freq, &samples, Some(&reference), &cfg).unwrap();
    // Fresh samples from the policy itself: ratio 1, nothing clipped, no KL yet.
    assert!((before.mean_ratio - 1.0).abs() < 1e-3 && before.clip_fraction == 0.0 && before.kl.abs() < 1e-6, "{before:?}");
    let after_weights = scalar_vec(model.embed_tokens.weight.val().reshape([64 * 32]).detach());
    let moved = before_weights.iter().zip(&after_weights).filter(|(a, b)| a != b).count();
    assert!(moved > 0, "no embedding weight changed");
    let batch = TokenBatch::new(&samples).unwrap();
    let ref_lp = reference_logprobs(&reference, &inv_freq, &batch).unwrap();
    let (_, after) = batch_loss(&model, &inv_freq, &batch, Some(&ref_lp), &cfg, &device);
    eprintln!("loss before {:.5}, after {:.5} (kl {:.2e}, clip {:.2})", before.loss, after.loss, after.kl, after.clip_fraction);
    assert!(after.loss < before.loss - 1e-4, "loss did not drop: {} → {}", before.loss, after.loss);
}

#[test]
fn a_step_on_a_plain_device_or_with_no_samples_is_refused() {
    let (model, inv_freq) = tiny_model(&Device::flex());
    let mut optim = burn::optim::AdamWConfig::new().init();
    let samples = self_generated_samples(&model, &inv_freq, &[1.0]);
    let cfg = GrpoConfig { kl_beta: 0.0, ..Default::default() };
    assert!(grpo_step(model.clone(), &mut optim, 1e-3, &inv_freq, &samples, None, &cfg).is_err());
    assert!(grpo_step(model, &mut optim, 1e-3, &inv_freq, &[], None, &cfg).is_err());
}

#[test]
fn shape_buckets_are_quarter_octaves_and_padding_keeps_every_token_in_place() {
    let sizes: Vec<usize> = [1, 16, 17, 33, 100, 385, 400, 449, 513].iter().map(|&n| memtrain::device::shape_bucket(n)).collect();
    assert_eq!(sizes, [16, 16, 20, 40, 112, 448, 448, 512, 640]);
    let samples = [sample(&[1, 2, 3], &[4, 5], 1.0), sample(&[6, 7, 8, 9, 10, 11, 12], &[13], -1.0), sample(&[14], &[15, 16, 17], 0.5)];
    let batch = TokenBatch::new(&samples).unwrap();
    let padded = batch.bucketed();
    assert_eq!((padded.rows, padded.width, padded.tokens()), (4, 16, 16));
    for i in 0..batch.tokens() {
        // The same input token predicts the same target, with the same advantage.
        assert_eq!(padded.inputs[padded.positions[i] as usize], batch.inputs[batch.positions[i] as usize]);
        assert_eq!((padded.targets[i], padded.advantages[i]), (batch.targets[i], batch.advantages[i]));
    }
    assert!(padded.advantages[batch.tokens()..].iter().all(|&a| a == 0.0));
    assert!(!memtrain::device::compiles_per_shape(&Device::flex()) && !memtrain::device::compiles_per_shape(&Device::flex().autodiff()));
}

#[test]
fn shape_padding_changes_neither_the_loss_nor_its_gradient() {
    let device = Device::flex().autodiff();
    let (model, inv_freq) = tiny_model(&device);
    let mut samples = self_generated_samples(&model.valid(), &inv_freq, &[1.0, -1.0, 0.5]);
    // Old log-probs away from the current ones, so that both clip sides and the KL are active.
    for (i, s) in samples.iter_mut().enumerate() {
        for (j, lp) in s.old_logprobs.iter_mut().enumerate() {
            *lp += if (i + j) % 2 == 0 { 0.4 } else { -0.4 };
        }
    }
    let batch = TokenBatch::new(&samples).unwrap();
    assert!(batch.bucketed().tokens() > batch.tokens() && batch.bucketed().rows > batch.rows, "the case must need padding");
    let reference: Vec<f32> = batch.old_logprobs.iter().map(|l| l - 0.3).collect();
    let cfg = GrpoConfig { kl_beta: 0.2, ..Default::default() };
    let run = |buckets: bool| {
        let (loss, stats) = batch_loss_shaped(&model, &inv_freq, &batch, Some(&reference), &cfg, &device, buckets);
        let grads = loss.backward();
        let g = |t: Tensor<2>| scalar_vec(t.reshape([-1]));
        let embed = g(model.embed_tokens.weight.grad(&grads).unwrap());
        let down = g(model.layers[1].mlp.down_proj.weight.grad(&grads).unwrap());
        (stats, embed, down)
    };
    let (exact, e1, d1) = run(false);
    let (padded, e2, d2) = run(true);
    assert!(exact.clip_fraction > 0.0 && exact.kl > 0.0, "{exact:?}");
    assert_eq!(exact.tokens, padded.tokens);
    for (a, b) in [(exact.loss, padded.loss), (exact.policy_loss, padded.policy_loss), (exact.kl, padded.kl), (exact.mean_ratio, padded.mean_ratio), (exact.clip_fraction, padded.clip_fraction)] {
        assert!((a - b).abs() < 1e-5, "{exact:?} vs {padded:?}");
    }
    let worst = common::max_abs_diff;
    let scale = e1.iter().chain(&d1).map(|v| v.abs()).fold(0.0f32, f32::max);
    assert!(scale > 0.0);
    assert!(worst(&e1, &e2) < 1e-5 * scale.max(1.0) && worst(&d1, &d2) < 1e-5 * scale.max(1.0), "gradients differ: {} / {} (scale {scale})", worst(&e1, &e2), worst(&d1, &d2));
}

#[test]
fn micro_batches_by_length_pad_less_and_keep_every_sample() {
    // A long memory turn, a short answer, another long turn, another short answer.
    let samples = [sample(&[1; 40], &[2; 10], 1.0), sample(&[3; 5], &[4; 2], -1.0), sample(&[5; 38], &[6; 9], 0.5), sample(&[7; 4], &[8; 3], -0.5)];
    // As given, each pair of 2 pads the short row to the long one: 2·49 + 2·46 positions.
    assert_eq!(padded_positions(&samples, 2, true), 2 * 49 + 2 * 46);
    let mut sorted = samples.to_vec();
    sort_by_length(&mut sorted);
    // Sorted: the two short ones together (2·6), then the two long ones (2·49).
    assert_eq!(padded_positions(&sorted, 2, true), 2 * 6 + 2 * 49);
    let mut a: Vec<_> = samples.iter().map(|s| s.prompt[0]).collect();
    let mut b: Vec<_> = sorted.iter().map(|s| s.prompt[0]).collect();
    assert_ne!(a, b, "the order changed");
    a.sort();
    b.sort();
    assert_eq!(a, b, "every sample kept");
}
