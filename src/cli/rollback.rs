//! `hardmatch rollback`: put back the previous onPremisesImmutableId of every user an earlier
//! apply or clear changed, from its journal (best) or its report.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use super::apply::{WriteArgs, WriteRun};
use super::target::{self, ReadArgs, TargetArgs};
use crate::graph::read::Wanted;
use crate::journal::{Entry, Journal, Step};
use crate::outcome::Outcome;
use crate::pipeline;
use crate::plan::Action;
use crate::report::{self, Record};
use crate::resume::RunIdentity;
use crate::tenant::User;

const EXAMPLES: &str = "\
Examples:
  # Undo an apply, from the journal written beside its report:
  hardmatch rollback report.csv.journal -o rollback.csv

  # From the report itself (CSV or JSON), when the journal is gone:
  hardmatch rollback report.csv -o rollback.csv

A user whose ImmutableId changed again since the run is left alone (target-changed-since-plan);
one that already holds its previous value is `restored` with nothing sent (rolling back twice is
quiet). A deleted holder the run purged is gone for good: rollback says so and exits 1.
Exit codes: 0 every row restored or had nothing to restore, 1 some rows need attention, 2 the
run could not start, 130 interrupted (Ctrl-C, SIGHUP), 143 terminated (SIGTERM).";

/// Put back the previous values recorded by an earlier apply or clear.
#[derive(Debug, clap::Args)]
#[command(after_help = EXAMPLES)]
pub struct Args {
    /// The journal (REPORT.journal) or the report (.csv or .json) of the run to undo.
    #[arg(value_name = "REPORT|JOURNAL")]
    pub source: PathBuf,

    /// The rollback's own report; its journal is written beside it.
    #[arg(short, long, value_name = "FILE")]
    pub output: PathBuf,

    #[command(flatten)]
    pub target: TargetArgs,

    #[command(flatten)]
    pub read: ReadArgs,

    #[command(flatten)]
    pub write: WriteArgs,
}

/// One change to undo: which user, what the run wrote, what was there before.
struct Change {
    row: usize,
    user_id: String,
    upn: String,
    written: Option<String>,
    previous: Option<String>,
    /// The run was killed between sending the write and journaling its answer: whether it
    /// took effect is told by the user as it is now.
    in_doubt: bool,
    /// The deleted holder the run purged for good before writing: nothing brings it back.
    purged: Option<String>,
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    report::check_destination(&args.output)?;
    let identity = RunIdentity::new("rollback", &args.source, Vec::new())?;
    let resume = args.write.open_resume(&identity)?;
    let changes = if is_journal(&args.source) {
        from_journal(&args.source)?
    } else {
        from_report(&args.source)?
    };
    let purged: Vec<&str> = changes.iter().filter_map(|c| c.purged.as_deref()).collect();
    let has_purged = !purged.is_empty();
    if has_purged {
        eprintln!(
            "CANNOT UNDO: the run purged {} deleted users from the recycle bin for good ({}); hardmatch cannot bring them back",
            purged.len(),
            purged.join(", ")
        );
    }
    target::runtime()?.block_on(async {
        let connection = args.target.connect().await?;
        let mut wanted = Wanted::default();
        for change in &changes {
            wanted.id(&change.user_id);
        }
        let read = pipeline::read_tenant(&connection.client, &wanted, args.read.strategy).await?;
        let users = read.tenant.users_by_id();
        let records = changes
            .iter()
            .map(|c| record_for(c, users.get(c.user_id.as_str()).copied(), &args.source))
            .collect();
        let run = WriteRun {
            connection,
            read,
            write: &args.write,
            output: &args.output,
            identity,
            resume,
        };
        let code = run
            .carry_out(records, Outcome::Restored, |r| {
                r.previous_immutable_id.clone().filter(|v| !v.is_empty())
            })
            .await?;
        Ok(if code == ExitCode::SUCCESS && has_purged {
            eprintln!("not everything was undone: the purged users are gone for good");
            ExitCode::from(1)
        } else {
            code
        })
    })
}

fn is_journal(path: &Path) -> bool {
    path.extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("journal"))
}

/// Every anchor write the journal shows as applied, or as sent with its answer never
/// journaled (a killed run), with the value before it, target user by target user.
fn from_journal(path: &Path) -> anyhow::Result<Vec<Change>> {
    let journaled = Journal::read(path)?;
    Ok(journaled
        .targets
        .iter()
        .filter_map(|history| {
            let in_doubt = match history.result(Step::Anchor) {
                Some(Entry::Result { applied: true, .. }) => false,
                Some(_) => return None,
                None => true,
            };
            let (user_id, upn, previous, new) = history.first_anchor_intent()?;
            Some(Change {
                row: history.row,
                user_id: user_id.to_string(),
                upn: upn.to_string(),
                written: new.clone(),
                previous: previous.clone(),
                in_doubt,
                purged: history.purged_holder().map(str::to_string),
            })
        })
        .collect())
}

/// The rows of a report that an apply or clear wrote.
fn from_report(path: &Path) -> anyhow::Result<Vec<Change>> {
    let records: Vec<Record> = if path
        .extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("json"))
    {
        #[derive(serde::Deserialize)]
        struct ReportFile {
            rows: Vec<Record>,
        }
        let text = std::fs::read(path).map_err(|e| crate::Error::io(path, e))?;
        serde_json::from_slice::<ReportFile>(&text)
            .map_err(|e| {
                crate::Error::Input(format!("{}: not a hardmatch report: {e}", path.display()))
            })?
            .rows
    } else {
        read_csv_report(path)?
    };
    Ok(records
        .into_iter()
        .filter(|r| {
            matches!(
                r.outcome,
                Some(Outcome::Stamped | Outcome::Cleared | Outcome::Restored)
            )
        })
        .map(|r| Change {
            purged: (r.action == Action::PurgeHolderThenStamp.code() && !r.holder_id.is_empty())
                .then(|| r.holder_id.clone()),
            row: r.row,
            written: (r.outcome == Some(Outcome::Stamped)).then(|| r.immutable_id.clone()),
            previous: r.previous_immutable_id.filter(|v| !v.is_empty()),
            user_id: r.cloud_user_id,
            upn: r.cloud_upn,
            in_doubt: false,
        })
        .collect())
}

/// A CSV report back into records, undoing the Excel-safe escaping.
fn read_csv_report(path: &Path) -> anyhow::Result<Vec<Record>> {
    let mut reader = csv::Reader::from_path(path)
        .map_err(|e| crate::Error::Input(format!("{}: {e}", path.display())))?;
    let headers = reader.headers()?.clone();
    let column = |name: &str| {
        headers
            .iter()
            .position(|h| h.trim_start_matches('\u{feff}') == name)
    };
    let (Some(row), Some(outcome), Some(user), Some(upn), Some(id), Some(previous)) = (
        column("row"),
        column("outcome"),
        column("cloud_user_id"),
        column("cloud_upn"),
        column("immutable_id"),
        column("previous_immutable_id"),
    ) else {
        anyhow::bail!("{}: not a hardmatch report (no row/outcome/cloud_user_id/previous_immutable_id columns)", path.display());
    };
    let mut records = Vec::new();
    for (i, result) in reader.records().enumerate() {
        let cells = result
            .map_err(|e| crate::Error::Input(format!("{}:{}: {e}", path.display(), i + 2)))?;
        let cell = |c: usize| report::from_excel_safe(cells.get(c).unwrap_or("")).to_string();
        records.push(Record {
            row: cell(row).parse().unwrap_or(i + 1),
            outcome: Outcome::from_code(&cell(outcome)),
            cloud_user_id: cell(user),
            cloud_upn: cell(upn),
            immutable_id: cell(id),
            previous_immutable_id: Some(cell(previous)),
            action: column("action").map(cell).unwrap_or_default(),
            holder_id: column("holder_id").map(cell).unwrap_or_default(),
            ..Record::default()
        });
    }
    Ok(records)
}

/// The planned rollback of one change, checked against the user as it is now (`None`: gone).
fn record_for(change: &Change, now: Option<&User>, source: &Path) -> Record {
    let mut record = Record {
        row: change.row,
        source: format!("{} row {}", source.display(), change.row),
        line: change.row as u64,
        upn: change.upn.clone(),
        cloud_user_id: change.user_id.clone(),
        cloud_upn: change.upn.clone(),
        immutable_id: change.written.clone().unwrap_or_default(),
        previous_immutable_id: change.previous.clone(),
        ..Record::default()
    };
    let holds = now
        .and_then(|u| u.on_premises_immutable_id.clone())
        .filter(|v| !v.is_empty());
    let (outcome, action, detail) = match now {
        None => (
            Outcome::TargetNotFound,
            Action::None,
            "the user no longer exists".to_string(),
        ),
        Some(_) if change.in_doubt && holds == change.previous => (
            Outcome::AlreadyMatched,
            Action::None,
            "the interrupted run's write never took effect; nothing to put back".to_string(),
        ),
        Some(_) if holds == change.previous => (
            Outcome::Restored,
            Action::None,
            format!(
                "already holds its previous value ({}); nothing to put back",
                holds.as_deref().unwrap_or("no value")
            ),
        ),
        Some(_) if holds != change.written => (
            Outcome::TargetChangedSincePlan,
            Action::None,
            format!(
                "changed since the run: holds {} where the run wrote {}; left alone",
                holds.as_deref().unwrap_or("no value"),
                change.written.as_deref().unwrap_or("no value")
            ),
        ),
        Some(_) => match &change.previous {
            Some(previous) => (
                Outcome::WouldStamp,
                Action::Stamp,
                format!("will put back {previous}"),
            ),
            None => (
                Outcome::WouldClear,
                Action::Clear,
                "will put back no value (null)".to_string(),
            ),
        },
    };
    record.outcome = Some(outcome);
    record.action = action.code().to_string();
    record.detail = detail;
    // The holder columns name the deleted user the run purged: what this row cannot undo.
    if let Some(holder) = &change.purged {
        record.holder_id = holder.clone();
    }
    record
}
