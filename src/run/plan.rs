//! `plan`'s run, and the planning every command that plans shares: the export read and
//! computed, the tenant read (live or from a snapshot), `--source-anchor` settled, one typed
//! [`PlannedRow`] per input row (`plan` writes them out as its plan file). Never writes to the
//! tenant.

use std::path::PathBuf;

use super::connection::Connect;
use super::stages::{self, Prepared};
use super::{Input, Notes};
use crate::compute::ComputeOptions;
use crate::exit_code::ExitCode;
use crate::graph::read::{ReadStrategy, Wanted};
use crate::outcome::Outcome;
use crate::plan::{Mode, PlanOptions};
use crate::plan_file;
use crate::planned::{self, PlannedRow};
use crate::report::{self, Record};
use crate::source_anchor;
use crate::tenant::Tenant;

/// What `plan` was asked to do.
pub(crate) struct Options {
    pub(crate) input: Input,
    /// Plan offline against this tenant file.
    pub(crate) snapshot: Option<PathBuf>,
    /// Warn when the snapshot was read longer ago than this.
    pub(crate) max_snapshot_age: std::time::Duration,
    pub(crate) strategy: ReadStrategy,
    /// The report.
    pub(crate) output: PathBuf,
    pub(crate) plan: PlanOptions,
    /// Start a CSV report with a UTF-8 byte-order mark.
    pub(crate) excel: bool,
    /// Where to list the enabled cloud-only users no row targets.
    pub(crate) uncovered: Option<PathBuf>,
}

/// The tenant a plan is made against: the tenant, how it was read, and the summary's notes
/// on that read (its cost, or the snapshot's age).
type PlanTenant = (Tenant, String, Notes);

pub(crate) fn run(args: &Options, target: &impl Connect) -> crate::Result<ExitCode> {
    let started = chrono::Utc::now();
    let mut reads = vec![args.input.path.as_path()];
    reads.extend(args.snapshot.as_deref());
    reads.extend(target.files());
    report::check_output(&args.output, report::REPORT_FORMATS, &reads)?;
    if let Some(path) = &args.uncovered {
        report::check_uncovered(path, &args.output, &reads)?;
    }
    let source = args.input.open()?;
    let mut prepared = stages::prepare(&source, &args.input.compute)?;
    let (tenant, read_note, usage) = match &args.snapshot {
        Some(path) => from_snapshot(path, started, args.max_snapshot_age)?,
        None => {
            let wanted = prepared.wanted(args.plan.match_by, Mode::Stamp);
            let strategy = match args.uncovered {
                Some(_) => ReadStrategy::Bulk,
                None => args.strategy,
            };
            super::runtime()?.block_on(read_live(target, &wanted, strategy))?
        }
    };
    let (rows, sync_notes) =
        plan_for_sync(&mut prepared, &tenant, &args.plan, &args.input.compute)?;
    let mut records = planned::records(&rows);
    let summary = super::summary(
        tenant.tenant_id.clone(),
        started,
        [("tenant read".to_string(), read_note.clone())]
            .into_iter()
            .chain(usage)
            .chain([tenant.takeover_note()])
            .chain(sync_notes.clone())
            .collect(),
    );
    let planned = plan_file::Planned {
        input: &args.input.path,
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

/// A tenant file written by `hardmatch snapshot`, with its age (a warning when stale).
fn from_snapshot(
    path: &std::path::Path,
    started: chrono::DateTime<chrono::Utc>,
    max_age: std::time::Duration,
) -> crate::Result<PlanTenant> {
    let tenant = Tenant::load(path)?;
    let age = tenant.age_note(started, max_age);
    if age.stale {
        eprintln!("WARNING: snapshot {}: {}", path.display(), age.text);
    }
    let label = if age.stale {
        "WARNING: snapshot age"
    } else {
        "snapshot age"
    };
    let age_note = (label.to_string(), age.text);
    Ok((
        tenant,
        format!("offline, from {}", path.display()),
        vec![age_note],
    ))
}

/// Reads the tenant through Graph (read-only) and says how, and at what cost, for the summary.
async fn read_live(
    target: &impl Connect,
    wanted: &Wanted,
    strategy: ReadStrategy,
) -> crate::Result<PlanTenant> {
    let connection = target.connect().await?;
    let read = stages::read_tenant(&connection.client, wanted, strategy).await?;
    let usage = connection.client.usage_notes();
    connection.close().await;
    Ok((read.tenant, format!("live, {}", read.how), usage))
}

/// The plan of every row for a stamping run, once `--source-anchor` is settled against the
/// tenant, and the summary's lines on what the next sync cycle was checked against (the
/// source anchor and its evidence, the privileged roles).
pub(crate) fn plan_for_sync(
    prepared: &mut Prepared,
    tenant: &Tenant,
    options: &PlanOptions,
    compute: &ComputeOptions,
) -> crate::Result<(Vec<PlannedRow>, Notes)> {
    let choice = source_anchor::settle(prepared, tenant, options.match_by, compute)?;
    let mut rows = prepared.plan(tenant, options);
    source_anchor::mark_unsettled(&mut rows, prepared, &choice);
    let stamped = rows
        .iter()
        .filter(|r| r.verdict.outcome == Outcome::WouldStamp)
        .filter_map(|r| r.target.as_ref().map(|t| t.id.as_str()));
    let guarded = tenant.guarded_targets_note(stamped);
    let notes = [("source anchor".to_string(), choice.note)]
        .into_iter()
        .chain(tenant.sync_check_notes())
        .chain(guarded)
        .collect();
    Ok((rows, notes))
}

/// 0 when every row succeeded or needs nothing, 1 when any row needs attention.
pub fn exit_code(records: &[Record]) -> ExitCode {
    ExitCode::for_rows(
        records
            .iter()
            .all(|r| r.outcome.is_some_and(|o| o.is_success())),
    )
}
