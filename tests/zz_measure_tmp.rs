use burn::prelude::*;
use memtrain::agent::*;
use memtrain::generate::SamplingParams;
use memtrain::train::{grpo::*, rewards::*};
use std::time::Instant;
#[test]
fn measure() {
    let path = std::path::PathBuf::from(std::env::var("MEMTRAIN_MODEL").unwrap());
    let device = Device::flex().autodiff();
    let lm = memtrain::checkpoint::load(&path, &device).unwrap();
    let plain = lm.model.valid();
    let policy = Policy { model: &plain, inv_freq: &lm.inv_freq, tokenizer: &lm.tokenizer };
    let doc = AgentInput { chunks: vec!["The ferry Astrid was built in Bergen in 1931.".into(), "Years later, the [MASK] ferry sank near Oslo.".into()], question: "Based on the entire article, which entity is represented by the [MASK] placeholder?".into() };
    let params = AgentParams { sampling: SamplingParams { temperature: 1.0, seed: 1, ..Default::default() }, memory_tokens: 16, answer_tokens: 8 };
    let t = Instant::now();
    let traces = run_agent(&policy, &[doc.clone(), doc], 2, &params).unwrap();
    let gen_s = t.elapsed().as_secs_f32();
    let gen_tokens: usize = traces.iter().map(|t| t.generated_tokens()).sum();
    let rewards: Vec<f32> = traces.iter().enumerate().map(|(i, t)| if i % 2 == 0 { 1.0 } else { end_to_end_reward(&t.answer, "Astrid") }).collect();
    let adv = group_advantages(&rewards, 2, false).unwrap();
    let samples = samples_from_traces(&traces, &adv.per_rollout);
    let tokens: usize = samples.iter().map(|s| s.prompt.len() + s.response.len()).sum();
    let resp: usize = samples.iter().map(|s| s.response.len()).sum();
    let mut optim = burn::optim::AdamWConfig::new().init();
    let t = Instant::now();
    let (_m, stats) = grpo_step(lm.model, &mut optim, 1e-5, &lm.inv_freq, &samples, None, &GrpoConfig { kl_beta: 0.0, ..Default::default() }).unwrap();
    let step_s = t.elapsed().as_secs_f32();
    eprintln!("MEASURE generation: 4 rollouts x 3 turns, {gen_tokens} tokens in {gen_s:.1}s; grpo_step: {} samples, {tokens} tokens ({resp} response) in {step_s:.1}s ({:.0} tok/s); stats {stats:?}; dropped {}", samples.len(), tokens as f32 / step_s, adv.dropped_groups);
}
