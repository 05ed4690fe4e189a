//! The `gradsign` binary: parses the command line and hands over to [`gradsign::cli`].

fn main() -> std::process::ExitCode {
    gradsign::cli::main()
}
