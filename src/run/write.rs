//! What `apply`, `clear` and `rollback` share once their rows are planned ([`WriteRun`]):
//! on resume, the journal matched to the rows; the summary and the confirmation; the journal;
//! the writes; the report; and what to do next when the run stopped early.

use std::io::{BufRead, IsTerminal, Write};
use std::path::{Path, PathBuf};

use super::connection::Connection;
use super::stages::{self, Execution, Stop};
use crate::exit_code::ExitCode;
use crate::graph::read::TenantRead;
use crate::journal::{Entry, Journal, Replay};
use crate::outcome::Outcome;
use crate::plan::Action;
use crate::planned::{self, PlannedRow};
use crate::report;
use crate::resume::{self, Resume, RunIdentity};
use crate::tenant::Tenant;
use crate::write::{WorkItem, WriteOptions, CANARY_LEFT};

/// How a run's writes are carried out, shared by apply, clear and rollback.
#[derive(Debug, Clone)]
pub(crate) struct Settings {
    /// Do not ask for confirmation.
    pub(crate) yes: bool,
    /// Write at most N rows, leave the rest `not-attempted` (a canary batch).
    pub(crate) max_writes: Option<usize>,
    /// Write requests per second.
    pub(crate) write_rate: f64,
    /// Requests in flight at once.
    pub(crate) concurrency: usize,
    /// Read every written user back and compare.
    pub(crate) verify: bool,
    /// The journal of the run this one continues.
    pub(crate) resume: Option<PathBuf>,
    /// No progress bar.
    pub(crate) quiet: bool,
    /// Start a CSV report with a UTF-8 byte-order mark.
    pub(crate) excel: bool,
}

impl Settings {
    pub(crate) fn options(&self, success: Outcome) -> WriteOptions {
        WriteOptions {
            rate: self.write_rate,
            concurrency: self.concurrency,
            max_writes: self.max_writes,
            verify: self.verify,
            success,
            ..WriteOptions::default()
        }
    }

    /// How many rows this run writes of `writes`: a canary writes at most `--max-writes`.
    pub(crate) fn to_write(&self, writes: usize) -> usize {
        self.max_writes.map_or(writes, |max| writes.min(max))
    }

    /// Checks a write run's report path before anything is read: a format it can write, and
    /// none of the files the run reads: its `input`, the journal it resumes, the `target`'s.
    pub(crate) fn check_report(
        &self,
        output: &Path,
        input: &Path,
        target: &impl super::connection::Connect,
    ) -> crate::Result<()> {
        let mut reads = vec![input];
        reads.extend(self.resume.as_deref());
        reads.extend(target.files());
        crate::report::check_output(output, crate::report::REPORT_FORMATS, &reads).map(drop)
    }
}

/// A run confirmed: its journal, what the writer needs to know from an interrupted run, and
/// the writes.
struct Confirmed {
    journal: Journal,
    replay: Option<Replay>,
    settled: Vec<Entry>,
    items: Vec<WorkItem>,
}

/// What every write command does once it has its plan.
pub(crate) struct WriteRun<'a> {
    connection: Connection,
    /// The tenant as read before planning, and how it was read.
    read: TenantRead,
    /// What this run is, for its journal's first line.
    identity: RunIdentity,
    /// The interrupted run this one continues (`--resume`), checked and locked.
    resume: Option<Resume>,
    write: &'a Settings,
    output: &'a Path,
}

impl<'a> WriteRun<'a> {
    /// A run of `identity` (continuing `resume`'s run) on the tenant as `read` through
    /// `connection`, writing as `write` says and reporting to `output`.
    pub(crate) fn new(
        connection: Connection,
        read: TenantRead,
        identity: RunIdentity,
        resume: Option<Resume>,
        write: &'a Settings,
        output: &'a Path,
    ) -> WriteRun<'a> {
        WriteRun {
            connection,
            read,
            identity,
            resume,
            write,
            output,
        }
    }

    /// Carries out the plan's writes (those a resume's credit leaves), reports every row and
    /// says what to do next; `success` is a written row's outcome.
    pub(crate) async fn carry_out(
        mut self,
        mut rows: Vec<PlannedRow>,
        success: Outcome,
    ) -> crate::Result<ExitCode> {
        let started = chrono::Utc::now();
        let confirmed = self.confirmed(&mut rows)?;
        let journal_path = confirmed.journal.path().to_owned();
        let execution = Execution {
            client: self.connection.client.clone(),
            tenant: &self.read.tenant,
            journal: confirmed.journal,
            replay: confirmed.replay,
            settled: confirmed.settled,
            options: self.write.options(success),
            quiet: self.write.quiet,
        };
        let stopped = stages::execute(execution, &mut rows, confirmed.items).await?;
        self.report(&rows, started, &journal_path, success)?;
        eprint!("{}", how_to_go_on(&rows, stopped, &journal_path));
        self.connection.close().await;
        Ok(match stopped {
            Some(stop) => stop.exit_code(),
            None => exit_code_after_canary(&rows),
        })
    }

    /// Everything before the first write: on resume, the journal checked against the tenant
    /// and matched to the rows; the summary; the confirmation; the journal opened (a new one,
    /// or the interrupted run's).
    fn confirmed(&mut self, rows: &mut [PlannedRow]) -> crate::Result<Confirmed> {
        let tenant = &self.read.tenant;
        self.identity.tenant = tenant.tenant_id.clone();
        let credit = match &mut self.resume {
            Some(resume) => {
                resume.check_tenant(&tenant.tenant_id)?;
                let credit = resume.credit(rows, tenant);
                eprint!("{}", resume.summary(&credit));
                Some(credit)
            }
            None => None,
        };
        let items = stages::work_items(rows, tenant);
        for (name, note) in &self.read.notes {
            eprintln!("{name}: {note}");
        }
        eprintln!(
            "{}",
            describe(rows, items.len(), self.write.max_writes, tenant)
        );
        if !items.is_empty() {
            let added = self
                .resume
                .as_ref()
                .map(Resume::added_destructive_flags)
                .unwrap_or_default();
            let writes = self.write.to_write(items.len());
            confirm(self.write.yes, writes, tenant, &added)?;
        }
        Ok(match (self.resume.take(), credit) {
            (Some(resume), Some(credit)) => Confirmed {
                journal: resume.into_journal(),
                replay: Some(credit.replay),
                settled: credit.settled,
                items,
            },
            _ => Confirmed {
                journal: Journal::create(
                    &resume::journal_path(self.write.resume.as_deref(), self.output),
                    &self.identity.run_entry(),
                )?,
                replay: None,
                settled: Vec::new(),
                items,
            },
        })
    }

    /// Writes the report (its records made from the rows now) and prints the outcome table.
    /// A report that cannot be written is an error that says the journal is complete and how
    /// to rebuild the report from it.
    fn report(
        &self,
        rows: &[PlannedRow],
        started: chrono::DateTime<chrono::Utc>,
        journal: &Path,
        success: Outcome,
    ) -> crate::Result<()> {
        let tenant = &self.read.tenant;
        let summary = super::summary(
            tenant.tenant_id.clone(),
            started,
            [
                ("tenant read".to_string(), self.read.how.clone()),
                ("journal".to_string(), journal.display().to_string()),
            ]
            .into_iter()
            .chain(self.connection.client.usage_notes())
            .chain([tenant.takeover_note()])
            .chain(self.read.notes.clone())
            .collect(),
        );
        let records = planned::records(rows);
        if let Err(e) = report::write(self.output, &records, &summary, self.write.excel) {
            return Err(crate::Error::Other(format!(
                "cannot write the report: {e}\n  {} rows are written to the tenant, and every write is in the journal {}, which is complete.\n  Once the report's path can be written (or with another -o), rebuild the report; nothing is written twice:\n  {}",
                records.iter().filter(|r| r.outcome == Some(success)).count(),
                journal.display(),
                resume::continue_command(journal, false)
            )));
        }
        eprint!("{}", report::outcome_table(&records));
        eprintln!(
            "report {}, journal {}",
            self.output.display(),
            journal.display()
        );
        Ok(())
    }
}

/// What a 403 on a write calls for (SECURITY.md lists every command's permissions).
const PERMISSION: &str = "User.ReadWrite.All (and User.DeleteRestore.All to purge deleted holders): grant it with admin consent";

/// Rows a canary (`--max-writes`) left for later.
fn left_by_canary(row: &PlannedRow) -> bool {
    row.outcome() == Outcome::NotAttempted && row.verdict.detail == CANARY_LEFT
}

/// The exit code of a finished run, as `plan::exit_code` says, except that rows a canary left
/// for later are not failures.
fn exit_code_after_canary(rows: &[PlannedRow]) -> ExitCode {
    let all_fine = rows
        .iter()
        .all(|r| left_by_canary(r) || r.outcome().is_success());
    ExitCode::for_rows(all_fine)
}

/// What to do next when the run stopped early (a signal, a missing permission, a canary):
/// why, and the exact command that continues it.
fn how_to_go_on(rows: &[PlannedRow], stopped: Option<Stop>, journal: &Path) -> String {
    let count = |outcome: Outcome| rows.iter().filter(|r| r.outcome() == outcome).count();
    let left = count(Outcome::NotAttempted);
    let denied = count(Outcome::PermissionDenied);
    let canary = rows.iter().filter(|r| left_by_canary(r)).count();
    let why = match stopped {
        Some(Stop::Interrupted) => format!("interrupted: {left} rows were not attempted"),
        Some(Stop::Terminated) => format!("terminated (SIGTERM): {left} rows were not attempted"),
        None if denied > 0 && left > canary => format!(
            "stopped: Graph refused {denied} writes in a row with 403: the app lacks the permission to write onPremisesImmutableId, {PERMISSION}; {left} rows were not attempted"
        ),
        None if denied > 0 => format!(
            "Graph refused {denied} writes with 403: if the app lacks the permission to write onPremisesImmutableId, {PERMISSION}"
        ),
        None if canary > 0 => format!("canary done: {canary} rows are left for the rest of the run"),
        None => return String::new(),
    };
    // A canary that finished continues without its limit; a stopped run keeps its options.
    let drop_canary = stopped.is_none() && canary > 0 && left == canary;
    format!(
        "{why}. Continue with:\n  {}\n",
        resume::continue_command(journal, drop_canary)
    )
}

/// The summary shown before anything is written: what will be sent, and every destructive step.
fn describe(
    rows: &[PlannedRow],
    writes: usize,
    max_writes: Option<usize>,
    tenant: &Tenant,
) -> String {
    let mut text = format!(
        "plan for {}:\n{}",
        tenant.tenant_id,
        planned::outcome_table(rows)
    );
    let count = |action: Action| {
        rows.iter()
            .filter(|r| r.action == Some(action) && r.writes())
            .count()
    };
    let overwrites = rows
        .iter()
        .filter(|r| {
            r.outcome() == Outcome::WouldStamp
                && r.previous_immutable_id
                    .as_deref()
                    .is_some_and(|p| !p.is_empty())
        })
        .count();
    for (what, n) in [
        ("overwrite another ImmutableId (--overwrite)", overwrites),
        (
            "purge a deleted holder for good (--purge-deleted-holders)",
            count(Action::PurgeHolderThenStamp),
        ),
        (
            "move a UPN out of its federated domain and back (--federated-hop)",
            count(Action::FederatedHopThenStamp) + count(Action::FederatedHopThenClear),
        ),
        (
            "clear onPremisesObjectIdentifier, which links the user to another on-premises object, before the stamp (--clear-object-identifier; it needs User-OnPremisesSyncBehavior.ReadWrite.All and Global or Hybrid Identity Administrator)",
            count(Action::ClearObjectIdentifierThenStamp),
        ),
        (
            "put back onPremisesObjectIdentifier",
            count(Action::PutBackObjectIdentifier),
        ),
    ] {
        if n > 0 {
            text.push_str(&format!("  DESTRUCTIVE: {n} rows will {what}\n"));
        }
    }
    let stamps = [
        Action::Stamp,
        Action::PurgeHolderThenStamp,
        Action::FederatedHopThenStamp,
        Action::ClearObjectIdentifierThenStamp,
    ]
    .into_iter()
    .map(count)
    .sum::<usize>();
    if let (true, Some(warning)) = (stamps > 0, tenant.takeover_warning()) {
        text.push_str(&format!("  WARNING: {warning}\n"));
    }
    match max_writes.filter(|&max| max < writes) {
        Some(max) => text.push_str(&format!(
            "a canary: {max} of the {writes} rows to write (--max-writes {max}); the rest stay not-attempted until the run is resumed"
        )),
        None => text.push_str(&format!("{writes} rows to write")),
    }
    text
}

/// Asks on a terminal; without one, `--yes` is required. A destructive flag that a resumed
/// run adds to the interrupted one's is asked about on its own line.
fn confirm(yes: bool, writes: usize, tenant: &Tenant, added: &[&str]) -> crate::Result<()> {
    if yes {
        return Ok(());
    }
    if !std::io::stdin().is_terminal() {
        return Err(crate::Error::Usage(format!(
            "no terminal to confirm on: pass --yes to write {writes} rows to {}",
            tenant.tenant_id
        )));
    }
    for flag in added {
        ask(&format!(
            "Type yes to add {flag} to the resumed run (the interrupted run did not have it): "
        ))?;
    }
    ask(&format!(
        "Type yes to write {writes} rows to {}: ",
        tenant.tenant_id
    ))
}

fn ask(question: &str) -> crate::Result<()> {
    eprint!("{question}");
    let mut answer = String::new();
    std::io::stderr()
        .flush()
        .and_then(|()| std::io::stdin().lock().read_line(&mut answer))
        .map_err(|e| crate::Error::io("the terminal", e))?;
    if !is_yes(&answer) {
        return Err(crate::Error::Usage(
            "not confirmed; nothing was written".into(),
        ));
    }
    Ok(())
}

/// `yes`, `Yes` or `YES` confirm (caps lock on is still a yes); `y` or anything else does not.
fn is_yes(answer: &str) -> bool {
    matches!(answer.trim(), "yes" | "Yes" | "YES")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn yes_in_any_of_its_usual_cases_confirms() {
        for answer in ["yes\n", "Yes\n", "YES\r\n", "  yes  "] {
            assert!(is_yes(answer), "{answer:?}");
        }
        for answer in ["y\n", "no\n", "yEs\n", "", "yes please\n"] {
            assert!(!is_yes(answer), "{answer:?}");
        }
    }
}
