//! Logit parity with Hugging Face transformers on tiny random checkpoints (made by
//! scripts/make_model_fixtures.py): Llama with tied embeddings (f32), Llama 3.1 rope scaling
//! (bf16), Qwen2 with q/k/v biases (f16), Qwen3 with q/k norms and a non-default head_dim.
//! The weights are large on purpose, so a wrong RoPE pairing, a missing bias or a wrong norm
//! epsilon moves the logits by far more than the tolerance.

mod common;

use burn::prelude::*;
use memtrain::checkpoint::load_hf_weights;
use memtrain::model::rope;

const VARIANTS: [&str; 4] = ["llama", "llama3-scaled", "qwen2", "qwen3"];
const TOLERANCE: f32 = 2e-4;

struct Reference {
    inputs: Vec<Vec<u32>>,
    logits: Vec<Vec<Vec<f32>>>,
}

fn reference(variant: &str) -> Reference {
    let path = common::fixtures().join(format!("models/tiny-{variant}/reference.json"));
    let v: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    Reference {
        inputs: serde_json::from_value(v["inputs"].clone()).unwrap(),
        logits: serde_json::from_value(v["logits"].clone()).unwrap(),
    }
}

/// Largest |ours − HF| over every position and vocabulary entry of every input, with attention
/// in query blocks of `block` rows (`None`: the device's default).
fn max_logit_error_in_blocks(variant: &str, device: &Device, block: Option<usize>) -> f32 {
    let dir = common::fixtures().join(format!("models/tiny-{variant}"));
    let (config, model) = load_hf_weights(&dir, device).unwrap();
    let inv_freq = rope::inverse_frequencies(&config);
    let r = reference(variant);
    let mut worst = 0.0f32;
    for (ids, expect) in r.inputs.iter().zip(&r.logits) {
        let data: Vec<i64> = ids.iter().map(|&t| t as i64).collect();
        let tokens = Tensor::<2, Int>::from_data(TensorData::new(data, [1, ids.len()]), device);
        let mut layout = memtrain::model::StepLayout::new(&inv_freq, &[0], 0, ids.len(), device);
        if let Some(rows) = block {
            layout = layout.with_query_block(rows);
        }
        let got = common::to_vec3(model.logits(model.forward_hidden(tokens, &layout, None)));
        let vocab = expect[0].len();
        for (pos, row) in expect.iter().enumerate() {
            for (v, &e) in row.iter().enumerate() {
                worst = worst.max((got[pos * vocab + v] - e).abs());
            }
        }
    }
    worst
}

fn max_logit_error(variant: &str, device: &Device) -> f32 {
    max_logit_error_in_blocks(variant, device, None)
}

#[test]
fn tiny_checkpoints_match_transformers_logits_on_flex() {
    for variant in VARIANTS {
        let err = max_logit_error(variant, &Device::flex());
        eprintln!("{variant}: max |Δlogit| = {err:.2e}");
        assert!(err < TOLERANCE, "{variant}: max logit error {err} ≥ {TOLERANCE}");
    }
}

#[test]
fn tiny_checkpoints_match_transformers_logits_on_wgpu() {
    let Some(device) = common::wgpu_device() else { return };
    for variant in VARIANTS {
        let err = max_logit_error(variant, &device);
        eprintln!("{variant} (wgpu): max |Δlogit| = {err:.2e}");
        assert!(err < TOLERANCE, "{variant}: max logit error on wgpu {err} ≥ {TOLERANCE}");
    }
}

/// Attention cut into query blocks that see only the key columns they can attend to (what long
/// CPU training sequences use) still matches transformers: blocks of 3 and 5 rows over inputs of
/// 16 and 7. (On the plain CPU device attention runs through flex's fused kernel, which the test
/// above covers; blocks are the autodiff device's path.)
#[test]
fn attention_in_query_blocks_matches_transformers_logits() {
    let mut devices = vec![Device::flex().autodiff()];
    devices.extend(common::wgpu_device());
    for device in &devices {
        for variant in VARIANTS {
            for rows in [3, 5] {
                let err = max_logit_error_in_blocks(variant, device, Some(rows));
                eprintln!("{variant}, query blocks of {rows} ({device:?}): max |Δlogit| = {err:.2e}");
                assert!(err < TOLERANCE, "{variant}, blocks of {rows}: max logit error {err} ≥ {TOLERANCE}");
            }
        }
    }
}

/// The tolerance is tight enough to see each classic mistake: an adjacent-pair RoPE instead of
/// rotate_half, and a norm epsilon off by a factor. (Checks that the parity test can fail.)
#[test]
fn parity_tolerance_catches_a_wrong_rope_pairing_and_a_wrong_epsilon() {
    let device = Device::flex();
    let dir = common::fixtures().join("models/tiny-llama");
    let r = reference("llama");
    let ids = &r.inputs[0];
    let data: Vec<i64> = ids.iter().map(|&t| t as i64).collect();
    let tokens = || Tensor::<2, Int>::from_data(TensorData::new(data.clone(), [1, ids.len()]), &device);
    let error_of = |model: &memtrain::model::Llama, inv: &[f64]| {
        let got = common::to_vec3(model.forward(tokens(), inv));
        let vocab = r.logits[0][0].len();
        r.logits[0].iter().enumerate().flat_map(|(p, row)| row.iter().enumerate().map(move |(v, &e)| (p, v, e)))
            .map(|(p, v, e)| (got[p * vocab + v] - e).abs()).fold(0.0f32, f32::max)
    };
    // Wrong pairing: permute q/k rows as llama.cpp stores them, which pairs adjacent dims.
    let (config, model) = load_hf_weights(&dir, &device).unwrap();
    let inv = rope::inverse_frequencies(&config);
    assert!(error_of(&model, &inv) < TOLERANCE);
    let mut permuted = model.clone();
    for layer in &mut permuted.layers {
        for (lin, heads) in [(&mut layer.self_attn.q_proj, config.num_heads), (&mut layer.self_attn.k_proj, config.num_kv_heads)] {
            let w = lin.weight.val();
            let [d_in, d_out] = w.dims();
            let host: Vec<f32> = w.into_data().try_to_vec().unwrap();
            let hf = memtrain::model::llama::transpose(&host, d_in, d_out); // [out, in]
            let p = memtrain::checkpoint::gguf_weights::permute_rope_rows(&hf, heads, d_out, d_in);
            let back = memtrain::model::llama::transpose(&p, d_out, d_in);
            lin.weight = burn::module::Param::from_tensor(Tensor::from_data(TensorData::new(back, [d_in, d_out]), &device));
        }
    }
    let wrong_rope = error_of(&permuted, &inv);
    assert!(wrong_rope > 100.0 * TOLERANCE, "a wrong RoPE pairing changed logits by only {wrong_rope}");
    // Wrong epsilon.
    let mut eps = model.clone();
    for layer in &mut eps.layers {
        layer.input_layernorm.epsilon = 1e-2;
    }
    let wrong_eps = error_of(&eps, &inv);
    assert!(wrong_eps > 10.0 * TOLERANCE, "a wrong epsilon changed logits by only {wrong_eps}");
}

/// A Qwen2 checkpoint without its biases is detected by the loader, not silently zeroed.
#[test]
fn a_missing_bias_is_an_error_naming_the_tensor() {
    let dir = common::fixtures().join("models/tiny-qwen2");
    let tmp = tempdir("missing-bias");
    std::fs::copy(dir.join("model.safetensors"), tmp.join("model.safetensors")).unwrap();
    let mut cfg: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(dir.join("config.json")).unwrap()).unwrap();
    // Pretend the biases were never stored by renaming the tensors' model type to one that has them
    // and removing them from the file.
    let bytes = std::fs::read(dir.join("model.safetensors")).unwrap();
    let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    let kept: Vec<(String, safetensors::tensor::TensorView)> =
        st.tensors().into_iter().filter(|(n, _)| !n.ends_with("q_proj.bias")).collect();
    safetensors::serialize_to_file(kept, None, &tmp.join("model.safetensors")).unwrap();
    cfg["model_type"] = "qwen2".into();
    std::fs::write(tmp.join("config.json"), cfg.to_string()).unwrap();
    let err = load_hf_weights(&tmp, &Device::flex()).err().expect("must fail");
    let msg = format!("{err:#}");
    assert!(msg.contains("q_proj.bias") && msg.contains("missing"), "{msg}");
}

pub fn tempdir(name: &str) -> std::path::PathBuf {
    let d = std::env::temp_dir().join(format!("memtrain-test-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}
