//! The `hardmatch` binary: parse the command line, run the command, map the result to an
//! exit code ([`hardmatch::exit_code`]). Errors are printed here and only here, once.

use clap::Parser;
use hardmatch::exit_code::ExitCode;

/// The reader and compute stages allocate a few small strings per row, millions of times;
/// mimalloc does that several times faster than the system allocator (BENCHMARKS.md).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    let cli = hardmatch::cli::Cli::parse();
    let code = match hardmatch::cli::run(cli) {
        Ok(code) => code,
        // The reader of our output has all it wanted (`| head`): nothing went wrong.
        Err(err) if err.is_broken_pipe() => ExitCode::Success,
        Err(err) => {
            eprintln!("hardmatch: {err}");
            ExitCode::Failure
        }
    };
    code.into()
}
