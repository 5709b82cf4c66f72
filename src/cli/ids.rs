//! `hardmatch ids`: the offline stages on their own. Every row's ImmutableId, or why it has
//! none, without touching a tenant. Replaces the seeds' Excel `=CONCATENATE` step.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::ExitCode;

use super::input::InputArgs;
use crate::compute::{Candidate, SourceAnchor};
use crate::outcome::Outcome;
use crate::pipeline;
use crate::report::csv as report_csv;
use crate::source::Role;

const EXAMPLES: &str = "\
Examples:
  # A Get-ADUser export (Windows PowerShell 5.1 or 7), the ImmutableIds to a file:
  hardmatch ids users.csv -o ids.csv

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

Output columns: line, upn, object_guid, immutable_id, outcome, detail.
Exit codes: 0 every row has an ImmutableId, 1 some rows need attention, 2 the file could not be read.";

/// Compute the ImmutableId of every row of an export, offline.
#[derive(Debug, clap::Args)]
#[command(after_help = EXAMPLES)]
pub struct Args {
    #[command(flatten)]
    pub input: InputArgs,

    /// Where to write the CSV; `-` for stdout.
    #[arg(short, long, value_name = "FILE")]
    pub output: PathBuf,

    /// Start the CSV with a UTF-8 byte-order mark, so Excel reads accents right.
    #[arg(long)]
    pub excel: bool,
}

const COLUMNS: [&str; 6] = [
    "line",
    "upn",
    "object_guid",
    "immutable_id",
    "outcome",
    "detail",
];

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let source = args.input.open()?;
    let prepared = pipeline::prepare(&source, &args.input.compute_options())?;
    let (rows, candidates) = (&prepared.input.rows, &prepared.candidates);
    let unsettled = args.input.source_anchor == SourceAnchor::Auto;
    report_csv::write_rows(
        &args.output,
        args.excel,
        &COLUMNS,
        rows.len(),
        |i, cells| {
            let (row, candidate) = (&rows[i], &candidates[i]);
            let line = row.location.as_ref().map_or(0, |l| l.line());
            cells.cell(itoa::Buffer::new().format(line));
            cells.cell(row.value(Role::Upn).unwrap_or_default());
            let mut guid = uuid::Uuid::encode_buffer();
            cells.cell(
                candidate
                    .guid
                    .map_or("", |g| g.hyphenated().encode_lower(&mut guid)),
            );
            cells.cell(candidate.immutable_id.as_ref().map_or("", |id| id.as_str()));
            let (outcome, detail) = outcome_of(candidate);
            cells.cell(outcome.code());
            match candidate.differing_source().filter(|_| unsettled && detail.is_empty()) {
                Some((_, other)) => cells.cell(&format!(
                    "anchor-source-differs: used mS-DS-ConsistencyGuid, not objectGUID ({other}); if the tenant's sync anchors on objectGUID, use --source-anchor object-guid (plan finds out from already-synced users)"
                )),
                None => cells.cell(detail),
            }
        },
    )?;
    let mut counts: BTreeMap<Outcome, usize> = BTreeMap::new();
    for candidate in candidates {
        *counts.entry(outcome_of(candidate).0).or_default() += 1;
    }
    eprintln!("{}: {} rows", prepared.input.name, rows.len());
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
    Ok(ExitCode::from(u8::from(needs_attention)))
}

fn outcome_of<'c>(candidate: &'c Candidate<'_>) -> (Outcome, &'c str) {
    match &candidate.verdict {
        Some(verdict) => (verdict.outcome, verdict.detail.as_str()),
        None => (Outcome::Computed, ""),
    }
}
