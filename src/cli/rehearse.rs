//! `hardmatch rehearse`: the whole migration against a copy of the tenant, sync cycle
//! included: plan, apply, one Entra Connect / Cloud Sync cycle from the export itself, then
//! verify, each as its own command would run it against an emulator of the tenant file, and one
//! report with every row's plan, apply and verify outcomes side by side. Nothing leaves the
//! machine. The run is [`crate::run::rehearse`]; this file gives it the two things that are
//! not the core's: running a stage as its command line, and the emulator's sync cycle.

use std::ffi::OsString;
use std::path::{Path, PathBuf};

use clap::Parser;

use super::{dispatch, Cli};
use crate::emulator::state::State;
use crate::emulator::sync::{self, Directory};
use crate::exit_code::ExitCode;
use crate::run::{self, rehearse::Rehearsal};
use crate::tenant::Tenant;

const EXAMPLES: &str = "\
Examples:
  # The samples, start to finish (what the README's first command runs):
  hardmatch rehearse samples/getaduser-ps51.csv --tenant samples/tenant.json -o rehearsal.xlsx

  # Your export against a snapshot of your tenant, with the flags the real run will get
  # (after --, passed to plan and apply), keeping every stage's files:
  hardmatch snapshot -o tenant.json
  hardmatch rehearse users.csv --tenant tenant.json -o rehearsal.xlsx --keep rehearsal/ -- --upn-suffix contoso.local=contoso.com

The report has one row per input row: `plan_outcome` (what plan predicted), `apply_outcome`
(what apply did) and, in `outcome`, what the sync cycle did (verify: matched, match-blocked,
duplicate-created, ...). The tenant file is never changed: the rehearsal's tenant lives in
the work directory. Exit codes: 0 every stamped row matched, 1 some rows need attention, 2 the
rehearsal could not run.";

/// Rehearse plan, apply, a sync cycle and verify against an emulator of a tenant file.
#[derive(Debug, clap::Args)]
#[command(after_help = EXAMPLES)]
pub(crate) struct Args {
    /// The AD export (CSV, LDIF or a workbook): the rows to stamp, and the AD side of the
    /// sync cycle.
    #[arg(value_name = "INPUT")]
    pub(crate) input: PathBuf,

    /// The tenant to rehearse against (`hardmatch snapshot` writes one; see samples/).
    #[arg(long, value_name = "FILE")]
    pub(crate) tenant: PathBuf,

    /// The rehearsal's report: .csv, .xlsx or .json by extension.
    #[arg(short, long, value_name = "FILE")]
    pub(crate) output: PathBuf,

    /// Keep each stage's files (plan, apply report and journal, verify report, the tenant as
    /// the rehearsal left it) in this directory instead of a temporary one.
    #[arg(long, value_name = "DIR")]
    pub(crate) keep: Option<PathBuf>,

    /// Flags for plan and apply, after `--` (e.g. `-- --overwrite --match mail`).
    #[arg(last = true, value_name = "FLAGS")]
    pub(crate) flags: Vec<OsString>,
}

pub(crate) fn run(args: Args) -> crate::Result<ExitCode> {
    run::rehearse::run(
        &run::rehearse::Options {
            input: args.input,
            tenant: args.tenant,
            output: args.output,
            keep: args.keep,
            flags: args.flags,
        },
        &CommandLine,
    )
}

/// Runs the stages as the command line would, and the emulator's sync cycle.
struct CommandLine;

impl Rehearsal for CommandLine {
    fn stage(&self, name: &str, parts: [&[OsString]; 3]) -> crate::Result<ExitCode> {
        stage(name, parts)
    }

    fn sync_cycle(&self, state: &Path, export: &Path) -> crate::Result<(String, String)> {
        let (cycle, tenant_id) = sync_cycle(state, export)?;
        eprintln!("== sync cycle: {cycle}");
        let note = format!(
            "{} hard-matched, {} soft-matched, {} created, {} blocked, {} already synced",
            cycle.hard_matched,
            cycle.soft_matched,
            cycle.created,
            cycle.blocked,
            cycle.already_synced
        );
        Ok((note, tenant_id))
    }
}

/// Runs one stage as its own command would run; a stage that could not run stops the
/// rehearsal, one whose rows need attention does not.
fn stage(name: &str, parts: [&[OsString]; 3]) -> crate::Result<ExitCode> {
    eprintln!("== {name}");
    let argv =
        std::iter::once(OsString::from("hardmatch")).chain(parts.into_iter().flatten().cloned());
    let cli = Cli::try_parse_from(argv)
        .map_err(|e| crate::Error::Usage(format!("rehearse, {name}: {e}")))?;
    match dispatch(cli.command)? {
        code @ (ExitCode::Success | ExitCode::NeedsAttention) => Ok(code),
        code => Err(crate::Error::Other(format!(
            "rehearse: {name} stopped (exit {}); the stages after it did not run",
            code.code()
        ))),
    }
}

/// One sync cycle from the export against the rehearsal's tenant, as the emulator runs it;
/// what it did, and the tenant's id for the summary.
fn sync_cycle(state: &Path, export: &Path) -> crate::Result<(sync::Cycle, String)> {
    let directory = Directory::from_export(export)?;
    let mut tenant = State::new(Tenant::load(state)?);
    let now = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    let cycle = sync::run(&mut tenant, &directory, &now);
    tenant.tenant.save(state)?;
    Ok((cycle, tenant.tenant.tenant_id))
}
