//! The real SmolLM2-135M-Instruct Q4_1 GGUF against transformers' reading of the same file
//! (tests/fixtures/models/smollm2/reference.json, made by scripts/make_model_fixtures.py):
//! next-token logits, greedy continuations, the README's two prompts, and batched generation.

mod common;

use burn::prelude::*;
use memtrain::checkpoint::{self, LoadedModel, chat_template::ChatMessage, chat_template::render_chat};
use memtrain::generate::{SamplingParams, generate};
use memtrain::model::StepLayout;
use memtrain::model::packed::PackedLlama;

use common::Smollm2Case as Case;

fn case(name: &str) -> Case {
    Case::named(name)
}

fn greedy(lm: &LoadedModel, prompts: &[Vec<u32>], n: usize) -> Vec<Vec<u32>> {
    let params = SamplingParams { max_new_tokens: n, ..Default::default() };
    generate(&lm.model, lm.packed(), &lm.inv_freq, prompts, &params, &lm.tokenizer.stop_ids, &mut |_| true)
        .unwrap()
        .into_iter()
        .map(|g| g.tokens)
        .collect()
}

/// Next-token logits after `ids`, through the repacked weights when `packed` is given.
fn last_logits(lm: &LoadedModel, ids: &[u32], device: &Device, packed: Option<&PackedLlama>) -> Vec<f32> {
    let data: Vec<i64> = ids.iter().map(|&t| t as i64).collect();
    let tokens = Tensor::<2, Int>::from_data(TensorData::new(data, [1, ids.len()]), device);
    let layout = StepLayout::new(&lm.inv_freq, &[0], 0, ids.len(), device);
    let hidden = lm.model.forward_hidden_packed(tokens, &layout, None, packed).narrow(1, ids.len() - 1, 1);
    lm.model.logits_packed(hidden, packed).into_data().try_to_vec().unwrap()
}

fn check_against_transformers(device: &Device) {
    let Some(path) = common::real_model() else { return };
    let lm = checkpoint::load(&path, device).unwrap();
    // The backend's ops, then the repacked weights (the CPU decode kernels' panels, or wgpu's
    // fused q/k/v and gate/up projections): both must match HF.
    let on_cpu = *device == Device::flex();
    let packed = lm.packed().expect("generation repacks the weights on both devices");
    assert!(packed.layers.iter().all(|l| l.cpu().is_some() == on_cpu && l.gpu().is_some() != on_cpu), "CPU panels on the CPU, fused projections on wgpu");
    let variants = match lm.packed() {
        Some(p) => vec![None, Some(p)],
        None => vec![None],
    };
    for name in ["plain_france", "chat_japan"] {
        let c = case(name);
        for &packed in &variants {
            let logits = last_logits(&lm, &c.input_ids, device, packed);
            let worst = c.top_ids.iter().zip(&c.top_logits).map(|(&i, &e)| (logits[i as usize] - e).abs()).fold(0.0f32, f32::max);
            eprintln!("{name} (repacked weights: {}): max |Δlogit| over HF's top 20 = {worst:.2e}", packed.is_some());
            assert!(worst < 1e-3, "{name}: logits differ from transformers by {worst}");
        }
        let logits = last_logits(&lm, &c.input_ids, device, None);
        assert_eq!(memtrain::generate::sampler::argmax(&logits), c.top_ids[0], "{name}: next token");
        let ours = &greedy(&lm, &[c.input_ids.clone()], c.greedy_ids.len())[0];
        assert_eq!(ours, &c.greedy_ids, "{name}: greedy continuation differs from transformers");
    }
}

#[test]
fn smollm2_gguf_matches_transformers_on_flex() {
    check_against_transformers(&Device::flex());
}

#[test]
fn smollm2_gguf_matches_transformers_on_wgpu() {
    let Some(device) = common::wgpu_device() else { return };
    check_against_transformers(&device);
}

/// The README's promises: the chat question about Japan answers with Tokyo (the model's own
/// template, default system message included), and the plain prompt continues with " Paris".
#[test]
fn smollm2_answers_tokyo_and_paris() {
    let Some(path) = common::real_model() else { return };
    let lm = checkpoint::load(&path, &Device::flex()).unwrap();
    let t = &lm.tokenizer;
    let chat = render_chat(
        t.chat_template.as_deref(),
        &[ChatMessage { role: "user".into(), content: "What is the capital of Japan?".into() }],
        true,
        &t.bos_token,
        &t.eos_token,
    )
    .unwrap();
    let japan = t.encode(&chat, false).unwrap();
    let france = t.encode("The capital of France is", true).unwrap();
    let out = greedy(&lm, &[japan, france], 16);
    let answer = t.decode(&out[0], true).unwrap();
    let cont = t.decode(&out[1], true).unwrap();
    assert!(answer.contains("Tokyo"), "chat answer: {answer:?}");
    assert!(cont.starts_with(" Paris"), "continuation: {cont:?}");
}

/// Batched generation (left padding, per-sequence positions, rows leaving as they stop) gives
/// each sequence the same greedy tokens as generating it alone.
#[test]
fn batched_greedy_equals_each_prompt_alone() {
    let Some(path) = common::real_model() else { return };
    let lm = checkpoint::load(&path, &Device::flex()).unwrap();
    let t = &lm.tokenizer;
    let prompts: Vec<Vec<u32>> = [
        "The capital of France is",
        "Once upon a time, in a small village by the sea, there lived an old fisherman who",
        "def fibonacci(n):",
        "The three primary colours are",
    ]
    .iter()
    .map(|p| t.encode(p, true).unwrap())
    .collect();
    let together = greedy(&lm, &prompts, 20);
    for (i, p) in prompts.iter().enumerate() {
        let alone = &greedy(&lm, &[p.clone()], 20)[0];
        assert_eq!(&together[i], alone, "prompt {i} differs in the batch");
    }
}

/// Sampling with a seed is reproducible and independent of the batch a sequence sits in.
#[test]
fn seeded_sampling_is_reproducible_and_batch_independent() {
    let Some(path) = common::real_model() else { return };
    let lm = checkpoint::load(&path, &Device::flex()).unwrap();
    let p = lm.tokenizer.encode("My favourite animal is", true).unwrap();
    let q = lm.tokenizer.encode("Write a short poem about rain:", true).unwrap();
    let params = SamplingParams { temperature: 0.9, top_k: 40, top_p: 0.95, seed: 42, max_new_tokens: 12, no_repeat_ngram: 0 };
    let run = |prompts: &[Vec<u32>]| -> Vec<Vec<u32>> {
        generate(&lm.model, lm.packed(), &lm.inv_freq, prompts, &params, &[], &mut |_| true).unwrap().into_iter().map(|g| g.tokens).collect()
    };
    let a = run(&[p.clone(), q.clone()]);
    let b = run(&[p.clone(), q.clone()]);
    assert_eq!(a, b);
    assert_eq!(run(&[p.clone()])[0], a[0]);
    let other_seed = SamplingParams { seed: 43, ..params.clone() };
    let c = generate(&lm.model, lm.packed(), &lm.inv_freq, &[p], &other_seed, &[], &mut |_| true).unwrap();
    assert_ne!(c[0].tokens, a[0], "a different seed should sample differently");
}
