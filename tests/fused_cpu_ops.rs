//! Our fused CPU training ops against Burn's composed ops, through a whole model on the autodiff
//! device: the LM-head log-probs (`Llama::target_logprobs`: one gemm, a log-sum-exp pass, a
//! hand-written backward, against logits → log-softmax → gather) with tied and untied heads, and
//! causal attention (blocks of rows, no score matrix kept, against softmax(q·kᵀ + bias)·v) over
//! left-padded batches, RMSNorm and the SwiGLU product (one pass each way, against Burn's
//! element-wise chains): the same log-probs and the same gradients for every kind of weight.

mod common;

use burn::prelude::*;
use burn::tensor::activation::log_softmax;
use common::{max_abs_diff as worst, tiny_config};
use memtrain::kernels::target_logprobs::HeadLayout;
use memtrain::kernels::causal_attention_op::fused_causal_attention;
use memtrain::kernels::rms_norm_op::fused_rms_norm;
use memtrain::kernels::swiglu_op::fused_swiglu;
use memtrain::kernels::target_logprobs_op::fused_target_logprobs;
use memtrain::model::random::RandomWeights;
use memtrain::model::{Llama, StepLayout, rope};

fn host<const D: usize>(t: Tensor<D>) -> Vec<f32> {
    t.into_data().convert::<f32>().try_to_vec().unwrap()
}

/// Burn's ops, as `target_logprobs` ran before the fused head.
fn composed(model: &Llama, hidden: Tensor<2>, targets: &[u32]) -> Tensor<1> {
    let [n, d] = hidden.dims();
    let device = hidden.device();
    let ids: Vec<i64> = targets.iter().map(|&t| t as i64).collect();
    let logp = log_softmax(model.logits(hidden.reshape([1, n, d])), 2);
    logp.gather(2, Tensor::<3, Int>::from_data(TensorData::new(ids, [1, n, 1]), &device)).reshape([n])
}

/// `got` equals Burn's `want` to float rounding, relative to the largest value (never all zero).
fn assert_same(want: &[f32], got: &[f32], what: &str) {
    let scale = want.iter().map(|v| v.abs()).fold(0.0f32, f32::max);
    let err = worst(want, got);
    assert!(scale > 0.0 && err < 2e-5 * scale.max(1.0), "{what}: differs from Burn's ops by {err} (scale {scale})");
}

/// Log-probs of 2 × `cols` positions (row 1 left-padded by `pad`) and the gradients of their
/// weighted sum, through `head`, with our attention op or (`composed`) Burn's.
fn run(model: &Llama, inv: &[f64], device: &Device, (cols, pad, composed): (usize, usize, bool), head: impl Fn(&Llama, Tensor<2>, &[u32]) -> Tensor<1>) -> Vec<f32> {
    let rows = 2;
    let ids: Vec<i64> = (0..rows * cols).map(|i| ((i * 37 + 11) % 64) as i64).collect();
    let tokens = Tensor::<2, Int>::from_data(TensorData::new(ids, [rows, cols]), device);
    let layout = StepLayout::new(inv, &[0, pad], 0, cols, device);
    let layout = if composed { layout.with_composed_ops() } else { layout };
    let hidden = model.forward_hidden(tokens, &layout, None).reshape([rows * cols, 32]);
    let targets: Vec<u32> = (0..rows * cols).map(|i| ((i * 13 + 3) % 64) as u32).collect();
    let weights: Vec<f32> = (0..rows * cols).map(|i| ((i * 7) % 5) as f32 / 5.0 - 0.3).collect();
    let logp = head(model, hidden, &targets);
    let loss = (logp.clone() * Tensor::<1>::from_data(TensorData::new(weights, [rows * cols]), device)).sum();
    let grads = loss.backward();
    let g = |t: Tensor<2>| host(t.reshape([-1]));
    let mut all = host(logp);
    all.extend(g(model.embed_tokens.weight.grad(&grads).unwrap()));
    if let Some(lm_head) = &model.lm_head {
        all.extend(g(lm_head.weight.grad(&grads).unwrap()));
    }
    all.extend(g(model.layers[1].mlp.down_proj.weight.grad(&grads).unwrap()));
    all.extend(g(model.layers[0].self_attn.q_proj.weight.grad(&grads).unwrap()));
    all.extend(g(model.layers[0].self_attn.k_proj.weight.grad(&grads).unwrap()));
    all.extend(g(model.layers[1].self_attn.v_proj.weight.grad(&grads).unwrap()));
    all.extend(g(model.layers[0].mlp.gate_proj.weight.grad(&grads).unwrap()));
    all.extend(g(model.layers[1].mlp.up_proj.weight.grad(&grads).unwrap()));
    for norm in [&model.layers[0].input_layernorm, &model.layers[1].post_attention_layernorm, &model.norm] {
        all.extend(host(norm.gamma.grad(&grads).unwrap()));
    }
    all
}

#[test]
fn fused_head_gives_the_composed_log_probs_and_gradients_tied_and_untied() {
    let device = Device::flex().autodiff();
    for tied in [true, false] {
        let cfg = memtrain::model::ModelConfig { tie_word_embeddings: tied, ..tiny_config() };
        let model = Llama::from_weights(&cfg, &mut RandomWeights::new(cfg.clone(), 3), &device).unwrap();
        assert_eq!(model.lm_head.is_none(), tied);
        let inv = rope::inverse_frequencies(&cfg);
        // The fused path must really be taken on this device, or the comparison proves nothing.
        let (head, layout) = match &model.lm_head {
            None => (model.embed_tokens.weight.val(), HeadLayout::VocabMajor),
            Some(h) => (h.weight.val(), HeadLayout::DimMajor),
        };
        let probe = Tensor::<2>::zeros([3, 32], &device).require_grad();
        assert!(fused_target_logprobs(&probe, &head, layout, &[1, 2, 3]).is_some(), "fused head not used on flex autodiff (tied {tied})");
        // Burn's attention on both sides: this compares the heads alone.
        let want = run(&model, &inv, &device, (9, 0, true), composed);
        let got = run(&model, &inv, &device, (9, 0, true), |m, h, t| m.target_logprobs(h, t));
        assert_same(&want, &got, &format!("fused head, tied {tied}"));
    }
}

#[test]
fn fused_layer_ops_give_the_composed_log_probs_and_gradients() {
    // Also under gradient checkpointing (`gradient_checkpointing: true` in a training config),
    // whose tensors live on another autodiff backend type.
    for device in [Device::flex().autodiff(), Device::flex().autodiff().gradient_checkpointing()] {
        let (model, inv) = common::tiny_model(&device, 6);
        // 150 positions: three blocks of query rows, the last one ragged; 3 rows of left padding.
        let want = run(&model, &inv, &device, (150, 3, true), composed);
        let got = run(&model, &inv, &device, (150, 3, false), composed);
        assert_same(&want, &got, &format!("fused attention, RMSNorm and SwiGLU on {device:?}"));
    }
}

#[test]
fn every_fused_op_runs_under_gradient_checkpointing_too() {
    let device = Device::flex().autodiff().gradient_checkpointing();
    let (model, inv) = common::tiny_model(&device, 7);
    let head = model.embed_tokens.weight.val();
    let probe = Tensor::<2>::zeros([3, 32], &device).require_grad();
    assert!(fused_target_logprobs(&probe, &head, HeadLayout::VocabMajor, &[1, 2, 3]).is_some(), "fused head declined under checkpointing");
    let q = Tensor::<4>::zeros([1, 5, 4, 8], &device).require_grad();
    let kv = Tensor::<4>::zeros([1, 5, 2, 8], &device).require_grad();
    let (table, bias) = (Tensor::<4>::ones([1, 1, 5, 8], &device), Tensor::<4>::zeros([1, 1, 5, 5], &device));
    assert!(fused_causal_attention(&q, &kv, &kv, (&table, &table), &bias, 0.3).is_some(), "fused attention declined under checkpointing");
    let gamma = model.norm.gamma.val();
    assert!(fused_rms_norm(&probe, &gamma, 1e-5).is_some(), "fused RMSNorm declined under checkpointing");
    assert!(fused_swiglu(&q, &q).is_some(), "fused SwiGLU declined under checkpointing");
    // And the whole model with every op against Burn's.
    let want = run(&model, &inv, &device, (70, 0, true), composed);
    let got = run(&model, &inv, &device, (70, 0, false), |m, h, t| m.target_logprobs(h, t));
    assert_same(&want, &got, "every fused op under checkpointing");
}

#[test]
fn fused_head_on_the_plain_cpu_device_gives_the_composed_log_probs() {
    let device = Device::flex();
    let (model, _) = common::tiny_model(&device, 4);
    let hidden = Tensor::<2>::random([11, 32], burn::tensor::Distribution::Normal(0.0, 2.0), &device);
    let targets: Vec<u32> = (0..11).map(|i| (i * 5 % 64) as u32).collect();
    let head = model.embed_tokens.weight.val();
    let fused = fused_target_logprobs(&hidden, &head, HeadLayout::VocabMajor, &targets).expect("fused head on flex");
    let err = worst(&host(composed(&model, hidden, &targets)), &host(fused));
    assert!(err < 1e-5, "plain flex: fused head differs by {err}");
}

#[test]
fn fused_head_declines_what_it_cannot_do() {
    let device = Device::flex();
    let hidden = Tensor::<2>::zeros([2, 8], &device);
    let head = Tensor::<2>::zeros([10, 8], &device);
    assert!(fused_target_logprobs(&hidden, &head, HeadLayout::VocabMajor, &[0, 10]).is_none(), "a target outside the vocabulary");
    assert!(fused_target_logprobs(&hidden, &head, HeadLayout::DimMajor, &[0, 1]).is_none(), "a head of the wrong shape");
    assert!(fused_target_logprobs(&hidden, &head, HeadLayout::VocabMajor, &[0]).is_none(), "one target for two positions");
}

/// Values, input gradients and parameter gradients of `f` on two fresh leaves, for a loss that
/// weights every output differently.
fn op_and_grads<const D: usize>(a: &Tensor<D>, b: &Tensor<1>, f: impl Fn(Tensor<D>, Tensor<1>) -> Tensor<D>) -> Vec<f32> {
    let (a, b) = (a.clone().detach().require_grad(), b.clone().detach().require_grad());
    let out = f(a.clone(), b.clone());
    let n = out.shape().num_elements();
    let weights = Tensor::<1>::from_data(TensorData::new((0..n).map(|i| ((i * 7) % 11) as f32 / 5.0 - 1.0).collect(), [n]), &out.device());
    let grads = (out.clone().reshape([n]) * weights).sum().backward();
    let mut all = host(out.reshape([n]));
    all.extend(host(a.grad(&grads).unwrap().reshape([-1])));
    all.extend(host(b.grad(&grads).unwrap()));
    all
}

#[test]
fn fused_rms_norm_and_swiglu_alone_match_burn_with_a_random_gamma() {
    // The models above have γ = 1, which would hide a γ left out of the backward.
    let device = Device::flex().autodiff();
    let normal = burn::tensor::Distribution::Normal(0.0, 1.5);
    let x = Tensor::<3>::random([3, 7, 50], normal, &device);
    let gamma = Tensor::<1>::random([50], normal, &device);
    let norm = burn::nn::RmsNorm { gamma: burn::module::Param::from_tensor(gamma.clone()), epsilon: 1e-5 };
    let want = op_and_grads(&x, &gamma, |x, g| burn::nn::RmsNorm { gamma: burn::module::Param::from_tensor(g), ..norm.clone() }.forward(x));
    let got = op_and_grads(&x, &gamma, |x, g| fused_rms_norm(&x, &g, 1e-5).expect("fused RMSNorm on flex autodiff"));
    assert_same(&want, &got, "RMSNorm");
    // SwiGLU: `up` is the second leaf, flattened; the gate's gradient and up's must both match.
    let gate = Tensor::<3>::random([3, 7, 50], burn::tensor::Distribution::Normal(0.0, 4.0), &device);
    let up = Tensor::<1>::random([3 * 7 * 50], normal, &device);
    let composed = |g: Tensor<3>, u: Tensor<1>| burn::tensor::activation::silu(g) * u.reshape([3, 7, 50]);
    let want = op_and_grads(&gate, &up, composed);
    let got = op_and_grads(&gate, &up, |g, u| fused_swiglu(&g, &u.reshape([3, 7, 50])).expect("fused SwiGLU on flex autodiff"));
    assert_same(&want, &got, "SwiGLU");
}

#[test]
fn fused_ops_with_per_head_q_k_norms_give_the_composed_gradients() {
    // Qwen3's RMSNorm over each head of q and k goes through the fused norm on 4-D tensors.
    let device = Device::flex().autodiff();
    let cfg = memtrain::model::ModelConfig { architecture: memtrain::model::Architecture::Qwen3, ..tiny_config() };
    let model = Llama::from_weights(&cfg, &mut RandomWeights::new(cfg.clone(), 8), &device).unwrap();
    assert!(model.layers[0].self_attn.q_norm.is_some());
    let inv = rope::inverse_frequencies(&cfg);
    let want = run(&model, &inv, &device, (40, 2, true), composed);
    let got = run(&model, &inv, &device, (40, 2, false), composed);
    assert_same(&want, &got, "fused ops with q/k norms");
}

#[test]
fn fused_rms_norm_and_swiglu_serve_inference_on_plain_flex() {
    // Generation on the CPU takes the same kernels without a graph.
    let device = Device::flex();
    let normal = burn::tensor::Distribution::Normal(0.0, 1.5);
    let x = Tensor::<3>::random([3, 7, 50], normal, &device);
    let gamma = Tensor::<1>::random([50], normal, &device);
    let norm = burn::nn::RmsNorm { gamma: burn::module::Param::from_tensor(gamma.clone()), epsilon: 1e-5 };
    let got = fused_rms_norm(&x, &gamma, 1e-5).expect("fused RMSNorm on plain flex");
    assert_same(&host(norm.forward(x.clone()).reshape([-1])), &host(got.reshape([-1])), "RMSNorm (inference)");
    let gate = Tensor::<3>::random([3, 7, 50], burn::tensor::Distribution::Normal(0.0, 4.0), &device);
    let got = fused_swiglu(&gate, &x).expect("fused SwiGLU on plain flex");
    assert_same(&host((burn::tensor::activation::silu(gate) * x).reshape([-1])), &host(got.reshape([-1])), "SwiGLU (inference)");
}
