//! `apply`'s run: plan (from the export, or a reviewed plan file re-checked for drift), then
//! stamp every approved row through [`WriteRun`].

use std::path::{Path, PathBuf};

use super::connection::{Connect, Connection};
use super::plan::plan_for_sync;
use super::stages::{self, read_tenant};
use super::write::{Settings, WriteRun};
use super::Input;
use crate::exit_code::ExitCode;
use crate::graph::read::{ReadStrategy, TenantRead};
use crate::outcome::Outcome;
use crate::plan::{Mode, PlanOptions};
use crate::plan_file::Plan;
use crate::planned::PlannedRow;
use crate::resume::{self, RunIdentity};

/// What `apply` was asked to do.
pub(crate) struct Options {
    /// The export, or a plan file (`.xlsx`, `.csv`, `.json`) from `hardmatch plan`.
    pub(crate) input: Input,
    /// The report; the journal is written beside it.
    pub(crate) output: PathBuf,
    pub(crate) plan: PlanOptions,
    pub(crate) strategy: ReadStrategy,
    pub(crate) write: Settings,
}

pub(crate) fn run(options: &Options, target: &impl Connect) -> crate::Result<ExitCode> {
    options
        .write
        .check_report(&options.output, &options.input.path, target)?;
    let input = &options.input;
    // A plan is checked (version, decisions, approvals) before anything is signed in to.
    let plan = Plan::detect(&input.path)?;
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
        let (rows, read) = match &plan {
            Some(plan) => plan_from_file(plan, &input.path, &connection, options.strategy).await?,
            None => plan_from_export(options, &connection).await?,
        };
        let run = WriteRun::new(
            connection,
            read,
            identity,
            resume,
            &options.write,
            &options.output,
        );
        run.carry_out(rows, Outcome::Stamped).await
    })
}

/// A reviewed plan's rows, each approved write re-checked against the tenant now (the plan
/// must be for this tenant).
async fn plan_from_file(
    plan: &Plan,
    path: &Path,
    connection: &Connection,
    strategy: ReadStrategy,
) -> crate::Result<(Vec<PlannedRow>, TenantRead)> {
    let mut read = read_tenant(&connection.client, &plan.wanted(), strategy).await?;
    plan.check_tenant(path, &read.tenant)?;
    read.notes = plan.notes(path, chrono::Utc::now());
    Ok((plan.planned(&read.tenant), read))
}

/// The export read, computed and planned against the tenant as read now.
async fn plan_from_export(
    options: &Options,
    connection: &Connection,
) -> crate::Result<(Vec<PlannedRow>, TenantRead)> {
    let source = options.input.open()?;
    let compute = &options.input.compute;
    let mut prepared = stages::prepare(&source, compute)?;
    let wanted = prepared.wanted(options.plan.match_by, Mode::Stamp);
    let mut read = read_tenant(&connection.client, &wanted, options.strategy).await?;
    let (rows, notes) = plan_for_sync(&mut prepared, &read.tenant, &options.plan, compute)?;
    read.notes = notes;
    Ok((rows, read))
}
