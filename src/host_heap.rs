//! How the process heap treats the CPU backend's large, short-lived buffers.
//!
//! Why: every op of a CPU forward or backward allocates its output (57 MB for one activation
//! of a 32 × 293-token prefill of SmolLM2-135M), and glibc serves every block above its mmap
//! threshold (which it raises by itself, but never above 32 MB) with a fresh mapping, then
//! unmaps it when freed: the next op's buffer is faulted in and zeroed page by page again. A
//! prefill of 32 prompts × 293 tokens ran at 934–939 tok/s that way and at 1,369–1,405 tok/s
//! with freed blocks kept for reuse (README, Performance). The price: memory freed after a peak
//! stays with the process until it exits, instead of going back to the system.
//!
//! Limit: threads other than the main one allocate from arenas of at most 64 MB each, so a
//! block larger than that, allocated on one of rayon's workers, is still mapped afresh.

/// Keeps freed heap memory in the process for reuse: large blocks come from the heap rather
/// than from their own mappings, and the heap's top is not given back. The binary calls it
/// first thing. Returns whether the allocator took the setting (glibc on Linux; older glibc
/// refuses an mmap threshold this high, and then nothing is changed).
pub fn keep_freed_memory() -> bool {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        // 1 GiB: above any one buffer the main thread allocates for the models this app
        // trains (glibc 2.36 accepts it).
        const LIMIT: libc::c_int = 1 << 30;
        // SAFETY: mallopt only changes the allocator's parameters, under the allocator's own lock.
        // The trim threshold only with the mmap one: alone, it would turn off glibc's own
        // raising of the mmap threshold and leave it at 128 KB, worse than the default.
        unsafe { libc::mallopt(libc::M_MMAP_THRESHOLD, LIMIT) == 1 && libc::mallopt(libc::M_TRIM_THRESHOLD, LIMIT) == 1 }
    }
    #[cfg(not(all(target_os = "linux", target_env = "gnu")))]
    false
}
