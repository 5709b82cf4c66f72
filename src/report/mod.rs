//! The reporter stage: exactly one report row per input row, in input order, whatever
//! happened to it, as CSV ([`csv`]), XLSX ([`xlsx`]) or JSON ([`json`]).
//!
//! Every stage fills in a [`Record`]; this module only decides how records look on disk.
//! CSV cells are made safe to open in Excel here (see [`excel_safe`]), and our own readers
//! (`rollback REPORT`) undo that with [`from_excel_safe`].

pub mod csv;
pub mod json;
pub mod xlsx;

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::outcome::{Outcome, Warning, Warnings};

/// One report row. Empty strings and `None`s are written as empty cells.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Record {
    /// 1-based position of the row in the input.
    pub row: usize,
    /// Where the row came from: `file:line`, or `file sheet S row N`.
    pub source: String,
    pub line: u64,
    pub upn: String,
    pub target_upn: String,
    pub object_guid: String,
    pub immutable_id: String,
    pub cloud_user_id: String,
    pub cloud_upn: String,
    pub previous_immutable_id: Option<String>,
    pub action: String,
    pub outcome: Option<Outcome>,
    /// What a row that can be stamped should make the admin look at (codes joined by `;`).
    #[serde(default)]
    pub warnings: Warnings,
    pub detail: String,
    pub holder_id: String,
    pub holder_upn: String,
    pub holder_deleted_at: String,
    pub http_status: Option<u16>,
    pub graph_error_code: String,
    pub request_id: String,
    pub attempts: u32,
    pub timestamp: String,
}

/// The report's columns, in the order issue 4 fixes for CSV and XLSX.
pub const COLUMNS: [&str; 22] = [
    "row",
    "source",
    "line",
    "upn",
    "target_upn",
    "object_guid",
    "immutable_id",
    "cloud_user_id",
    "cloud_upn",
    "previous_immutable_id",
    "action",
    "outcome",
    "warnings",
    "detail",
    "holder_id",
    "holder_upn",
    "holder_deleted_at",
    "http_status",
    "graph_error_code",
    "request_id",
    "attempts",
    "timestamp",
];

impl Record {
    /// The cells in [`COLUMNS`] order, as plain text (not yet made Excel-safe).
    pub fn cells(&self) -> [Cow<'_, str>; 22] {
        fn opt<T: ToString>(v: &Option<T>) -> Cow<'static, str> {
            v.as_ref()
                .map_or(Cow::Borrowed(""), |v| Cow::Owned(v.to_string()))
        }
        [
            Cow::Owned(self.row.to_string()),
            Cow::Borrowed(&self.source),
            Cow::Owned(self.line.to_string()),
            Cow::Borrowed(&self.upn),
            Cow::Borrowed(&self.target_upn),
            Cow::Borrowed(&self.object_guid),
            Cow::Borrowed(&self.immutable_id),
            Cow::Borrowed(&self.cloud_user_id),
            Cow::Borrowed(&self.cloud_upn),
            self.previous_immutable_id
                .as_deref()
                .map_or(Cow::Borrowed(""), Cow::Borrowed),
            Cow::Borrowed(&self.action),
            self.outcome
                .map_or(Cow::Borrowed(""), |o| Cow::Borrowed(o.code())),
            Cow::Owned(self.warnings.to_string()),
            Cow::Borrowed(&self.detail),
            Cow::Borrowed(&self.holder_id),
            Cow::Borrowed(&self.holder_upn),
            Cow::Borrowed(&self.holder_deleted_at),
            opt(&self.http_status),
            Cow::Borrowed(&self.graph_error_code),
            Cow::Borrowed(&self.request_id),
            Cow::Owned(self.attempts.to_string()),
            Cow::Borrowed(&self.timestamp),
        ]
    }
}

/// What the Summary sheet and the stderr summary say about a run.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Summary {
    /// The command line, with every secret left out (see [`redact_args`]).
    pub command_line: String,
    pub tenant: String,
    pub started: String,
    pub finished: String,
    pub version: String,
    /// Extra facts worth a line (requests used, read strategy, ...).
    pub notes: Vec<(String, String)>,
}

/// Counts records by outcome, in [`Outcome::ALL`] order.
pub fn count_outcomes(records: &[Record]) -> BTreeMap<Outcome, usize> {
    let mut counts = BTreeMap::new();
    for outcome in records.iter().filter_map(|r| r.outcome) {
        *counts.entry(outcome).or_insert(0) += 1;
    }
    counts
}

/// Counts records by warning, in [`Warning::ALL`] order.
pub fn count_warnings(records: &[Record]) -> BTreeMap<Warning, usize> {
    let mut counts = BTreeMap::new();
    for warning in records.iter().flat_map(|r| r.warnings.iter()) {
        *counts.entry(warning).or_insert(0) += 1;
    }
    counts
}

/// The summary table printed on stderr: one line per outcome that occurred, then the total,
/// then one line per warning that occurred.
pub fn outcome_table(records: &[Record]) -> String {
    let mut out = String::new();
    for (outcome, count) in count_outcomes(records) {
        out.push_str(&format!("  {:<28} {count:>9}\n", outcome.code()));
    }
    out.push_str(&format!("  {:<28} {:>9}\n", "rows", records.len()));
    for (warning, count) in count_warnings(records) {
        out.push_str(&format!("  warning {:<20} {count:>9}\n", warning.code()));
    }
    out
}

/// Writes the records in the format the path's extension names: `.xlsx`, `.json`, else CSV.
/// `-` is CSV on stdout.
pub fn write(
    path: &Path,
    records: &[Record],
    summary: &Summary,
    excel_bom: bool,
) -> crate::Result<()> {
    tracing::info!(
        "writing the report, {} rows, to {}",
        records.len(),
        path.display()
    );
    match path
        .extension()
        .and_then(|e| e.to_str())
        .map(str::to_ascii_lowercase)
        .as_deref()
    {
        Some("xlsx") => xlsx::write(path, records, summary),
        Some("json") => json::write(path, records, summary),
        _ => csv::write(path, records, excel_bom),
    }
}

/// The first characters that make Excel or LibreOffice read a CSV cell as a formula: OWASP's
/// list (`=`, `+`, `-`, `@`, tab, CR, LF) and ASVS's NUL. A leading apostrophe is included so
/// that the escaping can be undone exactly.
const FORMULA_TRIGGERS: [char; 9] = ['=', '+', '-', '@', '\t', '\r', '\n', '\0', '\''];

/// Whether a cell needs the apostrophe: it starts with a trigger, or starts one after blanks
/// (LibreOffice's "trim spaces" import option would strip them and evaluate the rest).
fn needs_apostrophe(value: &str) -> bool {
    value.starts_with(FORMULA_TRIGGERS) || value.trim_start().starts_with(['=', '+', '-', '@'])
}

/// Makes a CSV cell safe to open in Excel: a value that could start a formula gets a leading
/// apostrophe, which Excel shows as text. ImmutableIds and UPNs can legitimately start with
/// `+` or `-`, so [`from_excel_safe`] undoes this exactly for our own readers (`hardmatch
/// rollback report.csv`).
pub fn excel_safe(value: &str) -> Cow<'_, str> {
    if needs_apostrophe(value) {
        Cow::Owned(format!("'{value}"))
    } else {
        Cow::Borrowed(value)
    }
}

/// The inverse of [`excel_safe`].
pub fn from_excel_safe(cell: &str) -> &str {
    match cell.strip_prefix('\'') {
        Some(rest) if needs_apostrophe(rest) => rest,
        _ => cell,
    }
}

/// The command line for the Summary sheet, with the values of secret-bearing options left out.
/// Secrets should never be on a command line at all (they come from the environment), but an
/// admin may still type one, or a URL with a password in it; it must not reach a report.
pub fn redact_args(args: impl IntoIterator<Item = String>) -> String {
    const SECRET_OPTIONS: [&str; 4] =
        ["--client-secret", "--access-token", "--password", "--token"];
    let mut out = Vec::new();
    let mut hide_next = false;
    for arg in args {
        if hide_next {
            out.push("<redacted>".to_string());
            hide_next = false;
        } else if let Some((name, _)) = arg
            .split_once('=')
            .filter(|(n, _)| SECRET_OPTIONS.contains(n))
        {
            out.push(format!("{name}=<redacted>"));
        } else {
            hide_next = SECRET_OPTIONS.contains(&arg.as_str());
            out.push(crate::graph::auth::without_user_info(&arg));
        }
    }
    out.join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formula_cells_are_escaped_and_restored() {
        for value in [
            "=1+1",
            "+AbC==",
            "-2",
            "@SUM(A1)",
            "\tx",
            "\rx",
            "\nx",
            "\0x",
            "'=x",
            "'plain",
            " =1+1",
            "\u{a0}\u{3000} @SUM(A1)",
            " -x@y.com",
            "''",
        ] {
            let safe = excel_safe(value);
            assert!(safe.starts_with('\''), "{value:?} -> {safe:?}");
            assert_eq!(from_excel_safe(&safe), value);
        }
        for value in [
            "alice@contoso.com",
            "1wfM9xV8fUSHbcAbDlqeOA==",
            "",
            " plain",
            "a=b",
            " 'x",
        ] {
            assert_eq!(excel_safe(value), value);
            assert_eq!(from_excel_safe(value), value);
        }
    }

    #[test]
    fn secrets_are_left_out_of_the_command_line() {
        let args = [
            "hardmatch",
            "apply",
            "--client-secret",
            "s3cr3t",
            "--access-token=t0k3n",
            "x.csv",
            "--graph-url",
            "https://admin:pa55@graph.example.com/",
            "--login-url=https://u:pa55@login.example.com",
        ];
        let line = redact_args(args.map(String::from));
        assert!(
            !line.contains("s3cr3t") && !line.contains("t0k3n") && !line.contains("pa55"),
            "{line}"
        );
        assert_eq!(
            line,
            "hardmatch apply --client-secret <redacted> --access-token=<redacted> x.csv \
             --graph-url https://<user info left out>@graph.example.com/ \
             --login-url=https://<user info left out>@login.example.com"
        );
    }
}
