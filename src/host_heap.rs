//! How the process heap treats the CPU backend's large, short-lived buffers.
//!
//! Why: every op of a CPU forward or backward allocates its output (tens of MB for a prefill
//! of a few thousand tokens), and glibc serves blocks of more than a few MB with a fresh
//! `mmap`, then unmaps them when freed; the next op's buffer is faulted in and zeroed page by
//! page again. A prefill of 32 prompts × 293 tokens of SmolLM2-135M ran at 851–868 tok/s that
//! way and at 1,437–1,478 tok/s with freed blocks kept for reuse (README, Performance). The
//! price: memory freed after a peak stays with the process until it exits, instead of going
//! back to the system.

/// Keeps freed heap memory in the process for reuse: large blocks come from the heap rather
/// than from their own mappings, and the heap's top is not given back. The binary calls it
/// first thing. No effect off glibc.
pub fn keep_freed_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        // 1 GiB: above the buffers of the models this app trains (glibc 2.36 accepts it).
        const LIMIT: libc::c_int = 1 << 30;
        // SAFETY: mallopt only changes the allocator's parameters, under the allocator's own lock.
        unsafe {
            libc::mallopt(libc::M_MMAP_THRESHOLD, LIMIT);
            libc::mallopt(libc::M_TRIM_THRESHOLD, LIMIT);
        }
    }
}
