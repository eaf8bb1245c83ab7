//! The `portcullis` binary: everything lives in the library.

fn main() -> std::process::ExitCode {
    portcullis::cli::main()
}
