//! The `hardmatch` binary: parse the command line, run the command, map the result to an
//! exit code (0 all rows fine, 1 some rows need attention, 2 the run could not start,
//! 130 interrupted).

use std::process::ExitCode;

use clap::Parser;

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
