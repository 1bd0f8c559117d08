//! The shared-prompt training forward (`memtrain::model::shared_prompts`): a micro-batch whose
//! rows repeat prompts computes each prompt once, and must give the plain forward's log-probs,
//! GRPO loss and the gradient of every weight — on flex with our attention op, on flex without
//! autodiff (Burn's RoPE and flex's attention kernel), and on wgpu (Burn's ops under autodiff).
//! With layer recomputation too. The batch mixes prompts shared by three and by two rows, a one-token prompt shared by two
//! (nothing before the rest pass), a long prompt alone, and responses of different lengths.

mod common;

use burn::prelude::*;
use burn::tensor::Distribution;
use burn::tensor::activation::softmax;
use common::{assert_same, value_and_gradients};
use memtrain::kernels::causal_attention_op::fused_attention_after;
use memtrain::model::{Architecture, Llama, ModelConfig, rope};
use memtrain::train::grpo::{Forward, GrpoConfig, PolicySample, TokenBatch, micro_batches, padded_positions, sort_by_length, token_logprobs, training_loss};

fn sample(prompt: &[u32], response: &[u32], advantage: f32) -> PolicySample {
    PolicySample { prompt: prompt.to_vec(), response: response.to_vec(), old_logprobs: response.iter().enumerate().map(|(j, _)| -4.0 + 0.3 * j as f32).collect(), advantage, stem: None }
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
    // Llama, Qwen2 (q/k/v biases) and Qwen3 (q/k norms before the keys are kept), with random
    // biases and norm weights: a bias or norm applied twice or skipped would show.
    for architecture in [Architecture::Llama, Architecture::Qwen2, Architecture::Qwen3] {
        let config = ModelConfig { architecture, ..common::tiny_config() };
        let model = common::jittered_model(&config, &device, 11);
        let inv_freq = memtrain::model::rope::inverse_frequencies(&config);
        let (plain, shared) = (logprobs(&model, &inv_freq, &device, false), logprobs(&model, &inv_freq, &device, true));
        assert!(common::max_abs_diff(&plain, &shared) < 1e-5, "{architecture:?}: log-probs {plain:?} vs {shared:?}");
        let [plain, shared] = grpo_both_ways(&model, &inv_freq, &device);
        assert_eq!(assert_same(&plain, &shared, 1e-4), plain.1.len(), "{architecture:?}: every parameter learns");
    }
}

/// Our CPU op for queries after `past` key columns (the rest pass's attention) runs — it is not
/// declining into Burn's ops, which the model-level tests could not tell apart — and gives Burn's
/// output and gradients: 70 query rows (two row blocks), grouped heads, two rows whose visible
/// prompt columns differ (all 30; the first 12).
#[test]
fn our_attention_after_past_columns_runs_and_gives_burns_output_and_gradients() {
    let device = Device::flex().autodiff();
    let (b, s, past, h, kvh, hd) = (2, 70, 30, 4, 2, 8);
    let cols = past + s;
    let lens = [past, 12];
    let normal = Distribution::Normal(0.0, 1.0);
    let leaf = |shape: [usize; 4]| Tensor::<4>::random(shape, normal, &device).require_grad();
    let (q, k, v) = (leaf([b, s, h, hd]), leaf([b, cols, kvh, hd]), leaf([b, cols, kvh, hd]));
    let inv_freq = memtrain::model::rope::inverse_frequencies(&common::tiny_config());
    let q_positions: Vec<Vec<usize>> = lens.iter().map(|&l| (l..l + s).collect()).collect();
    let k_positions: Vec<Vec<usize>> = lens.iter().map(|&l| (0..past).chain(l..l + s).collect()).collect();
    let ((qc, qs), (kc, ks)) = (rope::cos_sin(&inv_freq, &q_positions, &device), rope::cos_sin(&inv_freq, &k_positions, &device));
    let mut bias = Vec::new();
    for len in lens {
        for j in 0..s {
            bias.extend((0..cols).map(|c| if c < len || (past..=past + j).contains(&c) { 0.0f32 } else { -1e9 }));
        }
    }
    let bias = Tensor::<4>::from_data(TensorData::new(bias, [b, 1, s, cols]), &device);
    let scale = 0.35;
    let ours = fused_attention_after(&q, &k, &v, (&qc, &qs), (&kc, &ks), &bias, past, scale).expect("our op takes queries after past key columns");
    let heads = Tensor::<1, Int>::from_data(TensorData::new((0..h).map(|i| (i / (h / kvh)) as i64).collect::<Vec<_>>(), [h]), &device);
    let qr = rope::apply(q.clone().swap_dims(1, 2), &qc, &qs);
    let kr = rope::apply(k.clone().swap_dims(1, 2), &kc, &ks).select(1, heads.clone());
    let vh = v.clone().swap_dims(1, 2).select(1, heads);
    let burns = softmax(qr.matmul(kr.swap_dims(2, 3)).mul_scalar(scale) + bias, 3).matmul(vh).swap_dims(1, 2);
    let weights = Tensor::<4>::random([b, s, h, hd], normal, &device);
    let host = |t: Tensor<4>| t.into_data().convert::<f32>().try_to_vec::<f32>().unwrap();
    let grads = |out: Tensor<4>| {
        let g = (out * weights.clone()).sum().backward();
        [&q, &k, &v].map(|x| host(x.grad(&g).expect("a gradient")))
    };
    assert!(common::max_abs_diff(&host(ours.clone().detach()), &host(burns.clone().detach())) < 1e-4, "outputs differ");
    for (name, (a, b)) in ["q", "k", "v"].iter().zip(grads(ours).into_iter().zip(grads(burns))) {
        let largest = b.iter().fold(0.0f32, |m, x| m.max(x.abs()));
        assert!(largest > 0.0 && common::max_abs_diff(&a, &b) < 1e-4 * largest.max(1.0), "{name}: gradients differ by {}", common::max_abs_diff(&a, &b));
    }
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
    // … and the top two of three layers (the prompts' gradient passes between two re-run
    // layers; the frozen one below is not re-run).
    let config = ModelConfig { num_layers: 3, ..common::tiny_config() };
    let top = memtrain::train::freeze::freeze_below(common::jittered_model(&config, &device, 15), 2).unwrap();
    let [plain, shared] = grpo_plain_and(&top, &inv_freq, &device, recomputed);
    assert_eq!(assert_same(&plain, &shared, 1e-4), 2 * 9 + 1, "two layers' nine tensors and the final norm");
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
    // Micro-batches of 4: [30, 30, 20, 20] shares (2 prompts × 2 + 4 rows × 4 = 20 < 4 × 6); a
    // fifth row, (1, 3), would hold 3 × 6 + 5 × 4 positions + 5 × 6 / 4 prompt-key copies = 45
    // > 24: it stops there. [1, 1, 1, 40] shares too (2 × 12 + 4 × 5 = 44 < 4 × 14).
    let rows = |samples: &[PolicySample], micro, share| micro_batches(samples, micro, share).iter().map(|p| p.len()).collect::<Vec<_>>();
    assert_eq!(rows(&samples, 4, true), [4, 4]);
    assert_eq!(rows(&samples, 4, false), [4, 4]);
    assert_eq!(padded_positions(&samples, 4, true), 20 + 44);
    assert_eq!(padded_positions(&samples, 4, false), 4 * 6 + 4 * 14);
    // Micro-batches of 2: [1, 1] (2 × 11 = 22) would take the third copy for 6 + 3 × 5 + 3 × 6 /
    // 4 = 25 > 22: no.
    assert_eq!(rows(&samples, 2, true), [2, 2, 2, 2]);
    // A recall group: 4 copies of a 41-token prompt with 3-token answers, micro-batches of 2
    // (2 × 43 = 86): a third row holds 40 + 3 × 3 + 3 × 40 / 4 = 79, a fourth 92.
    let recall: Vec<PolicySample> = (0..4).map(|i| sample(&[7; 41], &[i, i, i], 1.0)).collect();
    assert_eq!(rows(&recall, 2, true), [3, 1]);
    assert_eq!(rows(&recall, 2, false), [2, 2]);
    // Alone, a row shares nothing.
    assert_eq!(padded_positions(&samples, 1, true), padded_positions(&samples, 1, false));
}
