fn main() -> std::process::ExitCode {
    vmbench::cli::main()
}
