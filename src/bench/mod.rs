//! Throughput harness. Figures go to README through these commands, never into timed tests.

use crate::device::{DeviceChoice, HalfPrecision};
use crate::generate::{self, SamplingParams};
use crate::model::packed::{PackedLlama, PanelPrecision};
use crate::model::{ModelConfig, random::RandomWeights, rope};
use anyhow::Result;
use std::path::Path;

pub mod f16;
pub mod memory;
pub mod suite;
pub mod train;
use std::time::Instant;

#[derive(Debug, serde::Serialize, serde::Deserialize)]
pub struct GenerateReport {
    pub model: String,
    pub device: String,
    pub batch: usize,
    pub prompt_tokens: usize,
    pub decode_tokens: usize,
    /// Prompt tokens of the whole batch per second of prefill.
    pub prefill_tok_s: f64,
    /// Generated tokens of the whole batch per second of decoding (after the first token).
    pub decode_tok_s: f64,
}

impl GenerateReport {
    pub fn markdown_row(&self) -> String {
        format!(
            "| {} | {} | {} | {} | {:.1} | {:.1} |",
            self.model, self.device, self.batch, self.prompt_tokens, self.prefill_tok_s, self.decode_tok_s
        )
    }
}

/// The model a benchmark runs: a real checkpoint, or `random:smollm2-135m` / `random:smollm2-360m`,
/// the random-weight twin with that model's shape (same arithmetic, no file to carry).
pub(crate) struct BenchModel {
    pub name: String,
    pub model: crate::model::Llama,
    pub inv_freq: Vec<f64>,
    pub vocab: usize,
}

/// `random:NAME` → the random-weight twin's config and model on `device`; `None` for any other
/// model path.
pub(crate) fn open_random(model: Option<&Path>, device: &burn::prelude::Device) -> Result<Option<(String, ModelConfig, crate::model::Llama)>> {
    let Some(spec) = model.and_then(|p| p.to_str()).and_then(|s| s.strip_prefix("random:")) else { return Ok(None) };
    let config = match spec {
        "smollm2-135m" => ModelConfig::smollm2_135m(),
        "smollm2-360m" => ModelConfig::smollm2_360m(),
        other => anyhow::bail!("unknown random model {other:?} (known: smollm2-135m, smollm2-360m)"),
    };
    let model = crate::model::Llama::from_weights(&config, &mut RandomWeights::new(config.clone(), 0), device)?;
    Ok(Some((format!("random {spec}"), config, model)))
}

/// Opens `model` (see [`BenchModel`]) on `device` (plain or autodiff).
pub(crate) fn open_on(model: Option<&Path>, device: &burn::prelude::Device) -> Result<BenchModel> {
    if let Some((name, config, model)) = open_random(model, device)? {
        return Ok(BenchModel { name, model, inv_freq: rope::inverse_frequencies(&config), vocab: config.vocab_size });
    }
    let path = crate::checkpoint::default_model::resolve(model)?;
    let loaded = crate::checkpoint::load(&path, device)?;
    Ok(BenchModel { name: loaded.info.name.clone(), vocab: loaded.info.config.vocab_size, model: loaded.model, inv_freq: loaded.inv_freq })
}

/// Prompts of exactly `len` tokens, different per sequence (a fixed pseudo-random id stream:
/// prefill and decode cost do not depend on which ids they are).
pub(crate) fn prompts(vocab: usize, batch: usize, len: usize) -> Vec<Vec<u32>> {
    (0..batch)
        .map(|b| (0..len).map(|i| ((i * 7919 + b * 104_729 + 13) % vocab) as u32).collect())
        .collect()
}

/// `f16` ([`crate::device::use_f16`]): on wgpu the model, activations and KV cache in f16, on
/// the CPU the decode kernels' weight panels; the report's device then says so, as it says
/// `sampling`'s temperature above 0 (sampled, as GRPO's rollouts are, instead of greedy) and its
/// top-k / top-p.
pub fn generate(model: Option<&Path>, device: DeviceChoice, f16: bool, batch: usize, prompt_len: usize, decode: usize, sampling: &SamplingParams) -> Result<GenerateReport> {
    let (device, info) = crate::device::select(device)?;
    let half = if f16 { Some(crate::device::use_f16(&device, &info)?) } else { None };
    let m = open_on(model, &device)?;
    let (mut name, panels) = match half {
        None => (info.to_string(), PanelPrecision::F32),
        Some(HalfPrecision::Tensors) => (format!("{info}, f16"), PanelPrecision::F32),
        Some(HalfPrecision::DecodePanels) if PackedLlama::used_for(&m.model) => (format!("{info}, {}", decode_panels(PanelPrecision::F16)), PanelPrecision::F16),
        // MEMTRAIN_NO_CPU_KERNELS: no panels to make lighter.
        Some(HalfPrecision::DecodePanels) => (format!("{info}, CPU decode kernels off"), PanelPrecision::F32),
    };
    if sampling.temperature > 0.0 {
        name = format!("{name}, sampled at temperature {}", sampling.temperature);
        if sampling.top_k > 0 {
            name = format!("{name}, top-k {}", sampling.top_k);
        }
        if sampling.top_p < 1.0 {
            name = format!("{name}, top-p {}", sampling.top_p);
        }
    }
    eprintln!("bench: {} on {name}", m.name);
    measure_generate(&m, &name, batch, prompt_len, decode, Some(panels), sampling)
}

/// What a CPU row with `p` decode panels says it ran ("f16 decode panels").
pub(crate) fn decode_panels(p: PanelPrecision) -> String {
    format!("{} decode panels", p.name())
}

/// Prefill and decode throughput of `m` for `batch` prompts of `prompt_len` tokens, decoded as
/// `sampling` says (its temperature, top-k and top-p; its budget and seed are the bench's);
/// through the repacked weights (CPU panels in the given precision) unless `panels` is `None`
/// (the CPU's before/after row).
pub(crate) fn measure_generate(m: &BenchModel, device: &str, batch: usize, prompt_len: usize, decode: usize, panels: Option<PanelPrecision>, sampling: &SamplingParams) -> Result<GenerateReport> {
    let packed = panels.and_then(|p| PackedLlama::for_device(&m.model, p));
    let run = |prompts: &[Vec<u32>], steps: usize| -> Result<(f64, f64)> {
        let params = SamplingParams { max_new_tokens: steps, seed: 1, ..sampling.clone() };
        let start = Instant::now();
        let mut first: Option<f64> = None;
        let mut count = 0usize;
        generate::generate(&m.model, packed.as_ref(), &m.inv_freq, prompts, &params, &[], &mut |_| {
            count += 1;
            if count == prompts.len() {
                first = Some(start.elapsed().as_secs_f64());
            }
            true
        })?;
        let total = start.elapsed().as_secs_f64();
        let prefill = first.unwrap_or(total);
        Ok((prefill, total - prefill))
    };
    // Warm-up over the same shapes: kernels compile (wgpu) and buffers get allocated.
    let p = prompts(m.vocab, batch, prompt_len);
    run(&p, decode)?;
    let (prefill_s, decode_s) = run(&p, decode)?;
    Ok(GenerateReport {
        model: m.name.clone(),
        device: device.to_string(),
        batch,
        prompt_tokens: prompt_len,
        decode_tokens: decode,
        prefill_tok_s: (batch * prompt_len) as f64 / prefill_s,
        decode_tok_s: (batch * decode.saturating_sub(1)) as f64 / decode_s.max(1e-9),
    })
}
