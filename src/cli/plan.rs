//! `hardmatch plan`: the dry run a change board approves. Never writes to the tenant.

use std::path::PathBuf;

use super::input::InputArgs;
use super::target::{self, ReadArgs, TargetArgs};
use crate::compute::ComputeOptions;
use crate::exit_code::ExitCode;
use crate::graph::read::{ReadStrategy, Wanted};
use crate::pipeline::{self, Prepared};
use crate::plan::{MatchBy, Mode, Permissions, PlanOptions};
use crate::plan_file;
use crate::report::{self, Record, Summary};
use crate::source_anchor;
use crate::tenant::Tenant;

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
pub struct Args {
    #[command(flatten)]
    pub input: InputArgs,

    /// Plan offline against a tenant file written by `hardmatch snapshot`.
    #[arg(long, value_name = "FILE", conflicts_with = "emulate")]
    pub snapshot: Option<PathBuf>,

    /// Warn when the --snapshot file was read longer ago than this (e.g. 12h, 2days).
    #[arg(long, value_name = "AGE", default_value = "1day", value_parser = humantime::parse_duration)]
    pub max_snapshot_age: std::time::Duration,

    #[command(flatten)]
    pub target: TargetArgs,

    #[command(flatten)]
    pub read: ReadArgs,

    /// The report: .csv, .xlsx or .json by extension; `-` for CSV on stdout.
    #[arg(short, long, value_name = "FILE")]
    pub output: PathBuf,

    #[command(flatten)]
    pub plan: PlanArgs,

    /// Start the CSV with a UTF-8 byte-order mark, so Excel reads accents right.
    #[arg(long)]
    pub excel: bool,

    /// Also list the tenant's enabled cloud-only users that no row targets (the accounts
    /// this wave forgot) in FILE, as CSV. Reads every user (a bulk listing).
    #[arg(long, value_name = "FILE")]
    pub uncovered: Option<PathBuf>,
}

/// How rows are matched and which destructive steps a plan may include.
#[derive(Debug, Clone, clap::Args)]
pub struct PlanArgs {
    /// Find cloud users by UPN (default) or by mail and proxyAddresses.
    #[arg(long = "match", value_enum, default_value = "upn")]
    pub match_by: MatchBy,

    /// Replace an ImmutableId the target already holds (the old value is recorded).
    #[arg(long)]
    pub overwrite: bool,

    /// Permanently delete a recycle-bin user that holds the anchor, then stamp.
    #[arg(long)]
    pub purge_deleted_holders: bool,

    /// For a UPN in a federated domain: move it to the initial domain, stamp, move it back.
    #[arg(long)]
    pub federated_hop: bool,

    /// Plan a guest or external member as if it were a member, instead of `target-guest`
    /// (Entra does not match external users: convert them first where you can).
    #[arg(long)]
    pub allow_guests: bool,

    /// For a target linked to another on-premises object (`target-linked-elsewhere`): clear
    /// its onPremisesObjectIdentifier (beta; journaled, undone by rollback), then stamp.
    #[arg(long)]
    pub clear_object_identifier: bool,
}

impl PlanArgs {
    /// The options given that change what a write run writes, as typed (for its journal).
    pub fn written_flags(&self) -> Vec<String> {
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

    pub fn options(&self, mode: Mode) -> PlanOptions {
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

pub fn run(args: Args) -> crate::Result<ExitCode> {
    let started = chrono::Utc::now();
    report::check_output(&args.output, report::REPORT_FORMATS)?;
    if let Some(path) = &args.uncovered {
        report::check_output(path, report::UNCOVERED_FORMATS)?;
    }
    let source = args.input.open()?;
    let mut prepared = pipeline::prepare(&source, &args.input.compute_options())?;
    let (tenant, read_note, usage) = match &args.snapshot {
        Some(path) => {
            let tenant = Tenant::load(path)?;
            let age = tenant.age_note(started, args.max_snapshot_age);
            if age.stale {
                eprintln!("WARNING: snapshot {}: {}", path.display(), age.text);
            }
            let label = if age.stale {
                "WARNING: snapshot age"
            } else {
                "snapshot age"
            };
            let age_note = (label.to_string(), age.text);
            (
                tenant,
                format!("offline, from {}", path.display()),
                vec![age_note],
            )
        }
        None => {
            let wanted = prepared.wanted(args.plan.match_by, Mode::Stamp);
            let strategy = match args.uncovered {
                Some(_) => ReadStrategy::Bulk,
                None => args.read.strategy,
            };
            target::runtime()?.block_on(read_live(&args.target, &wanted, strategy))?
        }
    };
    let (mut records, sync_notes) = plan_for_sync(
        &mut prepared,
        &tenant,
        &args.plan.options(Mode::Stamp),
        &args.input.compute_options(),
    )?;
    let summary = Summary {
        command_line: report::redact_args(std::env::args()),
        tenant: tenant.tenant_id.clone(),
        started: started.to_rfc3339(),
        finished: chrono::Utc::now().to_rfc3339(),
        version: env!("CARGO_PKG_VERSION").to_string(),
        notes: [("tenant read".to_string(), read_note.clone())]
            .into_iter()
            .chain(usage)
            .chain([tenant.takeover_note()])
            .chain(sync_notes.clone())
            .collect(),
    };
    let planned = plan_file::Planned {
        input: &args.input.input,
        tenant: &tenant,
        at: started,
    };
    plan_file::write(&args.output, &mut records, &summary, planned, args.excel)?;
    if let Some(path) = &args.uncovered {
        report::write_uncovered_of(path, &tenant, &records)?;
    }
    eprintln!("tenant read: {read_note}");
    for (name, note) in &sync_notes {
        eprintln!("{name}: {note}");
    }
    if let Some(warning) = tenant.takeover_warning() {
        eprintln!("WARNING: {warning}");
    }
    eprint!("{}", report::outcome_table(&records));
    Ok(exit_code(&records))
}

/// Reads the tenant through Graph (read-only) and says how, and at what cost, for the summary.
async fn read_live(
    target: &TargetArgs,
    wanted: &Wanted,
    strategy: ReadStrategy,
) -> crate::Result<(Tenant, String, Vec<(String, String)>)> {
    let connection = target.connect().await?;
    let read = pipeline::read_tenant(&connection.client, wanted, strategy).await?;
    let usage = connection.client.usage_notes();
    connection.close().await;
    Ok((read.tenant, format!("live, {}", read.how), usage))
}

/// Lines of a report's summary: (what, what about it).
pub type Notes = Vec<(String, String)>;

/// The planned record of every row for a stamping run, once `--source-anchor` is settled
/// against the tenant, and the summary's lines on what the next sync cycle was checked
/// against (the source anchor and its evidence, the privileged roles).
pub fn plan_for_sync(
    prepared: &mut Prepared,
    tenant: &Tenant,
    options: &PlanOptions,
    compute: &ComputeOptions,
) -> crate::Result<(Vec<Record>, Notes)> {
    let choice = source_anchor::settle(prepared, tenant, options.match_by, compute)?;
    let mut records = plan_records(prepared, tenant, options);
    source_anchor::mark_unsettled(&mut records, prepared, &choice);
    let notes = [("source anchor".to_string(), choice.note)]
        .into_iter()
        .chain(tenant.sync_check_notes())
        .collect();
    Ok((records, notes))
}

/// The planned record of every row, in input order.
pub fn plan_records(prepared: &Prepared, tenant: &Tenant, options: &PlanOptions) -> Vec<Record> {
    let mut records = prepared.records();
    for (record, decision) in records.iter_mut().zip(prepared.decide(tenant, options)) {
        if let Some(decision) = decision {
            pipeline::apply_decision(record, &decision);
        }
    }
    records
}

/// 0 when every row succeeded or needs nothing, 1 when any row needs attention.
pub fn exit_code(records: &[Record]) -> ExitCode {
    ExitCode::for_rows(
        records
            .iter()
            .all(|r| r.outcome.is_some_and(|o| o.is_success())),
    )
}
