//! Reusing the frozen layers' output from generation in the update (`memtrain::model::stem`).
//!
//! 1. What generation keeps for each sequence (`generate_with` and a `stem_layer`) is the stream the training
//!    forward computes entering the tapped layer at the same tokens (prompt + generated tokens
//!    but the last), through identical prompts prefilled once, left padding, rows stopping at
//!    different steps, a prefill on host buffers or through tensors, decode steps on host
//!    buffers — on random Llama, Qwen2 and Qwen3 weights and on the real SmolLM2.
//! 2. An update that starts at the stem gives the log-probs, GRPO loss and every trainable
//!    gradient of the update that runs the frozen layers, as one plain batch and as shared prompts,
//!    for each of the three architectures, and with LoRA adapters (the frozen layers' adapters
//!    carried by the stem).

mod common;

use burn::prelude::*;
use common::{assert_same, max_abs_diff, value_and_gradients};
use memtrain::generate::{GenerateOptions, SamplingParams, generate, generate_with};
use memtrain::model::packed::{PackedLlama, PanelPrecision};
use memtrain::model::stem::StemStates;
use memtrain::model::{Architecture, Llama, ModelConfig, StepLayout};
use memtrain::train::grpo::{Forward, GrpoConfig, PolicySample, TokenBatch, training_loss};
use std::sync::Arc;

/// Four layers of `arch` (Qwen2 with q/k/v biases and an untied head, Qwen3 with q/k norms).
fn four_layers(arch: Architecture) -> ModelConfig {
    common::tiny_config_of(arch, 4)
}

/// The stream entering `layer` at `tokens` by the training forward (no cache), `[len, hidden]`.
fn training_stream(model: &Llama, inv_freq: &[f64], tokens: &[u32], layer: usize, device: &Device) -> Vec<f32> {
    let ids = Tensor::<2, Int>::from_data(TensorData::new(tokens.iter().map(|&t| t as i64).collect(), [1, tokens.len()]), device);
    let layout = StepLayout::new(inv_freq, &[0], 0, tokens.len(), device);
    model.stem_stream(ids, layer, &layout).into_data().try_to_vec().unwrap()
}

/// Generates for `prompts` with the stream entering `layer` kept, checks that the tap changed no
/// token, and returns the kept streams' error against the training forward's
/// ([`common::stream_error`]) and the root mean square of those streams.
fn tapped_against_training(model: &Llama, inv_freq: &[f64], packed: Option<&PackedLlama>, prompts: &[Vec<u32>], stop: &[u32], layer: usize) -> (f32, f32) {
    let device = model.embed_tokens.weight.val().device();
    let sampling = SamplingParams { temperature: 1.0, seed: 7, max_new_tokens: 12, ..Default::default() };
    let tapped = generate_with(model, packed, inv_freq, prompts, &sampling, stop, GenerateOptions { stem_layer: Some(layer), ..GenerateOptions::default() }, &mut |_| true).unwrap();
    let plain = generate(model, packed, inv_freq, prompts, &sampling, stop, &mut |_| true).unwrap();
    let lengths: Vec<usize> = tapped.iter().map(|g| g.tokens.len()).collect();
    assert!(lengths.iter().min() < lengths.iter().max(), "rows should stop at different steps: {lengths:?}");
    let mut pairs = vec![];
    for ((prompt, g), p) in prompts.iter().zip(&tapped).zip(&plain) {
        assert_eq!(g.tokens, p.tokens, "the tap changed what was generated");
        let fed: Vec<u32> = prompt.iter().chain(&g.tokens[..g.tokens.len() - 1]).copied().collect();
        let stem = g.stem.as_ref().expect("a kept stream");
        assert_eq!(stem.layer, layer);
        let expected = training_stream(model, inv_freq, &fed, layer, &device);
        pairs.push((stem.values.clone(), expected));
    }
    let pairs: Vec<(&[f32], &[f32])> = pairs.iter().map(|(g, w)| (g.as_slice(), w.as_slice())).collect();
    common::stream_error(&pairs)
}

#[test]
fn generation_keeps_the_stream_the_training_forward_computes() {
    for arch in common::ARCHITECTURES {
        generation_keeps_the_training_stream(arch);
    }
}

fn generation_keeps_the_training_stream(arch: Architecture) {
    let device = Device::flex();
    let cfg = four_layers(arch);
    let model = common::jittered_model(&cfg, &device, 11);
    let inv_freq = memtrain::model::rope::inverse_frequencies(&cfg);
    let packed = PackedLlama::for_device(&model, PanelPrecision::F32);
    assert!(packed.is_some(), "CPU decode panels for the tiny model");
    let stop: Vec<u32> = (40..48).collect();
    let prompt = |start: u32, len: u32| -> Vec<u32> { (start..start + len).map(|t| t % 40).collect() };
    // Identical prompts (prefilled once), and shorter ones left-padded. 3 distinct × 18 columns
    // fit the host path's 64 rows; 3 × 30 go through tensors.
    for len in [18, 30] {
        let prompts = vec![prompt(1, len), prompt(3, len / 2), prompt(1, len), prompt(9, 5), prompt(1, len)];
        for p in [packed.as_ref(), None] {
            let (worst, rms) = tapped_against_training(&model, &inv_freq, p, &prompts, &stop, 2);
            eprintln!("{arch:?}, prompt {len}, panels {}: worst {worst:.2e} of size + rms, rms {rms:.3}", p.is_some());
            assert!(rms > 1e-3 && worst < 1e-5, "kept stream off by {worst} of its size + rms (rms {rms})");
        }
    }
}

#[test]
fn generation_on_the_real_model_keeps_its_stream_at_layer_20() {
    let Some(path) = common::real_model() else { return };
    let device = Device::flex();
    let lm = memtrain::checkpoint::load(&path, &device).unwrap();
    let packed = lm.packed();
    let ids = |text: &str| memtrain::agent::chat_prompt_ids(&lm.tokenizer, text).unwrap();
    let prompts = vec![ids("Name the capital of France."), ids("Write one sentence about the sea and its tides."), ids("Name the capital of France.")];
    let mut stop = lm.tokenizer.stop_ids.clone();
    // Full stops end a row early: rows of different lengths.
    stop.extend(lm.tokenizer.encode(".", false).unwrap());
    let (worst, rms) = tapped_against_training(&lm.model, &lm.inv_freq, packed, &prompts, &stop, 20);
    eprintln!("SmolLM2 layer 20: worst {worst:.2e} of size + rms, rms {rms:.1}");
    assert!(worst < 1e-5, "kept stream off by {worst} of its size + rms (rms {rms})");
}

fn sample(prompt: &[u32], response: &[u32], advantage: f32) -> PolicySample {
    PolicySample { prompt: prompt.to_vec(), response: response.to_vec(), old_logprobs: response.iter().enumerate().map(|(j, _)| -4.0 + 0.3 * j as f32).collect(), advantage, stem: None }
}

/// Prompts shared by three and by two rows, a one-token prompt shared by two, one alone; each sample with the stream entering
/// `layer` (as the training forward computes it) labelled as entering `label`.
fn samples_with_stems(model: &Llama, inv_freq: &[f64], layer: usize, label: usize, device: &Device) -> Vec<PolicySample> {
    let a: Vec<u32> = (1..=7).collect();
    let mut samples = vec![
        sample(&a, &[8, 9, 10], 1.0),
        sample(&[20, 21, 22], &[23, 24, 25, 26], -0.5),
        sample(&a, &[11, 12, 13, 14, 15], -0.5),
        sample(&(40..53).collect::<Vec<u32>>(), &[54, 55], 0.75),
        sample(&a, &[16], 0.5),
        sample(&[20, 21, 22], &[27, 28], 1.0),
        // A one-token prompt: nothing of it before the rest pass.
        sample(&[30], &[31, 32, 33], 0.25),
        sample(&[30], &[34, 35], -1.0),
    ];
    for s in &mut samples {
        let fed: Vec<u32> = s.prompt.iter().chain(&s.response[..s.response.len() - 1]).copied().collect();
        s.stem = Some(Arc::new(StemStates { layer: label, values: training_stream(model, inv_freq, &fed, layer, device) }));
    }
    samples
}

#[test]
fn an_update_from_the_stem_equals_one_through_the_frozen_layers() {
    for arch in common::ARCHITECTURES {
        an_update_from_the_stem_equals_the_whole(arch);
    }
}

fn an_update_from_the_stem_equals_the_whole(arch: Architecture) {
    let base = Device::flex();
    let device = base.clone().autodiff();
    let cfg = four_layers(arch);
    let inv_freq = memtrain::model::rope::inverse_frequencies(&cfg);
    // The top two of four layers learn.
    let model = memtrain::train::freeze::freeze_below(common::jittered_model(&cfg, &device, 5), 2).unwrap();
    let stem = memtrain::model::stem::stem_layer(4, Some(2), false);
    assert_eq!(stem, Some(2));
    let samples = samples_with_stems(&model.valid(), &inv_freq, 2, 2, &base);
    let batch = TokenBatch::new(&samples).unwrap();
    assert!(batch.stems.is_some() && batch.shared.is_some());
    for share_prompts in [false, true] {
        let forward = |reuse_stems| Forward { buckets: false, share_prompts, reuse_stems, ..Forward::plain(&device) };
        let learning = stem_and_tokens_agree(&model, &inv_freq, &batch, &device, share_prompts);
        // Per layer 9 weights, Qwen2's 3 biases, Qwen3's 2 head norms; the final norm, and an untied head.
        let per_layer = 9 + match arch { Architecture::Qwen2 => 3, Architecture::Qwen3 => 2, _ => 0 };
        assert_eq!(learning, 2 * per_layer + 1 + usize::from(!cfg.tie_word_embeddings), "{arch:?}: two layers' weights, the final norm and an untied head learn");
        let logp = |reuse| -> Vec<f32> { token_logprobs_with(&model.valid(), &inv_freq, &batch, &base, forward(reuse)) };
        let (tokens, stems) = (logp(false), logp(true));
        assert!(max_abs_diff(&tokens, &stems) < 1e-5, "log-probs moved by {}", max_abs_diff(&tokens, &stems));
    }
    // A stem taken one layer too low, labelled as layer 2, is seen in both layouts (so both
    // really start from the stem).
    let wrong = TokenBatch::new(&samples_with_stems(&model.valid(), &inv_freq, 1, 2, &base)).unwrap();
    for share_prompts in [false, true] {
        let forward = |reuse_stems| Forward { buckets: false, share_prompts, reuse_stems, ..Forward::plain(&base) };
        assert!(forward(true).starts_from_stem(&wrong, &model.valid()) && !forward(false).starts_from_stem(&wrong, &model.valid()));
        let gap = max_abs_diff(&token_logprobs_with(&model.valid(), &inv_freq, &wrong, &base, forward(false)), &token_logprobs_with(&model.valid(), &inv_freq, &wrong, &base, forward(true)));
        assert!(gap > 1e-3, "sharing prompts {share_prompts}: a wrong stem changed the log-probs by only {gap}");
    }
}

#[test]
fn with_lora_an_update_from_the_stem_equals_one_through_the_frozen_layers() {
    let base = Device::flex();
    let device = base.clone().autodiff();
    let cfg = four_layers(Architecture::Llama);
    let inv_freq = memtrain::model::rope::inverse_frequencies(&cfg);
    let targets = memtrain::train::lora::TARGETS.iter().map(|(t, _)| t.to_string()).collect();
    let lora_cfg = memtrain::train::config::LoraConfig { rank: 2, alpha: 2.0, targets };
    let lora = memtrain::train::lora::attach(common::jittered_model(&cfg, &device, 8), &lora_cfg, 4, 1);
    // B starts at zero: one step with every adapter learning makes the frozen layers' adapters
    // change the stream too, so the stem must carry them.
    let samples = samples_with_stems(&lora.valid(), &inv_freq, 2, 2, &base);
    let batch = TokenBatch::new(&samples).unwrap();
    let cfg_loss = GrpoConfig { kl_beta: 0.0, ..Default::default() };
    let mut optim = memtrain::train::adamw::FusedAdamW::init(Default::default());
    let plain = Forward { buckets: false, share_prompts: false, reuse_stems: false, ..Forward::plain(&device) };
    let (loss, _) = training_loss(&lora, &inv_freq, &batch, None, &cfg_loss, &device, plain);
    let lora = optim.step(1e-2, lora.clone(), loss.gradients(&lora));
    let model = memtrain::train::freeze::freeze_below(lora, 2).unwrap();
    let samples = samples_with_stems(&model.valid(), &inv_freq, 2, 2, &base);
    let batch = TokenBatch::new(&samples).unwrap();
    for share_prompts in [false, true] {
        let learning = stem_and_tokens_agree(&model, &inv_freq, &batch, &device, share_prompts);
        assert_eq!(learning, 2 * 7 * 2, "A and B of the seven projections of the top two layers learn");
    }
    // The stream with the frozen layers' adapters differs from the one without them: a stem
    // taken from the base weights would be wrong.
    let without = samples_with_stems(&common::jittered_model(&cfg, &base, 8), &inv_freq, 2, 2, &base);
    let moved = max_abs_diff(&samples[0].stem.as_ref().unwrap().values, &without[0].stem.as_ref().unwrap().values);
    assert!(moved > 1e-4, "the frozen adapters moved the stream by only {moved}");
}

/// The GRPO loss (no KL) and every gradient of an update from the stem and of one through the
/// frozen layers, checked equal ([`assert_same`]); returns how many tensors got a gradient.
fn stem_and_tokens_agree(model: &Llama, inv_freq: &[f64], batch: &TokenBatch, device: &Device, share_prompts: bool) -> usize {
    let cfg_loss = GrpoConfig { kl_beta: 0.0, ..Default::default() };
    let forward = |reuse_stems| Forward { buckets: false, share_prompts, reuse_stems, ..Forward::plain(device) };
    let [from_tokens, from_stem] = [false, true].map(|reuse| value_and_gradients(model, training_loss(model, inv_freq, batch, None, &cfg_loss, device, forward(reuse)).0));
    assert_same(&from_tokens, &from_stem, 1e-4)
}

/// Host log-probs of the batch's response tokens under `forward` (no autodiff).
fn token_logprobs_with(model: &Llama, inv_freq: &[f64], batch: &TokenBatch, device: &Device, forward: Forward) -> Vec<f32> {
    let (logp, _) = memtrain::train::grpo::recomputable_logprobs(model, inv_freq, batch, device, forward);
    logp.into_data().try_to_vec().unwrap()
}

/// The whole way on the real SmolLM2: rollouts of the agent (two chunks, a group of two) and
/// recall answers with the stream at layer 20 kept, their GRPO samples laid out as the trainer
/// does, and the update's log-probs from the stem against those from tokens and those the
/// sampler recorded.
#[test]
fn rollouts_of_the_real_agent_carry_their_stems_into_the_update() {
    use memtrain::agent::{AgentInput, AgentParams, Policy, RecallInput, run_agent, run_recall};
    use memtrain::train::grpo::{micro_batches, samples_from_recall, samples_from_traces, sort_by_length};
    let Some(path) = common::real_model() else { return };
    let device = Device::flex();
    let lm = memtrain::checkpoint::load(&path, &device).unwrap();
    let policy = Policy { options: GenerateOptions { stem_layer: Some(20), ..GenerateOptions::default() }, ..Policy::from_loaded(&lm) };
    let doc = AgentInput {
        chunks: vec!["The ferry Astrid was built in Bergen in 1931.".into(), "Years later, the [MASK] ferry sank near Oslo.".into()],
        question: "Based on the entire article, which entity is represented by the [MASK] placeholder?".into(),
    };
    let sampling = SamplingParams { temperature: 1.0, seed: 5, ..Default::default() };
    let params = AgentParams { sampling: sampling.clone(), memory_tokens: 24, answer_tokens: 12 };
    let traces = run_agent(&policy, &[doc], 2, &params).unwrap();
    let recall = [RecallInput { memory: traces[0].memories[0].clone(), masked_section: "The ferry [TARGET] was built in Bergen in 1931.".into() }];
    let answers = run_recall(&policy, &recall, 2, &sampling, 12, 1 << 20).unwrap();
    let mut samples = samples_from_traces(&traces, &[Some(1.0), Some(-1.0)]);
    samples.extend(samples_from_recall(&answers, &[Some(0.5), Some(-0.5)]));
    assert_eq!(samples.len(), 8, "three turns per rollout and two recall answers");
    assert!(samples.iter().all(|s| s.stem.as_ref().is_some_and(|t| t.layer == 20)), "every sample kept its stem");
    sort_by_length(&mut samples);
    let (mut worst_stem, mut worst_sampler) = (0.0f32, 0.0f32);
    for part in micro_batches(&samples, 4, true) {
        let batch = TokenBatch::new(part).unwrap();
        assert!(batch.stems.is_some(), "a micro-batch without stems would run from tokens");
        let forward = |reuse_stems| Forward { buckets: false, reuse_stems, ..Forward::plain(&device) };
        let from_tokens = token_logprobs_with(&lm.model, &lm.inv_freq, &batch, &device, forward(false));
        let from_stem = token_logprobs_with(&lm.model, &lm.inv_freq, &batch, &device, forward(true));
        worst_stem = worst_stem.max(max_abs_diff(&from_tokens, &from_stem));
        worst_sampler = worst_sampler.max(max_abs_diff(&batch.old_logprobs, &from_stem));
    }
    eprintln!("log-probs from the stem vs from tokens: {worst_stem:.2e}; vs the sampler's: {worst_sampler:.2e}");
    assert!(worst_stem < 2e-4, "the update's log-probs moved by {worst_stem} when starting from the stem");
    assert!(worst_sampler < 1e-3, "the sampler's log-probs and the update's differ by {worst_sampler}");
}
