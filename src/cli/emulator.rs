//! `hardmatch emulator` (being built).

use std::process::ExitCode;

/// (being built)
#[derive(Debug, clap::Args)]
pub struct Args {}

pub fn run(_args: Args) -> anyhow::Result<ExitCode> {
    anyhow::bail!("not built yet")
}
