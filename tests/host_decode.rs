//! The CPU's few-row forward on host buffers (`model::host_decode`: the decode panels, our
//! norms, attention over the host KV cache and SwiGLU on slices) against Burn's composed ops
//! (Burn's gemm, RoPE, attention over a tensor KV cache): the same hidden states through a
//! left-padded prefill and several decode steps, for each architecture's kind of layer, with
//! random norm weights and biases; and the cases it must leave to the tensor path.

mod common;

use burn::prelude::*;
use common::{jittered_model, max_abs_diff, tiny_config};
use memtrain::model::host_decode;
use memtrain::model::kv_cache::KvCache;
use memtrain::model::packed::{MAX_ROWS, PackedLlama, PanelPrecision};
use memtrain::model::{Llama, StepLayout, rope};

fn host(t: Tensor<3>) -> Vec<f32> {
    t.into_data().convert::<f32>().try_to_vec().unwrap()
}

fn tokens(rows: &[Vec<i64>], device: &Device) -> Tensor<2, Int> {
    let (b, s) = (rows.len(), rows[0].len());
    Tensor::from_data(TensorData::new(rows.concat(), [b, s]), device)
}

/// Hidden states of each call of a left-padded prefill then single-token decode steps: on
/// host buffers (asserting the path applies) when `packed` is given, else through Burn's
/// composed ops.
fn hidden_states(model: &Llama, inv: &[f64], packed: Option<&PackedLlama>, calls: &[Vec<Vec<i64>>], pad: &[usize], device: &Device) -> Vec<Vec<f32>> {
    let mut cache = KvCache::new(model.layers.len(), pad.to_vec());
    let mut out = vec![];
    for call in calls {
        let s = call[0].len();
        cache.reserve(s);
        let layout = StepLayout::with_columns(inv, &cache.pad, cache.len, s, cache.capacity, device);
        let ids = tokens(call, device);
        let hidden = match packed {
            Some(p) => {
                let x = model.embed_tokens.forward(ids);
                let h = host_decode::forward(model, p, &x, &layout, &mut cache).expect("few rows on plain flex with CPU panels");
                cache.len += s;
                h
            }
            None => model.forward_hidden(ids, &layout.with_composed_ops(), Some(&mut cache)),
        };
        out.push(host(hidden));
    }
    out
}

#[test]
fn host_decode_matches_burns_ops_through_prefill_and_decode_for_every_architecture() {
    let device = Device::flex();
    // Two sequences, the first left-padded by 2; two 28-column calls take the cache past its
    // first capacity bucket (64 columns), which the host buffers must grow through.
    let prefill = vec![vec![0, 0, 5, 9, 13], vec![3, 7, 11, 2, 30]];
    let mut calls = vec![prefill];
    calls.extend((0..4).map(|i| vec![vec![20 + i], vec![40 - i]]));
    for c in 0..2 {
        calls.push((0..2).map(|r| (0..28).map(|i| (i * 7 + r + c) % 64).collect()).collect());
    }
    calls.push(vec![vec![1], vec![2]]);
    for arch in common::ARCHITECTURES {
        let cfg = common::tiny_config_of(arch, tiny_config().num_layers);
        let model = jittered_model(&cfg, &device, 17);
        let inv = rope::inverse_frequencies(&cfg);
        let packed = PackedLlama::pack(&model, PanelPrecision::F32).unwrap();
        let want = hidden_states(&model, &inv, None, &calls, &[2, 0], &device);
        let got = hidden_states(&model, &inv, Some(&packed), &calls, &[2, 0], &device);
        for (step, (w, g)) in want.iter().zip(&got).enumerate() {
            let worst = max_abs_diff(w, g);
            assert!(worst < 1e-4, "{arch:?}, call {step}: host decode differs from Burn's ops by {worst}");
        }
    }
}

#[test]
fn host_decode_matches_burns_ops_over_a_long_cache_at_batch_1_with_f32_and_f16_panels() {
    // One sequence over 300 cached columns: the decode attention cuts each KV head's columns
    // into spans (batch 1 has fewer tasks than threads want) and merges their softmaxes.
    let device = Device::flex();
    let cfg = tiny_config();
    let model = jittered_model(&cfg, &device, 29);
    let inv = rope::inverse_frequencies(&cfg);
    let mut calls: Vec<Vec<Vec<i64>>> = (0..5).map(|c| vec![(0..60).map(|i| (i * 11 + c * 3) % 64).collect()]).collect();
    calls.extend((0..3).map(|i| vec![vec![7 + i]]));
    let want = hidden_states(&model, &inv, None, &calls, &[0], &device);
    let mut worst = vec![];
    for precision in [PanelPrecision::F32, PanelPrecision::F16] {
        let packed = PackedLlama::pack(&model, precision).unwrap();
        let got = hidden_states(&model, &inv, Some(&packed), &calls, &[0], &device);
        worst.push(want.iter().zip(&got).map(|(w, g)| max_abs_diff(w, g)).fold(0.0f32, f32::max));
    }
    eprintln!("long cache, batch 1: worst |Δ| f32 panels {:.2e}, f16 panels {:.2e}", worst[0], worst[1]);
    assert!(worst[0] < 1e-4, "f32 panels differ from Burn's ops by {}", worst[0]);
    // f16 panels: the weights rounded (a relative 2⁻¹¹), nothing else.
    assert!(worst[1] < 5e-3 && worst[1] > worst[0], "f16 panels differ from Burn's ops by {}", worst[1]);
}

#[test]
fn host_decode_leaves_what_it_cannot_do_to_the_tensor_path_without_touching_the_cache() {
    let device = Device::flex();
    let cfg = tiny_config();
    let model = jittered_model(&cfg, &device, 3);
    let inv = rope::inverse_frequencies(&cfg);
    let packed = PackedLlama::pack(&model, PanelPrecision::F32).unwrap();
    let declines = |rows: usize, composed: bool| {
        let mut cache = KvCache::new(model.layers.len(), vec![0]);
        cache.reserve(rows);
        let layout = StepLayout::with_columns(&inv, &cache.pad, 0, rows, cache.capacity, &device);
        let layout = if composed { layout.with_composed_ops() } else { layout };
        let x = model.embed_tokens.forward(tokens(&[(0..rows as i64).map(|i| i % 64).collect()], &device));
        let out = host_decode::forward(&model, &packed, &x, &layout, &mut cache);
        (out.is_none(), cache.layers.iter().all(|l| l.host.is_empty()))
    };
    assert_eq!(declines(MAX_ROWS, false), (false, false), "{MAX_ROWS} rows run on the host");
    assert_eq!(declines(MAX_ROWS + 1, false), (true, true), "more rows than the panels serve");
    assert_eq!(declines(4, true), (true, true), "a layout asking for Burn's ops");
}
