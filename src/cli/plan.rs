//! `hardmatch plan`: the dry run a change board approves. Never writes to the tenant.
//! The run itself is [`crate::run::plan`].

use std::path::PathBuf;

use super::input::InputArgs;
use super::target::{ReadArgs, TargetArgs};
use crate::exit_code::ExitCode;
use crate::plan::{MatchBy, Mode, Permissions, PlanOptions};
use crate::run;

const EXAMPLES: &str = "\
Examples:
  # Plan against the live tenant (read-only), signed in with the Azure CLI; the change
  # board sets `approved` to no on rows to hold back, then `hardmatch apply plan.xlsx`:
  hardmatch plan users.csv -o plan.xlsx

  # Plan offline against a snapshot taken earlier with `hardmatch snapshot -o tenant.json`
  # (the summary states its age; older than a day, or --max-snapshot-age, it warns):
  hardmatch plan users.csv --snapshot tenant.json -o plan.xlsx

  # Rehearse against an emulated copy of the sample tenant:
  hardmatch plan samples/getaduser-ps51.csv --emulate samples/tenant.json -o plan.csv

  # A domain move: on-premises UPNs end in contoso.local, cloud UPNs in contoso.com:
  hardmatch plan users.csv --snapshot tenant.json --upn-suffix contoso.local=contoso.com -o plan.csv

  # Find cloud users by mail or proxyAddresses instead of UPN, and keep a JSON plan for apply:
  hardmatch plan users.ldf --snapshot tenant.json --match mail -o plan.json

  # Also list the enabled cloud-only users this wave does not cover:
  hardmatch plan users.csv --snapshot tenant.json -o plan.xlsx --uncovered forgotten.csv

  # Watch each Graph request (-vv adds sign-in steps and throttling headers; never a secret):
  hardmatch plan users.csv -o plan.xlsx -v

Exit codes: 0 every row can be stamped or needs nothing, 1 some rows need attention,
2 the plan could not be made.";

/// Predict what apply would do to every row, without writing anything.
#[derive(Debug, clap::Args)]
#[command(after_help = EXAMPLES)]
pub(crate) struct Args {
    #[command(flatten)]
    pub(crate) input: InputArgs,

    /// Plan offline against a tenant file written by `hardmatch snapshot`.
    #[arg(long, value_name = "FILE", conflicts_with = "emulate")]
    pub(crate) snapshot: Option<PathBuf>,

    /// Warn when the --snapshot file was read longer ago than this (e.g. 12h, 2days).
    #[arg(long, value_name = "AGE", default_value = "1day", value_parser = humantime::parse_duration)]
    pub(crate) max_snapshot_age: std::time::Duration,

    #[command(flatten)]
    pub(crate) target: TargetArgs,

    #[command(flatten)]
    pub(crate) read: ReadArgs,

    /// The report: .csv, .xlsx or .json by extension; `-` for CSV on stdout.
    #[arg(short, long, value_name = "FILE")]
    pub(crate) output: PathBuf,

    #[command(flatten)]
    pub(crate) plan: PlanArgs,

    /// Start the CSV with a UTF-8 byte-order mark, so Excel reads accents right.
    #[arg(long)]
    pub(crate) excel: bool,

    /// Also list the tenant's enabled cloud-only users that no row targets (the accounts
    /// this wave forgot) in FILE, as CSV. Reads every user (a bulk listing).
    #[arg(long, value_name = "FILE")]
    pub(crate) uncovered: Option<PathBuf>,
}

/// How rows are matched and which destructive steps a plan may include.
#[derive(Debug, Clone, clap::Args)]
pub(crate) struct PlanArgs {
    /// Find cloud users by UPN (default) or by mail and proxyAddresses.
    #[arg(long = "match", value_enum, default_value = "upn")]
    pub(crate) match_by: MatchBy,

    /// Replace an ImmutableId the target already holds (the old value is recorded).
    #[arg(long)]
    pub(crate) overwrite: bool,

    /// Permanently delete a recycle-bin user that holds the anchor, then stamp.
    #[arg(long)]
    pub(crate) purge_deleted_holders: bool,

    /// For a UPN in a federated domain: move it to the initial domain, stamp, move it back.
    #[arg(long)]
    pub(crate) federated_hop: bool,

    /// Plan a guest or external member as if it were a member, instead of `target-guest`
    /// (Entra does not match external users: convert them first where you can).
    #[arg(long)]
    pub(crate) allow_guests: bool,

    /// For a target linked to another on-premises object (`target-linked-elsewhere`): clear
    /// its onPremisesObjectIdentifier (beta; journaled, undone by rollback), then stamp.
    #[arg(long)]
    pub(crate) clear_object_identifier: bool,
}

impl PlanArgs {
    /// The options given that change what a write run writes, as typed (for its journal).
    pub(crate) fn written_flags(&self) -> Vec<String> {
        [
            (self.match_by == MatchBy::Mail, "--match mail"),
            (self.overwrite, "--overwrite"),
            (self.purge_deleted_holders, "--purge-deleted-holders"),
            (self.federated_hop, "--federated-hop"),
            (self.clear_object_identifier, "--clear-object-identifier"),
        ]
        .into_iter()
        .filter(|(given, _)| *given)
        .map(|(_, flag)| flag.to_string())
        .collect()
    }

    pub(crate) fn options(&self, mode: Mode) -> PlanOptions {
        PlanOptions {
            match_by: self.match_by,
            mode,
            allow: Permissions {
                overwrite: self.overwrite,
                purge_deleted_holders: self.purge_deleted_holders,
                federated_hop: self.federated_hop,
                allow_guests: self.allow_guests,
                clear_object_identifier: self.clear_object_identifier,
            },
        }
    }
}

pub(crate) fn run(args: Args) -> crate::Result<ExitCode> {
    run::plan::run(
        &run::plan::Options {
            input: args.input.to_input(),
            snapshot: args.snapshot,
            max_snapshot_age: args.max_snapshot_age,
            strategy: args.read.strategy,
            output: args.output,
            plan: args.plan.options(Mode::Stamp),
            excel: args.excel,
            uncovered: args.uncovered,
        },
        &args.target,
    )
}
