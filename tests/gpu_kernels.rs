//! Our wgpu kernels (shaders/, `kernels::gpu`) against the same arithmetic in Burn's own ops on
//! the same wgpu device (lavapipe in CI), on ragged shapes: widths and cache lengths that are
//! not multiples of the kernels' units, grouped heads, masked columns; then a whole model's
//! prefill + decode steps with the kernels against Burn's ops only.

mod common;

use burn::prelude::*;
use burn::tensor::Distribution;
use memtrain::kernels::gpu;
use memtrain::model::kv_cache::KvCache;
use memtrain::model::packed::{PackedLlama, PanelPrecision};
use memtrain::model::{StepLayout, rope};

fn max_diff<const D: usize>(a: Tensor<D>, b: Tensor<D>) -> f32 {
    (a - b).abs().max().into_scalar::<f32>()
}

fn random<const D: usize>(dims: [usize; D], device: &Device) -> Tensor<D> {
    Tensor::random(dims, Distribution::Normal(0.0, 1.0), device)
}

#[test]
fn rms_norm_kernel_matches_burns_ops_on_wgpu() {
    let Some(device) = common::wgpu_device() else { return };
    for dims in [[2, 3, 576], [1, 5, 100], [4, 1, 7]] {
        let x = random(dims, &device);
        // A γ far from 1 so that a kernel forgetting it fails.
        let gamma = random([dims[2]], &device) + 0.5;
        let ours = gpu::rms_norm(&x, &gamma, 1e-5).expect("our kernel runs on wgpu");
        let rms = (x.clone().powi_scalar(2).mean_dim(2) + 1e-5).sqrt();
        let reference = x / rms * gamma.reshape([1, 1, dims[2]]);
        let err = max_diff(ours, reference);
        eprintln!("rms_norm {dims:?}: max |Δ| = {err:.2e}");
        assert!(err < 1e-5, "rms_norm {dims:?}: {err}");
    }
    let flex = Tensor::<2>::ones([2, 4], &Device::flex());
    assert!(gpu::rms_norm(&flex, &Tensor::ones([4], &Device::flex()), 1e-5).is_none(), "CPU tensors keep the CPU path");
    // The inference kernel declines autodiff tensors (training has its own op with a backward,
    // tests/gpu_train_ops.rs).
    let training = device.clone().autodiff();
    let taped = Tensor::<2>::ones([2, 4], &training).require_grad();
    assert!(gpu::rms_norm(&taped, &Tensor::ones([4], &training), 1e-5).is_none(), "autodiff tensors keep Burn's ops");
}

#[test]
fn swiglu_kernel_matches_burns_ops_on_wgpu() {
    let Some(device) = common::wgpu_device() else { return };
    for dims in [[2, 3, 1536], [1, 1, 5]] {
        let (gate, up) = (random(dims, &device) * 4.0, random(dims, &device));
        let ours = gpu::swiglu(&gate, &up).expect("our kernel runs on wgpu");
        let err = max_diff(ours, burn::tensor::activation::silu(gate) * up);
        eprintln!("swiglu {dims:?}: max |Δ| = {err:.2e}");
        assert!(err < 1e-5, "swiglu {dims:?}: {err}");
    }
}

#[test]
fn rope_kernel_matches_burns_ops_on_wgpu() {
    let Some(device) = common::wgpu_device() else { return };
    let inv_freq: Vec<f64> = (0..32).map(|i| 1.0 / 10000f64.powf(i as f64 / 32.0)).collect();
    // (batch, tokens, heads, head dim): decode (one token, several sequences) and a prefill.
    for (b, s, h, hd, past) in [(3, 1, 9, 64, 70), (2, 5, 3, 64, 0), (1, 3, 2, 8, 4)] {
        let positions: Vec<Vec<usize>> = (0..b).map(|i| (0..s).map(|t| past + t + 3 * i).collect()).collect();
        let (cos, sin) = rope::cos_sin(&inv_freq[..hd / 2], &positions, &device);
        let x = random([b, s, h, hd], &device);
        let ours = gpu::rope_to_heads(&x, &cos, &sin).expect("our kernel runs on wgpu");
        let err = max_diff(ours, rope::apply(x.swap_dims(1, 2), &cos, &sin));
        eprintln!("rope b{b} s{s} h{h} hd{hd}: max |Δ| = {err:.2e}");
        assert!(err < 1e-5, "rope b{b} s{s} h{h} hd{hd}: {err}");
    }
}

#[test]
fn add_rms_norm_kernel_matches_burns_ops_on_wgpu() {
    let Some(device) = common::wgpu_device() else { return };
    for dims in [[2, 3, 576], [1, 5, 100], [4, 1, 7]] {
        let (x, delta) = (random(dims, &device), random(dims, &device));
        let gamma = random([dims[2]], &device) + 0.5;
        let (sum, normed) = gpu::add_rms_norm(&x, &delta, &gamma, 1e-5).expect("our kernel runs on wgpu");
        let reference_sum = x + delta;
        let rms = (reference_sum.clone().powi_scalar(2).mean_dim(2) + 1e-5).sqrt();
        let reference = reference_sum.clone() / rms * gamma.reshape([1, 1, dims[2]]);
        let (err_sum, err) = (max_diff(sum, reference_sum), max_diff(normed, reference));
        eprintln!("add_rms_norm {dims:?}: max |Δsum| = {err_sum:.2e}, max |Δnorm| = {err:.2e}");
        assert!(err_sum < 1e-6 && err < 1e-5, "add_rms_norm {dims:?}: {err_sum} {err}");
    }
}

#[test]
fn swiglu_halves_kernel_matches_burns_ops_on_wgpu() {
    let Some(device) = common::wgpu_device() else { return };
    for [b, s, w] in [[2, 3, 1536], [1, 1, 5]] {
        let x = random([b, s, 2 * w], &device) * 4.0;
        let ours = gpu::swiglu_halves(&x).expect("our kernel runs on wgpu");
        let reference = burn::tensor::activation::silu(x.clone().narrow(2, 0, w)) * x.narrow(2, w, w);
        // Relative to the largest output (up to ~60 here: both halves are scaled by 4).
        let largest = reference.clone().abs().max().into_scalar::<f32>();
        let err = max_diff(ours, reference) / largest;
        eprintln!("swiglu_halves [{b}, {s}, 2·{w}]: max |Δ| / max |out| = {err:.2e}");
        assert!(err < 1e-6, "swiglu_halves {w}: {err}");
    }
}

/// One fused q/k/v projection's output to attention's inputs: our kernel against Burn's
/// narrows, RoPE and slice-assigns into caches already holding other columns (which must
/// survive), for a decode step, a prefill and an odd head count.
#[test]
fn qkv_to_cache_kernel_matches_burns_ops_on_wgpu() {
    let Some(device) = common::wgpu_device() else { return };
    let inv_freq: Vec<f64> = (0..32).map(|i| 1.0 / 10000f64.powf(i as f64 / 32.0)).collect();
    // (batch, tokens, heads, kv heads, head dim, past columns, capacity)
    for (b, s, h, kvh, hd, past, capacity) in [(3usize, 1usize, 9, 3, 64, 70, 128), (2, 5, 4, 2, 64, 0, 64), (1, 3, 3, 1, 8, 4, 7)] {
        let positions: Vec<Vec<usize>> = (0..b).map(|i| (0..s).map(|t| (past + t).saturating_sub(i)).collect()).collect();
        let (cos, sin) = rope::cos_sin(&inv_freq[..hd / 2], &positions, &device);
        let qkv = random([b, s, (h + 2 * kvh) * hd], &device);
        let (keys, values) = (random([b, kvh, capacity, hd], &device), random([b, kvh, capacity, hd], &device));
        let split = |from: usize, heads: usize| qkv.clone().narrow(2, from * hd, heads * hd).reshape([b, s, heads, hd]).swap_dims(1, 2);
        let write = |cache: Tensor<4>, new: Tensor<4>| cache.slice_assign([0..b, 0..kvh, past..past + s, 0..hd], new);
        let q_ref = rope::apply(split(0, h), &cos, &sin);
        let keys_ref = write(keys.clone(), rope::apply(split(h, kvh), &cos, &sin));
        let values_ref = write(values.clone(), split(h + kvh, kvh));
        let heads = gpu::QkvHeads { heads: h, kv_heads: kvh, head_dim: hd };
        let Ok((q, keys, values)) = gpu::qkv_to_cache(&qkv, &cos, &sin, keys, values, heads, past) else { panic!("our kernel runs on wgpu") };
        let errs = [max_diff(q, q_ref), max_diff(keys, keys_ref), max_diff(values, values_ref)];
        eprintln!("qkv_to_cache b{b} s{s} h{h}/{kvh} hd{hd} past {past}: max |Δ| q/keys/values = {:.2e} / {:.2e} / {:.2e}", errs[0], errs[1], errs[2]);
        assert!(errs.iter().all(|&e| e < 1e-5), "qkv_to_cache b{b} s{s}: {errs:?}");
    }
    // Shapes that do not fit hand the caches back.
    let qkv = random([1, 1, 5 * 8], &device);
    let (cos, sin) = rope::cos_sin(&inv_freq[..4], &[vec![0]], &device);
    let heads = gpu::QkvHeads { heads: 3, kv_heads: 1, head_dim: 8 };
    let full = Tensor::<4>::zeros([1, 1, 4, 8], &device);
    assert!(gpu::qkv_to_cache(&qkv, &cos, &sin, full.clone(), full, heads, 4).is_err(), "no column left in the cache");
}

/// The sampling kernel draws from softmax(logits / T): 8,192 rows of the same 5 logits, each
/// with its own seed, give each token about its probability (within 4.5 standard deviations;
/// the draws are a fixed function of the seeds, so this cannot flake), every row's
/// log-probability at temperature 1 is Burn's log-softmax's, and a row's draw depends on its
/// seed only, not on the rows beside it. A 49,152-wide row (SmolLM2's vocabulary) samples a
/// token whose log-probability is Burn's too; at temperature 0 the kernel is greedy.
#[test]
fn sampling_kernel_draws_from_the_softmax_on_wgpu() {
    let Some(device) = common::wgpu_device() else { return };
    let row = [0.0f32, 1.0, 2.0, -1.0, 0.5];
    let (rows, temperature) = (8192usize, 0.7f32);
    let logits = Tensor::<2>::from_data(TensorData::new(row.repeat(rows), [rows, 5]), &device);
    let seeds: Vec<f32> = (0..rows).map(|i| ((i as u64 * 2_654_435_761) % (1 << 24)) as f32).collect();
    let seeds = Tensor::<1>::from_data(TensorData::new(seeds, [rows]), &device);
    let out: Vec<f32> = gpu::sample_rows(&logits, &seeds, temperature, 0, 1.0).expect("our kernel runs on wgpu").into_data().try_to_vec().unwrap();
    let weights: Vec<f64> = row.iter().map(|&l| ((l / temperature) as f64).exp()).collect();
    let total: f64 = weights.iter().sum();
    let logp_ref: Vec<f32> = burn::tensor::activation::log_softmax(Tensor::<1>::from_floats(row, &device), 0).into_data().try_to_vec().unwrap();
    let mut counts = [0usize; 5];
    for pick in out.chunks_exact(2) {
        let token = pick[0] as usize;
        counts[token] += 1;
        assert!((pick[1] - logp_ref[token]).abs() < 1e-5, "log-prob of {token}: {} vs {}", pick[1], logp_ref[token]);
    }
    for (t, &n) in counts.iter().enumerate() {
        let p = weights[t] / total;
        let (expected, sd) = (rows as f64 * p, (rows as f64 * p * (1.0 - p)).sqrt());
        eprintln!("token {t}: {n} draws, expected {expected:.0} ± {sd:.0}");
        assert!((n as f64 - expected).abs() < 4.5 * sd, "token {t}: {n} draws, expected {expected:.0} ± {sd:.0}");
    }
    // Rows 3 and 5 alone draw what they drew among the 8,192.
    let pick = |i: usize| out[2 * i] as usize;
    let two = gpu::sample_rows(&logits.clone().select(0, Tensor::from_ints([3, 5], &device)), &seeds.clone().select(0, Tensor::from_ints([3, 5], &device)), temperature, 0, 1.0).unwrap();
    let two: Vec<f32> = two.into_data().try_to_vec().unwrap();
    assert_eq!([two[0] as usize, two[2] as usize], [pick(3), pick(5)], "a row's draw depends on its seed only");

    let wide = random([2, 49_152], &device) * 3.0;
    let seeds = Tensor::<1>::from_floats([7.0, 16_777_215.0], &device);
    let picks: Vec<f32> = gpu::sample_rows(&wide, &seeds, 1.0, 0, 1.0).unwrap().into_data().try_to_vec().unwrap();
    let logp: Vec<f32> = burn::tensor::activation::log_softmax(wide.clone(), 1).into_data().try_to_vec().unwrap();
    for (r, pick) in picks.chunks_exact(2).enumerate() {
        let token = pick[0] as usize;
        assert!(token < 49_152 && (pick[1] - logp[r * 49_152 + token]).abs() < 1e-4, "wide row {r}: token {token}, log-prob {} vs {}", pick[1], logp[r * 49_152 + token]);
    }
    // Temperature 0 is greedy: Burn's argmax, the lowest id among equal logits.
    let greedy: Vec<f32> = gpu::sample_rows(&wide, &seeds, 0.0, 0, 1.0).unwrap().into_data().try_to_vec().unwrap();
    let argmax: Vec<i64> = wide.clone().argmax(1).into_data().convert::<i64>().try_to_vec().unwrap();
    assert_eq!([greedy[0] as i64, greedy[2] as i64], [argmax[0], argmax[1]], "greedy picks the largest logit");
    let tied = Tensor::<2>::from_floats([[1.0, 3.0, 0.0, 3.0, 3.0]], &device);
    let pick: Vec<f32> = gpu::sample_rows(&tied, &Tensor::zeros([1], &device), 0.0, 0, 1.0).unwrap().into_data().try_to_vec().unwrap();
    assert_eq!(pick[0], 1.0, "ties go to the lowest id");
    // The hash's top value must not give an infinite key (24 bits once rounded it to u = 1):
    // find, on the host with the kernel's own hash, a seed and a token of a 5-token row whose
    // hash is all ones in its top 24 bits, then give that token a logit of −30 (probability
    // ~1e-13): it must not be drawn.
    fn mix(mut h: u32) -> u32 {
        h ^= h >> 16;
        h = h.wrapping_mul(0x85eb_ca6b);
        h ^= h >> 13;
        h = h.wrapping_mul(0xc2b2_ae35);
        h ^ (h >> 16)
    }
    let (top, token) = (0u32..1 << 24).find_map(|seed| (0..5u32).find(|&i| mix(i ^ mix(seed ^ 0x9e37_79b9)) >> 8 == (1 << 24) - 1).map(|i| (seed, i))).expect("some seed reaches the top value");
    let mut row = [0.0f32; 5];
    row[token as usize] = -30.0;
    let row = Tensor::<2>::from_floats([row], &device);
    let pick: Vec<f32> = gpu::sample_rows(&row, &Tensor::from_floats([top as f32], &device), 1.0, 0, 1.0).unwrap().into_data().try_to_vec().unwrap();
    assert_ne!(pick[0], token as f32, "seed {top}: the hash's top value drew token {token}, of probability 1e-13");
    assert!(gpu::sample_rows(&Tensor::<2>::ones([1, 4], &Device::flex()), &Tensor::zeros([1], &Device::flex()), 1.0, 0, 1.0).is_none(), "CPU tensors keep the host sampler");
}

/// `--f16` generation: every kernel takes f16 tensors (arithmetic in f32) and gives f16; on
/// inputs already rounded to f16 its result is the f32 kernel's within f16 rounding.
#[test]
fn kernels_run_in_f16_on_wgpu() {
    use burn::tensor::DType::{F16, F32};
    let Some(device) = common::wgpu_device() else { return };
    // f16-representable inputs in f32, and the same values in f16.
    fn pair<const D: usize>(t: Tensor<D>) -> (Tensor<D>, Tensor<D>) {
        let half = t.cast(F16);
        (half.clone().cast(F32), half)
    }
    fn check<const D: usize>(name: &str, ours: Tensor<D>, reference: Tensor<D>) {
        assert_eq!(ours.dtype(), F16, "{name} gives f16");
        let scale = reference.clone().abs().max().into_scalar::<f32>().max(1.0);
        let err = max_diff(ours.cast(F32), reference) / scale;
        eprintln!("{name} in f16: max |Δ| / max(1, max |out|) = {err:.1e}");
        assert!(err < 2e-3, "{name} in f16: {err}");
    }
    let ((x, x16), (d, d16)) = (pair(random([2, 3, 576], &device)), pair(random([2, 3, 576], &device)));
    let (g, g16) = pair(random([576], &device) + 0.5);
    check("rms_norm", gpu::rms_norm(&x16, &g16, 1e-5).unwrap(), gpu::rms_norm(&x, &g, 1e-5).unwrap());
    let (sum16, norm16) = gpu::add_rms_norm(&x16, &d16, &g16, 1e-5).unwrap();
    let (sum, norm) = gpu::add_rms_norm(&x, &d, &g, 1e-5).unwrap();
    check("add_rms_norm's sum", sum16, sum);
    check("add_rms_norm", norm16, norm);
    check("swiglu", gpu::swiglu(&x16, &d16).unwrap(), gpu::swiglu(&x, &d).unwrap());
    let (gu, gu16) = pair(random([2, 3, 2 * 288], &device) * 3.0);
    check("swiglu_halves", gpu::swiglu_halves(&gu16).unwrap(), gpu::swiglu_halves(&gu).unwrap());
    let inv_freq: Vec<f64> = (0..32).map(|i| 1.0 / 10000f64.powf(i as f64 / 32.0)).collect();
    let (b, s, h, kvh, hd, past, capacity) = (2, 3, 9, 3, 64, 5, 64);
    let positions: Vec<Vec<usize>> = (0..b).map(|_| (0..s).map(|t| past + t).collect()).collect();
    let (cos, sin) = rope::cos_sin(&inv_freq, &positions, &device);
    let ((cos, cos16), (sin, sin16)) = (pair(cos), pair(sin));
    let (x4, x416) = pair(random([b, s, h, hd], &device));
    check("rope", gpu::rope_to_heads(&x416, &cos16, &sin16).unwrap(), gpu::rope_to_heads(&x4, &cos, &sin).unwrap());
    let (qkv, qkv16) = pair(random([b, s, (h + 2 * kvh) * hd], &device));
    let ((k, k16), (v, v16)) = (pair(random([b, kvh, capacity, hd], &device)), pair(random([b, kvh, capacity, hd], &device)));
    let heads = gpu::QkvHeads { heads: h, kv_heads: kvh, head_dim: hd };
    let Ok((q16, k16, v16)) = gpu::qkv_to_cache(&qkv16, &cos16, &sin16, k16, v16, heads, past) else { panic!("f16 runs") };
    let Ok((q, k, v)) = gpu::qkv_to_cache(&qkv, &cos, &sin, k, v, heads, past) else { panic!("f32 runs") };
    check("qkv_to_cache's q", q16, q);
    check("qkv_to_cache's keys", k16.clone(), k.clone());
    check("qkv_to_cache's values", v16.clone(), v.clone());
    let (q1, q116) = pair(random([b, h, 1, hd], &device));
    let bias: Vec<f32> = (0..b).flat_map(|i| (0..capacity).map(move |c| if c >= i && c < past + s { 0.0 } else { -6e4 })).collect();
    let (bias, bias16) = pair(Tensor::<4>::from_data(TensorData::new(bias, [b, 1, 1, capacity]), &device));
    check("decode_attention", gpu::decode_attention(&q116, &k16, &v16, &bias16, 0.125).unwrap(), gpu::decode_attention(&q1, &k, &v, &bias, 0.125).unwrap());
    assert!(gpu::swiglu(&x16, &d).is_none(), "mixed f16/f32 inputs keep Burn's ops");
}

/// Burn's ops: q's heads grouped over their KV head, softmax(q·kᵀ·scale + bias)·v.
fn attention_reference(q: Tensor<4>, k: Tensor<4>, v: Tensor<4>, bias: Tensor<4>, scale: f32) -> Tensor<4> {
    let [b, h, _, hd] = q.dims();
    let [_, kvh, cols, _] = k.dims();
    let g = h / kvh;
    let expand = |t: Tensor<4>| t.reshape([b, kvh, 1, cols, hd]).expand([b, kvh, g, cols, hd]).reshape([b, h, cols, hd]);
    let scores = q.matmul(expand(k).swap_dims(2, 3)) * scale + bias;
    burn::tensor::activation::softmax(scores, 3).matmul(expand(v))
}

#[test]
fn decode_attention_kernel_matches_burns_ops_on_wgpu() {
    let Some(device) = common::wgpu_device() else { return };
    // (batch, heads, kv heads, cache columns, written columns, head dim)
    for (b, h, kvh, cols, written, hd) in [(3, 9, 3, 70, 66, 64), (2, 4, 4, 130, 130, 32), (1, 2, 1, 5, 3, 16)] {
        let q = random([b, h, 1, hd], &device);
        let k = random([b, kvh, cols, hd], &device);
        let v = random([b, kvh, cols, hd], &device);
        // Sequence i is left-padded by i columns; columns past `written` are not written yet.
        let bias: Vec<f32> = (0..b).flat_map(|i| (0..cols).map(move |c| if c >= i && c < written { 0.0 } else { -1e9 })).collect();
        let bias = Tensor::<4>::from_data(TensorData::new(bias, [b, 1, 1, cols]), &device);
        let scale = 1.0 / (hd as f32).sqrt();
        let ours = gpu::decode_attention(&q, &k, &v, &bias, scale).expect("our kernel runs on wgpu");
        let reference = attention_reference(q, k, v, bias, scale);
        let err = max_diff(ours, reference);
        eprintln!("decode attention b{b} h{h}/{kvh} cols {cols}: max |Δ| = {err:.2e}");
        assert!(err < 1e-5, "decode attention b{b} h{h}/{kvh} cols {cols}: {err}");
    }
}

/// A tiny random model's prefill (left-padded batch) and eight decode steps through a KV cache,
/// with our kernels — without and with the fused q/k/v and gate/up projections — against
/// Burn's ops only: the same hidden states at every step.
#[test]
fn decoding_with_our_kernels_matches_burns_ops_on_wgpu() {
    let Some(device) = common::wgpu_device() else { return };
    let (model, inv_freq) = common::tiny_model(&device, 3);
    let fused = PackedLlama::fuse(&model).expect("a Llama on wgpu fuses its projections");
    assert!(PackedLlama::for_device(&model, PanelPrecision::F32).is_some_and(|p| p.layers.iter().all(|l| l.gpu().is_some())), "generation on wgpu gets the fused projections");
    let cfg = common::tiny_config();
    let pad = vec![0, 2];
    let prompt = Tensor::<2, Int>::from_data(TensorData::new(vec![5i64, 6, 7, 8, 0, 0, 9, 10], [2, 4]), &device);
    let mut caches = [KvCache::new(cfg.num_layers, pad.clone()), KvCache::new(cfg.num_layers, pad.clone()), KvCache::new(cfg.num_layers, pad.clone())];
    let mut tokens = prompt;
    let mut worst = [0.0f32; 2];
    // The prefill of 4 columns, then eight decode steps (`forward_hidden_packed` advances the
    // cache's length).
    for _ in 0..9 {
        let q_len = tokens.dims()[1];
        let mut hidden = Vec::new();
        for (i, cache) in caches.iter_mut().enumerate() {
            cache.reserve(q_len);
            let layout = StepLayout::with_columns(&inv_freq, &pad, cache.len, q_len, cache.capacity, &device);
            let layout = if i < 2 { layout } else { layout.with_composed_ops() };
            let packed = (i == 1).then_some(&fused);
            hidden.push(model.forward_hidden_packed(tokens.clone(), &layout, Some(cache), packed));
        }
        let reference = hidden.pop().unwrap();
        let with_fused = hidden.pop().unwrap();
        let ours = hidden.pop().unwrap();
        worst[0] = worst[0].max(max_diff(ours.clone(), reference.clone()));
        worst[1] = worst[1].max(max_diff(with_fused, reference));
        // Next token: a fixed function of the hidden state, the same for all runs.
        let next: Vec<i64> = ours.narrow(1, q_len - 1, 1).sum_dim(2).into_data().iter::<f32>().map(|s| (s.abs() * 1000.0) as i64 % 40 + 1).collect();
        tokens = Tensor::from_data(TensorData::new(next, [2, 1]), &device);
    }
    eprintln!("prefill + 8 decode steps: max |Δhidden| = {:.2e} (our kernels), {:.2e} (and fused projections)", worst[0], worst[1]);
    assert!(worst[0] < 1e-4 && worst[1] < 1e-4, "hidden states differ by {worst:?}");
}
