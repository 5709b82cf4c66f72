//! The `hardmatch` binary: parse the command line, run the command, map the result to an
//! exit code (0 all rows fine, 1 some rows need attention, 2 the run could not start,
//! 130 interrupted).

use std::process::ExitCode;

use clap::Parser;

/// The reader and compute stages allocate a few small strings per row, millions of times;
/// mimalloc does that several times faster than the system allocator (BENCHMARKS.md).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    let cli = hardmatch::cli::Cli::parse();
    match hardmatch::cli::run(cli) {
        Ok(code) => code,
        Err(err) => {
            eprintln!("hardmatch: {err:#}");
            ExitCode::from(2)
        }
    }
}
