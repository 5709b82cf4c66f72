//! `hardmatch verify`: after the sync cycle, what happened to each row of an earlier apply:
//! matched, still awaiting sync, blocked by sync, a duplicate created, or worse. Read-only.
//! The run itself is [`crate::run::verify`].

use std::path::PathBuf;
use std::time::Duration;

use super::target::{ReadArgs, TargetArgs};
use crate::exit_code::ExitCode;
use crate::run;

const EXAMPLES: &str = "\
Examples:
  # After the next sync cycle, check every row of an apply (its report or its journal):
  hardmatch verify report.csv -o verified.xlsx

  # Wait for the cycle: check every 5 minutes (--interval) for up to 2 hours, until no row
  # is still awaiting sync:
  hardmatch verify report.csv -o verified.csv --wait 2h

  # And the enabled cloud-only users no row targeted (the accounts the migration forgot):
  hardmatch verify report.csv -o verified.csv --uncovered forgotten.csv

  # Offline, against a snapshot taken after the cycle:
  hardmatch verify report.json --snapshot after-sync.json -o verified.csv

Outcomes: matched (synced, same object, the anchor as stamped), awaiting-sync (no cycle yet,
or out of sync scope), match-blocked (a sync error on the user, e.g. the 2026 hard-match
hardening), duplicate-created (another synced user holds the anchor), anchor-changed,
target-gone, not-stamped (the run did not stamp the row; its outcome is in `detail`).
Exit codes: 0 every stamped row matched, 1 some rows need attention, 2 verify could not run.";

/// Check what the sync cycle did with each row of an earlier apply (read-only).
#[derive(Debug, clap::Args)]
#[command(after_help = EXAMPLES)]
pub(crate) struct Args {
    /// The apply's report (.csv, .xlsx or .json) or its journal (REPORT.journal).
    #[arg(value_name = "REPORT|JOURNAL")]
    pub(crate) report: PathBuf,

    /// The verify report: .csv, .xlsx or .json by extension; `-` for CSV on stdout.
    #[arg(short, long, value_name = "FILE")]
    pub(crate) output: PathBuf,

    /// Verify offline against a tenant file written by `hardmatch snapshot` after the cycle.
    #[arg(long, value_name = "FILE", conflicts_with_all = ["emulate", "wait"])]
    pub(crate) snapshot: Option<PathBuf>,

    #[command(flatten)]
    pub(crate) target: TargetArgs,

    #[command(flatten)]
    pub(crate) read: ReadArgs,

    /// Keep checking until no row is awaiting sync, for at most this long (e.g. 90m, 2h).
    #[arg(long, value_name = "DURATION", value_parser = humantime::parse_duration)]
    pub(crate) wait: Option<Duration>,

    /// With --wait: how long between two checks.
    #[arg(long, value_name = "DURATION", default_value = "5m", value_parser = humantime::parse_duration)]
    pub(crate) interval: Duration,

    /// Start a CSV report with a UTF-8 byte-order mark, so Excel reads accents right.
    #[arg(long)]
    pub(crate) excel: bool,

    /// Also list the tenant's enabled cloud-only users that no row targets in FILE, as CSV:
    /// after the cycle, the accounts the migration forgot. Reads every user.
    #[arg(long, value_name = "FILE")]
    pub(crate) uncovered: Option<PathBuf>,
}

pub(crate) fn run(args: Args) -> crate::Result<ExitCode> {
    run::verify::run(
        &run::verify::Options {
            report: args.report,
            output: args.output,
            snapshot: args.snapshot,
            strategy: args.read.strategy,
            wait: args.wait,
            interval: args.interval,
            excel: args.excel,
            uncovered: args.uncovered,
        },
        &args.target,
    )
}
