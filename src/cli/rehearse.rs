//! `hardmatch rehearse`: the whole migration against a copy of the tenant, sync cycle
//! included: plan, apply, one Entra Connect / Cloud Sync cycle from the export itself, then
//! verify, each as its own command would run it against an emulator of the tenant file, and one
//! report with every row's plan, apply and verify outcomes side by side. Nothing leaves the
//! machine.

use std::collections::HashMap;
use std::ffi::OsString;
use std::path::{Path, PathBuf};

use clap::Parser;

use super::{dispatch, Cli};
use crate::emulator::state::State;
use crate::emulator::sync::{self, Directory};
use crate::exit_code::ExitCode;
use crate::outcome::Outcome;
use crate::report::{self, Record, Summary};
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
pub struct Args {
    /// The AD export (CSV, LDIF or a workbook): the rows to stamp, and the AD side of the
    /// sync cycle.
    #[arg(value_name = "INPUT")]
    pub input: PathBuf,

    /// The tenant to rehearse against (`hardmatch snapshot` writes one; see samples/).
    #[arg(long, value_name = "FILE")]
    pub tenant: PathBuf,

    /// The rehearsal's report: .csv, .xlsx or .json by extension.
    #[arg(short, long, value_name = "FILE")]
    pub output: PathBuf,

    /// Keep each stage's files (plan, apply report and journal, verify report, the tenant as
    /// the rehearsal left it) in this directory instead of a temporary one.
    #[arg(long, value_name = "DIR")]
    pub keep: Option<PathBuf>,

    /// Flags for plan and apply, after `--` (e.g. `-- --overwrite --match mail`).
    #[arg(last = true, value_name = "FLAGS")]
    pub flags: Vec<OsString>,
}

/// Where a rehearsal keeps its stages' files.
struct Work {
    dir: PathBuf,
    _temporary: Option<tempfile::TempDir>,
}

impl Work {
    fn new(keep: Option<&Path>) -> crate::Result<Work> {
        let (dir, temporary) = match keep {
            Some(dir) => {
                std::fs::create_dir_all(dir).map_err(|e| crate::Error::io(dir, e))?;
                (dir.to_path_buf(), None)
            }
            None => {
                let temporary = tempfile::tempdir()
                    .map_err(|e| crate::Error::io("a temporary directory", e))?;
                (temporary.path().to_path_buf(), Some(temporary))
            }
        };
        Ok(Work {
            dir,
            _temporary: temporary,
        })
    }

    fn file(&self, name: &str) -> OsString {
        self.dir.join(name).into_os_string()
    }
}

pub fn run(args: Args) -> crate::Result<ExitCode> {
    let started = chrono::Utc::now();
    report::check_output(&args.output, report::REPORT_FORMATS)?;
    let work = Work::new(args.keep.as_deref())?;
    let state = work.file("tenant-state.json");
    let rehearsal: Vec<OsString> = vec![
        "--emulate".into(),
        args.tenant.clone().into_os_string(),
        "--state".into(),
        state.clone(),
    ];
    let input = args.input.clone().into_os_string();
    let (plan, apply, verify) = (
        work.file("plan.json"),
        work.file("apply.json"),
        work.file("verify.json"),
    );

    stage(
        "plan",
        [
            &["plan".into(), input.clone(), "-o".into(), plan.clone()][..],
            &rehearsal,
            &args.flags,
        ],
    )?;
    stage(
        "apply",
        [
            &[
                "apply".into(),
                input,
                "-o".into(),
                apply.clone(),
                "--yes".into(),
                "-q".into(),
            ][..],
            &rehearsal,
            &args.flags,
        ],
    )?;
    let (cycle, tenant_id) = sync_cycle(Path::new(&state), &args.input)?;
    eprintln!("== sync cycle: {cycle:?}");
    let code = stage(
        "verify",
        [
            &["verify".into(), apply.clone(), "-o".into(), verify.clone()][..],
            &rehearsal,
            &[],
        ],
    )?;

    let records = side_by_side(
        &report::read::read(Path::new(&plan))?,
        &report::read::read(Path::new(&apply))?,
        report::read::read(Path::new(&verify))?,
    );
    let summary = Summary {
        command_line: report::redact_args(std::env::args()),
        tenant: tenant_id,
        started: started.to_rfc3339(),
        finished: chrono::Utc::now().to_rfc3339(),
        version: env!("CARGO_PKG_VERSION").to_string(),
        notes: vec![
            (
                "rehearsal".into(),
                format!(
                    "plan, apply, one sync cycle and verify against an emulator of {}",
                    args.tenant.display()
                ),
            ),
            (
                "sync cycle".into(),
                format!(
                    "{} hard-matched, {} soft-matched, {} created, {} blocked, {} already synced",
                    cycle.hard_matched,
                    cycle.soft_matched,
                    cycle.created,
                    cycle.blocked,
                    cycle.already_synced
                ),
            ),
            (
                "work files".into(),
                match &args.keep {
                    Some(dir) => dir.display().to_string(),
                    None => "removed (keep them with --keep DIR)".into(),
                },
            ),
        ],
    };
    report::write(&args.output, &records, &summary, false)?;
    eprintln!("rehearsal report {}", args.output.display());
    Ok(code)
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

/// The verify records, each with its row's plan and apply outcomes beside it.
fn side_by_side(plan: &[Record], apply: &[Record], verify: Vec<Record>) -> Vec<Record> {
    let by_row = |records: &[Record]| -> HashMap<usize, Outcome> {
        records
            .iter()
            .filter_map(|r| Some((r.row, r.outcome?)))
            .collect()
    };
    let (plan, apply) = (by_row(plan), by_row(apply));
    verify
        .into_iter()
        .map(|record| Record {
            plan_outcome: plan.get(&record.row).copied(),
            apply_outcome: apply.get(&record.row).copied(),
            ..record
        })
        .collect()
}
