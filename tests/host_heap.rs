#![cfg(all(target_os = "linux", target_env = "gnu"))]
//! The heap keeps freed blocks for reuse ([`memtrain::host_heap`]): a large buffer freed and
//! allocated again is not faulted in page by page a second time. Its own test binary, because
//! the setting is process-wide.

/// Minor page faults of this process so far.
fn minor_faults() -> i64 {
    // SAFETY: getrusage writes into the struct it is given.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    assert_eq!(unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut usage) }, 0);
    usage.ru_minflt
}

/// Page faults taken while a fresh `bytes`-byte buffer is written once.
fn faults_filling(bytes: usize) -> i64 {
    let before = minor_faults();
    let mut buffer = Vec::<u8>::with_capacity(bytes);
    buffer.resize(bytes, 1);
    std::hint::black_box(&buffer);
    minor_faults() - before
}

#[test]
fn a_freed_large_buffer_is_reused_without_page_faults() {
    // 48 MB: above glibc's largest automatic mmap threshold (32 MB), so by default every such
    // buffer is a new mapping, faulted in again page by page (~12,000 faults of 4 KB).
    const BYTES: usize = 48 << 20;
    let pages = (BYTES / 4096) as i64;
    let default_faults = faults_filling(BYTES);
    if default_faults < pages / 2 {
        // Transparent huge pages (`always`) or a malloc tunable in the environment: the default
        // already faults little, and there is nothing to compare.
        eprintln!("skipped: {default_faults} page faults for {pages} pages without the setting");
        return;
    }
    assert!(memtrain::host_heap::keep_freed_memory(), "glibc refused the setting");
    faults_filling(BYTES);
    let reused = faults_filling(BYTES);
    assert!(reused < pages / 10, "a freed buffer should be reused: {reused} page faults for {pages} pages");
}
