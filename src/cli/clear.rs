//! `hardmatch clear`: set onPremisesImmutableId to null on the matched cloud users, for the
//! seeds' soft-match and cloud-only conversions. Synced users are refused with the reason.
//! The run itself is [`crate::run::clear`].

use std::path::PathBuf;

use super::apply::WriteArgs;
use super::input::InputArgs;
use super::target::{ReadArgs, TargetArgs};
use crate::exit_code::ExitCode;
use crate::plan::MatchBy;
use crate::run;

const EXAMPLES: &str = "\
Examples:
  # Clear the ImmutableId of every user in a list (UPN column is enough), after a review:
  hardmatch clear users.csv -o cleared.csv

  # Rehearse on the samples:
  hardmatch clear samples/excel-de.csv --emulate samples/tenant.json --yes -o cleared.csv

  # Undo it: every previous value is in the journal.
  hardmatch rollback cleared.csv.journal -o restored.csv

A row whose export computes an anchor is cleared only when the user holds that anchor
(`target-has-other-anchor` otherwise, unless --overwrite); a user with none is
`nothing-to-clear`. Graph is sent JSON null (not \"\" as the PowerShell SDK does).
A user in a federated domain is `federated-domain` unless --federated-hop moves its UPN to the
initial domain, clears, and moves it home (journaled).
Exit codes: 0 every row cleared or had nothing to clear, 1 some rows need attention, 2 the run
could not start, 130 interrupted (Ctrl-C, SIGHUP), 143 terminated (SIGTERM).";

/// Clear onPremisesImmutableId on the matched cloud users.
#[derive(Debug, clap::Args)]
#[command(after_help = EXAMPLES)]
pub(crate) struct Args {
    #[command(flatten)]
    pub(crate) input: InputArgs,

    /// The report: .csv, .xlsx or .json; the journal is written beside it.
    #[arg(short, long, value_name = "FILE")]
    pub(crate) output: PathBuf,

    /// Find cloud users by UPN (default) or by mail and proxyAddresses.
    #[arg(long = "match", value_enum, default_value = "upn")]
    pub(crate) match_by: MatchBy,

    /// Clear an ImmutableId even when it is not the one the row's anchor computes to (the
    /// old value is recorded for rollback). Rows without an anchor clear whatever is there.
    #[arg(long)]
    pub(crate) overwrite: bool,

    /// For a UPN in a federated domain, where Graph refuses the write in place: move it to the
    /// initial domain, clear, move it back (journaled; without it such rows are
    /// `federated-domain`).
    #[arg(long)]
    pub(crate) federated_hop: bool,

    #[command(flatten)]
    pub(crate) target: TargetArgs,

    #[command(flatten)]
    pub(crate) read: ReadArgs,

    #[command(flatten)]
    pub(crate) write: WriteArgs,
}

pub(crate) fn run(args: Args) -> crate::Result<ExitCode> {
    run::clear::run(
        &run::clear::Options {
            input: args.input.to_input(),
            output: args.output,
            match_by: args.match_by,
            overwrite: args.overwrite,
            federated_hop: args.federated_hop,
            strategy: args.read.strategy,
            write: args.write.settings(),
        },
        &args.target,
    )
}
