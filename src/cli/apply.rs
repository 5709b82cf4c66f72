//! `hardmatch apply`: plan, confirm, then stamp onPremisesImmutableId at the Graph write quota,
//! journaled and resumable. With a plan file, writes exactly the rows the plan approved.

use std::io::{BufRead, IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use super::input::InputArgs;
use super::plan::{exit_code, plan_records, PlanArgs};
use super::target::{self, Connection, ReadArgs, TargetArgs};
use crate::graph::read::{TenantRead, Wanted};
use crate::outcome::Outcome;
use crate::pipeline::{self, read_tenant, Execution};
use crate::plan::Mode;
use crate::report::{self, Record, Summary};
use crate::tenant::Tenant;
use crate::write::WriteOptions;

const EXAMPLES: &str = "\
Examples:
  # Rehearse the whole job on the samples against an in-process emulator:
  hardmatch apply samples/getaduser-ps51.csv --emulate samples/tenant.json --yes -o report.csv

  # For real: plan, show the summary, ask, then stamp (signed in with `az login`):
  hardmatch apply users.csv -o report.xlsx

  # A canary batch of 10 writes first, then the rest by resuming the same journal:
  hardmatch apply users.csv -o wave1.csv --max-writes 10 --yes
  hardmatch apply users.csv -o wave1.csv --resume wave1.csv.journal --yes

  # Exactly the rows of a plan the change board approved, re-checked for drift:
  hardmatch plan users.csv -o plan.json
  hardmatch apply plan.json -o report.csv

The journal is written beside the report (REPORT.journal) before every write; `hardmatch
rollback REPORT.journal` puts every previous value back.
Exit codes: 0 every row succeeded or needed nothing, 1 some rows need attention, 2 the run
could not start, 130 interrupted (Ctrl-C; the report still has every row).";

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

    /// Continue the run this journal belongs to: nothing it finished is sent again.
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

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let mode = Mode::Stamp;
    target::runtime()?.block_on(async {
        let connection = args.target.connect().await?;
        if let Some(journal) = &args.write.resume {
            let repaired = pipeline::repair_interrupted_hops(&connection.client, journal).await?;
            if repaired > 0 {
                eprintln!("moved {repaired} users back home from an interrupted federated hop");
            }
        }
        let options = args.plan.options(mode);
        let (records, read) = if is_plan_file(&args.input.input) {
            let mut records = load_plan(&args.input.input)?;
            let mut wanted = Wanted::default();
            for record in records.iter().filter(|r| !r.cloud_user_id.is_empty()) {
                wanted.id(&record.cloud_user_id);
            }
            let read = read_tenant(&connection.client, &wanted, args.read.strategy).await?;
            check_drift(&mut records, &read.tenant);
            (records, read)
        } else {
            let source = args.input.open()?;
            let prepared = pipeline::prepare(&source, &args.input.compute_options())?;
            let wanted = prepared.wanted(options.match_by, mode);
            let read = read_tenant(&connection.client, &wanted, args.read.strategy).await?;
            (plan_records(&prepared, &read.tenant, &options), read)
        };
        let run = WriteRun {
            connection,
            read,
            write: &args.write,
            output: &args.output,
            input: &args.input.input,
        };
        run.carry_out(records, Outcome::Stamped, |r| Some(r.immutable_id.clone()))
            .await
    })
}

/// What every write command does once it has its planned records.
pub struct WriteRun<'a> {
    pub connection: Connection,
    /// The tenant as read before planning, and how it was read.
    pub read: TenantRead,
    pub write: &'a WriteArgs,
    pub output: &'a Path,
    pub input: &'a Path,
}

impl WriteRun<'_> {
    pub async fn carry_out(
        self,
        mut records: Vec<Record>,
        success: Outcome,
        new_anchor: impl Fn(&Record) -> Option<String>,
    ) -> anyhow::Result<ExitCode> {
        let started = chrono::Utc::now();
        let items = pipeline::work_items(&records, &self.read.tenant, new_anchor);
        eprintln!("{}", describe(&records, items.len(), &self.read.tenant));
        if !items.is_empty() && self.write.resume.is_none() {
            confirm(self.write.yes, items.len(), &self.read.tenant)?;
        }
        let execution = Execution {
            client: self.connection.client.clone(),
            tenant: &self.read.tenant,
            journal_path: self.write.journal_path(self.output),
            resume: self.write.resume.is_some(),
            options: self.write.options(success),
            quiet: self.write.quiet,
            command: report::redact_args(std::env::args()),
            input: self.input.display().to_string(),
        };
        let journal = execution.journal_path.clone();
        let interrupted = pipeline::execute(execution, &mut records, items).await?;
        let summary = Summary {
            command_line: report::redact_args(std::env::args()),
            tenant: self.read.tenant.tenant_id.clone(),
            started: started.to_rfc3339(),
            finished: chrono::Utc::now().to_rfc3339(),
            version: env!("CARGO_PKG_VERSION").to_string(),
            notes: [
                ("tenant read".to_string(), self.read.how.clone()),
                ("journal".to_string(), journal.display().to_string()),
            ]
            .into_iter()
            .chain(self.connection.client.usage_notes())
            .chain([self.read.tenant.takeover_note()])
            .collect(),
        };
        report::write(self.output, &records, &summary, self.write.excel)?;
        eprint!("{}", report::outcome_table(&records));
        eprintln!(
            "report {}, journal {}",
            self.output.display(),
            journal.display()
        );
        if let Some(emulator) = self.connection.emulator {
            emulator.stop().await;
        }
        Ok(if interrupted {
            ExitCode::from(130)
        } else {
            exit_code(&records)
        })
    }
}

/// The summary shown before anything is written: what will be sent, and every destructive step.
fn describe(records: &[Record], writes: usize, tenant: &Tenant) -> String {
    let mut text = format!(
        "plan for {}:\n{}",
        tenant.tenant_id,
        report::outcome_table(records)
    );
    let count = |action: &str| {
        records
            .iter()
            .filter(|r| {
                r.action == action
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
            count("purge-holder-then-stamp"),
        ),
        (
            "move a UPN out of its federated domain and back (--federated-hop)",
            count("federated-hop-then-stamp"),
        ),
    ] {
        if n > 0 {
            text.push_str(&format!("  DESTRUCTIVE: {n} rows will {what}\n"));
        }
    }
    let stamps = [
        "stamp",
        "purge-holder-then-stamp",
        "federated-hop-then-stamp",
    ]
    .into_iter()
    .map(count)
    .sum::<usize>();
    if let (true, Some(warning)) = (stamps > 0, tenant.takeover_warning()) {
        text.push_str(&format!("  WARNING: {warning}\n"));
    }
    text.push_str(&format!("{writes} rows to write"));
    text
}

/// Asks on a terminal; without one, `--yes` is required.
fn confirm(yes: bool, writes: usize, tenant: &Tenant) -> anyhow::Result<()> {
    if yes {
        return Ok(());
    }
    if !std::io::stdin().is_terminal() {
        anyhow::bail!(
            "no terminal to confirm on: pass --yes to write {writes} rows to {}",
            tenant.tenant_id
        );
    }
    eprint!("Type yes to write {writes} rows to {}: ", tenant.tenant_id);
    std::io::stderr().flush()?;
    let mut answer = String::new();
    std::io::stdin().lock().read_line(&mut answer)?;
    if answer.trim() != "yes" {
        anyhow::bail!("not confirmed; nothing was written");
    }
    Ok(())
}

fn is_plan_file(path: &Path) -> bool {
    path.extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("json"))
}

/// A reviewed plan's rows, as `hardmatch plan -o plan.json` wrote them.
fn load_plan(path: &Path) -> anyhow::Result<Vec<Record>> {
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

/// Re-checks each approved write against the tenant now: a target whose state moved since the
/// plan is `target-changed-since-plan`, not written.
fn check_drift(records: &mut [Record], tenant: &Tenant) {
    let users = tenant.users_by_id();
    for record in records
        .iter_mut()
        .filter(|r| r.outcome == Some(Outcome::WouldStamp))
    {
        let now = users.get(record.cloud_user_id.as_str()).copied();
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
