//! `apply`'s run: plan (from the export, or a reviewed plan file re-checked for drift), then
//! stamp every approved row through [`WriteRun`].

use std::path::{Path, PathBuf};

use super::connection::{Connect, Connection};
use super::plan::plan_for_sync;
use super::stages::{self, read_tenant};
use super::write::{Settings, WriteRun};
use super::Input;
use crate::exit_code::ExitCode;
use crate::graph::read::{ReadStrategy, TenantRead, Wanted};
use crate::outcome::Outcome;
use crate::plan::{Mode, PlanOptions};
use crate::report::{self, Record};
use crate::resume::{self, RunIdentity};
use crate::tenant::Tenant;

/// What `apply` was asked to do.
pub(crate) struct Options {
    /// The export, or a plan file (`.json`) from `hardmatch plan`.
    pub(crate) input: Input,
    /// The report; the journal is written beside it.
    pub(crate) output: PathBuf,
    pub(crate) plan: PlanOptions,
    pub(crate) strategy: ReadStrategy,
    pub(crate) write: Settings,
}

pub(crate) fn run(options: &Options, target: &impl Connect) -> crate::Result<ExitCode> {
    report::check_output(&options.output, report::REPORT_FORMATS)?;
    let input = &options.input;
    let identity = RunIdentity::new("apply", &input.path, input.flags.clone())?;
    let mut resume = resume::open(options.write.resume.as_deref(), &identity)?;
    super::runtime()?.block_on(async {
        let connection = target.connect().await?;
        if let Some(resume) = &mut resume {
            let repaired = resume.repair_interrupted_hops(&connection.client).await?;
            if repaired > 0 {
                eprintln!("moved {repaired} users back home from an interrupted federated hop");
            }
        }
        let (records, read) = if is_plan_file(&input.path) {
            plan_from_file(&input.path, &connection, options.strategy).await?
        } else {
            plan_from_export(options, &connection).await?
        };
        let run = WriteRun {
            connection,
            read,
            write: &options.write,
            output: &options.output,
            identity,
            resume,
        };
        run.carry_out(records, Outcome::Stamped, |r| Some(r.immutable_id.clone()))
            .await
    })
}

/// A reviewed plan's rows, each approved write re-checked against the tenant now.
async fn plan_from_file(
    path: &Path,
    connection: &Connection,
    strategy: ReadStrategy,
) -> crate::Result<(Vec<Record>, TenantRead)> {
    let mut records = load_plan(path)?;
    let mut wanted = Wanted::default();
    for record in records.iter().filter(|r| !r.cloud_user_id.is_empty()) {
        wanted.id(&record.cloud_user_id);
    }
    let read = read_tenant(&connection.client, &wanted, strategy).await?;
    check_drift(&mut records, &read.tenant);
    Ok((records, read))
}

/// The export read, computed and planned against the tenant as read now.
async fn plan_from_export(
    options: &Options,
    connection: &Connection,
) -> crate::Result<(Vec<Record>, TenantRead)> {
    let source = options.input.open()?;
    let compute = &options.input.compute;
    let mut prepared = stages::prepare(&source, compute)?;
    let wanted = prepared.wanted(options.plan.match_by, Mode::Stamp);
    let mut read = read_tenant(&connection.client, &wanted, options.strategy).await?;
    let (records, notes) = plan_for_sync(&mut prepared, &read.tenant, &options.plan, compute)?;
    read.notes = notes;
    Ok((records, read))
}

/// Whether a cloud-only target already holds the anchor a plan row would stamp.
fn holds_planned_value(user: &crate::tenant::User, record: &Record) -> bool {
    user.on_premises_sync_enabled != Some(true)
        && !record.immutable_id.is_empty()
        && user.on_premises_immutable_id.as_deref() == Some(record.immutable_id.as_str())
}

fn is_plan_file(path: &Path) -> bool {
    path.extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("json"))
}

/// A reviewed plan's rows, as `hardmatch plan -o plan.json` wrote them.
fn load_plan(path: &Path) -> crate::Result<Vec<Record>> {
    #[derive(serde::Deserialize)]
    struct PlanFile {
        rows: Vec<Record>,
    }
    let text = std::fs::read(path).map_err(|e| crate::Error::io(path, e))?;
    let plan: PlanFile = serde_json::from_slice(&text).map_err(|e| {
        crate::Error::Input(format!(
            "{}: not a hardmatch plan (JSON from `hardmatch plan -o plan.json`): {e}",
            path.display()
        ))
    })?;
    Ok(plan.rows)
}

/// Re-checks each approved write against the tenant now: a target that already holds the
/// planned value (the plan was applied before) is `already-matched`; a target whose state
/// moved elsewhere since the plan is `target-changed-since-plan`, not written.
fn check_drift(records: &mut [Record], tenant: &Tenant) {
    let users = tenant.users_by_id();
    for record in records
        .iter_mut()
        .filter(|r| r.outcome == Some(Outcome::WouldStamp))
    {
        let now = users.get(record.cloud_user_id.as_str()).copied();
        if now.is_some_and(|user| holds_planned_value(user, record)) {
            record.outcome = Some(Outcome::AlreadyMatched);
            record.detail = format!(
                "{} already holds the planned ImmutableId (the plan was applied before); nothing to write",
                record.cloud_upn
            );
            record.action = "none".into();
            continue;
        }
        let drift = match now {
            None => Some("the target no longer exists".to_string()),
            Some(user) if user.on_premises_sync_enabled == Some(true) => {
                Some("the target is now synced from on-premises".into())
            }
            Some(user)
                if user
                    .on_premises_immutable_id
                    .as_deref()
                    .filter(|v| !v.is_empty())
                    != record
                        .previous_immutable_id
                        .as_deref()
                        .filter(|v| !v.is_empty()) =>
            {
                Some(format!(
                    "its ImmutableId is now {} (the plan saw {})",
                    user.on_premises_immutable_id.as_deref().unwrap_or("empty"),
                    record.previous_immutable_id.as_deref().unwrap_or("empty")
                ))
            }
            Some(user)
                if !user
                    .user_principal_name
                    .eq_ignore_ascii_case(&record.cloud_upn) =>
            {
                Some(format!(
                    "its UPN is now {} (the plan saw {})",
                    user.user_principal_name, record.cloud_upn
                ))
            }
            Some(_) => None,
        };
        if let Some(why) = drift {
            record.outcome = Some(Outcome::TargetChangedSincePlan);
            record.detail = format!(
                "{} changed since the plan: {why}; plan again",
                record.cloud_upn
            );
            record.action = "none".into();
        }
    }
}
