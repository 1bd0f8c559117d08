//! What the host sampler's top-p costs per row of real SmolLM2-135M logits (temperature 1), how
//! large the nucleus is, and what a token's log-prob costs: `candidates` against a full sort of
//! the vocabulary and `log_prob` against f64 `exp` one value at a time (what they did before
//! 2026-12-07), single-threaded (`cargo run --release --example top_p_probe`).
use burn::prelude::*;
use memtrain::generate::sampler::{SamplingParams, candidates};
use memtrain::model::StepLayout;
use std::time::Instant;

/// The vocabulary sorted by descending logit, then the nucleus cut (the earlier `candidates`).
fn full_sort(logits: &[f32], top_p: f32) -> usize {
    let mut idx: Vec<u32> = (0..logits.len() as u32).collect();
    idx.sort_unstable_by(|a, b| logits[*b as usize].total_cmp(&logits[*a as usize]).then(a.cmp(b)));
    let max = logits[idx[0] as usize];
    let probs: Vec<f64> = idx.iter().map(|&i| ((logits[i as usize] - max) as f64).exp()).collect();
    let total: f64 = probs.iter().sum();
    let mut cum = 0.0;
    probs.iter().position(|&x| {
        cum += x / total;
        cum >= top_p as f64
    }).map_or(probs.len(), |n| n + 1)
}

/// A token's log-prob through f64 `exp`, one value at a time (the earlier `log_prob`).
fn log_prob_f64(logits: &[f32], token: u32) -> f32 {
    let max = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let sum: f64 = logits.iter().map(|&l| ((l - max) as f64).exp()).sum();
    (logits[token as usize] - max) - sum.ln() as f32
}

fn main() {
    let device = Device::flex();
    let lm = memtrain::checkpoint::load(&memtrain::checkpoint::default_model::path(), &device).unwrap();
    let texts = ["The capital of France is", "Once upon a time, in a small village,", "The memory of the agent holds", "def fibonacci(n):", "In 1969 the first humans", "My favourite food is", "The meeting was moved to", "Water boils at"];
    for text in texts {
        let ids = lm.tokenizer.encode(text, false).unwrap();
        let tokens = Tensor::<2, Int>::from_data(TensorData::new(ids.iter().map(|&t| t as i64).collect::<Vec<_>>(), [1, ids.len()]), &device);
        let layout = StepLayout::new(&lm.inv_freq, &[0], 0, ids.len(), &device);
        let hidden = lm.model.forward_hidden(tokens, &layout, None).narrow(1, ids.len() - 1, 1);
        let logits: Vec<f32> = lm.model.logits(hidden).into_data().try_to_vec().unwrap();
        let reps = 20;
        let mut line = format!("{text:40}");
        for top_p in [1.0f32, 0.9, 0.95] {
            let p = SamplingParams { temperature: 1.0, top_p, ..Default::default() };
            let t = Instant::now();
            let mut kept = 0;
            for _ in 0..reps {
                kept = candidates(&logits, &p).0.len();
            }
            let ours = t.elapsed().as_secs_f64() * 1e3 / reps as f64;
            let t = Instant::now();
            for _ in 0..reps {
                std::hint::black_box(full_sort(std::hint::black_box(&logits), top_p));
            }
            let sorted = t.elapsed().as_secs_f64() * 1e3 / reps as f64;
            line += &format!(" | top-p {top_p}: {kept} kept, {ours:.2} ms (full sort {sorted:.2} ms)");
        }
        let t = Instant::now();
        for _ in 0..reps {
            std::hint::black_box(memtrain::generate::sampler::log_prob(std::hint::black_box(&logits), 0));
        }
        let ours = t.elapsed().as_secs_f64() * 1e3 / reps as f64;
        let t = Instant::now();
        for _ in 0..reps {
            std::hint::black_box(log_prob_f64(std::hint::black_box(&logits), 0));
        }
        let f64_exp = t.elapsed().as_secs_f64() * 1e3 / reps as f64;
        let best = memtrain::generate::sampler::argmax(&logits);
        let gap = (memtrain::generate::sampler::log_prob(&logits, best) - log_prob_f64(&logits, best)).abs();
        line += &format!(" | log_prob {ours:.3} ms (f64 exp {f64_exp:.3} ms, |Δ| {gap:.1e})");
        println!("{line}");
    }
}
