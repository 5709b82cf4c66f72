//! `hardmatch ids`: the offline stages on their own. Every row's ImmutableId, or why it has
//! none, without touching a tenant. Replaces the seeds' Excel `=CONCATENATE` step.

use std::path::PathBuf;

use super::input::InputArgs;

use crate::compute::SourceAnchor;
use crate::exit_code::ExitCode;
use crate::ids;
use crate::report;

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

pub(crate) fn run(args: Args) -> crate::Result<ExitCode> {
    let format = report::check_output(&args.output, report::REPORT_FORMATS, &[&args.input.input])?;
    let source = args.input.open()?;
    let options = args.input.compute_options();
    let summary = ids::run(&source, &options, &args.output, format, args.excel)?;
    eprintln!("{}: {} rows", summary.name, summary.rows);
    eprintln!(
        "source anchor: {}",
        match args.input.source_anchor {
            SourceAnchor::ObjectGuid => "objectGUID, as asked (--source-anchor object-guid)",
            SourceAnchor::ConsistencyGuid => "mS-DS-ConsistencyGuid when set, else objectGUID, as asked",
            SourceAnchor::Auto => "mS-DS-ConsistencyGuid when set, else objectGUID: ids sees no tenant, so no evidence (plan looks at the already-synced users)",
        }
    );
    for (outcome, count) in &summary.outcomes {
        eprintln!("  {:<28} {count:>9}", outcome.code());
    }
    let needs_attention = summary.outcomes.keys().any(|o| !o.is_success());
    Ok(ExitCode::for_rows(!needs_attention))
}
