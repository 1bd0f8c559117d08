fn main() -> std::process::ExitCode {
    // Before anything reads Burn's configuration (see device::configure_fusion).
    memtrain::device::configure_fusion();
    memtrain::cli::run()
}
