//! What a benchmark row held in memory: the process's peak resident set (every tensor of the
//! CPU backend lives there), and the GPU allocator's pools (wgpu).
//!
//! Why the pools' *reserved* bytes: CubeCL keeps freed pages for reuse and returns them only on
//! an explicit cleanup, so what a pool has reserved after a step is the most the step needed at
//! once, which is what has to fit on the card (issue 7 item 4: SmolLM2-360M GRPO in 8 GB).

use burn::prelude::*;

/// Resets the process's peak-RSS counter (Linux), so the next reading covers one row only.
pub fn reset_peak() {
    let _ = std::fs::write("/proc/self/clear_refs", "5");
}

/// Peak resident memory since the last [`reset_peak`], in MB (`None` off Linux).
pub fn peak_host_mb() -> Option<f64> {
    crate::train::metrics::proc_status_mb("VmHWM").map(f64::from)
}

/// The device allocator's (bytes in use, bytes reserved) in MB; `None` on a backend that keeps
/// no pools of its own (the CPU backend allocates from the process heap: see [`peak_host_mb`]).
pub fn device_pools_mb(device: &Device) -> Option<(f64, f64)> {
    let usage = device.memory_pool_usage()?;
    let mb = |b: u64| b as f64 / (1024.0 * 1024.0);
    Some((mb(usage.bytes_in_use), mb(usage.bytes_reserved)))
}
