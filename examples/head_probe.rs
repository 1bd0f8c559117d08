//! The LM head of a training step alone (issue 7): log-probs of 512 target tokens through
//! SmolLM2-135M's tied `[49152, 576]` head and their backward, on flex with autodiff, fused
//! (`Llama::target_logprobs`) against Burn's composed logits → log-softmax → gather.
//! `cargo run --release --example head_probe -- [N] [REPEATS]` (defaults 512, 3).
use burn::prelude::*;
use burn::tensor::activation::log_softmax;
use memtrain::kernels::target_logprobs::HeadLayout;
use memtrain::kernels::target_logprobs_op::fused_target_logprobs;
use std::time::Instant;

fn main() {
    let mut args = std::env::args().skip(1).map(|a| a.parse::<usize>().expect("numbers: N REPEATS"));
    let n = args.next().unwrap_or(512);
    let repeats = args.next().unwrap_or(3);
    let (vocab, d) = (49152, 576);
    let device = Device::flex().autodiff();
    let normal = burn::tensor::Distribution::Normal(0.0, 0.05);
    let table = Tensor::<2>::random([vocab, d], normal, &device).require_grad();
    let hidden = Tensor::<2>::random([n, d], burn::tensor::Distribution::Normal(0.0, 1.0), &device).require_grad();
    let targets: Vec<u32> = (0..n).map(|i| ((i * 7919 + 13) % vocab) as u32).collect();
    let ids: Vec<i64> = targets.iter().map(|&t| t as i64).collect();
    for _ in 0..repeats {
        for fused in [false, true] {
            let t = Instant::now();
            let logp = if fused {
                fused_target_logprobs(&hidden, &table, HeadLayout::VocabMajor, &targets).expect("fused head on flex")
            } else {
                let logits = table.clone().matmul(hidden.clone().transpose()).transpose().reshape([1, n, vocab]);
                let index = Tensor::<3, Int>::from_data(TensorData::new(ids.clone(), [1, n, 1]), &device);
                log_softmax(logits, 2).gather(2, index).reshape([n])
            };
            let loss = logp.sum().neg();
            let value: f32 = loss.clone().into_scalar();
            let forward = t.elapsed().as_secs_f64();
            let t = Instant::now();
            let grads = loss.backward();
            let _ = table.grad(&grads).unwrap().slice([0..1, 0..1]).into_data();
            let _ = hidden.grad(&grads).unwrap().slice([0..1, 0..1]).into_data();
            let backward = t.elapsed().as_secs_f64();
            let name = if fused { "fused" } else { "composed" };
            println!("{name:>8}: n {n}, loss {value:.4}: forward {forward:.3} s, backward {backward:.3} s, total {:.3} s", forward + backward);
        }
    }
}
