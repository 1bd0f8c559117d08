fn main() -> std::process::ExitCode {
    memtrain::cli::run()
}
