//! Throughput harness. Figures go to README through these commands, never into timed tests.

use crate::device::DeviceChoice;
use crate::generate::{self, SamplingParams};
use crate::session::Session;
use anyhow::Result;
use std::path::Path;
use std::time::Instant;

#[derive(Debug, serde::Serialize)]
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

/// Prompts of exactly `len` tokens made from ordinary text, shifted per sequence so that the
/// batch is not one prompt repeated.
fn prompts(session: &Session, batch: usize, len: usize) -> Result<Vec<Vec<u32>>> {
    let text = "The history of the city begins with a small harbour where fishermen traded salt, \
                wool and timber with merchants who came from the islands in the south. ";
    let ids = session.loaded.tokenizer.encode(&text.repeat(len / 8 + 4), false)?;
    Ok((0..batch).map(|b| ids.iter().cycle().skip(b).take(len).copied().collect()).collect())
}

pub fn generate(model: Option<&Path>, device: DeviceChoice, batch: usize, prompt_len: usize, decode: usize) -> Result<GenerateReport> {
    let session = Session::open(model, device)?;
    eprintln!("bench: {} on {}", session.loaded.info.name, session.device_info);
    let lm = &session.loaded;
    let run = |prompts: &[Vec<u32>], steps: usize| -> Result<(f64, f64)> {
        let params = SamplingParams { max_new_tokens: steps, ..Default::default() };
        let start = Instant::now();
        let mut first: Option<f64> = None;
        let mut count = 0usize;
        generate::generate(&lm.model, &lm.inv_freq, prompts, &params, &[], &mut |_| {
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
    // Warm-up: kernels compile (wgpu) and buffers get allocated for these shapes.
    let p = prompts(&session, batch, prompt_len)?;
    run(&p, 3)?;
    let (prefill_s, decode_s) = run(&p, decode)?;
    Ok(GenerateReport {
        model: lm.info.name.clone(),
        device: session.device_info.to_string(),
        batch,
        prompt_tokens: prompt_len,
        decode_tokens: decode,
        prefill_tok_s: (batch * prompt_len) as f64 / prefill_s,
        decode_tok_s: (batch * decode.saturating_sub(1)) as f64 / decode_s.max(1e-9),
    })
}
