//! The throughput benchmark behind `memtrain bench exercises`. The quick test checks that the
//! harness measures something real; the full ≥ 100 MB run is `--ignored` (about 10 s on one
//! core): `cargo test --release --test exercises_bench -- --ignored --nocapture`.

use memtrain::exercises::Preset;
use memtrain::exercises::bench::{BenchOptions, bench};

#[test]
fn the_harness_reports_throughput_memory_and_output() {
    let r = bench(&BenchOptions { megabytes: 3, preset: Preset::Small, seed: 2, dir: None, keep: false }).unwrap();
    eprintln!("{}", r.report());
    assert!(r.input_bytes >= 3_000_000);
    assert!(r.files >= 3 && r.exercises > 500);
    assert!(r.output_bytes > r.input_bytes, "every line repeats its chunks");
    assert!(r.mb_per_s > 0.5, "{} MB/s", r.mb_per_s);
    if cfg!(target_os = "linux") {
        assert!(r.peak_rss_mb.is_some_and(|m| m > 1.0 && m < 500.0), "{:?}", r.peak_rss_mb);
    }
}

/// The target: ≥ 20 MB/s of plain text on one core with bounded memory, on ≥ 100 MB.
#[test]
#[ignore]
fn hundred_megabytes_at_twenty_megabytes_per_second_in_bounded_memory() {
    let r = bench(&BenchOptions { megabytes: 100, ..Default::default() }).unwrap();
    eprintln!("{}", r.report());
    assert!(r.mb_per_s >= 20.0, "{:.1} MB/s", r.mb_per_s);
    // Streaming: memory stays far below the input size.
    assert!(r.peak_rss_mb.is_none_or(|m| m < 200.0), "{:?}", r.peak_rss_mb);
}
