//! `verify`'s run: an earlier run's rows (from its report or journal) checked against the
//! tenant after the sync cycle, live (again and again with `--wait`) or from a snapshot.
//! What each row's state means is [`crate::verify`]'s.

use std::path::PathBuf;
use std::time::Duration;

use super::connection::Connect;
use super::stages;
use crate::exit_code::ExitCode;
use crate::graph::read::{ReadStrategy, Wanted};
use crate::outcome::Outcome;
use crate::report::{self, Record};
use crate::tenant::Tenant;
use crate::verify;

/// What `verify` was asked to do.
pub(crate) struct Options {
    /// The earlier run's report or journal.
    pub(crate) report: PathBuf,
    /// The verify report.
    pub(crate) output: PathBuf,
    /// Verify offline against this tenant file.
    pub(crate) snapshot: Option<PathBuf>,
    pub(crate) strategy: ReadStrategy,
    /// Keep checking until no row is awaiting sync, for at most this long.
    pub(crate) wait: Option<Duration>,
    /// With `wait`: how long between two checks.
    pub(crate) interval: Duration,
    /// Start a CSV report with a UTF-8 byte-order mark.
    pub(crate) excel: bool,
    /// Where to list the enabled cloud-only users no row targets.
    pub(crate) uncovered: Option<PathBuf>,
}

/// Every row verified, the tenant it was verified against, and how that was read.
type Verified = (Vec<Record>, Tenant, String);

pub(crate) fn run(args: &Options, target: &impl Connect) -> crate::Result<ExitCode> {
    let started = chrono::Utc::now();
    let mut reads = vec![args.report.as_path()];
    reads.extend(args.snapshot.as_deref());
    reads.extend(target.files());
    report::check_output(&args.output, report::REPORT_FORMATS, &reads)?;
    if let Some(path) = &args.uncovered {
        report::check_uncovered(path, &args.output, &reads)?;
    }
    let records = verify::load(&args.report)?;
    let wanted = verify::wanted(&records);
    let strategy = match args.uncovered {
        Some(_) => ReadStrategy::Bulk,
        None => args.strategy,
    };
    let (verified, tenant, read_note) = match &args.snapshot {
        Some(path) => {
            let tenant = Tenant::load(path)?;
            let note = format!("offline, from {}", path.display());
            (verify::verify_all(&records, &tenant), tenant, note)
        }
        None => {
            super::runtime()?.block_on(verify_live(args, target, &records, &wanted, strategy))?
        }
    };
    let summary = super::summary(
        String::new(),
        started,
        vec![
            ("verified".into(), args.report.display().to_string()),
            ("tenant read".into(), read_note.clone()),
        ],
    );
    report::write(&args.output, &verified, &summary, args.excel)?;
    if let Some(path) = &args.uncovered {
        report::write_uncovered_of(path, &tenant, &verified)?;
    }
    eprintln!("tenant read: {read_note}");
    eprint!("{}", report::outcome_table(&verified));
    Ok(super::plan::exit_code(&verified))
}

/// Verifies against the tenant read through Graph; with `--wait`, again every interval
/// while rows are awaiting sync and the deadline allows another check.
async fn verify_live(
    args: &Options,
    target: &impl Connect,
    records: &[Record],
    wanted: &Wanted,
    strategy: ReadStrategy,
) -> crate::Result<Verified> {
    let connection = target.connect().await?;
    let deadline = args.wait.map(|wait| tokio::time::Instant::now() + wait);
    let result = loop {
        let read = stages::read_tenant(&connection.client, wanted, strategy).await?;
        let verified = verify::verify_all(records, &read.tenant);
        let waiting = count(&verified, Outcome::AwaitingSync);
        match deadline {
            Some(deadline)
                if waiting > 0 && tokio::time::Instant::now() + args.interval <= deadline =>
            {
                eprintln!(
                    "verify: {} matched, {waiting} awaiting sync; next check in {}",
                    count(&verified, Outcome::Matched),
                    humantime::format_duration(args.interval)
                );
                tokio::time::sleep(args.interval).await;
            }
            _ => break (verified, read.tenant, format!("live, {}", read.how)),
        }
    };
    connection.close().await;
    Ok(result)
}

fn count(records: &[Record], outcome: Outcome) -> usize {
    records
        .iter()
        .filter(|r| r.outcome == Some(outcome))
        .count()
}
