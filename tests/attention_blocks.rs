//! Attention in query blocks (each block sees only the key columns it may attend to) against
//! attention in one block: the same loss and gradients in training, the same hidden states for a
//! left-padded prefill into a KV cache and the decode steps after it; and flex's fused attention
//! kernel and our cached attention op (CPU inference) against both. (The logits themselves are checked against transformers
//! in tests/model_parity.rs.)

mod common;

use burn::prelude::*;
use common::{max_abs_diff as worst, tiny_model};
use memtrain::model::StepLayout;
use memtrain::model::kv_cache::KvCache;

fn host<const D: usize>(t: Tensor<D>) -> Vec<f32> {
    t.into_data().convert::<f32>().try_to_vec().unwrap()
}

fn tokens(rows: usize, cols: usize, device: &Device) -> Tensor<2, Int> {
    let ids: Vec<i64> = (0..rows * cols).map(|i| ((i * 37 + 11) % 64) as i64).collect();
    Tensor::from_data(TensorData::new(ids, [rows, cols]), device)
}

#[test]
fn blocked_attention_gives_the_same_loss_and_gradients() {
    let device = Device::flex().autodiff();
    let (model, inv) = tiny_model(&device, 5);
    let (rows, cols) = (2, 21);
    // Row 1 is left-padded by 4: padding queries attend only to themselves.
    let pad = [0, 4];
    let weights: Vec<f32> = (0..rows * cols * 64).map(|i| ((i * 7919) % 13) as f32 / 13.0 - 0.5).collect();
    let weights = Tensor::<3>::from_data(TensorData::new(weights, [rows, cols, 64]), &device);
    let run = |block: Option<usize>| {
        // Burn's ops: our fused training op is compared with them in tests/fused_head.rs.
        let mut layout = StepLayout::new(&inv, &pad, 0, cols, &device).with_composed_ops();
        if let Some(r) = block {
            layout = layout.with_query_block(r);
        }
        assert_eq!(layout.query_blocks.len(), block.map_or(1, |r| cols.div_ceil(r)));
        let logits = model.logits(model.forward_hidden(tokens(rows, cols, &device), &layout, None));
        let loss = (logits * weights.clone()).sum();
        let grads = loss.backward();
        let g = |t: Tensor<2>| host(t.reshape([-1]));
        let mut all = host(loss);
        all.extend(g(model.embed_tokens.weight.grad(&grads).unwrap()));
        all.extend(g(model.layers[0].self_attn.q_proj.weight.grad(&grads).unwrap()));
        all.extend(g(model.layers[0].self_attn.k_proj.weight.grad(&grads).unwrap()));
        all.extend(g(model.layers[1].self_attn.v_proj.weight.grad(&grads).unwrap()));
        all
    };
    let whole = run(None);
    let scale = whole.iter().map(|v| v.abs()).fold(0.0f32, f32::max);
    assert!(scale > 0.0);
    for block in [1, 4, 8] {
        let blocked = run(Some(block));
        let err = worst(&whole, &blocked);
        assert!(err < 1e-5 * scale.max(1.0), "blocks of {block}: loss/gradients differ by {err} (scale {scale})");
    }
}

/// Prefill of a left-padded batch into a preallocated cache, a second multi-token call after
/// those cached columns, 3 decode steps, then the first sequence leaving the batch and 2 more
/// steps (across a capacity bucket): the blocked tensor-op path (autodiff device, as in
/// training) with several block sizes, flex's fused kernel (plain device, Burn's ops) and our
/// CPU inference op with its host-side cache (plain device, as in generation) give the same
/// hidden states.
#[test]
fn blocked_and_fused_prefill_into_a_cache_then_decode_match_one_block() {
    let device = Device::flex().autodiff();
    let whole = run_cached(&device, None, true);
    for block in [None, Some(2), Some(6)] {
        let err = worst(&whole, &run_cached(&Device::flex(), block, false));
        assert!(err < 1e-5, "flex's fused attention, blocks of {block:?}, differs from the tensor ops by {err}");
    }
    let err = worst(&whole, &run_cached(&Device::flex(), None, true));
    assert!(err < 1e-5, "our cached attention op differs from the tensor ops by {err}");
    for block in [2, 6] {
        let err = worst(&whole, &run_cached(&device, Some(block), true));
        assert!(err < 1e-5, "blocks of {block}: hidden states differ by {err}");
    }
}

fn run_cached(device: &Device, block: Option<usize>, fused: bool) -> Vec<f32> {
    let (model, inv) = tiny_model(device, 5);
    let mut rows = 2;
    let mut cache = KvCache::new(model.layers.len(), vec![0, 5]);
    let mut out = Vec::new();
    // 13 prompt columns, then 7 more after them (blocks see `past` + their own rows), then 1 × 3;
    // then 43 more (the cache grows past its first 64 columns), row 0 leaves, row 1 decodes twice.
    for (call, len) in [13usize, 7, 1, 1, 1, 43, 1, 1].into_iter().enumerate() {
        if call == 6 {
            cache.retain(&[1], device);
            rows = 1;
        }
        cache.reserve(len);
        let mut layout = StepLayout::with_columns(&inv, &cache.pad, cache.len, len, cache.capacity, device);
        if let Some(r) = block {
            layout = layout.with_query_block(r);
        }
        if !fused {
            layout = layout.with_composed_ops();
        }
        let ids: Vec<i64> = (0..rows * len).map(|i| ((i * 37 + call * 11 + 3) % 64) as i64).collect();
        let input = Tensor::<2, Int>::from_data(TensorData::new(ids, [rows, len]), device);
        out.extend(host(model.forward_hidden(input, &layout, Some(&mut cache)).detach()));
    }
    out
}
