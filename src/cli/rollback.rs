//! `hardmatch rollback`: put back the previous onPremisesImmutableId of every user an earlier
//! apply or clear changed, from its journal (best) or its report. The run itself is
//! [`crate::run::rollback`].

use std::path::PathBuf;

use super::apply::WriteArgs;
use super::target::{ReadArgs, TargetArgs};
use crate::exit_code::ExitCode;
use crate::run;

const EXAMPLES: &str = "\
Examples:
  # Undo an apply, from the journal written beside its report:
  hardmatch rollback report.csv.journal -o rollback.csv

  # From the report itself (CSV or JSON), when the journal is gone:
  hardmatch rollback report.csv -o rollback.csv

A user whose ImmutableId changed again since the run is left alone (target-changed-since-plan);
one that already holds its previous value is `restored` with nothing sent (rolling back twice is
quiet). A deleted holder the run purged is gone for good: rollback says so and exits 1.
Undoing an `apply --federated-hop` needs --federated-hop too (users in a federated domain are
`federated-domain` without it). A cleared onPremisesObjectIdentifier is put back from the journal.
Exit codes: 0 every row restored or had nothing to restore, 1 some rows need attention, 2 the
run could not start, 130 interrupted (Ctrl-C, SIGHUP), 143 terminated (SIGTERM).";

/// Put back the previous values recorded by an earlier apply or clear.
#[derive(Debug, clap::Args)]
#[command(after_help = EXAMPLES)]
pub(crate) struct Args {
    /// The journal (REPORT.journal) or the report (.csv or .json) of the run to undo.
    #[arg(value_name = "REPORT|JOURNAL")]
    pub(crate) source: PathBuf,

    /// The rollback's own report; its journal is written beside it.
    #[arg(short, long, value_name = "FILE")]
    pub(crate) output: PathBuf,

    /// For a user in a federated domain, where Graph refuses the write in place: move its UPN
    /// to the initial domain, put the value back, move it home (journaled; without it such
    /// rows are `federated-domain`). Needed to undo an `apply --federated-hop`.
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
    run::rollback::run(
        &run::rollback::Options {
            source: args.source,
            output: args.output,
            federated_hop: args.federated_hop,
            strategy: args.read.strategy,
            write: args.write.settings(),
        },
        &args.target,
    )
}
