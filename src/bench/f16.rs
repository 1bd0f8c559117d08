//! The suite's f16 generation rows: `memtrain bench generate --f16` in a child process per
//! batch. Why a child: the float type is a setting of the whole process's wgpu device
//! ([`crate::device::use_f16`]), and the suite's other rows on that device run in f32.

use super::GenerateReport;
use super::suite::{GenRow, SuiteOptions};
use crate::device::DeviceChoice;
use anyhow::{Context, Result, bail};

/// Engine name of the rows measured in f16.
pub const ENGINE: &str = "memtrain f16";

/// One f16 generation row per batch of `opts` on `choice`; peak memory is the child's, not
/// measured here.
pub fn generation_rows(opts: &SuiteOptions, choice: DeviceChoice) -> Result<Vec<GenRow>> {
    let exe = std::env::current_exe().context("finding the memtrain binary for the f16 rows")?;
    let mut rows = Vec::new();
    for &batch in &opts.batches {
        let json = std::env::temp_dir().join(format!("memtrain-bench-f16-{}-{batch}.json", std::process::id()));
        let mut cmd = std::process::Command::new(&exe);
        cmd.args(["bench", "generate", "--f16", "--device", &choice.to_string(), "--batch", &batch.to_string()]);
        cmd.args(["--prompt-tokens", &opts.prompt_tokens.to_string(), "--decode-tokens", &opts.decode_tokens.to_string()]);
        cmd.arg("--json").arg(&json);
        if let Some(m) = &opts.model {
            cmd.arg("--model").arg(m);
        }
        let out = cmd.output().with_context(|| format!("running {}", exe.display()))?;
        if !out.status.success() {
            let why = String::from_utf8_lossy(&out.stderr);
            bail!("{}", why.lines().rev().find(|l| !l.trim().is_empty()).unwrap_or("failed without a message"));
        }
        let text = std::fs::read_to_string(&json).with_context(|| format!("reading {}", json.display()));
        let _ = std::fs::remove_file(&json);
        let r: GenerateReport = serde_json::from_str(&text?).context("reading the f16 row")?;
        rows.push(GenRow { engine: ENGINE.into(), device: r.device, batch, prefill_tok_s: r.prefill_tok_s, decode_tok_s: r.decode_tok_s, peak_mb: None });
    }
    Ok(rows)
}
