//! Where a CPU training step's time goes (issue 7 profile): one sequence of the random-weight
//! SmolLM2-135M twin on flex, forward / backward / AdamW timed apart, after one warm-up step.
//! `cargo run --release --example train_probe -- [SEQ] [STEPS]` (defaults 512, 2); run it under
//! `perf record -g` to see the kernels. `PROBE_DEVICE=wgpu` runs it on wgpu (with
//! `scripts/train_launch_count.sh`, the kernel launches of one training step);
//! `PROBE_PRECISION=mixed` computes it in mixed f16 (wgpu only, as a run's `precision:
//! MixedF16`; no loss scaling: the probe measures, it does not learn). `PROBE_LORA=RANK` trains
//! rank-RANK LoRA adapters on q_proj and v_proj (the example config's targets), the base frozen.
//! `PROBE_IN_POOL=1` runs it on a rayon worker (2026-12-07, 2 cores: no change in a 512-token
//! step, 1.6–2.6 s either way, unlike a decode step).
use memtrain::model::precision::Precision;
use memtrain::train::adamw::FusedAdamW;
use memtrain::train::config::LoraConfig;
use memtrain::model::random::RandomWeights;
use memtrain::model::{Llama, ModelConfig, rope};
use memtrain::train::grpo::Forward;
use memtrain::train::sft::{SftExample, SftWeighting, sft_training_loss};
use std::time::Instant;

fn main() {
    if std::env::var_os("PROBE_IN_POOL").is_some() {
        rayon::scope(|_| probe());
    } else {
        probe();
    }
}

fn probe() {
    let mut args = std::env::args().skip(1).map(|a| a.parse::<usize>().expect("numbers: SEQ STEPS"));
    let seq = args.next().unwrap_or(512);
    let steps = args.next().unwrap_or(2);
    let (base, _) = match std::env::var("PROBE_DEVICE").as_deref() {
        Ok("wgpu") => memtrain::device::wgpu().expect("a wgpu adapter"),
        _ => memtrain::device::cpu(),
    };
    let device = base.autodiff();
    let precision = match std::env::var("PROBE_PRECISION").as_deref() {
        Ok("mixed") => Precision::MixedF16,
        _ => Precision::F32,
    };
    let config = ModelConfig::smollm2_135m();
    let mut model = Llama::from_weights(&config, &mut RandomWeights::new(config.clone(), 0), &device).unwrap();
    if let Some(rank) = std::env::var("PROBE_LORA").ok().map(|r| r.parse::<usize>().expect("PROBE_LORA: a rank")) {
        let lora = LoraConfig { rank, alpha: rank as f32, targets: vec!["q_proj".into(), "v_proj".into()] };
        model = memtrain::train::lora::attach(model, &lora, config.num_layers, 0);
    }
    let inv = rope::inverse_frequencies(&config);
    let tokens: Vec<u32> = (0..seq).map(|i| ((i * 7919 + 13) % config.vocab_size) as u32).collect();
    let example = SftExample::new(tokens[..1].to_vec(), tokens[1..].to_vec());
    // PROBE_BURN_ADAMW=1: Burn's own AdamW (the before of the fused CPU step).
    let mut optim = if std::env::var_os("PROBE_BURN_ADAMW").is_some() { burn::optim::AdamWConfig::new().init() } else { FusedAdamW::init(Default::default()) };
    for step in 0..=steps {
        let t = Instant::now();
        let loss = sft_training_loss(&model, &inv, std::slice::from_ref(&example), SftWeighting::Token, &device, Forward { precision, ..Forward::plain(&device) }).unwrap();
        let value: f32 = loss.value.clone().into_scalar();
        let forward = t.elapsed().as_secs_f64();
        let t = Instant::now();
        let grads = loss.gradients(&model);
        let backward = t.elapsed().as_secs_f64();
        let t = Instant::now();
        model = optim.step(1e-6, model, grads);
        let _ = model.norm.gamma.val().slice([0..1]).into_data();
        let adam = t.elapsed().as_secs_f64();
        let label = if step == 0 { "warm-up" } else { "step" };
        println!("{label} {step}: seq {seq}, {precision:?}, loss {value:.3}: forward {forward:.2} s, backward {backward:.2} s, AdamW {adam:.2} s, total {:.2} s", forward + backward + adam);
    }
}
