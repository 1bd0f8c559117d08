//! Generation on wgpu runs in shape buckets (prompts left-padded to a bucket width, finished
//! rows kept as idle rows until the batch fits a smaller power of two); the CPU keeps exact
//! shapes. Both must produce the same tokens for the same model: the padding and idle rows may
//! never leak into a live sequence.

mod common;

use burn::prelude::*;
use common::tiny_config;
use memtrain::generate::{Generation, SamplingParams, StopReason, generate};
use memtrain::model::random::RandomWeights;
use memtrain::model::{Llama, rope};

fn run(device: &Device, prompts: &[Vec<u32>], stop: &[u32]) -> Vec<Generation> {
    let cfg = tiny_config();
    let model = Llama::from_weights(&cfg, &mut RandomWeights::new(cfg.clone(), 5), device).unwrap();
    let params = SamplingParams { temperature: 0.0, max_new_tokens: 9, ..Default::default() };
    generate(&model, None, &rope::inverse_frequencies(&cfg), prompts, &params, stop, &mut |_| true).unwrap()
}

#[test]
fn bucketed_generation_on_wgpu_equals_exact_generation_on_the_cpu() {
    let Some(wgpu) = common::wgpu_device() else { return };
    assert!(memtrain::device::compiles_per_shape(&wgpu));
    let prompts: Vec<Vec<u32>> = vec![vec![1, 2, 3], vec![4, 5, 6, 7, 8, 9, 10], vec![11], vec![12, 13, 14, 15], vec![16, 17]];
    // A stop token that ends some sequences early and not others, so that rows finish at
    // different steps and the wgpu batch carries idle rows.
    let free = run(&Device::flex(), &prompts, &[]);
    let stop = free[0].tokens[1];
    let cpu = run(&Device::flex(), &prompts, &[stop]);
    let stops: Vec<StopReason> = cpu.iter().map(|g| g.stop).collect();
    assert!(stops.contains(&StopReason::StopToken) && stops.contains(&StopReason::MaxTokens), "{stops:?}");
    let gpu = run(&wgpu, &prompts, &[stop]);
    for (i, (c, g)) in cpu.iter().zip(&gpu).enumerate() {
        assert_eq!((&c.tokens, c.stop), (&g.tokens, g.stop), "sequence {i}");
        let worst = c.logprobs.iter().zip(&g.logprobs).map(|(a, b)| (a - b).abs()).fold(0.0f32, f32::max);
        assert!(worst < 1e-4, "sequence {i}: log-probs differ by {worst}");
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
