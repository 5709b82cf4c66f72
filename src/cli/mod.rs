//! The command line: one file per subcommand, each with its help text, its examples, its
//! arguments and its `run`. This file only lists them and dispatches.

use clap::{Parser, Subcommand};

use crate::exit_code::ExitCode;

pub(crate) mod apply;
pub(crate) mod clear;
pub(crate) mod convert;
pub mod emulator;
pub(crate) mod ids;
pub(crate) mod input;
pub(crate) mod plan;
pub(crate) mod rehearse;
pub(crate) mod rollback;
pub(crate) mod snapshot;
pub(crate) mod target;
pub(crate) mod verify;

/// Hard-match on-premises AD users to Microsoft Entra ID cloud users in bulk.
#[derive(Debug, Parser)]
#[command(name = "hardmatch", version, about, long_about = None)]
pub struct Cli {
    /// Say what happens on stderr: -v each phase and each Graph request (method, path,
    /// status, request-id, attempts, retry waits); -vv also sign-in steps and throttling
    /// headers. Never a token or a secret. Before or after the command.
    #[arg(short, long, action = clap::ArgAction::Count, global = true)]
    pub(crate) verbose: u8,

    #[command(subcommand)]
    pub(crate) command: Command,
}

#[derive(Debug, Subcommand)]
pub(crate) enum Command {
    Convert(convert::Args),
    Ids(ids::Args),
    Plan(plan::Args),
    Apply(apply::Args),
    Clear(clear::Args),
    Rollback(rollback::Args),
    Snapshot(snapshot::Args),
    Verify(verify::Args),
    Rehearse(rehearse::Args),
    Emulator(emulator::Args),
}

/// Runs the chosen command. Per-row problems set the exit code; only what stops the whole
/// command is an error (exit 2).
pub fn run(cli: Cli) -> crate::Result<ExitCode> {
    crate::logging::init(cli.verbose);
    dispatch(cli.command)
}

/// Runs one command (`rehearse` runs several, one after the other).
fn dispatch(command: Command) -> crate::Result<ExitCode> {
    match command {
        Command::Convert(args) => convert::run(args),
        Command::Ids(args) => ids::run(args),
        Command::Plan(args) => plan::run(args),
        Command::Apply(args) => apply::run(args),
        Command::Clear(args) => clear::run(args),
        Command::Rollback(args) => rollback::run(args),
        Command::Snapshot(args) => snapshot::run(args),
        Command::Verify(args) => verify::run(args),
        Command::Rehearse(args) => rehearse::run(args),
        Command::Emulator(args) => emulator::run(args),
    }
}
