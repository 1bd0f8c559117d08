//! Throughput of the exercise builder on synthetic plain text.
//!
//! Serves `memtrain bench exercises`: writes at least `megabytes` MB of synthetic `.txt`
//! documents (about 1 MB each) to a scratch folder, then times [`super::dataset::build`] over
//! them on one thread and reports input MB/s and the process's peak resident memory during
//! the build (Linux: `VmHWM`, reset first through `/proc/self/clear_refs`).

use super::curriculum::Preset;
use super::dataset::{self, DatasetOptions};
use super::synth;
use anyhow::{Context, Result};
use std::path::PathBuf;
use std::time::Instant;

#[derive(Clone, Debug)]
pub struct BenchOptions {
    pub megabytes: usize,
    pub preset: Preset,
    pub seed: u64,
    /// Scratch folder; a fresh one under the system temp folder when `None`.
    pub dir: Option<PathBuf>,
    /// Keep the generated documents and dataset afterwards.
    pub keep: bool,
}

impl Default for BenchOptions {
    fn default() -> Self {
        BenchOptions { megabytes: 100, preset: Preset::Small, seed: 1, dir: None, keep: false }
    }
}

#[derive(Clone, Debug)]
pub struct BenchReport {
    pub preset: Preset,
    pub files: usize,
    pub input_bytes: u64,
    pub output_bytes: u64,
    pub exercises: usize,
    pub generate_seconds: f64,
    pub build_seconds: f64,
    /// Input megabytes (10^6 bytes) per second of build time.
    pub mb_per_s: f64,
    /// Peak resident memory of the process during the build, in MB; `None` off Linux.
    pub peak_rss_mb: Option<f64>,
    /// CPU time of the building thread (Linux schedstat), and input MB per CPU second: the
    /// one-core figure that other processes on the machine cannot distort.
    pub cpu_seconds: Option<f64>,
    pub mb_per_cpu_s: Option<f64>,
}

impl BenchReport {
    pub fn report(&self) -> String {
        format!(
            "exercises bench (preset {}): {} files, {:.1} MB plain text in {:.2} s = {:.1} MB/s on one thread; \
             {} exercises, {:.1} MB written; peak memory {}",
            self.preset.name(),
            self.files,
            self.input_bytes as f64 / 1e6,
            self.build_seconds,
            self.mb_per_s,
            self.exercises,
            self.output_bytes as f64 / 1e6,
            self.peak_rss_mb.map(|m| format!("{m:.0} MB")).unwrap_or_else(|| "n/a".into())
        ) + &self.mb_per_cpu_s.map(|v| format!("; {v:.1} MB per CPU second")).unwrap_or_default()
    }
}

/// Nanoseconds this thread has run on a CPU (first field of schedstat).
fn thread_cpu_ns() -> Option<u64> {
    std::fs::read_to_string("/proc/thread-self/schedstat").ok()?.split_whitespace().next()?.parse().ok()
}

/// Runs the benchmark (see the module docs).
pub fn bench(opts: &BenchOptions) -> Result<BenchReport> {
    let dir = opts.dir.clone().unwrap_or_else(|| std::env::temp_dir().join(format!("memtrain-bench-{}", std::process::id())));
    let docs = dir.join("docs");
    let out = dir.join("out");
    std::fs::create_dir_all(&docs).with_context(|| format!("cannot create {}", docs.display()))?;
    let t0 = Instant::now();
    let target = opts.megabytes as u64 * 1_000_000;
    let mut written = 0u64;
    let mut i = 0u64;
    while written < target {
        // ~170k words ≈ 1 MB per file.
        let doc = synth::generate(opts.seed.wrapping_mul(1_000_003).wrapping_add(i), 170_000);
        let path = docs.join(format!("bench-{i:05}.txt"));
        let body = doc.text();
        std::fs::write(&path, &body).with_context(|| format!("cannot write {}", path.display()))?;
        written += body.len() as u64;
        i += 1;
    }
    let generate_seconds = t0.elapsed().as_secs_f64();
    // Reset the high-water mark so generation does not count (Linux ≥ 4.0; ignored elsewhere).
    crate::bench::memory::reset_peak();
    let mut o = DatasetOptions::new(vec![docs.clone()], out.clone());
    o.preset = opts.preset;
    o.seed = opts.seed;
    let t1 = Instant::now();
    let cpu0 = thread_cpu_ns();
    let summary = dataset::build(&o, &mut |_| true)?;
    let build_seconds = t1.elapsed().as_secs_f64();
    let cpu_seconds = cpu0.zip(thread_cpu_ns()).map(|(a, b)| (b - a) as f64 / 1e9);
    let peak = crate::bench::memory::peak_host_mb();
    let output_bytes = std::fs::metadata(out.join(dataset::EXERCISES_FILE)).map(|m| m.len()).unwrap_or(0);
    if !opts.keep {
        let _ = std::fs::remove_dir_all(&dir);
    }
    Ok(BenchReport {
        preset: opts.preset,
        files: summary.files_read,
        input_bytes: summary.bytes_read,
        output_bytes,
        exercises: summary.exercises,
        generate_seconds,
        build_seconds,
        mb_per_s: summary.bytes_read as f64 / 1e6 / build_seconds.max(1e-9),
        peak_rss_mb: peak,
        cpu_seconds,
        mb_per_cpu_s: cpu_seconds.map(|c| summary.bytes_read as f64 / 1e6 / c.max(1e-9)),
    })
}
