//! `rehearse`'s run: plan, apply, one sync cycle and verify against an emulator of a tenant
//! file, each stage as its own command would run it, then one report with every row's plan,
//! apply and verify outcomes side by side. The command line ([`Rehearsal`]) runs each stage
//! and the emulator's cycle, so that the core never depends on the emulator.

use std::collections::HashMap;
use std::ffi::OsString;
use std::path::{Path, PathBuf};

use crate::exit_code::ExitCode;
use crate::outcome::Outcome;
use crate::report::{self, Record};

/// What `rehearse` was asked to do.
pub(crate) struct Options {
    /// The AD export: the rows to stamp, and the AD side of the sync cycle.
    pub(crate) input: PathBuf,
    /// The tenant file to rehearse against.
    pub(crate) tenant: PathBuf,
    /// The rehearsal's report.
    pub(crate) output: PathBuf,
    /// Keep each stage's files in this directory instead of a temporary one.
    pub(crate) keep: Option<PathBuf>,
    /// Flags for plan and apply.
    pub(crate) flags: Vec<OsString>,
}

/// What a rehearsal runs outside the core.
pub(crate) trait Rehearsal {
    /// Runs one stage as its command line (the parts joined) would run; a stage that could not
    /// run is an error, one whose rows need attention is not.
    fn stage(&self, name: &str, parts: [&[OsString]; 3]) -> crate::Result<ExitCode>;

    /// One sync cycle from `export` against the tenant in `state`: the summary's line on what
    /// it did, and the tenant's id.
    fn sync_cycle(&self, state: &Path, export: &Path) -> crate::Result<(String, String)>;
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

pub(crate) fn run(args: &Options, rehearsal: &impl Rehearsal) -> crate::Result<ExitCode> {
    let started = chrono::Utc::now();
    report::check_output(
        &args.output,
        report::REPORT_FORMATS,
        &[&args.input, &args.tenant],
    )?;
    let work = Work::new(args.keep.as_deref())?;
    let files = StageFiles::in_dir(&work);
    let (cycle, tenant_id, code) = run_stages(args, rehearsal, &files)?;
    let records = side_by_side(
        &report::read::read(Path::new(&files.plan))?,
        &report::read::read(Path::new(&files.apply))?,
        report::read::read(Path::new(&files.verify))?,
    );
    let summary = super::summary(tenant_id, started, summary_notes(args, cycle));
    report::write(&args.output, &records, &summary, false)?;
    eprintln!("rehearsal report {}", args.output.display());
    Ok(code)
}

/// The files each stage writes, and the rehearsal tenant's state between them.
struct StageFiles {
    state: OsString,
    plan: OsString,
    apply: OsString,
    verify: OsString,
}

impl StageFiles {
    fn in_dir(work: &Work) -> StageFiles {
        StageFiles {
            state: work.file("tenant-state.json"),
            plan: work.file("plan.json"),
            apply: work.file("apply.json"),
            verify: work.file("verify.json"),
        }
    }
}

/// Plan, apply, the sync cycle and verify, in turn: the cycle's summary line, the tenant's
/// id, and verify's exit code.
fn run_stages(
    args: &Options,
    rehearsal: &impl Rehearsal,
    files: &StageFiles,
) -> crate::Result<(String, String, ExitCode)> {
    let emulated: Vec<OsString> = vec![
        "--emulate".into(),
        args.tenant.clone().into_os_string(),
        "--state".into(),
        files.state.clone(),
    ];
    let input = args.input.clone().into_os_string();
    rehearsal.stage(
        "plan",
        [
            &[
                "plan".into(),
                input.clone(),
                "-o".into(),
                files.plan.clone(),
            ][..],
            &emulated,
            &args.flags,
        ],
    )?;
    rehearsal.stage(
        "apply",
        [
            &[
                "apply".into(),
                input,
                "-o".into(),
                files.apply.clone(),
                "--yes".into(),
                "-q".into(),
            ][..],
            &emulated,
            &args.flags,
        ],
    )?;
    let (cycle, tenant_id) = rehearsal.sync_cycle(Path::new(&files.state), &args.input)?;
    let code = rehearsal.stage(
        "verify",
        [
            &[
                "verify".into(),
                files.apply.clone(),
                "-o".into(),
                files.verify.clone(),
            ][..],
            &emulated,
            &[],
        ],
    )?;
    Ok((cycle, tenant_id, code))
}

/// The rehearsal report's summary lines: what ran, what the cycle did, where the files are.
fn summary_notes(args: &Options, cycle: String) -> Vec<(String, String)> {
    vec![
        (
            "rehearsal".into(),
            format!(
                "plan, apply, one sync cycle and verify against an emulator of {}",
                args.tenant.display()
            ),
        ),
        ("sync cycle".into(), cycle),
        (
            "work files".into(),
            match &args.keep {
                Some(dir) => dir.display().to_string(),
                None => "removed (keep them with --keep DIR)".into(),
            },
        ),
    ]
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
