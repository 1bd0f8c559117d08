//! Our wgpu kernels (shaders/, `kernels::gpu`) against the same arithmetic in Burn's own ops on
//! the same wgpu device (lavapipe in CI), on ragged shapes: widths and cache lengths that are
//! not multiples of the kernels' units, grouped heads, masked columns; then a whole model's
//! prefill + decode steps with the kernels against Burn's ops only.

mod common;

use burn::prelude::*;
use burn::tensor::Distribution;
use memtrain::kernels::gpu;
use memtrain::model::kv_cache::KvCache;
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
    // Training keeps Burn's differentiable ops: the kernels have no backward.
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
/// with our kernels against Burn's ops only: the same hidden states at every step.
#[test]
fn decoding_with_our_kernels_matches_burns_ops_on_wgpu() {
    let Some(device) = common::wgpu_device() else { return };
    let (model, inv_freq) = common::tiny_model(&device, 3);
    let cfg = common::tiny_config();
    let pad = vec![0, 2];
    let prompt = Tensor::<2, Int>::from_data(TensorData::new(vec![5i64, 6, 7, 8, 0, 0, 9, 10], [2, 4]), &device);
    let mut caches = [KvCache::new(cfg.num_layers, pad.clone()), KvCache::new(cfg.num_layers, pad.clone())];
    let mut tokens = prompt;
    let mut worst = 0.0f32;
    for _ in 0..9 {
        let q_len = tokens.dims()[1];
        let mut hidden = Vec::new();
        for (i, cache) in caches.iter_mut().enumerate() {
            cache.reserve(q_len);
            let layout = StepLayout::with_columns(&inv_freq, &pad, cache.len, q_len, cache.capacity, &device);
            let layout = if i == 0 { layout } else { layout.with_composed_ops() };
            hidden.push(model.forward_hidden(tokens.clone(), &layout, Some(cache)));
            cache.len += q_len;
        }
        let reference = hidden.pop().unwrap();
        let ours = hidden.pop().unwrap();
        worst = worst.max(max_diff(ours.clone(), reference));
        // Next token: a fixed function of the hidden state, the same for both runs.
        let next: Vec<i64> = ours.narrow(1, q_len - 1, 1).sum_dim(2).into_data().iter::<f32>().map(|s| (s.abs() * 1000.0) as i64 % 40 + 1).collect();
        tokens = Tensor::from_data(TensorData::new(next, [2, 1]), &device);
    }
    eprintln!("prefill + 8 decode steps: max |Δhidden| = {worst:.2e}");
    assert!(worst < 1e-4, "hidden states differ by {worst}");
}
