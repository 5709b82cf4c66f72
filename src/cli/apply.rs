//! `hardmatch apply`: plan, confirm, then stamp onPremisesImmutableId at the Graph write quota,
//! journaled and resumable. With a plan file, writes exactly the rows the plan approved.

use std::io::{BufRead, IsTerminal, Write};
use std::path::{Path, PathBuf};

use super::input::InputArgs;
use super::plan::{plan_for_sync, PlanArgs};
use super::target::{self, Connection, ReadArgs, TargetArgs};
use crate::exit_code::ExitCode;
use crate::graph::read::TenantRead;
use crate::journal::{Entry, Journal, Replay};
use crate::outcome::Outcome;
use crate::pipeline::{self, read_tenant, Execution, Stop};
use crate::plan::{Action, Mode};
use crate::plan_file::Plan;
use crate::report::{self, Record, Summary};
use crate::resume::{self, Resume, RunIdentity};
use crate::tenant::Tenant;
use crate::write::{WorkItem, WriteOptions, CANARY_LEFT};

const EXAMPLES: &str = "\
Examples:
  # Rehearse the whole job on the samples against an in-process emulator:
  hardmatch apply samples/getaduser-ps51.csv --emulate samples/tenant.json --yes -o report.csv

  # For real: plan, show the summary, ask, then stamp (signed in with `az login`):
  hardmatch apply users.csv -o report.xlsx

  # A canary batch of 10 writes first, then the rest by resuming the same journal:
  hardmatch apply users.csv -o wave1.csv --max-writes 10 --yes
  hardmatch apply users.csv -o wave1.csv --resume wave1.csv.journal --yes

  # A rehearsal that outlives one command: apply, then roll back what apply did:
  hardmatch apply users.csv --emulate tenant.json --state rehearsal.json --yes -o report.csv
  hardmatch rollback report.csv.journal --emulate tenant.json --state rehearsal.json --yes -o rollback.csv

  # Exactly the rows of a plan the change board approved (its `approved` column), re-checked
  # for drift; refused when a decision was edited or the plan is for another tenant:
  hardmatch plan users.csv -o plan.xlsx
  hardmatch apply plan.xlsx -o report.csv

The journal is written beside the report (REPORT.journal) before every write; `hardmatch
rollback REPORT.journal` puts every previous value back.
A canary (--max-writes) that wrote its rows exits 0 and prints the command that continues it.
Exit codes: 0 every row succeeded or needed nothing, 1 some rows need attention, 2 the run
could not start, 130 interrupted (Ctrl-C or SIGHUP), 143 terminated (SIGTERM); the report
still has every row, and the command that continues the run is printed.";

/// Stamp onPremisesImmutableId on the matched cloud users.
#[derive(Debug, clap::Args)]
#[command(after_help = EXAMPLES)]
pub struct Args {
    #[command(flatten)]
    pub input: InputArgs,

    /// The report: .csv, .xlsx or .json; the journal is written beside it.
    #[arg(short, long, value_name = "FILE")]
    pub output: PathBuf,

    #[command(flatten)]
    pub target: TargetArgs,

    #[command(flatten)]
    pub read: ReadArgs,

    #[command(flatten)]
    pub plan: PlanArgs,

    #[command(flatten)]
    pub write: WriteArgs,
}

/// How writes are carried out, shared by apply, clear and rollback.
#[derive(Debug, Clone, clap::Args)]
pub struct WriteArgs {
    /// Do not ask for confirmation (required without a terminal).
    #[arg(long)]
    pub yes: bool,

    /// Write at most N rows, leave the rest `not-attempted` (a canary batch).
    #[arg(long, value_name = "N")]
    pub max_writes: Option<usize>,

    /// Write requests per second, whatever the rows (a federated hop sends three, a purge and
    /// stamp two); the documented quota is 3,000 per 150 s per app and tenant.
    #[arg(long, default_value_t = crate::graph::pace::DEFAULT_WRITE_RATE, value_name = "N")]
    pub write_rate: f64,

    /// Requests in flight at once, so that latency never caps the write rate.
    #[arg(long, default_value_t = 32, value_name = "N")]
    pub concurrency: usize,

    /// Read every written user back and compare.
    #[arg(long)]
    pub verify: bool,

    /// Continue the run this journal belongs to (same input, tenant and command; asks for
    /// confirmation like a first run): nothing it finished is sent again, and rows whose
    /// write did not take effect are planned again.
    #[arg(long, value_name = "JOURNAL")]
    pub resume: Option<PathBuf>,

    /// No progress bar.
    #[arg(short, long)]
    pub quiet: bool,

    /// Start a CSV report with a UTF-8 byte-order mark, so Excel reads accents right.
    #[arg(long)]
    pub excel: bool,
}

impl WriteArgs {
    pub fn options(&self, success: Outcome) -> WriteOptions {
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
    pub fn to_write(&self, writes: usize) -> usize {
        self.max_writes.map_or(writes, |max| writes.min(max))
    }

    /// `--resume`'s journal, opened, locked and checked against this run.
    pub fn open_resume(&self, identity: &RunIdentity) -> crate::Result<Option<Resume>> {
        self.resume
            .as_deref()
            .map(|journal| Resume::open(journal, identity.clone()))
            .transpose()
    }

    /// The journal: `--resume`'s, or a new one beside the report.
    pub fn journal_path(&self, report: &Path) -> PathBuf {
        if let Some(resume) = &self.resume {
            return resume.clone();
        }
        if report == Path::new("-") {
            return PathBuf::from(format!(
                "hardmatch-{}.journal",
                chrono::Utc::now().format("%Y%m%dT%H%M%SZ")
            ));
        }
        let mut name = report.as_os_str().to_owned();
        name.push(".journal");
        PathBuf::from(name)
    }
}

pub fn run(args: Args) -> crate::Result<ExitCode> {
    let mode = Mode::Stamp;
    report::check_output(&args.output, report::REPORT_FORMATS)?;
    let flags = [args.plan.written_flags(), args.input.written_flags()].concat();
    // A plan is checked (version, decisions, approvals) before anything is signed in to.
    let plan = Plan::detect(&args.input.input)?;
    let identity = RunIdentity::new("apply", &args.input.input, flags)?;
    let mut resume = args.write.open_resume(&identity)?;
    target::runtime()?.block_on(async {
        let connection = args.target.connect().await?;
        if let Some(resume) = &mut resume {
            let repaired = resume.repair_interrupted_hops(&connection.client).await?;
            if repaired > 0 {
                eprintln!("moved {repaired} users back home from an interrupted federated hop");
            }
        }
        let options = args.plan.options(mode);
        let (records, read) = if let Some(plan) = &plan {
            let mut read =
                read_tenant(&connection.client, &plan.wanted(), args.read.strategy).await?;
            plan.check_tenant(&args.input.input, &read.tenant)?;
            read.notes = plan.notes(&args.input.input, chrono::Utc::now());
            (plan.records(&read.tenant), read)
        } else {
            let source = args.input.open()?;
            let compute = args.input.compute_options();
            let mut prepared = pipeline::prepare(&source, &compute)?;
            let wanted = prepared.wanted(options.match_by, mode);
            let mut read = read_tenant(&connection.client, &wanted, args.read.strategy).await?;
            let (records, notes) = plan_for_sync(&mut prepared, &read.tenant, &options, &compute)?;
            read.notes = notes;
            (records, read)
        };
        let run = WriteRun {
            connection,
            read,
            write: &args.write,
            output: &args.output,
            identity,
            resume,
        };
        let new_anchor = |r: &Record| Some(r.immutable_id.clone());
        match &plan {
            Some(plan) => {
                run.carry_out_with(
                    records,
                    Outcome::Stamped,
                    &new_anchor,
                    &|records, tenant| plan.work_items(records, tenant),
                )
                .await
            }
            None => run.carry_out(records, Outcome::Stamped, new_anchor).await,
        }
    })
}

/// A run confirmed: its journal, what the writer needs to know from an interrupted run, and
/// the writes.
struct Confirmed {
    journal: Journal,
    replay: Option<Replay>,
    settled: Vec<Entry>,
    items: Vec<WorkItem>,
}

/// What every write command does once it has its planned records.
pub struct WriteRun<'a> {
    pub connection: Connection,
    /// The tenant as read before planning, and how it was read.
    pub read: TenantRead,
    pub write: &'a WriteArgs,
    pub output: &'a Path,
    /// What this run is, for its journal's first line.
    pub identity: RunIdentity,
    /// The interrupted run this one continues (`--resume`), checked and locked.
    pub resume: Option<Resume>,
}

impl WriteRun<'_> {
    pub async fn carry_out(
        self,
        records: Vec<Record>,
        success: Outcome,
        new_anchor: impl Fn(&Record) -> Option<String>,
    ) -> crate::Result<ExitCode> {
        let work = |records: &[Record], tenant: &Tenant| {
            pipeline::work_items(records, tenant, &new_anchor)
        };
        self.carry_out_with(records, success, &new_anchor, &work)
            .await
    }

    /// [`WriteRun::carry_out`], with the writes made by `work` from the records as they
    /// stand after a resume's credit (a plan file builds them from its typed rows).
    pub async fn carry_out_with(
        mut self,
        mut records: Vec<Record>,
        success: Outcome,
        new_anchor: &dyn Fn(&Record) -> Option<String>,
        work: &dyn Fn(&[Record], &Tenant) -> Vec<WorkItem>,
    ) -> crate::Result<ExitCode> {
        let started = chrono::Utc::now();
        let confirmed = self.confirmed(&mut records, new_anchor, work)?;
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
        let stopped = pipeline::execute(execution, &mut records, confirmed.items).await?;
        self.report(&records, started, &journal_path, success)?;
        eprint!("{}", how_to_go_on(&records, stopped, &journal_path));
        self.connection.close().await;
        Ok(match stopped {
            Some(stop) => stop.exit_code(),
            None => exit_code_after_canary(&records),
        })
    }

    /// Everything before the first write: on resume, the journal checked against the tenant
    /// and matched to the rows; the summary; the confirmation; the journal opened (a new one,
    /// or the interrupted run's).
    fn confirmed(
        &mut self,
        records: &mut [Record],
        new_anchor: &dyn Fn(&Record) -> Option<String>,
        work: &dyn Fn(&[Record], &Tenant) -> Vec<WorkItem>,
    ) -> crate::Result<Confirmed> {
        let tenant = &self.read.tenant;
        self.identity.tenant = tenant.tenant_id.clone();
        let credit = match &mut self.resume {
            Some(resume) => {
                resume.check_tenant(&tenant.tenant_id)?;
                let credit = resume.credit(records, tenant, new_anchor);
                eprint!("{}", resume.summary(&credit));
                Some(credit)
            }
            None => None,
        };
        let items = work(records, tenant);
        for (name, note) in &self.read.notes {
            eprintln!("{name}: {note}");
        }
        eprintln!(
            "{}",
            describe(records, items.len(), self.write.max_writes, tenant)
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
                    &self.write.journal_path(self.output),
                    &self.identity.run_entry(),
                )?,
                replay: None,
                settled: Vec::new(),
                items,
            },
        })
    }

    /// Writes the report and prints the outcome table. A report that cannot be written is an
    /// error that says the journal is complete and how to rebuild the report from it.
    fn report(
        &self,
        records: &[Record],
        started: chrono::DateTime<chrono::Utc>,
        journal: &Path,
        success: Outcome,
    ) -> crate::Result<()> {
        let tenant = &self.read.tenant;
        let summary = Summary {
            command_line: report::redact_args(std::env::args()),
            tenant: tenant.tenant_id.clone(),
            started: started.to_rfc3339(),
            finished: chrono::Utc::now().to_rfc3339(),
            version: env!("CARGO_PKG_VERSION").to_string(),
            notes: [
                ("tenant read".to_string(), self.read.how.clone()),
                ("journal".to_string(), journal.display().to_string()),
            ]
            .into_iter()
            .chain(self.connection.client.usage_notes())
            .chain([tenant.takeover_note()])
            .chain(self.read.notes.clone())
            .collect(),
        };
        if let Err(e) = report::write(self.output, records, &summary, self.write.excel) {
            return Err(crate::Error::Other(format!(
                "cannot write the report: {e}\n  {} rows are written to the tenant, and every write is in the journal {}, which is complete.\n  Once the report's path can be written (or with another -o), rebuild the report; nothing is written twice:\n  {}",
                records.iter().filter(|r| r.outcome == Some(success)).count(),
                journal.display(),
                resume::continue_command(journal, false)
            )));
        }
        eprint!("{}", report::outcome_table(records));
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
fn left_by_canary(record: &Record) -> bool {
    record.outcome == Some(Outcome::NotAttempted) && record.detail == CANARY_LEFT
}

/// The exit code of a finished run, as `plan::exit_code` says, except that rows a canary left
/// for later are not failures.
fn exit_code_after_canary(records: &[Record]) -> ExitCode {
    let all_fine = records
        .iter()
        .all(|r| left_by_canary(r) || r.outcome.is_some_and(|o| o.is_success()));
    ExitCode::for_rows(all_fine)
}

/// What to do next when the run stopped early (a signal, a missing permission, a canary):
/// why, and the exact command that continues it.
fn how_to_go_on(records: &[Record], stopped: Option<Stop>, journal: &Path) -> String {
    let left = records
        .iter()
        .filter(|r| r.outcome == Some(Outcome::NotAttempted))
        .count();
    let denied = records
        .iter()
        .filter(|r| r.outcome == Some(Outcome::PermissionDenied))
        .count();
    let canary = records.iter().filter(|r| left_by_canary(r)).count();
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
    records: &[Record],
    writes: usize,
    max_writes: Option<usize>,
    tenant: &Tenant,
) -> String {
    let mut text = format!(
        "plan for {}:\n{}",
        tenant.tenant_id,
        report::outcome_table(records)
    );
    let count = |action: Action| {
        records
            .iter()
            .filter(|r| {
                Action::from_code(&r.action) == Some(action)
                    && r.outcome
                        .is_some_and(|o| matches!(o, Outcome::WouldStamp | Outcome::WouldClear))
            })
            .count()
    };
    let overwrites = records
        .iter()
        .filter(|r| {
            r.outcome == Some(Outcome::WouldStamp)
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
