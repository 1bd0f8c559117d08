//! `memtrain bench suite`: the issue-7 benchmark in one run. Generation (prefill, decode at
//! several batch sizes), a training step (forward + backward + AdamW; the median of 3 after a
//! warm-up) at several sequence lengths, and one GRPO step split by phase, on each requested
//! device; then the peers (PyTorch eager on CPU and CUDA, llama.cpp) on the same shapes
//! through `scripts/bench_peers.py`, and the ratios that the targets are stated in.
//!
//! Contract: every figure is measured in this process (or the peer script's) during this run;
//! peers that cannot run are listed as absent with the reason, never estimated (a peer script
//! that is not there stops the run before it starts). Output: JSON
//! (the whole report) and Markdown (the tables README shows).

use super::memory::{peak_host_mb as peak_mb, reset_peak};
use super::train::{TrainBenchOptions, TrainBenchReport, train_step};
use super::{GenerateReport, decode_panels, measure_generate, open_on};
use crate::device::DeviceChoice;
use crate::generate::SamplingParams;
use crate::model::packed::{PackedLlama, PanelPrecision};
use crate::model::precision::Precision;
use crate::train::grpo::Forward;
use crate::train::loss_scale::LossScale;
use crate::train::sft::{SftExample, SftWeighting, sft_training_loss};
use crate::train::update::{Update, accumulated_step};
use anyhow::{Context, Result, bail};
use burn::prelude::*;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use std::time::Instant;

/// Engine name of the generation rows measured with the CPU decode kernels turned off.
const WITHOUT_KERNELS: &str = "memtrain, backend gemm only (CPU decode kernels off)";

#[derive(Clone, Debug)]
pub struct SuiteOptions {
    /// A model file/folder or `random:smollm2-135m`; `None` is the default model.
    pub model: Option<PathBuf>,
    /// Tokenizer for the GRPO step of a random model (default: the default model's).
    pub tokenizer: Option<PathBuf>,
    pub devices: Vec<DeviceChoice>,
    pub batches: Vec<usize>,
    pub prompt_tokens: usize,
    pub decode_tokens: usize,
    pub train_seqs: Vec<usize>,
    pub grpo: bool,
    /// Also time each training step with gradient checkpointing.
    pub checkpointing: bool,
    /// The peer script, run with `python`; `None` skips the peers.
    pub peers: Option<PathBuf>,
    pub python: String,
    /// GGUF the peers load (llama.cpp needs one); `None`: the default model when installed.
    pub peer_gguf: Option<PathBuf>,
    /// Rounds of the CPU training rows: after the first, ours and PyTorch's alternate, so that
    /// the machine's drift over minutes hits both sides (1 = the main run only).
    pub train_rounds: usize,
    /// Also measure generation in f16 on each wgpu device ([`super::f16`]) and with f16 decode
    /// panels on the CPU.
    pub f16: bool,
}

/// One generation measurement, ours or a peer's (the peer script writes the same fields).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct GenRow {
    pub engine: String,
    pub device: String,
    pub batch: usize,
    pub prefill_tok_s: f64,
    pub decode_tok_s: f64,
    /// Peak resident host memory during the row (MB), where measured.
    pub peak_mb: Option<f64>,
}

/// One training step (forward + backward + AdamW) on `seq` tokens.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct TrainRow {
    pub engine: String,
    pub device: String,
    pub seq: usize,
    pub seconds_step: f64,
    pub tokens_per_s: f64,
    pub peak_mb: Option<f64>,
    /// Which round of [`SuiteOptions::train_rounds`] measured it (0: the main run).
    #[serde(default)]
    pub round: usize,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct PeerReport {
    #[serde(default)]
    pub generation: Vec<GenRow>,
    #[serde(default)]
    pub training: Vec<TrainRow>,
    /// "engine on device: why" for each peer that did not run.
    #[serde(default)]
    pub absent: Vec<String>,
}

#[derive(Debug, Serialize)]
pub struct SuiteReport {
    pub date: String,
    pub machine: String,
    pub model: String,
    pub prompt_tokens: usize,
    pub decode_tokens: usize,
    pub generation: Vec<GenRow>,
    pub training: Vec<TrainRow>,
    pub grpo: Vec<TrainBenchReport>,
    pub peers: PeerReport,
}

fn machine() -> String {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| s.lines().find_map(|l| l.strip_prefix("model name").map(|v| v.trim_start_matches([' ', '\t', ':']).to_string())))
        .unwrap_or_else(|| std::env::consts::ARCH.to_string());
    let cores = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1);
    format!("{cpu}, {cores} cores, {}", std::env::consts::OS)
}

fn today() -> String {
    std::process::Command::new("date").arg("-u").arg("+%Y-%m-%d %H:%M UTC").output().ok().and_then(|o| String::from_utf8(o.stdout).ok()).map(|s| s.trim().to_string()).unwrap_or_default()
}

/// Timed training steps per row (after one warm-up step); the row reports their median.
const TIMED_STEPS: usize = 3;

/// The median of [`TIMED_STEPS`] training steps on one sequence of `seq` pseudo-random tokens
/// (loss: mean NLL of every next token), after one untimed step over the same shapes (kernel
/// compilation, buffers).
/// `precision`: [`Precision::MixedF16`] times mixed-precision steps (with their loss scaling).
fn train_row(model: Option<&Path>, base: &Device, device_name: &str, seq: usize, checkpointing: bool, precision: Precision) -> Result<TrainRow> {
    let autodiff = base.clone().autodiff();
    let engine = match (checkpointing, precision) {
        (false, Precision::F32) => "memtrain",
        (true, Precision::F32) => "memtrain, gradient checkpointing",
        (false, Precision::MixedF16) => "memtrain, mixed f16",
        (true, Precision::MixedF16) => "memtrain, mixed f16, gradient checkpointing",
    };
    let device = &autodiff;
    let m = open_on(model, device)?;
    let tokens = super::prompts(m.vocab, 1, seq).remove(0);
    let example = SftExample::new(tokens[..1].to_vec(), tokens[1..].to_vec());
    let mut optim = crate::train::adamw::FusedAdamW::init(Default::default());
    let mut scale = LossScale::for_precision(precision);
    let forward = Forward { recompute: checkpointing, precision, ..Forward::plain(device) };
    let mut model = m.model;
    // One warm-up step, then the median of TIMED_STEPS: on a shared machine one timed step was
    // one noisy sample (the same binary's 512-token step measured 4.6–7.9 s across runs).
    let mut times = Vec::with_capacity(TIMED_STEPS);
    // Freed device buffers of earlier rows stay in the allocator's pools (on lavapipe, in this
    // process's memory): hand them back. Not all of it comes back — a row after others still
    // read ~0.7 GB more on lavapipe than alone (README, Memory) — so compare rows across processes.
    device.memory_cleanup();
    reset_peak();
    for round in 0..=TIMED_STEPS {
        let start = Instant::now();
        let update = accumulated_step(model, &mut optim, &mut scale, 1e-6, std::slice::from_ref(&example), 1, |mdl, part| sft_training_loss(mdl, &m.inv_freq, part, SftWeighting::Token, device, forward))?;
        let Update::Applied(next, _) = update else { bail!("training step at sequence {seq}: the loss was not finite") };
        // Reading one weight back waits for the device to finish the step (wgpu runs lazily).
        next.norm.gamma.val().slice([0..1]).into_data();
        model = next;
        if round > 0 {
            times.push(start.elapsed().as_secs_f64());
        }
    }
    times.sort_by(f64::total_cmp);
    let seconds = times[times.len() / 2];
    Ok(TrainRow { engine: engine.into(), device: device_name.into(), seq, seconds_step: seconds, tokens_per_s: seq as f64 / seconds, peak_mb: peak_mb(), round: 0 })
}

/// One generation row per batch size of `opts` for `m` on `device`, as `engine`, through the
/// decode kernels' `panels` (`None`: the backend's gemm alone); `what` names it in the progress.
fn generation_rows(m: &super::BenchModel, device: &str, opts: &SuiteOptions, engine: &str, panels: Option<PanelPrecision>, what: &str, progress: &mut dyn FnMut(&str)) -> Result<Vec<GenRow>> {
    let mut rows = vec![];
    for &batch in &opts.batches {
        progress(&format!("{what}, batch {batch}, on {device}"));
        reset_peak();
        let g: GenerateReport = measure_generate(m, device, batch, opts.prompt_tokens, opts.decode_tokens, panels, &SamplingParams::default())?;
        rows.push(GenRow { engine: engine.into(), device: device.into(), batch, prefill_tok_s: g.prefill_tok_s, decode_tok_s: g.decode_tok_s, peak_mb: peak_mb() });
    }
    Ok(rows)
}

pub fn run(opts: &SuiteOptions, progress: &mut dyn FnMut(&str)) -> Result<SuiteReport> {
    // Checked before minutes of our own measurements: a relative path is read from the working
    // directory, and Python's "can't open file" would only show as an exit status at the end.
    if let Some(script) = opts.peers.as_ref().filter(|p| !p.is_file()) {
        let here = std::env::current_dir().map(|d| d.display().to_string()).unwrap_or_default();
        anyhow::bail!("peer script {} not found from {here}: run from the repository root, pass --peers PATH, or --peers none to skip the peers", script.display());
    }
    let mut report = SuiteReport {
        date: today(),
        machine: machine(),
        model: String::new(),
        prompt_tokens: opts.prompt_tokens,
        decode_tokens: opts.decode_tokens,
        generation: vec![],
        training: vec![],
        grpo: vec![],
        peers: PeerReport::default(),
    };
    let mut cpus = vec![];
    for &choice in &opts.devices {
        let (device, info) = crate::device::select(choice)?;
        let name = info.to_string();
        if info.kind.eq_ignore_ascii_case("cpu") {
            cpus.push((device.clone(), name.clone()));
        }
        let m = open_on(opts.model.as_deref(), &device)?;
        report.model = m.name.clone();
        report.generation.extend(generation_rows(&m, &name, opts, "memtrain", Some(PanelPrecision::F32), "generation", progress)?);
        // The CPU decode kernels' gain, measured in the same run: the backend's gemm alone.
        if PackedLlama::used_for(&m.model) {
            report.generation.extend(generation_rows(&m, &name, opts, WITHOUT_KERNELS, None, "generation without the CPU decode kernels", progress)?);
            // `--f16` on the suite: the same CPU kernels streaming f16 weight panels.
            if opts.f16 {
                let engine = decode_panels(PanelPrecision::F16);
                report.generation.extend(generation_rows(&m, &name, opts, &format!("memtrain, {engine}"), Some(PanelPrecision::F16), &format!("generation with {engine}"), progress)?);
            }
        }
        drop(m);
        if opts.f16 && crate::device::compiles_per_shape(&device) {
            progress(&format!("generation in f16 on {name}"));
            match super::f16::generation_rows(opts, choice) {
                Ok(rows) => report.generation.extend(rows),
                Err(e) => report.peers.absent.push(format!("{} on {name}: {e:#}", super::f16::ENGINE)),
            }
        }
        for &seq in &opts.train_seqs {
            progress(&format!("training step, sequence {seq}, on {name}"));
            report.training.push(train_row(opts.model.as_deref(), &device, &name, seq, false, Precision::F32)?);
            if opts.checkpointing {
                progress(&format!("training step with gradient checkpointing, sequence {seq}, on {name}"));
                report.training.push(train_row(opts.model.as_deref(), &device, &name, seq, true, Precision::F32)?);
            }
            if opts.f16 && crate::device::compiles_per_shape(&device) {
                progress(&format!("training step in mixed f16, sequence {seq}, on {name}"));
                report.training.push(train_row(opts.model.as_deref(), &device, &name, seq, false, Precision::MixedF16)?);
            }
        }
        if opts.grpo {
            progress(&format!("GRPO step on {name}"));
            let t = TrainBenchOptions {
                model: opts.model.clone(),
                tokenizer: opts.tokenizer.clone(),
                device: choice,
                docs: 1,
                group: 4,
                recall_group: 2,
                memory_tokens: 32,
                answer_tokens: 8,
                micro_batch: 8,
                dump_batch: None,
                // A GPU compiles kernels on first sight of each shape: time a warm step there.
                warmup: !info.kind.eq_ignore_ascii_case("cpu"),
                learning: Default::default(),
                checkpointing: false,
                precision: Precision::F32,
                share_prompts: true,
                reuse_stems: true,
                share_prefix: true,
            };
            report.grpo.push(train_step(&t)?);
        }
    }
    if let Some(script) = &opts.peers {
        progress("peers (PyTorch, llama.cpp)");
        report.peers = run_peers(opts, script, false);
        for round in 1..opts.train_rounds {
            for (device, name) in &cpus {
                for &seq in &opts.train_seqs {
                    progress(&format!("training step, sequence {seq}, on {name}, round {}", round + 1));
                    report.training.push(TrainRow { round, ..train_row(opts.model.as_deref(), device, name, seq, false, Precision::F32)? });
                }
            }
            progress(&format!("PyTorch CPU training steps, round {}", round + 1));
            let peers = run_peers(opts, script, true);
            report.peers.training.extend(peers.training.into_iter().map(|r| TrainRow { round, ..r }));
            report.peers.absent.extend(peers.absent.into_iter().map(|a| format!("round {}: {a}", round + 1)));
        }
    }
    Ok(report)
}

/// Runs the peer script on the suite's shapes (`cpu_training_only`: PyTorch's CPU training rows
/// alone); a failure becomes an "absent" line, not an error.
fn run_peers(opts: &SuiteOptions, script: &Path, cpu_training_only: bool) -> PeerReport {
    let out = std::env::temp_dir().join(format!("memtrain-peers-{}.json", std::process::id()));
    let list = |v: &[usize]| v.iter().map(usize::to_string).collect::<Vec<_>>().join(",");
    let mut cmd = std::process::Command::new(&opts.python);
    cmd.arg(script).args(["--json", &out.to_string_lossy()]);
    cmd.args(["--batches", &list(&opts.batches), "--seqs", &list(&opts.train_seqs)]);
    cmd.args(["--prompt-tokens", &opts.prompt_tokens.to_string(), "--decode-tokens", &opts.decode_tokens.to_string()]);
    let gguf = opts.peer_gguf.clone().or_else(|| crate::checkpoint::default_model::resolve(None).ok());
    if cpu_training_only {
        cmd.arg("--training-only").env("BENCH_PEERS_TORCH_DEVICES", "cpu");
    } else if let Some(g) = &gguf {
        cmd.arg("--gguf").arg(g);
    }
    if opts.model.as_deref().and_then(Path::to_str).is_some_and(|s| s.starts_with("random:")) {
        cmd.arg("--random");
    }
    let result = cmd.status().with_context(|| format!("cannot run {} {}", opts.python, script.display())).and_then(|status| {
        if !status.success() {
            bail!("{} exited with {status}", script.display());
        }
        let text = std::fs::read_to_string(&out).with_context(|| format!("{} wrote no {}", script.display(), out.display()))?;
        serde_json::from_str::<PeerReport>(&text).with_context(|| format!("cannot read {}", out.display()))
    });
    let _ = std::fs::remove_file(&out);
    result.unwrap_or_else(|e| PeerReport { absent: vec![format!("all peers: {e:#}")], ..Default::default() })
}

fn fmt(x: f64) -> String {
    if x >= 100.0 { format!("{x:.0}") } else { format!("{x:.1}") }
}

fn mb(x: Option<f64>) -> String {
    x.map(|v| format!("{v:.0}")).unwrap_or_else(|| "—".into())
}

/// Is this device name a CPU (flex or a CPU-side peer)?
fn on_cpu(device: &str) -> bool {
    let d = device.to_ascii_lowercase();
    d.contains("flex") || d.contains("cpu")
}

impl SuiteReport {
    pub fn markdown(&self) -> String {
        let mut s = format!("Machine: {}. Date: {}. Model: {}.\n\n", self.machine, self.date, self.model);
        s += &format!("Generation (prompt {} tokens, {} decoded per sequence; tok/s aggregate over the batch; peak MB = host RSS, except PyTorch CUDA rows: GPU memory allocated):\n\n", self.prompt_tokens, self.decode_tokens);
        s += "| engine | device | batch | prefill tok/s | decode tok/s | peak MB |\n|---|---|---|---|---|---|\n";
        for r in self.generation.iter().chain(&self.peers.generation) {
            s += &format!("| {} | {} | {} | {} | {} | {} |\n", r.engine, r.device, r.batch, fmt(r.prefill_tok_s), fmt(r.decode_tok_s), mb(r.peak_mb));
        }
        s += "\nTraining step (one sequence, forward + backward + AdamW; f32 unless the engine says mixed f16; peak MB as above):\n\n";
        s += "| engine | device | sequence | round | step s | tokens/s | peak MB |\n|---|---|---|---|---|---|---|\n";
        let mut rows: Vec<&TrainRow> = self.training.iter().chain(&self.peers.training).collect();
        rows.sort_by_key(|r| r.round);
        for r in rows {
            s += &format!("| {} | {} | {} | {} | {:.2} | {} | {} |\n", r.engine, r.device, r.seq, r.round + 1, r.seconds_step, fmt(r.tokens_per_s), mb(r.peak_mb));
        }
        for g in &self.grpo {
            s += &format!("\nGRPO step on {}:\n\n```\n{}\n```\n", g.device, g.text());
        }
        if !self.peers.absent.is_empty() {
            s += "\nPeers absent: ";
            s += &self.peers.absent.join("; ");
            s += "\n";
        }
        s += "\nTargets (issue 7), from this run:\n\n";
        for line in self.targets() {
            s += &format!("- {line}\n");
        }
        s
    }

    /// The issue's targets as ratios of figures in this report (a line says when a side is missing).
    pub fn targets(&self) -> Vec<String> {
        let mut out = vec![];
        // The peers train in f32: mixed-precision rows are shown, not held to these ratios.
        let ours = |cpu: bool| self.training.iter().filter(move |r| on_cpu(&r.device) == cpu && !r.engine.contains("mixed f16"));
        let peer_train = |seq: usize, cpu: bool, round: usize| self.peers.training.iter().find(|p| p.seq == seq && p.round == round && on_cpu(&p.device) == cpu && p.engine.starts_with("PyTorch"));
        for r in ours(true).filter(|r| r.round == 0) {
            // Each round's ratio pairs the two sides measured next to each other.
            let ratios: Vec<f64> = ours(true).filter(|o| o.engine == r.engine && o.seq == r.seq).filter_map(|o| peer_train(o.seq, true, o.round).map(|p| o.tokens_per_s / p.tokens_per_s)).collect();
            match ratios.len() {
                0 => out.push(format!("CPU training ({}), sequence {}: no PyTorch CPU figure in this run", r.engine, r.seq)),
                1 => out.push(format!("CPU training ({}), sequence {}: {:.2}× PyTorch eager CPU (target ≥ 1.0)", r.engine, r.seq, ratios[0])),
                n => {
                    let mut sorted = ratios.clone();
                    sorted.sort_by(f64::total_cmp);
                    let each = ratios.iter().map(|x| format!("{x:.2}")).collect::<Vec<_>>().join(", ");
                    out.push(format!("CPU training ({}), sequence {}: median {:.2}× PyTorch eager CPU over {n} rounds ({each}) (target ≥ 1.0)", r.engine, r.seq, sorted[n / 2]));
                }
            }
        }
        for r in ours(false) {
            match peer_train(r.seq, false, r.round) {
                Some(p) => out.push(format!("GPU training ({}), sequence {}: {:.2}× PyTorch eager CUDA (target ≥ 0.5)", r.engine, r.seq, r.tokens_per_s / p.tokens_per_s)),
                None => out.push(format!("GPU training ({}), sequence {}: no PyTorch CUDA figure in this run", r.engine, r.seq)),
            }
        }
        let llama1 = self.peers.generation.iter().find(|p| p.engine.starts_with("llama.cpp") && p.batch == 1);
        // One line per engine (f32 panels, and f16 ones under `--f16`), each named.
        let mut engines: Vec<&str> = vec![];
        for r in self.generation.iter().filter(|r| on_cpu(&r.device) && r.batch <= 16 && r.engine != WITHOUT_KERNELS) {
            if !engines.contains(&r.engine.as_str()) {
                engines.push(&r.engine);
            }
        }
        for engine in engines {
            let Some(r) = self.generation.iter().filter(|r| on_cpu(&r.device) && r.batch <= 16 && r.engine == engine).max_by_key(|r| r.batch) else { continue };
            match llama1 {
                Some(l) => out.push(format!("CPU batch-{} decode ({engine}): {:.2}× llama.cpp batch-1 decode (target ≥ 1.5 at batch 16)", r.batch, r.decode_tok_s / l.decode_tok_s)),
                None => {
                    out.push("CPU decode vs llama.cpp: no llama.cpp figure in this run".into());
                    break;
                }
            }
        }
        if let Some(best) = self.generation.iter().filter(|r| !on_cpu(&r.device)).max_by(|a, b| a.decode_tok_s.total_cmp(&b.decode_tok_s)) {
            out.push(format!("GPU batched decode: {} tok/s at batch {} ({}) (target ≥ 2,000)", fmt(best.decode_tok_s), best.batch, best.engine));
        }
        for g in &self.grpo {
            let total = g.seconds_generation + g.seconds_reward + g.seconds_forward_backward + g.seconds_optimizer;
            out.push(format!("GRPO step on {}: generation {:.0} % of the step (target < 60 %)", g.device, 100.0 * g.seconds_generation / total.max(1e-9)));
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(engine: &str, device: &str, seq: usize, tokens_per_s: f64, round: usize) -> TrainRow {
        TrainRow { engine: engine.into(), device: device.into(), seq, seconds_step: seq as f64 / tokens_per_s, tokens_per_s, peak_mb: None, round }
    }

    #[test]
    fn cpu_training_ratios_pair_each_round_with_its_own_peer_row_and_report_the_median() {
        let (ours, torch) = ("memtrain", "PyTorch 2.15 eager");
        let report = SuiteReport {
            date: String::new(),
            machine: String::new(),
            model: String::new(),
            prompt_tokens: 0,
            decode_tokens: 0,
            generation: vec![],
            // Round 1's step is slow on both sides (a busy minute): paired, the ratio stays 1.0.
            training: vec![row(ours, "flex CPU", 512, 200.0, 0), row(ours, "flex CPU", 512, 50.0, 1), row(ours, "flex CPU", 512, 150.0, 2), row(ours, "flex CPU", 2048, 100.0, 0)],
            grpo: vec![],
            peers: PeerReport {
                generation: vec![],
                training: vec![row(torch, "CPU, 2 threads", 512, 100.0, 0), row(torch, "CPU, 2 threads", 512, 50.0, 1), row(torch, "CPU, 2 threads", 512, 100.0, 2), row(torch, "CPU, 2 threads", 2048, 80.0, 0)],
                absent: vec![],
            },
        };
        let lines = report.targets();
        assert!(lines.contains(&"CPU training (memtrain), sequence 512: median 1.50× PyTorch eager CPU over 3 rounds (2.00, 1.00, 1.50) (target ≥ 1.0)".to_string()), "{lines:#?}");
        assert!(lines.contains(&"CPU training (memtrain), sequence 2048: 1.25× PyTorch eager CPU (target ≥ 1.0)".to_string()), "{lines:#?}");
        assert_eq!(lines.iter().filter(|l| l.starts_with("CPU training")).count(), 2, "one line per sequence, not per round: {lines:#?}");
        let md = report.markdown();
        assert!(md.contains("| memtrain | flex CPU | 512 | 3 |"), "{md}");
    }
}
