//! The command line: one file per subcommand, each with its help text, its examples, its
//! arguments and its `run`. This file only lists them and dispatches.

use std::process::ExitCode;

use clap::{Parser, Subcommand};

pub mod apply;
pub mod clear;
pub mod convert;
pub mod emulator;
pub mod ids;
pub mod input;
pub mod plan;
pub mod rollback;
pub mod snapshot;
pub mod target;
pub mod verify;

/// Hard-match on-premises AD users to Microsoft Entra ID cloud users in bulk.
#[derive(Debug, Parser)]
#[command(name = "hardmatch", version, about, long_about = None)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    Convert(convert::Args),
    Ids(ids::Args),
    Plan(plan::Args),
    Apply(apply::Args),
    Clear(clear::Args),
    Rollback(rollback::Args),
    Snapshot(snapshot::Args),
    Verify(verify::Args),
    Emulator(emulator::Args),
}

/// Runs the chosen command. Per-row problems set the exit code; only what stops the whole
/// command is an error (exit 2).
pub fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    crate::logging::init(cli.command.verbosity());
    match cli.command {
        Command::Convert(args) => convert::run(args),
        Command::Ids(args) => ids::run(args),
        Command::Plan(args) => plan::run(args),
        Command::Apply(args) => apply::run(args),
        Command::Clear(args) => clear::run(args),
        Command::Rollback(args) => rollback::run(args),
        Command::Snapshot(args) => snapshot::run(args),
        Command::Verify(args) => verify::run(args),
        Command::Emulator(args) => emulator::run(args),
    }
}

impl Command {
    /// How many `-v`s the command was given (only commands that talk to Graph take them).
    pub fn verbosity(&self) -> u8 {
        match self {
            Command::Plan(args) => args.target.verbose,
            Command::Apply(args) => args.target.verbose,
            Command::Clear(args) => args.target.verbose,
            Command::Rollback(args) => args.target.verbose,
            Command::Snapshot(args) => args.target.verbose,
            Command::Verify(args) => args.target.verbose,
            Command::Convert(_) | Command::Ids(_) | Command::Emulator(_) => 0,
        }
    }
}
