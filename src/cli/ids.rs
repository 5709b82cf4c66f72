//! `hardmatch ids`: the offline stages on their own. Every row's ImmutableId, or why it has
//! none, without touching a tenant. Replaces the seeds' Excel `=CONCATENATE` step.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::path::PathBuf;

use super::input::InputArgs;
use serde::Serialize;
use uuid::Uuid;

use crate::compute::{self, Candidate, SourceAnchor};
use crate::exit_code::ExitCode;
use crate::outcome::Outcome;
use crate::report::{self, csv as report_csv};
use crate::run::stages::{self as pipeline, Prepared};
use crate::source::Role;

const EXAMPLES: &str = "\
Examples:
  # A Get-ADUser export (Windows PowerShell 5.1 or 7), the ImmutableIds to a file:
  hardmatch ids users.csv -o ids.csv

  # The same as a workbook, or as JSON for a script:
  hardmatch ids users.csv -o ids.xlsx
  hardmatch ids users.csv -o ids.json

  # An ldifde export, to the terminal:
  hardmatch ids export.ldf -o -

  # A workbook whose sheet 'Migration' has a column 'Login' for the UPN:
  hardmatch ids wave1.xlsx --sheet Migration --column upn=Login -o ids.csv

  # The tenant's Entra Connect anchors on objectGUID (installed at 1.1.486 or older, or
  # upgraded from DirSync), whatever mS-DS-ConsistencyGuid holds:
  hardmatch ids users.csv --source-anchor object-guid -o ids.csv

Without a tenant to look at, `--source-anchor auto` is the ConsistencyGuid rule (ConsistencyGuid
when set, else objectGUID); a row whose two attributes differ says so in its detail
(anchor-source-differs), since `plan` may find that the tenant's sync uses objectGUID.

Output columns: line, upn, object_guid, immutable_id, anchor_source (the attribute that gave
the ImmutableId), outcome, detail.
Exit codes: 0 every row has an ImmutableId, 1 some rows need attention, 2 the file could not be read.";

/// Compute the ImmutableId of every row of an export, offline.
#[derive(Debug, clap::Args)]
#[command(after_help = EXAMPLES)]
pub(crate) struct Args {
    #[command(flatten)]
    pub(crate) input: InputArgs,

    /// Where to write: .csv, .xlsx or .json by extension; `-` for CSV on stdout.
    #[arg(short, long, value_name = "FILE")]
    pub(crate) output: PathBuf,

    /// Start the CSV with a UTF-8 byte-order mark, so Excel reads accents right.
    #[arg(long)]
    pub(crate) excel: bool,
}

const COLUMNS: [&str; 7] = [
    "line",
    "upn",
    "object_guid",
    "immutable_id",
    "anchor_source",
    "outcome",
    "detail",
];

pub(crate) fn run(args: Args) -> crate::Result<ExitCode> {
    let format = report::check_output(&args.output, report::REPORT_FORMATS)?;
    let source = args.input.open()?;
    let prepared = pipeline::prepare(&source, &args.input.compute_options())?;
    let unsettled = args.input.source_anchor == SourceAnchor::Auto;
    let row = |i| IdRow::of(&prepared, i, unsettled);
    let count = prepared.input.rows.len();
    match format {
        report::Format::Csv => write_csv(&args, count, row)?,
        report::Format::Xlsx => report::xlsx::write_table(
            &args.output,
            "ImmutableIds",
            &COLUMNS,
            &["line"],
            (0..count).map(|i| row(i).cells()),
        )?,
        report::Format::Json => {
            report::json::write_rows(&args.output, &(0..count).map(row).collect::<Vec<_>>())?
        }
    }
    let mut counts: BTreeMap<Outcome, usize> = BTreeMap::new();
    for candidate in &prepared.candidates {
        *counts.entry(outcome_of(candidate).0).or_default() += 1;
    }
    eprintln!("{}: {count} rows", prepared.input.name);
    eprintln!(
        "source anchor: {}",
        match args.input.source_anchor {
            SourceAnchor::ObjectGuid => "objectGUID, as asked (--source-anchor object-guid)",
            SourceAnchor::ConsistencyGuid => "mS-DS-ConsistencyGuid when set, else objectGUID, as asked",
            SourceAnchor::Auto => "mS-DS-ConsistencyGuid when set, else objectGUID: ids sees no tenant, so no evidence (plan looks at the already-synced users)",
        }
    );
    for (outcome, count) in &counts {
        eprintln!("  {:<28} {count:>9}", outcome.code());
    }
    let needs_attention = counts.keys().any(|o| !o.is_success());
    Ok(ExitCode::for_rows(!needs_attention))
}

/// One output row, in every format.
#[derive(Serialize)]
struct IdRow<'a> {
    line: u64,
    upn: &'a str,
    object_guid: Option<Uuid>,
    immutable_id: &'a str,
    anchor_source: &'a str,
    outcome: Outcome,
    detail: Cow<'a, str>,
}

impl<'a> IdRow<'a> {
    /// Row `i`; `unsettled` when no one said which attribute the tenant's sync uses, so a
    /// row whose two GUID attributes differ says so.
    fn of(prepared: &'a Prepared<'_>, i: usize, unsettled: bool) -> IdRow<'a> {
        let (row, candidate) = (&prepared.input.rows[i], &prepared.candidates[i]);
        let (outcome, detail) = outcome_of(candidate);
        let detail = match candidate
            .differing_source()
            .filter(|_| unsettled && detail.is_empty())
        {
            Some((_, other)) => Cow::Owned(format!(
                "anchor-source-differs: used mS-DS-ConsistencyGuid, not objectGUID ({other}); if the tenant's sync anchors on objectGUID, use --source-anchor object-guid (plan finds out from already-synced users)"
            )),
            None => Cow::Borrowed(detail),
        };
        IdRow {
            line: row.location.as_ref().map_or(0, |l| l.line()),
            upn: row.value(Role::Upn).unwrap_or_default(),
            object_guid: candidate.guid,
            immutable_id: candidate.immutable_id.as_ref().map_or("", |id| id.as_str()),
            anchor_source: candidate
                .anchor_role
                .map_or("", |role| compute::anchor_source(&prepared.input, role)),
            outcome,
            detail,
        }
    }

    /// The cells in [`COLUMNS`] order.
    fn cells(&self) -> Vec<Cow<'a, str>> {
        vec![
            Cow::Owned(self.line.to_string()),
            Cow::Borrowed(self.upn),
            Cow::Owned(self.object_guid.map(|g| g.to_string()).unwrap_or_default()),
            Cow::Borrowed(self.immutable_id),
            Cow::Borrowed(self.anchor_source),
            Cow::Borrowed(self.outcome.code()),
            self.detail.clone(),
        ]
    }
}

/// CSV, the fast path (a million rows a second): no cell is copied that need not be.
fn write_csv<'a>(
    args: &Args,
    count: usize,
    row: impl Fn(usize) -> IdRow<'a> + Sync,
) -> crate::Result<()> {
    report_csv::write_rows(&args.output, args.excel, &COLUMNS, count, |i, cells| {
        let row = row(i);
        cells.cell(itoa::Buffer::new().format(row.line));
        cells.cell(row.upn);
        let mut guid = Uuid::encode_buffer();
        cells.id(row
            .object_guid
            .map_or("", |g| g.hyphenated().encode_lower(&mut guid)));
        cells.id(row.immutable_id);
        cells.cell(row.anchor_source);
        cells.cell(row.outcome.code());
        cells.cell(&row.detail);
    })
}

fn outcome_of<'c>(candidate: &'c Candidate<'_>) -> (Outcome, &'c str) {
    match &candidate.verdict {
        Some(verdict) => (verdict.outcome, verdict.detail.as_str()),
        None => (Outcome::Computed, ""),
    }
}
