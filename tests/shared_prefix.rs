//! Generation that prefills the prompts' common leading tokens once
//! (`GenerateOptions::share_prefix`, `memtrain::generate::shared_prefix`) generates what it
//! generates prefilling every prompt whole: the same greedy tokens, their log-probs and the kept
//! residual streams to float rounding — through left padding wider than the prefix, a prompt that
//! is the prefix itself, identical prompts prefilled once, the first step on host buffers or
//! through tensors, with and without decode panels; on random Llama, Qwen2 (q/k/v biases, an
//! untied head) and Qwen3 (q/k norms) weights and on the real SmolLM2 with the agent's prompts.
//! And repeated prompts (prefilled once, their cache rows copied) generate what each generates
//! alone; a call cancelled mid-way or asked for no token returns what it generated.

mod common;

use burn::prelude::*;
use common::max_abs_diff;
use memtrain::generate::{GenerateOptions, Generation, SamplingParams, generate_with, shared_prefix};
use memtrain::model::packed::{PackedLlama, PanelPrecision};
use memtrain::model::{Architecture, Llama};

/// Generates greedily for `prompts` keeping the stream entering `layer`, prefix shared and not.
fn shared_and_whole(model: &Llama, packed: Option<&PackedLlama>, inv_freq: &[f64], prompts: &[Vec<u32>], stop: &[u32], layer: usize, tokens: usize) -> [Vec<Generation>; 2] {
    let sampling = SamplingParams { max_new_tokens: tokens, ..Default::default() };
    [true, false].map(|share_prefix| {
        let options = GenerateOptions { stem_layer: Some(layer), share_prefix };
        generate_with(model, packed, inv_freq, prompts, &sampling, stop, options, &mut |_| true).unwrap()
    })
}

/// The largest log-prob difference and the kept streams' error ([`common::stream_error`]) with
/// their root mean square, after checking the tokens are the same.
fn compare(shared: &[Generation], whole: &[Generation]) -> (f32, f32, f32) {
    let mut logprob = 0.0f32;
    let mut pairs: Vec<(&[f32], &[f32])> = vec![];
    for (i, (s, w)) in shared.iter().zip(whole).enumerate() {
        assert_eq!(s.tokens, w.tokens, "sequence {i}: the shared prefix changed what was generated");
        assert_eq!(s.stop, w.stop);
        logprob = logprob.max(max_abs_diff(&s.logprobs, &w.logprobs));
        pairs.push((&s.stem.as_ref().expect("a kept stream").values, &w.stem.as_ref().expect("a kept stream").values));
    }
    let (stream, rms) = common::stream_error(&pairs);
    (logprob, stream, rms)
}

/// A jittered 4-layer tiny model of `arch` on the CPU (seeded; Qwen2 with q/k/v biases and an
/// untied head, Qwen3 with q/k norms), its RoPE frequencies and its decode panels.
fn four_layers(arch: Architecture, seed: u64) -> (Llama, Vec<f64>, Option<PackedLlama>) {
    let cfg = common::tiny_config_of(arch, 4);
    let model = common::jittered_model(&cfg, &Device::flex(), seed);
    let inv_freq = memtrain::model::rope::inverse_frequencies(&cfg);
    let packed = PackedLlama::for_device(&model, PanelPrecision::F32);
    assert!(packed.is_some(), "CPU decode panels for the tiny model");
    (model, inv_freq, packed)
}

fn distinct_shared(prompts: &[Vec<u32>]) -> usize {
    let mut distinct: Vec<&[u32]> = vec![];
    for p in prompts {
        if !distinct.contains(&p.as_slice()) {
            distinct.push(p);
        }
    }
    shared_prefix::columns(&distinct)
}

#[test]
fn prompts_sharing_a_prefix_generate_the_same_with_it_prefilled_once() {
    for arch in common::ARCHITECTURES {
        prompts_sharing_a_prefix_generate_the_same(arch);
    }
}

fn prompts_sharing_a_prefix_generate_the_same(arch: Architecture) {
    let (model, inv_freq, packed) = four_layers(arch, 5);
    let stop: Vec<u32> = (40..44).collect();
    let prefix: Vec<u32> = (0..20).map(|t| (t * 7 + 3) % 40).collect();
    let with = |tail: &[u32]| -> Vec<u32> { prefix.iter().chain(tail).copied().collect() };
    let long: Vec<u32> = (0..25).map(|t| (t * 11 + 1) % 40).collect();
    // Short tails: the first step after the prefix is 3 rows × 5 columns, on host buffers.
    // The long tail: 5 distinct rows × 25 columns, through tensors; the prefix itself is padded
    // by 25 columns, more than the prefix's 20, and recomputes all of it.
    let cases = [
        vec![with(&[21, 22, 23, 24, 25]), with(&[30, 31]), prefix.clone(), with(&[21, 22, 23, 24, 25])],
        vec![with(&long), with(&[30, 31, 32]), prefix.clone(), with(&long[..9]), with(&[30, 31, 32]), with(&[5; 12])],
    ];
    for prompts in &cases {
        assert_eq!(distinct_shared(prompts), 20, "the prompts share 20 leading tokens");
        for p in [packed.as_ref(), None] {
            let [shared, whole] = shared_and_whole(&model, p, &inv_freq, prompts, &stop, 2, 10);
            let (logprob, stream, rms) = compare(&shared, &whole);
            eprintln!("{arch:?}, {} prompts, panels {}: log-probs {logprob:.2e}, streams {stream:.2e} of size + rms (rms {rms:.3})", prompts.len(), p.is_some());
            assert!(logprob < 1e-5, "log-probs off by {logprob}");
            assert!(rms > 1e-3 && stream < 1e-5, "kept streams off by {stream} of their size + rms (rms {rms})");
        }
    }
}

#[test]
fn the_real_agent_prompts_generate_the_same_with_their_prefix_prefilled_once() {
    use memtrain::agent::prompts::{memory_recall, memory_update};
    let Some(path) = common::real_model() else { return };
    let device = Device::flex();
    let lm = memtrain::checkpoint::load(&path, &device).unwrap();
    let ids = |text: &str| memtrain::agent::chat_prompt_ids(&lm.tokenizer, text).unwrap();
    let problem = "Based on the entire article, which entity is represented by the [MASK] placeholder?";
    let updates = vec![
        ids(&memory_update(problem, "No previous memory", "The ferry Astrid was built in Bergen in 1931 for the coastal route.")),
        ids(&memory_update(problem, "The ferry Astrid was built in Bergen in 1931.", "Years later, the [MASK] ferry sank near Oslo in a storm.")),
        ids(&memory_update(problem, "No previous memory", "The ferry Astrid was built in Bergen in 1931 for the coastal route.")),
    ];
    let mut mixed = updates.clone();
    mixed.push(ids(&memory_recall("The ferry Astrid was built in Bergen.", "The ferry [TARGET] was built in Bergen in 1931.")));
    // Update prompts alone share the system turn, the instruction and the problem: more than the
    // host path's 64 rows, so the prefix pass runs through tensors, as in training. With a recall
    // prompt, only the system turn: the prefix pass runs on host buffers.
    for (prompts, at_least) in [(updates, 65), (mixed, 16)] {
        let shared = distinct_shared(&prompts);
        assert!(shared >= at_least, "{shared} shared tokens, expected at least {at_least}");
        let [a, b] = shared_and_whole(&lm.model, lm.packed(), &lm.inv_freq, &prompts, &lm.tokenizer.stop_ids, 20, 16);
        let (logprob, stream, rms) = compare(&a, &b);
        eprintln!("SmolLM2, {shared} shared tokens: log-probs {logprob:.2e}, streams at layer 20 {stream:.2e} of size + rms (rms {rms:.1})");
        assert!(logprob < 1e-3, "log-probs off by {logprob}");
        assert!(stream < 1e-5, "kept streams off by {stream} of their size + rms (rms {rms})");
    }
}

/// Greedy generations of `prompts` (some repeated) against those of each distinct prompt alone
/// in a batch without repeats: the repeats are prefilled once and their cache rows copied after
/// the first step, past a shared prefix or not. A token of one distinct prompt's output
/// that no other has generated by then stops generation, so that sequences leave the batch at
/// different steps. Returns the largest log-prob difference.
fn repeats_against_distinct(model: &Llama, packed: Option<&PackedLlama>, inv_freq: &[f64], prompts: &[Vec<u32>], tokens: usize) -> f32 {
    let sampling = SamplingParams { max_new_tokens: tokens, ..Default::default() };
    let mut distinct: Vec<Vec<u32>> = vec![];
    for p in prompts {
        if !distinct.contains(p) {
            distinct.push(p.clone());
        }
    }
    assert!(distinct.len() < prompts.len(), "some prompts repeat");
    let options = GenerateOptions::default();
    let free = generate_with(model, packed, inv_freq, &distinct, &sampling, &[], options, &mut |_| true).unwrap();
    // A token one prompt generates at step k that no other has generated by then.
    let unique = |i: usize, k: usize| free.iter().enumerate().all(|(j, g)| j == i || !g.tokens[..=k].contains(&free[i].tokens[k]));
    let (first, step) = (0..free.len()).flat_map(|i| (2..tokens).map(move |k| (i, k))).find(|&(i, k)| unique(i, k)).expect("a token only one prompt generates");
    let stop = [free[first].tokens[step]];
    let stop = &stop[..];
    let repeated = generate_with(model, packed, inv_freq, prompts, &sampling, stop, options, &mut |_| true).unwrap();
    let alone = generate_with(model, packed, inv_freq, &distinct, &sampling, stop, options, &mut |_| true).unwrap();
    let lengths: Vec<usize> = alone.iter().map(|g| g.tokens.len()).collect();
    assert!(lengths.iter().min() < lengths.iter().max(), "sequences should finish at different steps: {lengths:?}");
    let mut worst = 0.0f32;
    for (p, g) in prompts.iter().zip(&repeated) {
        let a = &alone[distinct.iter().position(|d| d == p).unwrap()];
        assert_eq!(g.tokens, a.tokens, "a repeated prompt generated other tokens than alone");
        worst = worst.max(max_abs_diff(&g.logprobs, &a.logprobs));
    }
    worst
}

#[test]
fn repeated_prompts_prefilled_once_generate_as_alone() {
    for arch in common::ARCHITECTURES {
        repeated_prompts_generate_as_alone(arch);
    }
}

fn repeated_prompts_generate_as_alone(arch: Architecture) {
    // A seed under which every architecture's prompts generate different tokens (random tiny
    // models often loop on one token whatever the prompt; seeds 9–12 did for Qwen2).
    let (model, inv_freq, packed) = four_layers(arch, 13);
    let prompt = |start: u32, len: u32| -> Vec<u32> { (start..start + len).map(|t| (t * 5) % 40).collect() };
    // Short prompts (the first step on host buffers) and long ones (through tensors).
    for len in [6, 30] {
        let (a, b, c) = (prompt(1, len), prompt(2, len / 2 + 1), prompt(7, len - 3));
        let prompts = vec![a.clone(), b.clone(), a.clone(), a, c, b];
        for p in [packed.as_ref(), None] {
            let worst = repeats_against_distinct(&model, p, &inv_freq, &prompts, 12);
            eprintln!("{arch:?}, prompts of {len}, panels {}: log-probs {worst:.2e}", p.is_some());
            assert!(worst < 1e-5, "log-probs off by {worst}");
        }
    }
}

#[test]
fn the_real_recall_prompts_repeated_generate_as_alone() {
    use memtrain::agent::prompts::memory_recall;
    let Some(path) = common::real_model() else { return };
    let device = Device::flex();
    let lm = memtrain::checkpoint::load(&path, &device).unwrap();
    let ids = |text: &str| memtrain::agent::chat_prompt_ids(&lm.tokenizer, text).unwrap();
    let a = ids(&memory_recall("The ferry Astrid was built in Bergen in 1931.", "The ferry [TARGET] was built in Bergen in 1931."));
    let b = ids(&memory_recall("No previous memory", "Years later, the ferry sank near [TARGET] in a storm."));
    let prompts = vec![a.clone(), a.clone(), b.clone(), a, b];
    let worst = repeats_against_distinct(&lm.model, lm.packed(), &lm.inv_freq, &prompts, 16);
    eprintln!("SmolLM2 recall prompts: log-probs {worst:.2e}");
    assert!(worst < 1e-4, "log-probs off by {worst}");
}

#[test]
fn a_cancelled_or_empty_call_with_a_shared_prefix_and_a_tap_returns_what_it_generated() {
    let (model, inv_freq, packed) = four_layers(Architecture::Llama, 5);
    let prefix: Vec<u32> = (0..20).map(|t| (t * 7 + 3) % 40).collect();
    let prompts: Vec<Vec<u32>> = [&[21u32, 22][..], &[30], &[31, 32, 33]].iter().map(|tail| prefix.iter().chain(*tail).copied().collect()).collect();
    let options = GenerateOptions { stem_layer: Some(2), share_prefix: true };
    let sampling = SamplingParams { max_new_tokens: 8, ..Default::default() };
    let full = generate_with(&model, packed.as_ref(), &inv_freq, &prompts, &sampling, &[], options, &mut |_| true).unwrap();
    // Cancelled at the fifth token: every sequence stops as cancelled with what it had.
    let mut seen = 0;
    let cancelled = generate_with(&model, packed.as_ref(), &inv_freq, &prompts, &sampling, &[], options, &mut |_| {
        seen += 1;
        seen < 5
    })
    .unwrap();
    for (c, f) in cancelled.iter().zip(&full) {
        assert_eq!(c.stop, memtrain::generate::StopReason::Cancelled);
        assert!(f.tokens.starts_with(&c.tokens) && c.tokens.len() <= 2, "cancelled {:?} against {:?}", c.tokens, f.tokens);
    }
    assert_eq!(cancelled.iter().map(|g| g.tokens.len()).sum::<usize>(), 5);
    // No token asked for: nothing generated, nothing fed, no panic.
    let none = SamplingParams { max_new_tokens: 0, ..Default::default() };
    let empty = generate_with(&model, packed.as_ref(), &inv_freq, &prompts, &none, &[], options, &mut |_| true).unwrap();
    assert!(empty.iter().all(|g| g.tokens.is_empty() && g.stem.as_ref().is_none_or(|s| s.values.is_empty())));
}
