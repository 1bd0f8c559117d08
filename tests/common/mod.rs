//! Shared test helpers: fixture paths, devices, the real model.
#![allow(dead_code)]

use burn::module::{Module, ModuleVisitor, Param};
use burn::optim::GradientsParams;
use burn::prelude::*;
use memtrain::model::Llama;
use memtrain::train::update::Loss;
use std::path::PathBuf;

pub fn fixtures() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}

/// The real SmolLM2 GGUF, or `None` (with a note) when `MEMTRAIN_MODEL` is unset and the default
/// model is not installed. CI sets `MEMTRAIN_REQUIRE_MODEL=1`, which turns a missing model into a
/// failure so the real-model tests can never be skipped silently there.
pub fn real_model() -> Option<PathBuf> {
    let p = memtrain::checkpoint::default_model::path();
    if p.exists() {
        return Some(p);
    }
    if std::env::var_os("MEMTRAIN_REQUIRE_MODEL").is_some() {
        panic!("MEMTRAIN_REQUIRE_MODEL is set but {} does not exist", p.display());
    }
    eprintln!("skipped: the real model is not installed (run `memtrain fetch-model` or set MEMTRAIN_MODEL)");
    None
}

/// The wgpu device (lavapipe in CI), or `None` when no adapter opens and wgpu is not required.
/// CI sets `MEMTRAIN_REQUIRE_WGPU=1` so that wgpu tests cannot pass by skipping.
pub fn wgpu_device() -> Option<Device> {
    match memtrain::device::wgpu() {
        Ok((d, info)) => {
            eprintln!("wgpu adapter: {info}");
            Some(d)
        }
        Err(e) => {
            if std::env::var_os("MEMTRAIN_REQUIRE_WGPU").is_some() {
                panic!("MEMTRAIN_REQUIRE_WGPU is set but {e}");
            }
            eprintln!("skipped on wgpu: {e}");
            None
        }
    }
}

pub fn to_vec3(t: Tensor<3>) -> Vec<f32> {
    t.into_data().try_to_vec().expect("f32 data")
}

/// The architectures the model code has paths for.
pub const ARCHITECTURES: [memtrain::model::Architecture; 3] = [memtrain::model::Architecture::Llama, memtrain::model::Architecture::Qwen2, memtrain::model::Architecture::Qwen3];

/// [`tiny_config`] as `arch` (Qwen2 with an untied head, as its checkpoints have), `layers` deep.
pub fn tiny_config_of(arch: memtrain::model::Architecture, layers: usize) -> memtrain::model::ModelConfig {
    memtrain::model::ModelConfig { architecture: arch, num_layers: layers, tie_word_embeddings: arch != memtrain::model::Architecture::Qwen2, ..tiny_config() }
}

/// A tiny Llama-shaped config for training-step tests on random weights.
pub fn tiny_config() -> memtrain::model::ModelConfig {
    memtrain::model::ModelConfig {
        architecture: memtrain::model::Architecture::Llama,
        vocab_size: 64,
        hidden_size: 32,
        intermediate_size: 64,
        num_layers: 2,
        num_heads: 4,
        num_kv_heads: 2,
        head_dim: 8,
        rms_norm_eps: 1e-5,
        rope_theta: 10_000.0,
        rope_scaling: None,
        max_position_embeddings: 256,
        tie_word_embeddings: true,
    }
}

/// A model of [`tiny_config`] with seeded random weights on `device`, and its RoPE frequencies.
pub fn tiny_model(device: &Device, seed: u64) -> (memtrain::model::Llama, Vec<f64>) {
    let cfg = tiny_config();
    let model = memtrain::model::Llama::from_weights(&cfg, &mut memtrain::model::random::RandomWeights::new(cfg.clone(), seed), device).unwrap();
    (model, memtrain::model::rope::inverse_frequencies(&cfg))
}

/// A model of `config` with seeded random weights whose biases and norm weights are random too
/// (around 0 and 1: [`memtrain::model::random::RandomWeights`] makes them exactly 0 and 1, under
/// which a bias added twice, or a γ not applied, would go unseen).
pub fn jittered_model(config: &memtrain::model::ModelConfig, device: &Device, seed: u64) -> memtrain::model::Llama {
    use rand::{Rng, SeedableRng};
    struct Jittered(memtrain::model::random::RandomWeights, rand_chacha::ChaCha8Rng);
    impl memtrain::model::WeightSource for Jittered {
        fn take(&mut self, name: &str) -> anyhow::Result<Option<(Vec<f32>, Vec<usize>)>> {
            let Some((mut data, shape)) = self.0.take(name)? else { return Ok(None) };
            if name.ends_with(".bias") || name.ends_with("norm.weight") {
                data.iter_mut().for_each(|v| *v += self.1.random_range(-0.25..0.25));
            }
            Ok(Some((data, shape)))
        }
    }
    let mut weights = Jittered(memtrain::model::random::RandomWeights::new(config.clone(), seed), rand_chacha::ChaCha8Rng::seed_from_u64(seed + 1));
    memtrain::model::Llama::from_weights(config, &mut weights, device).unwrap()
}

/// Largest |a − b| over two equally long slices.
pub fn max_abs_diff(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    a.iter().zip(b).map(|(x, y)| (x - y).abs()).fold(0.0, f32::max)
}

/// Of residual streams `got` against `want` (pairs of equally long slices): the largest
/// difference relative to its entry's size plus the root mean square of every `want`, and that
/// root mean square. Relative to the entry too because SmolLM2's streams have a few entries of
/// ~10⁴ (the first position's), where two summation orders (the host path's and the tensor
/// path's) differ by ~10 ulps, ~10⁻², against an rms of ~10².
pub fn stream_error(pairs: &[(&[f32], &[f32])]) -> (f32, f32) {
    let values: usize = pairs.iter().map(|(_, w)| w.len()).sum();
    let squares: f64 = pairs.iter().flat_map(|(_, w)| w.iter()).map(|&v| (v as f64).powi(2)).sum();
    let rms = (squares / values.max(1) as f64).sqrt() as f32;
    let worst = pairs
        .iter()
        .flat_map(|(g, w)| {
            assert_eq!(g.len(), w.len(), "one hidden vector per fed token");
            g.iter().zip(w.iter())
        })
        .map(|(g, w)| (g - w).abs() / (w.abs() + rms))
        .fold(0.0f32, f32::max);
    (worst, rms)
}

/// `lm`'s next-token logits after `ids` (one CPU forward, the last position's row).
pub fn last_logits(lm: &memtrain::checkpoint::LoadedModel, ids: &[u32]) -> Vec<f32> {
    let device = Device::flex();
    let data: Vec<i64> = ids.iter().map(|&t| t as i64).collect();
    let tokens = Tensor::<2, Int>::from_data(TensorData::new(data, [1, ids.len()]), &device);
    let layout = memtrain::model::StepLayout::new(&lm.inv_freq, &[0], 0, ids.len(), &device);
    let hidden = lm.model.forward_hidden(tokens, &layout, None).narrow(1, ids.len() - 1, 1);
    lm.model.logits(hidden).into_data().try_to_vec().unwrap()
}

/// One prompt of transformers' f32 reading of the real SmolLM2 GGUF
/// (tests/fixtures/models/smollm2/reference.json, made by scripts/make_model_fixtures.py): its
/// next token's top 20 ids and logits and its greedy continuation.
pub struct Smollm2Case {
    pub input_ids: Vec<u32>,
    pub top_ids: Vec<u32>,
    pub top_logits: Vec<f32>,
    pub greedy_ids: Vec<u32>,
}

impl Smollm2Case {
    /// `name`: "plain_france" or "chat_japan".
    pub fn named(name: &str) -> Self {
        let path = fixtures().join("models/smollm2/reference.json");
        let v: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
        let c = &v[name];
        let ids = |k: &str| -> Vec<u32> { serde_json::from_value(c[k].clone()).unwrap() };
        let top_logits: Vec<f32> = serde_json::from_value(c["top_logits"].clone()).unwrap();
        Smollm2Case { input_ids: ids("input_ids"), top_ids: ids("top_ids"), top_logits, greedy_ids: ids("greedy_ids") }
    }

    /// The largest gap between `logits` and transformers' over its top 20.
    pub fn worst_top_logit(&self, logits: &[f32]) -> f32 {
        self.top_ids.iter().zip(&self.top_logits).map(|(&i, &e)| (logits[i as usize] - e).abs()).fold(0.0f32, f32::max)
    }
}

/// Every parameter's gradient (`None` where it has none), in module order.
pub fn flat_gradients(model: &Llama, grads: &GradientsParams) -> Vec<Option<Vec<f32>>> {
    struct Collect<'a>(&'a GradientsParams, Vec<Option<Vec<f32>>>);
    impl ModuleVisitor for Collect<'_> {
        fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
            let g = self.0.get::<D>(param.id).map(|t| t.into_data().convert::<f32>().try_to_vec::<f32>().unwrap());
            self.1.push(g);
        }
    }
    let mut c = Collect(grads, Vec::new());
    model.visit(&mut c);
    c.1
}

/// A loss's value and every parameter's gradient ([`flat_gradients`]).
pub fn value_and_gradients(model: &Llama, loss: Loss) -> (f32, Vec<Option<Vec<f32>>>) {
    let value = loss.value.clone().into_data().convert::<f32>().try_to_vec::<f32>().unwrap()[0];
    let grads = loss.gradients(model);
    (value, flat_gradients(model, &grads))
}

/// Same loss, same set of parameters with a gradient, every gradient equal to `tol` of its
/// largest entry (a loss and gradients from [`value_and_gradients`]); returns how many
/// parameters had one.
pub fn assert_same(expected: &(f32, Vec<Option<Vec<f32>>>), got: &(f32, Vec<Option<Vec<f32>>>), tol: f32) -> usize {
    assert!((expected.0 - got.0).abs() <= 1e-5 * expected.0.abs().max(1.0), "loss {} vs {}", expected.0, got.0);
    let mut with_gradient = 0;
    for (i, (a, b)) in expected.1.iter().zip(&got.1).enumerate() {
        match (a, b) {
            (None, None) => {}
            (Some(a), Some(b)) => {
                let scale = a.iter().fold(0.0f32, |m, x| m.max(x.abs()));
                assert!(scale > 0.0, "parameter {i} has an all-zero gradient");
                let diff = max_abs_diff(a, b);
                assert!(diff <= tol * scale, "parameter {i}: gradients differ by {diff} (largest entry {scale})");
                with_gradient += 1;
            }
            _ => panic!("parameter {i}: a gradient on one side only (expected {}, got {})", a.is_some(), b.is_some()),
        }
    }
    with_gradient
}
