//! Top-k / top-p on the device (`shaders/nucleus.rs`, `gpu::sample_rows`) against the host
//! sampler (`sampler::candidates`, which sorts): the same kept tokens on SmolLM2's real
//! next-token logits, on random 49k-wide rows and on rows full of ties; draws that follow the
//! renormalised softmax over the kept tokens and never leave them.

mod common;

use burn::prelude::*;
use burn::tensor::DType;
use memtrain::generate::{SamplingParams, sampler};
use memtrain::kernels::gpu;

/// `f32::total_cmp`'s order as an unsigned key (the kernel's `order_key`).
fn key(l: f32) -> u32 {
    let bits = l.to_bits();
    if bits >> 31 == 1 { !bits } else { bits | 0x8000_0000 }
}

/// SmolLM2's next-token logits after a few real prompts (CPU forward), one row each.
fn real_rows() -> Vec<Vec<f32>> {
    let Some(path) = common::real_model() else { return vec![] };
    let lm = memtrain::checkpoint::load(&path, &Device::flex()).unwrap();
    ["The capital of France is", "Once upon a time, in a small village,", "def fibonacci(n):"]
        .iter()
        .map(|prompt| common::last_logits(&lm, &lm.tokenizer.encode(prompt, false).unwrap()))
        .collect()
}

/// The device's kept set of each row, from the boundary the kernel reports.
fn device_kept(rows: &[Vec<f32>], params: &SamplingParams, device: &Device) -> Vec<Vec<u32>> {
    let vocab = rows[0].len();
    let flat: Vec<f32> = rows.concat();
    let logits = Tensor::<2>::from_data(TensorData::new(flat, [rows.len(), vocab]), (device, DType::F32));
    let bounds: Vec<f32> = gpu::kept_boundaries(&logits, params.temperature, params.top_k, params.top_p).expect("our kernel runs on wgpu").into_data().try_to_vec().unwrap();
    rows.iter()
        .zip(bounds.chunks_exact(3))
        .map(|(row, b)| {
            let (t, last) = (((b[0] as u32) << 16) | b[1] as u32, b[2] as usize);
            (0..vocab).filter(|&i| key(row[i]) > t || (key(row[i]) == t && i <= last)).map(|i| i as u32).collect()
        })
        .collect()
}

/// How many tokens of the host's order end a prefix whose probability lies within 1e-5 of
/// `top_p`: where the host's f64 sums and the device's f32 sums may fairly stop at different
/// ones (flat rows at a high temperature, thousands of tokens of ~2e-5 each).
fn tokens_on_the_edge(row: &[f32], params: &SamplingParams) -> usize {
    if params.top_p >= 1.0 {
        return 0;
    }
    // The host's order (logit descending, lower id first), whatever top-k leaves: `candidates`
    // lists an unrestricted row in id order.
    let (idx, mut probs) = sampler::candidates(row, &SamplingParams { top_p: 1.0, ..params.clone() });
    let mut order: Vec<usize> = (0..idx.len()).collect();
    order.sort_by(|&a, &b| row[idx[b] as usize].total_cmp(&row[idx[a] as usize]).then(idx[a].cmp(&idx[b])));
    probs = order.iter().map(|&n| probs[n]).collect();
    let total: f64 = probs.iter().sum();
    let mut cum = 0.0;
    probs
        .iter()
        .filter(|&&x| {
            cum += x / total;
            (cum - params.top_p as f64).abs() < 1e-5
        })
        .count()
}

/// `n` draws of N(0, σ) from a seeded stream (Box–Muller): the same rows on every run.
fn normal(n: usize, sigma: f32, seed: u64) -> Vec<f32> {
    use rand::{Rng, SeedableRng};
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    (0..n)
        .map(|_| {
            let (u, v): (f64, f64) = (rng.random::<f64>().max(1e-12), rng.random());
            (sigma as f64 * (-2.0 * u.ln()).sqrt() * (std::f64::consts::TAU * v).cos()) as f32
        })
        .collect()
}

/// The kept tokens of every row under a grid of top-k, top-p and temperatures are the host
/// sampler's, token for token: real logits (peaked: nuclei of a few tokens), random ones (flat:
/// thousands), the same rounded to f16 (ties at almost every boundary: the tie's lowest ids are
/// kept, as the host's order does) and a short row with a three-way tie.
#[test]
fn kept_tokens_under_top_k_and_top_p_are_the_host_samplers_on_wgpu() {
    let Some(device) = common::wgpu_device() else { return };
    let mut wide = real_rows();
    let random = normal(2 * 49_152, 3.0, 7);
    wide.extend(random.chunks_exact(49_152).map(<[f32]>::to_vec));
    let halves: Vec<f32> = random[..49_152].iter().map(|&l| half::f16::from_f32(l).to_f32()).collect();
    wide.push(halves);
    let short = vec![vec![1.0f32, 3.0, 0.0, 3.0, 3.0, -2.0, 2.0]];
    let (mut compared, mut on_the_edge) = (0, 0);
    for temperature in [0.6f32, 1.0, 1.7] {
        for top_k in [0usize, 1, 2, 40, 1000] {
            for top_p in [1.0f32, 0.95, 0.6, 0.2] {
                if top_k == 0 && top_p == 1.0 {
                    continue;
                }
                let params = SamplingParams { temperature, top_k, top_p, ..Default::default() };
                for rows in [&wide, &short] {
                    for (r, (row, kept)) in rows.iter().zip(device_kept(rows, &params, &device)).enumerate() {
                        let (mut host, _) = sampler::candidates(row, &params);
                        host.sort_unstable();
                        let what = format!("row {r} of {}, {params:?}: {} kept on the device, {} on the host", rows[0].len(), kept.len(), host.len());
                        compared += 1;
                        let edge = tokens_on_the_edge(row, &params);
                        if edge == 0 {
                            assert_eq!(kept, host, "{what}");
                            continue;
                        }
                        // Both are prefixes of one order: nested, apart by edge tokens at most.
                        on_the_edge += 1;
                        let (small, large) = if kept.len() <= host.len() { (&kept, &host) } else { (&host, &kept) };
                        assert!(small.iter().all(|t| large.binary_search(t).is_ok()) && large.len() - small.len() <= edge, "{what} ({edge} tokens end within 1e-5 of p)");
                    }
                }
            }
        }
    }
    eprintln!("{compared} rows compared, {on_the_edge} of them with a nucleus ending within 1e-5 of p (nested sets, apart by those tokens at most)");
    assert!(on_the_edge * 10 < compared, "{on_the_edge} of {compared} rows on the edge");
    // Top-k 2 of the short row keeps the 3.0 at id 1 and the tie's next lowest id, 3.
    let two = SamplingParams { temperature: 1.0, top_k: 2, ..Default::default() };
    assert_eq!(device_kept(&short, &two, &device)[0], vec![1, 3]);
    // A top-k past the vocabulary is off, as on the host (the kernels take it as a u32).
    let huge = SamplingParams { temperature: 1.0, top_k: 1 << 40, top_p: 0.6, ..Default::default() };
    let (mut host, _) = sampler::candidates(&short[0], &huge);
    host.sort_unstable();
    assert_eq!(device_kept(&short, &huge, &device)[0], host);
}

/// Draws under top-k and top-p: 8,192 rows of one 6-token row, each with its own seed, give each
/// kept token about its renormalised probability (within 4.5 standard deviations; the draws are
/// a fixed function of the seeds) and never a token outside the kept set; the log-probability
/// reported stays the full softmax's at temperature 1 (what GRPO keeps). A real 49k-wide row
/// under top-p draws inside its nucleus.
#[test]
fn sampling_under_top_k_and_top_p_draws_from_the_kept_tokens_on_wgpu() {
    let Some(device) = common::wgpu_device() else { return };
    let row = [0.0f32, 1.0, 2.0, -1.0, 0.5, 1.0];
    let rows = 8192usize;
    let logits = Tensor::<2>::from_data(TensorData::new(row.repeat(rows), [rows, row.len()]), &device);
    let seeds: Vec<f32> = (0..rows).map(|i| ((i as u64 * 2_654_435_761) % (1 << 24)) as f32).collect();
    let seeds = Tensor::<1>::from_data(TensorData::new(seeds, [rows]), &device);
    let full: Vec<f32> = burn::tensor::activation::log_softmax(Tensor::<1>::from_floats(row, &device), 0).into_data().try_to_vec().unwrap();
    // Each with the host's kept set, written out where it is clear by hand.
    for (params, by_hand) in [
        (SamplingParams { temperature: 0.7, top_k: 3, ..Default::default() }, Some(vec![2, 1, 5])),
        (SamplingParams { temperature: 1.3, top_p: 0.75, ..Default::default() }, None),
        // Both bind: top-k drops ids 0 and 3, then top-p (cumulative 0.51, 0.70, 0.89) id 4.
        (SamplingParams { temperature: 1.0, top_k: 4, top_p: 0.8, ..Default::default() }, Some(vec![2, 1, 5])),
        // Top-k cuts the tie at 1.0: id 1 kept, id 5 never drawn.
        (SamplingParams { temperature: 1.0, top_k: 2, ..Default::default() }, Some(vec![2, 1])),
    ] {
        let (idx, probs) = sampler::candidates(&row, &params);
        if let Some(by_hand) = by_hand {
            assert_eq!(idx, by_hand, "{params:?}: the host's kept tokens");
        }
        let total: f64 = probs.iter().sum();
        let out: Vec<f32> = gpu::sample_rows(&logits, &seeds, params.temperature, params.top_k, params.top_p).expect("our kernel runs on wgpu").into_data().try_to_vec().unwrap();
        let mut counts = vec![0usize; row.len()];
        for pick in out.chunks_exact(2) {
            let token = pick[0] as usize;
            counts[token] += 1;
            assert!((pick[1] - full[token]).abs() < 1e-5, "{params:?}: log-prob of {token}: {} vs {}", pick[1], full[token]);
        }
        for (t, &n) in counts.iter().enumerate() {
            let Some(k) = idx.iter().position(|&i| i as usize == t) else {
                assert_eq!(n, 0, "{params:?}: token {t} is not kept but was drawn {n} times");
                continue;
            };
            let p = probs[k] / total;
            let (expected, sd) = (rows as f64 * p, (rows as f64 * p * (1.0 - p)).sqrt());
            eprintln!("{params:?} token {t}: {n} draws, expected {expected:.0} ± {sd:.0}");
            assert!((n as f64 - expected).abs() < 4.5 * sd.max(1.0), "{params:?} token {t}: {n} draws, expected {expected:.0} ± {sd:.0}");
        }
    }
    // A real row: every draw lies in the host's nucleus.
    let real = real_rows();
    let wide = real.first().cloned().unwrap_or_else(|| (0..49_152).map(|i| ((i * 7919) % 1000) as f32 / 100.0).collect());
    let params = SamplingParams { temperature: 1.0, top_p: 0.9, ..Default::default() };
    let (nucleus, _) = sampler::candidates(&wide, &params);
    let logits = Tensor::<2>::from_data(TensorData::new(wide.repeat(64), [64, wide.len()]), (&device, DType::F32));
    let seeds = Tensor::<1>::from_data(TensorData::new((0..64).map(|i| i as f32 * 977.0).collect::<Vec<f32>>(), [64]), (&device, DType::F32));
    let out: Vec<f32> = gpu::sample_rows(&logits, &seeds, 1.0, 0, 0.9).unwrap().into_data().try_to_vec().unwrap();
    let drawn: std::collections::BTreeSet<u32> = out.chunks_exact(2).map(|p| p[0] as u32).collect();
    eprintln!("real row: nucleus of {} tokens, {} distinct draws in 64", nucleus.len(), drawn.len());
    assert!(drawn.iter().all(|t| nucleus.contains(t)), "{drawn:?} leaves the nucleus {nucleus:?}");
}
