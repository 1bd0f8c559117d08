//! Our wgpu training ops (`kernels::gpu_train_ops`: RMSNorm, SiLU·up, RoPE + head-major move,
//! attention's softmax over biased scores, each with a hand-written backward kernel; attention
//! from a fused q/k/v projection; the projections' products) against Burn's composed ops on the
//! same wgpu device (lavapipe in CI): each backward kernel against the same formula in Burn's
//! ops, then each op's output and gradients under autodiff against Burn's composed ops' own
//! autodiff, on ragged shapes.

mod common;

use burn::prelude::*;
use burn::tensor::{DType, Distribution, FloatDType};
use burn::tensor::activation::{silu, softmax};
use memtrain::kernels::gpu_train_ops::{self as ops, composed};
use memtrain::kernels::{gpu, gpu_backward};
use memtrain::model::rope;

fn random<const D: usize>(dims: [usize; D], device: &Device) -> Tensor<D> {
    Tensor::random(dims, Distribution::Normal(0.0, 1.0), device)
}

/// Largest |a − b| relative to the largest |b| (gradients span several magnitudes).
fn relative<const D: usize>(a: Tensor<D>, b: Tensor<D>) -> f32 {
    let scale = b.clone().abs().max().into_scalar::<f32>().max(1e-12);
    (a - b).abs().max().into_scalar::<f32>() / scale
}

fn check<const D: usize>(what: &str, ours: Tensor<D>, reference: Tensor<D>, tolerance: f32) {
    // A NaN would slip through a max of differences.
    let finite = |t: &Tensor<D>| t.clone().into_data().try_to_vec::<f32>().unwrap().iter().all(|v| v.is_finite());
    assert!(finite(&ours) && finite(&reference), "{what}: values not finite");
    let err = relative(ours, reference);
    eprintln!("{what}: relative max |Δ| = {err:.2e}");
    assert!(err < tolerance, "{what}: {err}");
}

/// RoPE tables for `b` sequences of `s` positions (offset per sequence) and head dim `hd`.
fn tables(b: usize, s: usize, hd: usize, device: &Device) -> (Tensor<4>, Tensor<4>) {
    let inv_freq: Vec<f64> = (0..hd / 2).map(|i| 1.0 / 10000f64.powf(2.0 * i as f64 / hd as f64)).collect();
    let positions: Vec<Vec<usize>> = (0..b).map(|i| (0..s).map(|t| t + 5 * i).collect()).collect();
    rope::cos_sin(&inv_freq, &positions, device)
}

/// A causal bias `[b, 1, rows, cols]` with the first `pad` columns of sequence 1 masked too
/// (left padding), 0 or −1e9 as the model's.
fn causal_bias(b: usize, rows: usize, cols: usize, device: &Device) -> Tensor<4> {
    let past = cols - rows;
    let values: Vec<f32> = (0..b * rows * cols)
        .map(|i| {
            let (seq, r, c) = (i / (rows * cols), (i / cols) % rows, i % cols);
            let allowed = c <= past + r && !(seq == 1 && c < 2);
            if allowed { 0.0 } else { -1e9 }
        })
        .collect();
    Tensor::from_data(TensorData::new(values, [b, 1, rows, cols]), device)
}

#[test]
fn backward_kernels_match_the_formulas_in_burns_ops_on_wgpu() {
    let Some(device) = common::wgpu_device() else { return };
    for [rows, width] in [[6, 576], [5, 100], [3, 7]] {
        let (x, dy) = (random([rows, width], &device), random([rows, width], &device));
        let gamma = random([width], &device) + 0.5;
        let (dx, dgamma) = gpu_backward::rms_norm_backward(&x, &gamma, &dy, 1e-5).expect("our kernel runs on wgpu");
        let (rdx, rdgamma) = composed::rms_norm_backward(&x, &gamma, &dy, 1e-5);
        check(&format!("rms_norm backward dx {rows}×{width}"), dx, rdx, 1e-5);
        check(&format!("rms_norm backward dγ {rows}×{width}"), dgamma, rdgamma, 1e-5);

        let (gate, up) = (random([rows, width], &device) * 4.0, random([rows, width], &device));
        let (dgate, dup) = gpu_backward::swiglu_backward(&gate, &up, &dy).expect("our kernel runs on wgpu");
        let (rdgate, rdup) = composed::swiglu_backward(&gate, &up, &dy);
        check(&format!("swiglu backward dgate {rows}×{width}"), dgate, rdgate, 1e-5);
        check(&format!("swiglu backward dup {rows}×{width}"), dup, rdup, 1e-5);
    }
    for (b, s, h, hd) in [(2, 5, 3, 64), (1, 7, 2, 8)] {
        let (cos, sin) = tables(b, s, hd, &device);
        let dout = random([b, h, s, hd], &device);
        let ours = gpu_backward::rope_to_heads_backward(&dout, &cos, &sin).expect("our kernel runs on wgpu");
        check(&format!("rope backward b{b} s{s} h{h} hd{hd}"), ours, composed::rope_to_heads_backward(&dout, &cos, &sin), 1e-5);
    }
    for (b, h, rows, cols) in [(2, 3, 5, 9), (1, 2, 70, 70), (2, 1, 1, 130)] {
        let (scores, bias) = (random([b, h, rows, cols], &device) * 3.0, causal_bias(b, rows, cols, &device));
        let p = gpu_backward::softmax_bias(&scores, &bias, 0.125).expect("our kernel runs on wgpu");
        check(&format!("softmax b{b} h{h} {rows}×{cols}"), p.clone(), softmax(scores.clone() * 0.125 + bias.clone(), 3), 1e-5);
        let unscaled = gpu_backward::softmax_bias(&scores, &bias, 1.0).expect("our kernel runs on wgpu");
        check(&format!("softmax fallback b{b} h{h} {rows}×{cols}"), composed::softmax_bias(&scores, &bias), unscaled, 1e-5);
        let dp = random([b, h, rows, cols], &device);
        let ds = gpu_backward::softmax_backward(&p, &dp, 0.125).expect("our kernel runs on wgpu");
        check(&format!("softmax backward b{b} h{h} {rows}×{cols}"), ds, composed::softmax_backward(&p, &dp, 0.125), 1e-5);
    }
    // More rows than one axis of cubes takes (65,535): the row kernels launch a grid.
    let rows = 70_001;
    let (scores, bias) = (random([1, 2, rows / 2 + 1, 3], &device), random([1, 1, rows / 2 + 1, 3], &device));
    let p = gpu_backward::softmax_bias(&scores, &bias, 0.5).expect("our kernel runs on wgpu");
    check("softmax over 2 × 35,001 rows", p.clone(), softmax(scores * 0.5 + bias, 3), 1e-5);
    let dp = random([1, 2, rows / 2 + 1, 3], &device);
    check("softmax backward over 2 × 35,001 rows", gpu_backward::softmax_backward(&p, &dp, 0.5).expect("our kernel runs"), composed::softmax_backward(&p, &dp, 0.5), 1e-5);
    let (x, dy, gamma) = (random([rows, 5], &device), random([rows, 5], &device), random([5], &device) + 0.5);
    let (dx, dgamma) = gpu_backward::rms_norm_backward(&x, &gamma, &dy, 1e-5).expect("our kernel runs on wgpu");
    let (rdx, rdgamma) = composed::rms_norm_backward(&x, &gamma, &dy, 1e-5);
    check("rms_norm backward dx over 70,001 rows", dx, rdx, 1e-5);
    check("rms_norm backward dγ over 70,001 rows", dgamma, rdgamma, 1e-4);
    let normed = gpu::rms_norm(&x, &gamma, 1e-5).expect("our kernel runs on wgpu");
    let reference = x.clone() / (x.powi_scalar(2).mean_dim(1) + 1e-5).sqrt() * gamma.reshape([1, 5]);
    check("rms_norm over 70,001 rows", normed, reference, 1e-5);

    let flex = Tensor::<2>::ones([2, 4], &Device::flex());
    assert!(gpu_backward::softmax_backward(&flex, &flex, 1.0).is_none(), "CPU tensors keep the CPU path");
}

/// `(value, gradients of the inputs)` of `Σ f(inputs) · coef` under autodiff on `device`.
fn taped<const D: usize, const N: usize>(inputs: &[Tensor<D>; N], coef: &Tensor<D>, f: impl Fn(&[Tensor<D>; N]) -> Tensor<D>) -> (Tensor<D>, [Tensor<D>; N]) {
    let leaves = inputs.clone().map(|t| t.require_grad());
    let y = f(&leaves);
    let grads = (y.clone() * coef.clone()).sum().backward();
    let gradients = leaves.map(|t| t.grad(&grads).expect("every input learns"));
    (y.inner(), gradients)
}

#[test]
fn training_ops_follow_burns_composed_ops_and_their_gradients_on_wgpu() {
    let Some(device) = common::wgpu_device() else { return };
    let training = device.clone().autodiff();
    let eps = 1e-5;
    // RMSNorm: x and γ learn.
    let dims = [2, 5, 100];
    let coef = random(dims, &device);
    let (x, gamma) = (random(dims, &device), random([dims[2]], &device) + 0.5);
    let norm = |x: &Tensor<3>, gamma: &Tensor<3>| {
        let gamma: Tensor<1> = gamma.clone().reshape([dims[2]]);
        (ops::rms_norm(x, &gamma, eps).expect("our op runs on wgpu autodiff"), x.clone() / (x.clone().powi_scalar(2).mean_dim(2) + eps).sqrt() * gamma.reshape([1, 1, dims[2]]))
    };
    let inputs = [x.autodiff(), gamma.reshape([1, 1, dims[2]]).autodiff()];
    let coef_t = coef.autodiff();
    let (y, [dx, dgamma]) = taped(&inputs, &coef_t, |t| norm(&t[0], &t[1]).0);
    let (ry, [rdx, rdgamma]) = taped(&inputs, &coef_t, |t| norm(&t[0], &t[1]).1);
    check("rms_norm op: output", y, ry, 1e-5);
    check("rms_norm op: dx", dx, rdx, 1e-4);
    check("rms_norm op: dγ", dgamma, rdgamma, 1e-4);

    // SiLU·up: both inputs learn.
    let inputs = [(random(dims, &device) * 4.0).autodiff(), random(dims, &device).autodiff()];
    let (y, [dgate, dup]) = taped(&inputs, &coef_t, |t| ops::swiglu(&t[0], &t[1]).expect("our op runs on wgpu autodiff"));
    let (ry, [rdgate, rdup]) = taped(&inputs, &coef_t, |t| silu(t[0].clone()) * t[1].clone());
    check("swiglu op: output", y, ry, 1e-5);
    check("swiglu op: dgate", dgate, rdgate, 1e-5);
    check("swiglu op: dup", dup, rdup, 1e-5);

    // SiLU·up of one fused gate/up projection's halves: the projection learns.
    let both = [2, 5, 2 * 100];
    let inputs = [(random(both, &device) * 4.0).autodiff()];
    let (y, [dboth]) = taped(&inputs, &coef_t, |t| ops::swiglu_halves(&t[0]).expect("our op runs on wgpu autodiff"));
    let (ry, [rdboth]) = taped(&inputs, &coef_t, |t| silu(t[0].clone().narrow(2, 0, 100)) * t[0].clone().narrow(2, 100, 100));
    check("swiglu halves op: output", y, ry, 1e-5);
    check("swiglu halves op: dx", dboth, rdboth, 1e-5);
    // Its backward kernel itself (the op would fall back on Burn's ops if it declined).
    let (x, dy) = (random(both, &device) * 4.0, random(dims, &device));
    let (gate, up) = (x.clone().narrow(2, 0, 100), x.clone().narrow(2, 100, 100));
    let (dgate, dup) = composed::swiglu_backward(&gate, &up, &dy);
    let ours = gpu_backward::swiglu_halves_backward(&x, &dy).expect("our kernel runs on wgpu");
    check("swiglu halves backward kernel", ours, Tensor::cat(vec![dgate, dup], 2), 1e-6);

    // RoPE + head-major move: x learns, the tables are constants of the layout.
    let (b, s, h, hd) = (2, 6, 3, 64);
    let (cos, sin) = tables(b, s, hd, &training);
    let coef = random([b, h, s, hd], &device).autodiff();
    let inputs = [random([b, s, h, hd], &device).autodiff()];
    let (y, [dx]) = taped(&inputs, &coef, |t| ops::rope_to_heads(&t[0], &cos, &sin).expect("our op runs on wgpu autodiff"));
    let (ry, [rdx]) = taped(&inputs, &coef, |t| rope::apply(t[0].clone().swap_dims(1, 2), &cos, &sin));
    check("rope op: output", y, ry, 1e-5);
    check("rope op: dx", dx, rdx, 1e-5);

    // Scaled softmax over biased scores: the scores learn, the mask does not.
    let (b, h, rows, cols) = (2, 3, 7, 11);
    let bias = causal_bias(b, rows, cols, &training);
    let coef = random([b, h, rows, cols], &device).autodiff();
    let inputs = [(random([b, h, rows, cols], &device) * 3.0).autodiff()];
    let (y, [ds]) = taped(&inputs, &coef, |t| ops::softmax_bias(&t[0], &bias, 0.125).expect("our op runs on wgpu autodiff"));
    let (ry, [rds]) = taped(&inputs, &coef, |t| softmax(t[0].clone() * 0.125 + bias.clone(), 3));
    check("softmax op: output", y, ry, 1e-5);
    check("softmax op: dscores", ds, rds, 1e-5);

    // Elsewhere the ops decline: plain wgpu tensors (inference kernels), CPU training tensors.
    assert!(ops::swiglu(&random(dims, &device), &random(dims, &device)).is_none(), "no autodiff: the inference kernel's case");
    let cpu = Device::flex().autodiff();
    assert!(ops::swiglu(&random(dims, &cpu), &random(dims, &cpu)).is_none(), "flex: the CPU ops' case");
    assert!(gpu::swiglu(&inputs_plain(&training), &inputs_plain(&training)).is_none(), "autodiff tensors are not the inference kernel's");
}

fn inputs_plain(training: &Device) -> Tensor<3> {
    Tensor::ones([1, 2, 3], training)
}

/// Mixed precision runs SiLU·up, RoPE and softmax on f16 activations: each op reads and writes
/// f16 (what autodiff keeps for the backward is f16) with its arithmetic in f32, so output and
/// gradients are Burn's f32 composed ops' on the same (f16-rounded) inputs to f16 rounding.
#[test]
fn training_ops_on_f16_keep_f16_and_follow_the_f32_ops_to_f16_rounding() {
    let Some(device) = common::wgpu_device() else { return };
    let training = device.clone().autodiff();
    let f16 = |t: Tensor<4>| t.cast(FloatDType::F16);
    let f32 = |t: Tensor<4>| t.cast(FloatDType::F32);
    // `f` on f16 leaves against `reference` on the same values in f32: output, then gradients.
    let compare = |what: &str, inputs: Vec<Tensor<4>>, coef: Tensor<4>, f: &dyn Fn(&[Tensor<4>]) -> Tensor<4>, reference: &dyn Fn(&[Tensor<4>]) -> Tensor<4>, tolerance: f32| {
        let half: Vec<Tensor<4>> = inputs.iter().map(|t| f16(t.clone()).autodiff().require_grad()).collect();
        let full: Vec<Tensor<4>> = half.iter().map(|t| f32(t.clone().inner()).autodiff().require_grad()).collect();
        let y = f(&half);
        assert_eq!(y.dtype(), DType::F16, "{what}: the op keeps f16");
        let grads = (f32(y.clone()) * coef.clone()).sum().backward();
        let ry = reference(&full);
        let rgrads = (ry.clone() * coef.clone()).sum().backward();
        check(&format!("{what} (f16): output"), f32(y.inner()), ry.inner(), tolerance);
        for (i, (h, r)) in half.iter().zip(&full).enumerate() {
            let g = h.grad(&grads).expect("every input learns");
            assert_eq!(g.dtype(), DType::F16, "{what}: f16 gradient");
            check(&format!("{what} (f16): gradient {i}"), f32(g), r.grad(&rgrads).unwrap(), tolerance);
        }
    };
    let dims = [2, 5, 3, 100];
    let coef = random(dims, &device).autodiff();
    compare("swiglu op", vec![random(dims, &device) * 4.0, random(dims, &device)], coef, &|t| ops::swiglu(&t[0], &t[1]).expect("our op takes f16"), &|t| silu(t[0].clone()) * t[1].clone(), 2e-3);

    let (b, s, h, hd) = (2, 6, 3, 64);
    let (cos, sin) = tables(b, s, hd, &training);
    let (cos16, sin16) = (f16(cos.clone()), f16(sin.clone()));
    let coef = random([b, h, s, hd], &device).autodiff();
    // The reference rotates by the same f16-rounded tables.
    let (cos_r, sin_r) = (f32(cos16.clone()), f32(sin16.clone()));
    compare("rope op", vec![random([b, s, h, hd], &device)], coef, &|t| ops::rope_to_heads(&t[0], &cos16, &sin16).expect("our op takes f16"), &|t| rope::apply(t[0].clone().swap_dims(1, 2), &cos_r, &sin_r), 2e-3);

    let (b, h, rows, cols) = (2, 3, 7, 11);
    let bias = causal_bias(b, rows, cols, &training);
    let bias16 = f16(bias.clone().clamp_min(-60_000.0));
    let coef = random([b, h, rows, cols], &device).autodiff();
    compare("softmax op", vec![random([b, h, rows, cols], &device) * 3.0], coef, &|t| ops::softmax_bias(&t[0], &bias16, 0.125).expect("our op takes f16"), &|t| softmax(t[0].clone() * 0.125 + bias.clone(), 3), 2e-3);
}

/// `ops::linear` (which keeps the weight's parts, not the concatenated or cast weight, and
/// builds it again in the backward) against Burn's linear on the concatenated weight: output
/// and the gradients of x and of each part, with f32 products, with f16 products of f16 inputs
/// (mixed precision's layer inside) and of f32 inputs cast inside; and a frozen weight given
/// as a plain tensor (LoRA's base, read raw).
#[test]
fn linear_from_weight_parts_follows_burns_linear_on_wgpu() {
    let Some(device) = common::wgpu_device() else { return };
    let (f32, f16) = (FloatDType::F32, FloatDType::F16);
    let (b, s, d) = (2, 5, 48);
    let x0 = random([b, s, d], &device);
    let parts0: Vec<Tensor<2>> = [40, 16, 8].iter().map(|&w| random([d, w], &device) * 0.2).collect();
    let coef = random([b, s, 64], &device).autodiff();
    for (what, x_dtype, compute, tolerance) in [("f32", f32, f32, 1e-5), ("f16 inputs, f16 products", f16, f16, 3e-3), ("f32 inputs, f16 products", f32, f16, 3e-3)] {
        let run = |ours: bool| {
            let x = x0.clone().cast(x_dtype).autodiff().require_grad();
            let parts: Vec<Tensor<2>> = parts0.iter().map(|p| p.clone().autodiff().require_grad()).collect();
            let w = Tensor::cat(parts.clone(), 1);
            let y = match ours {
                true => ops::linear(&x, &w, &parts, compute).expect("our op runs on wgpu autodiff"),
                false => burn::tensor::module::linear(x.clone().cast(compute), w.cast(compute), None).cast(x_dtype),
            };
            assert_eq!(y.dtype(), DType::from(x_dtype), "{what}: the output in the input's dtype");
            let grads = (y.clone().cast(f32) * coef.clone()).sum().backward();
            let gx = x.grad(&grads).expect("x learns");
            assert_eq!(gx.dtype(), DType::from(x_dtype), "{what}: x's gradient in x's dtype");
            let gparts: Vec<Tensor<2>> = parts.iter().map(|p| p.grad(&grads).expect("each part learns")).collect();
            assert!(gparts.iter().all(|g| g.dtype() == DType::F32), "{what}: the parts' gradients in their dtype");
            (y.inner().cast(f32), gx.cast(f32), gparts)
        };
        let ((y, gx, gparts), (ry, rgx, rgparts)) = (run(true), run(false));
        check(&format!("linear ({what}): output"), y, ry, tolerance);
        check(&format!("linear ({what}): x's gradient"), gx, rgx, tolerance);
        for (i, (g, r)) in gparts.into_iter().zip(rgparts).enumerate() {
            check(&format!("linear ({what}): part {i}'s gradient"), g, r, tolerance);
        }
    }
    // Frozen weights (LoRA's base): a plain tensor, and a training tensor that wants no gradient.
    let w = parts0[0].clone();
    let reference = coef.clone().inner().narrow(2, 0, 40).matmul(w.clone().transpose().unsqueeze());
    for (what, weight) in [("plain", w.clone()), ("training, no gradient", w.clone().autodiff())] {
        let x = x0.clone().autodiff().require_grad();
        let y = ops::linear(&x, &weight, &[weight.clone()], f32).expect("a frozen weight runs our op");
        check(&format!("linear (frozen {what} weight): output"), y.clone().inner(), burn::tensor::module::linear(x0.clone(), w.clone(), None), 1e-5);
        let grads = (y * coef.clone().narrow(2, 0, 40)).sum().backward();
        check(&format!("linear (frozen {what} weight): x's gradient"), x.grad(&grads).unwrap(), reference.clone(), 1e-5);
        assert!(weight.grad(&grads).is_none(), "a frozen weight gets no gradient");
    }
}

/// Attention from one fused q/k/v projection (`ops::qkv_attention`: RoPE and the layout moves
/// in one kernel each way, Burn's matmuls, our softmax) against Burn's composed ops on the
/// projection split apart: the output and the projection's gradient, grouped heads (4 query
/// heads over 2 KV heads), a causal bias with left padding, f32 and f16.
#[test]
fn attention_from_a_fused_projection_follows_burns_composed_ops_on_wgpu() {
    let Some(device) = common::wgpu_device() else { return };
    device.seed(11);
    let training = device.clone().autodiff();
    let (b, s, h, kvh, hd) = (2, 7, 4, 2, 8);
    let heads = gpu::QkvHeads { heads: h, kv_heads: kvh, head_dim: hd };
    let scale = 1.0 / (hd as f32).sqrt();
    let (cos, sin) = tables(b, s, hd, &training);
    // The model's mask: causal, sequence 1 left-padded by 2 (a padding query sees itself only).
    let values: Vec<f32> = (0..b * s * s)
        .map(|i| {
            let (seq, r, c) = (i / (s * s), (i / s) % s, i % s);
            let pad = if seq == 1 { 2 } else { 0 };
            let allowed = if r < pad { c == r } else { c >= pad && c <= r };
            if allowed { 0.0 } else { -1e9 }
        })
        .collect();
    let bias = Tensor::<4>::from_data(TensorData::new(values, [b, 1, s, s]), &training);
    let qkv = random([b, s, (h + 2 * kvh) * hd], &device) * 2.0;
    let coef = random([b, h, s, hd], &device).autodiff();
    let reference = |qkv: &Tensor<3>, cos: &Tensor<4>, sin: &Tensor<4>| -> Tensor<4> {
        let part = |from: usize, n: usize| qkv.clone().narrow(2, from * hd, n * hd).reshape([b, s, n, hd]).swap_dims(1, 2);
        let (q, k, v) = (rope::apply(part(0, h), cos, sin), rope::apply(part(h, kvh), cos, sin), part(h + kvh, kvh));
        // Each KV head repeated for its query heads (head i reads KV head i / (h / kvh)).
        let repeat = |t: Tensor<4>| t.unsqueeze_dim::<5>(2).repeat_dim(2, h / kvh).reshape([b, h, s, hd]);
        let scores = q.matmul(repeat(k).swap_dims(2, 3)) * scale + bias.clone();
        softmax(scores, 3).matmul(repeat(v))
    };
    // Both ways of getting the probabilities for the backward: kept, and recomputed there.
    for (dtype, keep) in [(FloatDType::F32, true), (FloatDType::F32, false), (FloatDType::F16, true), (FloatDType::F16, false)] {
        let leaf = qkv.clone().cast(dtype).autodiff().require_grad();
        let (cos_d, sin_d) = (cos.clone().cast(dtype), sin.clone().cast(dtype));
        let grouped_bias = bias.clone().clamp_min(-60_000.0).cast(dtype).repeat_dim(2, h / kvh);
        let y = ops::qkv_attention(&leaf, heads, &cos_d, &sin_d, &grouped_bias, scale, keep).expect("our op runs on wgpu autodiff");
        assert_eq!(y.dtype(), DType::from(dtype));
        let grads = (y.clone().cast(FloatDType::F32) * coef.clone()).sum().backward();
        let dqkv = leaf.grad(&grads).expect("the projection learns");
        assert_eq!(dqkv.dtype(), DType::from(dtype));
        // The reference on the same (rounded) values in f32.
        let full = leaf.clone().inner().cast(FloatDType::F32).autodiff().require_grad();
        let ry = reference(&full, &cos_d.clone().cast(FloatDType::F32), &sin_d.clone().cast(FloatDType::F32));
        let rgrads = (ry.clone() * coef.clone()).sum().backward();
        // f16: inputs, the probabilities and the gradients each rounded to 2⁻¹¹, through two matmuls.
        let tolerance = if dtype == FloatDType::F32 { 1e-5 } else { 5e-3 };
        check(&format!("qkv attention ({dtype:?}, probabilities kept: {keep}): output"), y.inner().cast(FloatDType::F32), ry.inner(), tolerance);
        check(&format!("qkv attention ({dtype:?}, probabilities kept: {keep}): dqkv"), dqkv.cast(FloatDType::F32), full.grad(&rgrads).unwrap(), tolerance);
    }
    // Kept while small (a short sequence), recomputed when large.
    assert!(ops::keeps_probabilities([1, 9, 64, 64], DType::F32) && !ops::keeps_probabilities([1, 9, 1024, 1024], DType::F32));
    // The layout moves' backward kernel against its formula in Burn's ops (the fallback).
    let (cos, sin) = tables(b, s, hd, &device);
    let (dq, dk, dv) = (random([b, h, s, hd], &device), random([b, kvh, s, hd], &device), random([b, kvh, s, hd], &device));
    let ours = gpu_backward::qkv_to_heads_backward(&dq, &dk, &dv, &cos, &sin, scale).expect("our kernel runs on wgpu");
    check("qkv_to_heads backward kernel", ours, composed::qkv_to_heads_backward(&dq, &dk, &dv, &cos, &sin, scale), 1e-6);
}

/// The separate projections' attention op (LoRA on q/k/v, Qwen3's q/k norms) against Burn's
/// matmuls and softmax on the same grouped layout: output and the three inputs' gradients,
/// probabilities kept and recomputed, f32 and f16, a scale in the kernel and a past (cache
/// columns before the first query); and with k and v wanting no gradient.
#[test]
fn attention_of_separate_projections_follows_burns_composed_ops_on_wgpu() {
    let Some(device) = common::wgpu_device() else { return };
    device.seed(13);
    let training = device.clone().autodiff();
    // 3 query heads per KV head, 5 query rows over 7 key columns (2 of them past).
    let (b, kvh, g, n, cols, hd) = (2, 2, 3, 5, 7, 8);
    let scale = 1.0 / (hd as f32).sqrt();
    let bias = causal_bias(b, n, cols, &training).repeat_dim(2, g);
    let (q, k, v) = (random([b, kvh, g * n, hd], &device) * 2.0, random([b, kvh, cols, hd], &device) * 2.0, random([b, kvh, cols, hd], &device));
    let coef = random([b, kvh, g * n, hd], &device).autodiff();
    let reference = |[q, k, v]: &[Tensor<4>; 3]| softmax(q.clone().matmul(k.clone().swap_dims(2, 3)) * scale + bias.clone(), 3).matmul(v.clone());
    for (dtype, keep) in [(FloatDType::F32, true), (FloatDType::F32, false), (FloatDType::F16, true), (FloatDType::F16, false)] {
        let leaves = [&q, &k, &v].map(|t| t.clone().cast(dtype).autodiff().require_grad());
        let grouped_bias = bias.clone().clamp_min(-60_000.0).cast(dtype);
        let y = ops::attention(&leaves[0], &leaves[1], &leaves[2], &grouped_bias, scale, keep).expect("our op runs on wgpu autodiff");
        assert_eq!(y.dtype(), DType::from(dtype));
        let grads = (y.clone().cast(FloatDType::F32) * coef.clone()).sum().backward();
        // The reference on the same (rounded) values in f32.
        let full = leaves.clone().map(|t| t.inner().cast(FloatDType::F32).autodiff());
        let (ry, rgrads) = taped(&full, &coef, reference);
        let tolerance = if dtype == FloatDType::F32 { 1e-5 } else { 5e-3 };
        let what = |t: &str| format!("attention ({dtype:?}, probabilities kept: {keep}): {t}");
        check(&what("output"), y.inner().cast(FloatDType::F32), ry, tolerance);
        for ((name, leaf), reference) in ["dq", "dk", "dv"].iter().zip(&leaves).zip(rgrads) {
            let grad = leaf.grad(&grads).expect("every input learns");
            assert_eq!(grad.dtype(), DType::from(dtype), "{name}");
            check(&what(name), grad.cast(FloatDType::F32), reference, tolerance);
        }
    }
    // Frozen k and v (in the graph, wanting no gradient): q's gradient alone, the same.
    let leaf = q.clone().autodiff().require_grad();
    let (k_frozen, v_frozen) = (k.clone().autodiff(), v.clone().autodiff());
    let y = ops::attention(&leaf, &k_frozen, &v_frozen, &bias, scale, false).expect("our op runs on wgpu autodiff");
    let grads = (y * coef.clone()).sum().backward();
    assert!(k_frozen.grad(&grads).is_none() && v_frozen.grad(&grads).is_none());
    let (_, [rq, _, _]) = taped(&[q.clone(), k.clone(), v.clone()].map(|t| t.autodiff()), &coef, reference);
    check("attention, frozen k and v: dq", leaf.grad(&grads).unwrap(), rq, 1e-5);
    // Mismatched dtypes (k's, the bias's) and plain (not training) k are declined: the caller
    // runs Burn's ops.
    assert!(ops::attention(&leaf, &k_frozen.clone().cast(FloatDType::F16), &v_frozen, &bias, scale, false).is_none());
    assert!(ops::attention(&leaf, &k_frozen, &v_frozen, &bias.clone().cast(FloatDType::F16), scale, false).is_none());
    assert!(ops::attention(&leaf, &k, &v_frozen, &bias, scale, false).is_none());
}
