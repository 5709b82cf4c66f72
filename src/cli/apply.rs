//! `hardmatch apply`: plan, confirm, then stamp onPremisesImmutableId at the Graph write quota,
//! journaled and resumable. With a plan file, writes exactly the rows the plan approved.
//! The run itself is [`crate::run::apply`].

use std::path::PathBuf;

use super::input::InputArgs;
use super::plan::PlanArgs;
use super::target::{ReadArgs, TargetArgs};
use crate::exit_code::ExitCode;
use crate::plan::Mode;
use crate::run::{self, write::Settings};

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
pub(crate) struct Args {
    #[command(flatten)]
    pub(crate) input: InputArgs,

    /// The report: .csv, .xlsx or .json; the journal is written beside it.
    #[arg(short, long, value_name = "FILE")]
    pub(crate) output: PathBuf,

    #[command(flatten)]
    pub(crate) target: TargetArgs,

    #[command(flatten)]
    pub(crate) read: ReadArgs,

    #[command(flatten)]
    pub(crate) plan: PlanArgs,

    #[command(flatten)]
    pub(crate) write: WriteArgs,
}

/// How writes are carried out, shared by apply, clear and rollback.
#[derive(Debug, Clone, clap::Args)]
pub(crate) struct WriteArgs {
    /// Do not ask for confirmation (required without a terminal).
    #[arg(long)]
    pub(crate) yes: bool,

    /// Write at most N rows, leave the rest `not-attempted` (a canary batch).
    #[arg(long, value_name = "N")]
    pub(crate) max_writes: Option<usize>,

    /// Write requests per second, whatever the rows (a federated hop sends three, a purge and
    /// stamp two); the documented quota is 3,000 per 150 s per app and tenant.
    #[arg(long, default_value_t = crate::graph::pace::DEFAULT_WRITE_RATE, value_name = "N")]
    pub(crate) write_rate: f64,

    /// Requests in flight at once, so that latency never caps the write rate.
    #[arg(long, default_value_t = 32, value_name = "N")]
    pub(crate) concurrency: usize,

    /// Read every written user back and compare.
    #[arg(long)]
    pub(crate) verify: bool,

    /// Continue the run this journal belongs to (same input, tenant and command; asks for
    /// confirmation like a first run): nothing it finished is sent again, and rows whose
    /// write did not take effect are planned again.
    #[arg(long, value_name = "JOURNAL")]
    pub(crate) resume: Option<PathBuf>,

    /// No progress bar.
    #[arg(short, long)]
    pub(crate) quiet: bool,

    /// Start a CSV report with a UTF-8 byte-order mark, so Excel reads accents right.
    #[arg(long)]
    pub(crate) excel: bool,
}

impl WriteArgs {
    /// How the run's writes are carried out.
    pub(crate) fn settings(&self) -> Settings {
        Settings {
            yes: self.yes,
            max_writes: self.max_writes,
            write_rate: self.write_rate,
            concurrency: self.concurrency,
            verify: self.verify,
            resume: self.resume.clone(),
            quiet: self.quiet,
            excel: self.excel,
        }
    }
}

pub fn run(args: Args) -> crate::Result<ExitCode> {
    let mut input = args.input.to_input();
    input.flags = [args.plan.written_flags(), input.flags].concat();
    run::apply::run(
        &run::apply::Options {
            input,
            output: args.output,
            plan: args.plan.options(Mode::Stamp),
            strategy: args.read.strategy,
            write: args.write.settings(),
        },
        &args.target,
    )
}
