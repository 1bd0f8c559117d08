//! Where the wgpu time goes (issue 7 profile), on the random-weight SmolLM2-135M twin:
//! 1. decode steps at batch 1 and 64, split into forward / LM head / greedy pick (each phase
//!    synced by a one-value read), at two cache lengths;
//! 2. the GRPO update's forward-backward on 8 rows, first at widths it has never seen, then at
//!    a width it has: the difference is what a new shape costs (kernel compilation, autotune).
//! `cargo run --release --example gpu_probe -- [wgpu|cpu] [decode|decode64|matmul|update|all] [small]`
//! With a `cubecl.toml` in the working directory, CubeCL logs compilations / kernel times too.
use burn::prelude::*;
use memtrain::model::kv_cache::KvCache;
use memtrain::model::{Llama, ModelConfig, StepLayout, random::RandomWeights, rope};
use memtrain::train::grpo::{GrpoConfig, PolicySample, TokenBatch, batch_loss};
use std::time::Instant;

fn sync1(t: Tensor<3>) {
    let _ = t.slice([0..1, 0..1, 0..1]).into_data();
}

/// Lines in CubeCL's compilation log so far (`PROBE_COMPILE_LOG` names the file that
/// `cubecl.toml` sends it to): how many kernels a call compiled.
fn compiled() -> String {
    let Some(path) = std::env::var_os("PROBE_COMPILE_LOG") else { return String::new() };
    std::thread::sleep(std::time::Duration::from_millis(200)); // the logger writes asynchronously
    let lines = std::fs::read_to_string(path).map(|s| s.lines().count()).unwrap_or(0);
    format!("  [compile log: {lines} lines]")
}

fn ms(t: Instant, reps: usize) -> f64 {
    t.elapsed().as_secs_f64() * 1e3 / reps as f64
}

fn decode(model: &Llama, inv: &[f64], device: &Device, b: usize, prompt: usize) {
    let rows: Vec<i64> = (0..b * prompt).map(|i| ((i * 7919) % 49152) as i64).collect();
    let input = Tensor::<2, Int>::from_data(TensorData::new(rows, [b, prompt]), device);
    let mut cache = KvCache::new(model.layers.len(), vec![0; b]);
    cache.reserve(prompt + 64);
    let layout = StepLayout::with_columns(inv, &cache.pad, cache.len, prompt, cache.capacity, device);
    let t = Instant::now();
    sync1(model.forward_hidden(input, &layout, Some(&mut cache)));
    println!("  batch {b:2}, prompt {prompt:4}: prefill {:.1} ms", ms(t, 1));
    let mut step = |phase: u8, s: usize| {
        let tok = Tensor::<2, Int>::from_data(TensorData::new(vec![(s as i64 % 900) + 5; b], [b, 1]), device);
        cache.reserve(1);
        let layout = StepLayout::with_columns(inv, &cache.pad, cache.len, 1, cache.capacity, device);
        let h = model.forward_hidden(tok, &layout, Some(&mut cache));
        match phase {
            0 => sync1(h),
            1 => sync1(model.logits(h)),
            _ => {
                // What generate's greedy path does: argmax and -log Σ exp(l - max), one read.
                let logits = model.logits(h);
                let ids = logits.clone().argmax(2);
                let max = logits.clone().max_dim(2);
                let lp = (logits - max).exp().sum_dim(2).log().neg();
                let _ = burn::tensor::Transaction::default().register(ids).register(lp).execute();
            }
        }
    };
    for s in 0..6 {
        step(2, s); // warm: every kernel of every phase compiled
        step(0, s);
        step(1, s);
    }
    let reps = 12;
    for (phase, name) in [(0u8, "forward only"), (1, "forward + LM head"), (2, "full greedy step")] {
        let t = Instant::now();
        for s in 0..reps {
            step(phase, s);
        }
        let per = ms(t, reps);
        println!("  batch {b:2}, cache ~{:4}: {name:18} {per:7.2} ms/step  ({:.0} tok/s)", prompt + 24, b as f64 * 1e3 / per);
    }
}

/// The decode projections' matmul alone, three ways: `x · W` with `W` stored `[in, out]` (what
/// Burn's Linear does), `(Wᵀ · xᵀ)ᵀ` with the weight stored `[out, in]` (a tall product, which
/// the matmul kernels may tile better), and `x · Wᵀ` as a transposed view of `[out, in]`.
fn matmuls(device: &Device) {
    let reps = 30;
    for m in [1usize, 64] {
        for (k, n) in [(576usize, 576usize), (576, 192), (576, 1536), (1536, 576), (576, 49152)] {
            let x = Tensor::<2>::random([m, k], burn::tensor::Distribution::Default, device);
            let w = Tensor::<2>::random([k, n], burn::tensor::Distribution::Default, device);
            let wt = Tensor::<2>::random([n, k], burn::tensor::Distribution::Default, device);
            let mut row = format!("  matmul m {m:2} k {k:4} n {n:5}:");
            for (name, f) in [
                ("x·W", &(|| x.clone().matmul(w.clone())) as &dyn Fn() -> Tensor<2>),
                ("(Wt·xT)T", &|| wt.clone().matmul(x.clone().transpose()).transpose()),
                ("x·WtT", &|| x.clone().matmul(wt.clone().transpose())),
            ] {
                for _ in 0..3 {
                    let _ = f().slice([0..1, 0..1]).into_data();
                }
                let t = Instant::now();
                let mut last = None;
                for _ in 0..reps {
                    last = Some(f());
                }
                let _ = last.unwrap().slice([0..1, 0..1]).into_data();
                row += &format!("  {name} {:7.1} µs", t.elapsed().as_secs_f64() * 1e6 / reps as f64);
            }
            println!("{row}");
        }
    }
}

/// One op chain of a decode layer, 20 times, for counting kernel launches per chain with
/// CubeCL's execution log (`level = "minimal"`): does Burn's fusion merge it?
fn fusion_chain(device: &Device, chain: &str) {
    let x = Tensor::<3>::random([64, 1, 576], burn::tensor::Distribution::Default, device);
    let norm = burn::nn::RmsNormConfig::new(576).init(device);
    let gate = burn::nn::LinearConfig::new(576, 1536).with_bias(false).init(device);
    let up = burn::nn::LinearConfig::new(576, 1536).with_bias(false).init(device);
    let down = burn::nn::LinearConfig::new(1536, 576).with_bias(false).init(device);
    let w = Tensor::<3>::random([1, 576, 576], burn::tensor::Distribution::Default, device);
    let cos = Tensor::<4>::random([64, 1, 1, 64], burn::tensor::Distribution::Default, device);
    let scores = Tensor::<4>::random([64, 3, 3, 256], burn::tensor::Distribution::Default, device);
    let bias = Tensor::<4>::random([64, 1, 3, 256], burn::tensor::Distribution::Default, device);
    let _ = x.clone().slice([0..1, 0..1, 0..1]).into_data();
    let mut outs = Vec::new();
    for _ in 0..20 {
        let out: Tensor<3> = match chain {
            "rmsnorm" => norm.forward(x.clone()),
            "silu-mul" => burn::tensor::activation::silu(x.clone()) * x.clone(),
            "add" => x.clone() + x.clone().mul_scalar(2.0),
            "mlp" => down.forward(burn::tensor::activation::silu(gate.forward(x.clone())) * up.forward(x.clone())),
            "mlp-upfirst" => {
                let u = up.forward(x.clone());
                down.forward(burn::tensor::activation::silu(gate.forward(x.clone())) * u)
            }
            "mlp-fresh" => {
                let xf = Tensor::<3>::from_data(TensorData::new(vec![0.5f32; 64 * 576], [64, 1, 576]), device);
                let u = up.forward(xf.clone());
                down.forward(burn::tensor::activation::silu(gate.forward(xf)) * u)
            }
            "mlp-residual" => {
                let u = up.forward(x.clone());
                x.clone() + down.forward(burn::tensor::activation::silu(gate.forward(x.clone())) * u)
            }
            "norm-mlp" => {
                let n = norm.forward(x.clone());
                let u = up.forward(n.clone());
                x.clone() + down.forward(burn::tensor::activation::silu(gate.forward(n)) * u)
            }
            "attn-like" => {
                // Three projections, RoPE-like element-wise ops, scores with a broadcast bias.
                let q = gate.forward(x.clone()).narrow(2, 0, 576).reshape([64, 1, 9, 64]).swap_dims(1, 2);
                let k = up.forward(x.clone()).narrow(2, 0, 192).reshape([64, 1, 3, 64]).swap_dims(1, 2);
                let q = q.clone() * cos.clone() + q * cos.clone();
                let k = k.clone() * cos.clone() + k * cos.clone();
                let q = q.reshape([64, 3, 3, 64]);
                let sc = q.matmul(k.swap_dims(2, 3)).mul_scalar(0.125);
                burn::tensor::activation::softmax(sc, 3).reshape([64, 1, 9]).repeat_dim(2, 64)
            }
            "silu-of-linear" => burn::tensor::activation::silu(gate.forward(x.clone())).narrow(2, 0, 576),
            "silu-of-matmul" => burn::tensor::activation::silu(x.clone().matmul(w.clone())),
            "norm-linear" => gate.forward(norm.forward(x.clone())).narrow(2, 0, 576),
            "matmul-ew" => {
                let y = x.clone().matmul(w.clone());
                (y.clone() * y.clone() + y.clone().mul_scalar(0.5)).exp() * y
            }
            "rope" => {
                let q = x.clone().reshape([64, 1, 9, 64]).swap_dims(1, 2);
                let (a, b) = (q.clone().narrow(3, 0, 32), q.clone().narrow(3, 32, 32));
                let r = Tensor::cat(vec![b.neg(), a], 3);
                (q * cos.clone() + r * cos.clone()).swap_dims(1, 2).reshape([64, 1, 576])
            }
            "softmax" => burn::tensor::activation::softmax(scores.clone().mul_scalar(0.125) + bias.clone(), 3).reshape([64, 9, 256]).narrow(2, 0, 64).reshape([64, 1, 576]),
            other => panic!("unknown chain {other}"),
        };
        outs.push(out);
    }
    let _ = Tensor::cat(outs, 0).slice([0..1, 0..1, 0..1]).into_data();
    println!("chain {chain}: done");
}

/// 20 one-token forwards through a one-layer model (`nocache`: attention over the token
/// alone; `cache`: over a preallocated KV cache, as in decode), for counting launches per step.
fn layer_steps(model: &Llama, inv: &[f64], device: &Device, variant: &str) {
    let b = 64;
    let mut cache = KvCache::new(model.layers.len(), vec![0; b]);
    let mut outs = Vec::new();
    for s in 0..20 {
        let tok = Tensor::<2, Int>::from_data(TensorData::new(vec![(s as i64 % 900) + 5; b], [b, 1]), device);
        let h = if variant == "cache" {
            cache.reserve(1);
            let layout = StepLayout::with_columns(inv, &cache.pad, cache.len, 1, cache.capacity, device);
            model.forward_hidden(tok, &layout, Some(&mut cache))
        } else {
            let layout = StepLayout::new(inv, &vec![0; b], 0, 1, device);
            model.forward_hidden(tok, &layout, None)
        };
        if std::env::var_os("PROBE_SYNC").is_some() {
            device.sync().unwrap();
        }
        outs.push(h);
    }
    let _ = Tensor::cat(outs, 0).slice([0..1, 0..1, 0..1]).into_data();
    println!("layer {variant}: done");
}

fn update(model: Llama, inv: &[f64], device: &Device) {
    let cfg = GrpoConfig { kl_beta: 0.0, ..GrpoConfig::default() };
    let sample = |len: usize, row: usize| {
        let prompt: Vec<u32> = (0..len - 32).map(|i| ((i * 31 + row * 17) % 49000) as u32 + 5).collect();
        let response: Vec<u32> = (0..32).map(|i| ((i * 13 + row) % 49000) as u32 + 5).collect();
        PolicySample { prompt, response, old_logprobs: vec![-1.0; 32], advantage: if row % 2 == 0 { 1.0 } else { -1.0 }, stem: None }
    };
    let fb = |width: usize, label: &str| {
        let samples: Vec<PolicySample> = (0..8).map(|r| sample(width - r * 3, r)).collect();
        let batch = TokenBatch::new(&samples).unwrap();
        let t = Instant::now();
        let (loss, _) = batch_loss(&model, inv, &batch, None, &cfg, device);
        let grads = loss.backward();
        let g = model.embed_tokens.weight.grad(&grads).unwrap();
        let _ = g.slice([0..1, 0..1]).into_data();
        println!("  8 rows × width {:4} ({label}): forward-backward {:8.1} ms{}", batch.width, ms(t, 1), compiled());
    };
    for w in [385usize, 385, 385] {
        fb(w, "same width");
    }
    for w in [401usize, 417, 433, 449] {
        fb(w, "new width");
    }
    fb(385, "seen width");
    fb(449, "seen width");
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    println!("fusion search width: {:?}", memtrain::device::configure_fusion());
    let (base, info) = if args.get(1).map(String::as_str) == Some("cpu") { memtrain::device::cpu() } else { memtrain::device::wgpu().unwrap() };
    let what = args.get(2).cloned().unwrap_or_else(|| "all".into());
    println!("device: {info}");
    let mut config = ModelConfig::smollm2_135m();
    if args.get(3).map(String::as_str) == Some("small") {
        // A quick check of the probe itself: 2 narrow layers, same vocabulary.
        (config.num_layers, config.hidden_size, config.intermediate_size, config.num_heads, config.num_kv_heads) = (2, 64, 128, 2, 1);
    }
    let inv = rope::inverse_frequencies(&config);
    if what == "all" || what.starts_with("decode") {
        let model = Llama::from_weights(&config, &mut RandomWeights::new(config.clone(), 0), &base).unwrap();
        let shapes: &[(usize, usize)] = if what == "decode64" { &[(64, 128)] } else { &[(1, 128), (64, 128), (64, 512)] };
        for &(b, prompt) in shapes {
            decode(&model, &inv, &base, b, prompt);
        }
    }
    if let Some(chain) = what.strip_prefix("fusion:") {
        fusion_chain(&base, chain);
    }
    if let Some(variant) = what.strip_prefix("layer:") {
        config.num_layers = 1;
        let model = Llama::from_weights(&config, &mut RandomWeights::new(config.clone(), 0), &base).unwrap();
        layer_steps(&model, &inv, &base, variant);
    }
    if what == "all" || what == "matmul" {
        matmuls(&base);
    }
    if what == "all" || what == "update" {
        let device = base.autodiff();
        let model = Llama::from_weights(&config, &mut RandomWeights::new(config.clone(), 0), &device).unwrap();
        update(model, &inv, &device);
    }
}
