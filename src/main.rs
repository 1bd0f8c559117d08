fn main() -> std::process::ExitCode {
    // Burn makes a few tensors on its *default* device (an optimizer checkpoint's moments, which
    // the next step moves next to their parameters), and that default is wgpu whenever wgpu is
    // compiled in: resuming a CPU run would open a GPU driver, and panic where there is none.
    // Changing the environment is sound only before any thread exists: here, first thing.
    if std::env::var_os("BURN_DEVICE").is_none() {
        // SAFETY: no other thread exists yet, so nothing reads the environment concurrently.
        unsafe { std::env::set_var("BURN_DEVICE", "flex") };
    }
    // Whether glibc took it shows only in speed: nothing to report.
    memtrain::host_heap::keep_freed_memory();
    // Before anything reads Burn's configuration (see device::configure_fusion).
    memtrain::device::configure_fusion();
    memtrain::cli::run()
}
