//! Generation on wgpu runs in shape buckets (prompts left-padded to a bucket width, finished
//! rows kept as idle rows until the batch fits a smaller power of two); the CPU keeps exact
//! shapes. Both must produce the same tokens for the same model: the padding and idle rows may
//! never leak into a live sequence.

mod common;

use burn::prelude::*;
use common::tiny_config;
use memtrain::generate::{Generation, SamplingParams, StopReason, generate, sample_on_device, sampler};
use memtrain::model::packed::{PackedLlama, PanelPrecision};
use memtrain::model::random::RandomWeights;
use memtrain::model::{Llama, rope};

fn model(device: &Device) -> Llama {
    let cfg = tiny_config();
    Llama::from_weights(&cfg, &mut RandomWeights::new(cfg.clone(), 5), device).unwrap()
}

/// Generation with the weights repacked as the app does it (CPU panels, or wgpu's fused
/// projections, whose KV cache writes then go through our kernel, idle rows and all).
fn sampled(device: &Device, prompts: &[Vec<u32>], stop: &[u32], params: &SamplingParams) -> Vec<Generation> {
    let model = model(device);
    let packed = PackedLlama::for_device(&model, PanelPrecision::F32);
    generate(&model, packed.as_ref(), &rope::inverse_frequencies(&tiny_config()), prompts, params, stop, &mut |_| true).unwrap()
}

fn run(device: &Device, prompts: &[Vec<u32>], stop: &[u32]) -> Vec<Generation> {
    sampled(device, prompts, stop, &SamplingParams { temperature: 0.0, max_new_tokens: 9, ..Default::default() })
}

#[test]
fn bucketed_generation_on_wgpu_equals_exact_generation_on_the_cpu() {
    let Some(wgpu) = common::wgpu_device() else { return };
    assert!(memtrain::device::compiles_per_shape(&wgpu));
    // Two prompts repeated: prefilled once, their cache rows then copied (on wgpu, Burn tensors
    // selected and written on by our cache kernel).
    let prompts: Vec<Vec<u32>> = vec![vec![1, 2, 3], vec![4, 5, 6, 7, 8, 9, 10], vec![11], vec![12, 13, 14, 15], vec![16, 17], vec![4, 5, 6, 7, 8, 9, 10], vec![1, 2, 3]];
    // A stop token that ends some sequences early and not others, so that rows finish at
    // different steps and the wgpu batch carries idle rows.
    let free = run(&Device::flex(), &prompts, &[]);
    let stop = free[0].tokens[1];
    let cpu = run(&Device::flex(), &prompts, &[stop]);
    let stops: Vec<StopReason> = cpu.iter().map(|g| g.stop).collect();
    assert!(stops.contains(&StopReason::StopToken) && stops.contains(&StopReason::MaxTokens), "{stops:?}");
    let gpu = run(&wgpu, &prompts, &[stop]);
    assert_eq!((&gpu[5].tokens, &gpu[6].tokens), (&gpu[1].tokens, &gpu[0].tokens), "a repeated prompt decodes greedily as its first");
    for (i, (c, g)) in cpu.iter().zip(&gpu).enumerate() {
        assert_eq!((&c.tokens, c.stop), (&g.tokens, g.stop), "sequence {i}");
        let worst = c.logprobs.iter().zip(&g.logprobs).map(|(a, b)| (a - b).abs()).fold(0.0f32, f32::max);
        assert!(worst < 1e-4, "sequence {i}: log-probs differ by {worst}");
    }
}

/// Identical prompts are prefilled once and their cache rows copied; each copy still draws from
/// its own stream, and finished rows leave the batch (or idle in it) without touching the
/// others: every row of a batch with repeated prompts equals that row in a batch where all the
/// other repeats were replaced by prompts of their own (no shared prefill there).
#[test]
fn repeated_prompts_sample_as_if_each_were_alone() {
    let device = Device::flex();
    let (a, b) = (vec![1, 2, 3], vec![4, 5, 6, 7, 8]);
    let prompts: Vec<Vec<u32>> = vec![a.clone(), b.clone(), a.clone(), vec![9], a.clone(), b.clone(), vec![10, 11], vec![12, 13, 14], vec![15], vec![16, 17], a.clone()];
    let params = SamplingParams { temperature: 1.0, seed: 3, max_new_tokens: 12, ..Default::default() };
    // A stop token that ends some rows early and not others (with 11 rows, two finished ones
    // leave the batch together; one idles until then).
    let free = sampled(&device, &prompts, &[], &params);
    let stop = free[0].tokens[1];
    let batch = sampled(&device, &prompts, &[stop], &params);
    let stops: Vec<StopReason> = batch.iter().map(|g| g.stop).collect();
    assert!(stops.iter().filter(|&&s| s == StopReason::StopToken).count() >= 2 && stops.contains(&StopReason::MaxTokens), "{stops:?}");
    let copies_of_a: Vec<&Vec<u32>> = [0, 2, 4, 10].iter().map(|&i| &free[i].tokens).collect();
    assert!(copies_of_a.iter().any(|t| *t != copies_of_a[0]), "copies of one prompt draw from their own streams");
    let repeated = |j: usize| prompts.iter().filter(|p| **p == prompts[j]).count() > 1;
    for (i, g) in batch.iter().enumerate() {
        let alone: Vec<Vec<u32>> = (0..prompts.len()).map(|j| if j == i || !repeated(j) { prompts[j].clone() } else { vec![20 + j as u32, 40 + j as u32] }).collect();
        assert!(alone.iter().enumerate().all(|(j, p)| !alone[..j].contains(p)), "the reference batch has no repeats");
        let reference = &sampled(&device, &alone, &[stop], &params)[i];
        assert_eq!((&g.tokens, g.stop), (&reference.tokens, reference.stop), "row {i}");
        let worst = g.logprobs.iter().zip(&reference.logprobs).map(|(x, y)| (x - y).abs()).fold(0.0f32, f32::max);
        assert!(worst < 1e-5, "row {i}: log-probs differ by {worst}");
    }
}

/// Greedy with `no_repeat_ngram`: a random model left alone loops, and with the option no
/// n-gram of a sequence's own tokens comes twice, in every row of a batch; the prompt may still
/// be repeated (a memory turn copies its chunk), and a replaced pick records its own log-prob.
#[test]
fn greedy_without_repeated_ngrams_never_repeats_its_own_ngrams() {
    let (model, inv_freq) = common::tiny_model(&Device::flex(), 5);
    let prompts: Vec<Vec<u32>> = vec![vec![1, 2, 3], vec![4, 5, 6, 7, 8], vec![9]];
    let greedy = |n: usize| {
        let params = SamplingParams { temperature: 0.0, max_new_tokens: 40, no_repeat_ngram: n, ..Default::default() };
        generate(&model, None, &inv_freq, &prompts, &params, &[], &mut |_| true).unwrap()
    };
    let repeats = |tokens: &[u32], n: usize| {
        let grams: Vec<&[u32]> = tokens.windows(n).collect();
        grams.iter().enumerate().any(|(i, g)| grams[..i].contains(g))
    };
    let free = greedy(0);
    assert!(free.iter().all(|g| repeats(&g.tokens, 3)), "a 40-token greedy run of a random model should loop");
    let constrained = greedy(3);
    for (i, (f, c)) in free.iter().zip(&constrained).enumerate() {
        assert_eq!(c.tokens.len(), 40);
        assert!(!repeats(&c.tokens, 3), "sequence {i} repeats a 3-gram: {:?}", c.tokens);
        // Identical up to the first token that would have repeated a 3-gram.
        let first_ban = (2..f.tokens.len()).find(|&k| repeats(&f.tokens[..=k], 3)).unwrap();
        assert_eq!(c.tokens[..first_ban], f.tokens[..first_ban], "sequence {i}");
        assert_ne!(c.tokens[first_ban], f.tokens[first_ban], "sequence {i}");
        // The best allowed token is less likely than the banned greedy pick.
        assert!(c.logprobs[first_ban] < f.logprobs[first_ban], "sequence {i}");
        assert!(c.logprobs.iter().all(|&l| l < 0.0 && l.is_finite()));
    }
}

/// Temperature sampling on wgpu runs in our kernel (Gumbel-max, one seed per row per step from
/// the sequence's own RNG): the same seed gives the same tokens, a sequence draws the same alone
/// as in a batch, another seed draws differently, and each token's log-probability is the
/// model's own (a CPU forward over the sampled sequence, log-softmax at temperature 1).
#[test]
fn sampling_on_wgpu_is_seeded_per_sequence_and_reports_the_models_log_probs() {
    let Some(wgpu) = common::wgpu_device() else { return };
    let prompts: Vec<Vec<u32>> = vec![vec![1, 2, 3], vec![4, 5, 6, 7, 8, 9, 10], vec![11]];
    let params = SamplingParams { temperature: 1.3, seed: 11, max_new_tokens: 12, ..Default::default() };
    let tokens = |g: &[Generation]| -> Vec<Vec<u32>> { g.iter().map(|g| g.tokens.clone()).collect() };
    let batch = sampled(&wgpu, &prompts, &[], &params);
    assert_eq!(tokens(&batch), tokens(&sampled(&wgpu, &prompts, &[], &params)), "same seed, same draws");
    let alone = sampled(&wgpu, &prompts[..1], &[], &params);
    assert_eq!(alone[0].tokens, batch[0].tokens, "sequence 0 draws the same alone");
    let other = sampled(&wgpu, &prompts, &[], &SamplingParams { seed: 12, ..params.clone() });
    assert_ne!(tokens(&other), tokens(&batch), "another seed draws differently");
    // The kernel is what ran: it applies on wgpu, and elsewhere declines without advancing the
    // sequences' RNGs (the host sampler then draws from the same streams).
    let logits = Tensor::<3>::from_floats([[[0.5, 1.0, -2.0]], [[3.0, 0.0, 0.0]]], &wgpu);
    let mut rngs = vec![sampler::sequence_rng(1, 0), sampler::sequence_rng(1, 1)];
    let hot = SamplingParams { temperature: 1.0, ..Default::default() };
    let picks = sample_on_device(&logits, &hot, &[Some(0), None], &mut rngs).unwrap().expect("the kernel runs on wgpu");
    assert!(picks[0].0 < 3 && picks[1] == (0, 0.0), "{picks:?}: a finished row draws nothing");
    assert_ne!(rngs[0], sampler::sequence_rng(1, 0), "a live row's stream advanced");
    assert_eq!(rngs[1], sampler::sequence_rng(1, 1), "a finished row's stream did not");
    let on_cpu = Tensor::<3>::from_floats([[[0.5, 1.0, -2.0]]], &Device::flex());
    let mut cpu_rngs = vec![sampler::sequence_rng(1, 0)];
    assert!(sample_on_device(&on_cpu, &hot, &[Some(0)], &mut cpu_rngs).unwrap().is_none());
    assert_eq!(cpu_rngs[0], sampler::sequence_rng(1, 0), "declining leaves the stream as it was");
    // Top-k and top-p run in the kernel too (tests/gpu_nucleus.rs checks their kept sets):
    // top-k 1 at any temperature is the greedy run, log-probabilities included.
    let nucleus = SamplingParams { top_k: 2, top_p: 0.5, ..hot.clone() };
    let mut rngs = vec![sampler::sequence_rng(1, 0)];
    assert!(sample_on_device(&logits.narrow(0, 0, 1), &nucleus, &[Some(0)], &mut rngs).unwrap().is_some(), "top-k / top-p sample on the device");
    let top1 = sampled(&wgpu, &prompts, &[], &SamplingParams { top_k: 1, ..params.clone() });
    let greedy = sampled(&wgpu, &prompts, &[], &SamplingParams { temperature: 0.0, ..params.clone() });
    assert_eq!(tokens(&top1), tokens(&greedy), "top-k 1 is greedy");
    for (a, b) in top1.iter().zip(&greedy) {
        assert!(a.logprobs.iter().zip(&b.logprobs).all(|(x, y)| (x - y).abs() < 1e-5));
    }
    let cpu = model(&Device::flex());
    let inv_freq = rope::inverse_frequencies(&tiny_config());
    for (i, (p, g)) in prompts.iter().zip(&batch).enumerate() {
        let ids: Vec<i64> = p.iter().chain(&g.tokens).map(|&t| t as i64).collect();
        let n = ids.len();
        let tokens = Tensor::<2, Int>::from_data(TensorData::new(ids.clone(), [1, n]), &Device::flex());
        let logp: Vec<f32> = burn::tensor::activation::log_softmax(cpu.forward(tokens, &inv_freq), 2).into_data().try_to_vec().unwrap();
        let vocab = logp.len() / n;
        for (j, &lp) in g.logprobs.iter().enumerate() {
            let at = p.len() - 1 + j;
            let expected = logp[at * vocab + ids[at + 1] as usize];
            assert!((lp - expected).abs() < 1e-4, "sequence {i}, token {j}: log-prob {lp} vs the model's {expected}");
        }
    }
}
