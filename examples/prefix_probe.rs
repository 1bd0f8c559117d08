//! A prefill of prompts sharing their leading tokens, with the shared prefix prefilled once and
//! without (`GenerateOptions::share_prefix`), SmolLM2-135M on the CPU, one generated token (the
//! prefill and the first step). `PROBE_COPIES=k`: each distinct prompt k times (identical prompts
//! prefilled once, their cache rows copied after the first step, as GRPO's recall answers).
//! `cargo run --release --example prefix_probe`
use memtrain::generate::{GenerateOptions, SamplingParams, generate_with};
use std::time::Instant;

fn main() {
    let (device, _) = memtrain::device::cpu();
    let lm = memtrain::checkpoint::load(&memtrain::checkpoint::default_model::path(), &device).unwrap();
    let copies: usize = std::env::var("PROBE_COPIES").ok().and_then(|v| v.parse().ok()).unwrap_or(1);
    let (rows, shared, tail) = (32usize, 125usize, 160usize);
    let prefix: Vec<u32> = (0..shared).map(|i| ((i * 7919) % 49000 + 10) as u32).collect();
    let prompts: Vec<Vec<u32>> = (0..rows * copies)
        .map(|r| {
            let r = r / copies;
            prefix.iter().copied().chain((0..tail - r % 40).map(|i| ((i * 104_729 + r * 31) % 49000 + 10) as u32)).collect()
        })
        .collect();
    let sampling = SamplingParams { max_new_tokens: 1, ..Default::default() };
    for round in 0..3 {
        for share_prefix in [false, true] {
            let options = GenerateOptions { stem_layer: None, share_prefix };
            let t = Instant::now();
            generate_with(&lm.model, lm.packed(), &lm.inv_freq, &prompts, &sampling, &[], options, &mut |_| true).unwrap();
            println!("round {round} {rows} distinct × {copies}, shared prefix {share_prefix}: {:.2} s", t.elapsed().as_secs_f64());
        }
    }
}
