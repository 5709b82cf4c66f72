//! The reporter stage: exactly one report row per input row, in input order, whatever
//! happened to it, as CSV ([`csv`]), XLSX ([`xlsx`]) or JSON ([`json`]).
//!
//! Every stage fills in a [`Record`]; this module only decides how records look on disk.
//! CSV cells are made safe to open in Excel here (see [`excel_safe`]), and our own readers
//! (`rollback REPORT`) undo that with [`from_excel_safe`]. Cells of the [`ID_COLUMNS`] that hold
//! a well-formed anchor or GUID are the exception: they are written exactly ([`excel_safe_id`]).

pub(crate) mod csv;
pub(crate) mod json;
pub mod read;
pub(crate) mod xlsx;

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::anchor;
use crate::error::Error;
use crate::outcome::{Outcome, Warning, Warnings};

/// One report row. Empty strings and `None`s are written as empty cells; a column a report
/// lacks reads as its empty value.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Record {
    /// 1-based position of the row in the input.
    pub(crate) row: usize,
    /// Where the row came from: `file:line`, or `file sheet S row N`.
    pub(crate) source: String,
    pub(crate) line: u64,
    pub upn: String,
    pub(crate) target_upn: String,
    pub(crate) object_guid: String,
    pub(crate) immutable_id: String,
    /// Which attribute gave the ImmutableId: `objectGUID`, `mS-DS-ConsistencyGuid`, or the
    /// header of the export's ImmutableId column.
    #[serde(default)]
    pub(crate) anchor_source: String,
    pub cloud_user_id: String,
    pub(crate) cloud_upn: String,
    pub(crate) previous_immutable_id: Option<String>,
    pub(crate) action: String,
    pub outcome: Option<Outcome>,
    /// What a row that can be stamped should make the admin look at (codes joined by `;`).
    #[serde(default)]
    pub(crate) warnings: Warnings,
    pub detail: String,
    pub(crate) holder_id: String,
    pub(crate) holder_upn: String,
    pub(crate) holder_deleted_at: String,
    pub(crate) http_status: Option<u16>,
    pub(crate) graph_error_code: String,
    pub(crate) request_id: String,
    pub(crate) attempts: u32,
    pub(crate) timestamp: String,
    /// `rehearse` only: what plan predicted for the row, beside what verify found.
    pub plan_outcome: Option<Outcome>,
    /// `rehearse` only: what apply did with the row.
    pub apply_outcome: Option<Outcome>,
    /// The onPremisesObjectIdentifier the row's write clears (`--clear-object-identifier`),
    /// or that a rollback puts back. Not a report column: the journal keeps it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) object_identifier: Option<String>,
    /// The change board's approval in a plan file (`yes`, `no` or empty), carried into the
    /// report of `apply PLAN` (see [`crate::plan_file`]).
    pub(crate) approved: String,
    /// The change board's free comment in a plan file, carried through like `approved`.
    pub(crate) comment: String,
    /// In a plan file, the row's decision digest (see [`crate::plan_file`]); the report of
    /// `apply PLAN` keeps it, so that each written row points at the decision approved.
    pub(crate) decision_digest: String,
}

/// The report's columns, in the order issue 4 fixes for CSV and XLSX.
pub const COLUMNS: [&str; 28] = [
    "row",
    "source",
    "line",
    "upn",
    "target_upn",
    "object_guid",
    "immutable_id",
    "anchor_source",
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
    "plan_outcome",
    "apply_outcome",
    "approved",
    "comment",
    "decision_digest",
];

impl Record {
    /// The cells in [`COLUMNS`] order, as plain text (not yet made Excel-safe).
    pub fn cells(&self) -> [Cow<'_, str>; 28] {
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
            Cow::Borrowed(&self.anchor_source),
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
            self.plan_outcome
                .map_or(Cow::Borrowed(""), |o| Cow::Borrowed(o.code())),
            self.apply_outcome
                .map_or(Cow::Borrowed(""), |o| Cow::Borrowed(o.code())),
            Cow::Borrowed(&self.approved),
            Cow::Borrowed(&self.comment),
            Cow::Borrowed(&self.decision_digest),
        ]
    }
}

/// What the Summary sheet and the stderr summary say about a run.
#[derive(Clone, Debug, Default, Serialize)]
pub(crate) struct Summary {
    /// The command line, with every secret left out (see [`redact_args`]).
    pub(crate) command_line: String,
    pub(crate) tenant: String,
    /// RFC 3339; the workbook shows it as an Excel date in UTC, to the second.
    pub(crate) started: String,
    /// RFC 3339, as `started`.
    pub(crate) finished: String,
    pub(crate) version: String,
    /// Extra facts worth a line (requests used, read strategy, ...). A value that is a whole
    /// number is a count: the workbook writes it as a number.
    pub(crate) notes: Vec<(String, String)>,
}

/// Counts each item (an outcome, a warning), in the items' order ([`Outcome::ALL`],
/// [`Warning::ALL`]).
pub(crate) fn tally<T: Ord>(items: impl Iterator<Item = T>) -> BTreeMap<T, usize> {
    let mut counts = BTreeMap::new();
    for item in items {
        *counts.entry(item).or_insert(0) += 1;
    }
    counts
}

/// Counts records by outcome, in [`Outcome::ALL`] order.
pub(crate) fn count_outcomes(records: &[Record]) -> BTreeMap<Outcome, usize> {
    tally(records.iter().filter_map(|r| r.outcome))
}

/// Counts records by warning, in [`Warning::ALL`] order.
pub(crate) fn count_warnings(records: &[Record]) -> BTreeMap<Warning, usize> {
    tally(records.iter().flat_map(|r| r.warnings.iter()))
}

/// The summary table printed on stderr: one line per outcome that occurred, then the total,
/// then one line per warning that occurred.
pub(crate) fn outcome_table(records: &[Record]) -> String {
    table(
        count_outcomes(records),
        records.len(),
        count_warnings(records),
    )
}

/// [`outcome_table`]'s text from its counts (a write run counts its plan's rows, before any
/// record is made).
pub(crate) fn table(
    outcomes: BTreeMap<Outcome, usize>,
    rows: usize,
    warnings: BTreeMap<Warning, usize>,
) -> String {
    let mut out = String::new();
    for (outcome, count) in outcomes {
        out.push_str(&format!("  {:<28} {count:>9}\n", outcome.code()));
    }
    out.push_str(&format!("  {:<28} {:>9}\n", "rows", rows));
    for (warning, count) in warnings {
        out.push_str(&format!("  warning {:<20} {count:>9}\n", warning.code()));
    }
    out
}

/// The formats hardmatch writes, chosen by the output path's extension.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Format {
    Csv,
    Xlsx,
    Json,
}

impl Format {
    fn extension(self) -> &'static str {
        match self {
            Format::Csv => ".csv",
            Format::Xlsx => ".xlsx",
            Format::Json => ".json",
        }
    }
}

/// What a command can write: the formats, and the one for `-` or a path without an extension
/// (such as `/dev/stdout`).
pub(crate) const REPORT_FORMATS: (&[Format], Format) =
    (&[Format::Csv, Format::Xlsx, Format::Json], Format::Csv);

/// `--uncovered` lists are CSV only.
const UNCOVERED_FORMATS: (&[Format], Format) = (&[Format::Csv], Format::Csv);

/// Checks an output path before a command reads anything: its extension names a format the
/// command can write (`.csv`, `.xlsx`, `.json`; none, or `-`, is `formats.1`), it is none of
/// the files the command `reads` ([`check_not_read`]), and the file can be written (its
/// directory exists and takes files; not a link to a file; see
/// [`crate::private::check_writable`]). Returns the format to write.
pub(crate) fn check_output(
    path: &Path,
    formats: (&[Format], Format),
    reads: &[&Path],
) -> crate::Result<Format> {
    let (allowed, default) = formats;
    let format = match path.extension().and_then(|e| e.to_str()) {
        _ if path == Path::new("-") => default,
        None => default,
        Some(ext) if ext.eq_ignore_ascii_case("csv") => Format::Csv,
        Some(ext) if ext.eq_ignore_ascii_case("xlsx") => Format::Xlsx,
        Some(ext) if ext.eq_ignore_ascii_case("json") => Format::Json,
        Some(ext) => return Err(cannot_write(path, ext, allowed)),
    };
    if !allowed.contains(&format) {
        return Err(cannot_write(path, &format.extension()[1..], allowed));
    }
    if path != Path::new("-") {
        check_not_read(path, reads)?;
        crate::private::check_writable(path).map_err(|e| Error::io(path, e))?;
    }
    Ok(format)
}

/// Checks the `--uncovered` list's path as [`check_output`] does, and that it is not the
/// report's (`output`): the second written would replace the first.
pub(crate) fn check_uncovered(path: &Path, output: &Path, reads: &[&Path]) -> crate::Result<()> {
    if same_file(path, output) {
        return Err(Error::Usage(format!(
            "{}: the report (-o) is written there too; give --uncovered another path",
            path.display()
        )));
    }
    check_output(path, UNCOVERED_FORMATS, reads).map(drop)
}

/// Refuses an output that is a file the command reads (`-o users.csv` for the export
/// `users.csv`, the approved plan, the report or journal being undone or resumed), by
/// another name or through a link too: written over, the export of a forest that may be gone,
/// the board's plan or the only record of a run would be lost.
fn check_not_read(output: &Path, reads: &[&Path]) -> crate::Result<()> {
    let read = reads.iter().find(|read| same_file(output, read));
    match read {
        Some(read) => Err(Error::Usage(format!(
            "{}: this command reads {}, and its output would replace it; choose another output path",
            output.display(),
            read.display()
        ))),
        None => Ok(()),
    }
}

/// Whether two paths are one file: the same path, or the same file by another name or link
/// (a path not there yet is no other file).
fn same_file(a: &Path, b: &Path) -> bool {
    a == b || same_file::is_same_file(a, b).unwrap_or(false)
}

fn cannot_write(path: &Path, ext: &str, allowed: &[Format]) -> Error {
    let names: Vec<&str> = allowed.iter().map(|f| f.extension()).collect();
    Error::Usage(format!(
        "{}: cannot write .{ext}; name the file {}",
        path.display(),
        names.join(", ")
    ))
}

/// Writes the records in the format the path's extension names (see [`check_output`]).
/// `-` is CSV on stdout.
pub(crate) fn write(
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
    // What the command reads was checked before it read it.
    let format = check_output(path, REPORT_FORMATS, &[])?;
    replace_whole(path, |to| match format {
        Format::Xlsx => xlsx::write(to, records, summary),
        Format::Json => json::write(to, records, summary),
        Format::Csv => csv::write(to, records, excel_bom),
    })
}

/// Writes a file through `write` to a temporary file beside it, then renames it into place:
/// a full disk or a kill during the write leaves the old report (or none), never a cut one.
/// `-`, devices and pipes are written directly.
pub(crate) fn replace_whole(
    path: &Path,
    write: impl FnOnce(&Path) -> crate::Result<()>,
) -> crate::Result<()> {
    // Windows has no metadata for a device such as NUL: only a path that is not there yet
    // is a new file.
    let regular = match std::fs::symlink_metadata(path) {
        Ok(meta) => meta.is_file(),
        Err(e) => e.kind() == std::io::ErrorKind::NotFound && path != Path::new("-"),
    };
    if !regular {
        return write(path);
    }
    let temporary = temporary_beside(path);
    let written = write(&temporary)
        .and_then(|()| std::fs::rename(&temporary, path).map_err(|e| crate::Error::io(path, e)));
    if written.is_err() {
        let _ = std::fs::remove_file(&temporary);
    }
    written
}

/// `.NAME.PID.tmp` in the directory of `path`.
fn temporary_beside(path: &Path) -> std::path::PathBuf {
    let name = path
        .file_name()
        .map_or_else(|| "report".into(), |n| n.to_string_lossy().into_owned());
    path.with_file_name(format!(".{name}.{}.tmp", std::process::id()))
}

/// Writes the `--uncovered` list for a run's records against `tenant`, and says how long it
/// is on stderr.
pub(crate) fn write_uncovered_of(
    path: &Path,
    tenant: &crate::tenant::Tenant,
    records: &[Record],
) -> crate::Result<()> {
    let uncovered = tenant.uncovered(&covered(records));
    write_uncovered(path, &uncovered)?;
    eprintln!(
        "{}: {} cloud-only users no row targets",
        path.display(),
        uncovered.len()
    );
    Ok(())
}

/// The `--uncovered` list: the cloud users no row of a run targets, one CSV line each.
fn write_uncovered(path: &Path, users: &[&crate::tenant::User]) -> crate::Result<()> {
    let header = ["userPrincipalName", "id", "mail", "createdDateTime"];
    csv::write_rows(path, false, &header, users.len(), |i, cells| {
        let user = users[i];
        cells.cell(&user.user_principal_name);
        cells.cell(&user.id);
        cells.cell(user.mail.as_deref().unwrap_or(""));
        cells.cell(user.created_date_time.as_deref().unwrap_or(""));
    })
}

/// The cloud users a run's rows name, for [`crate::tenant::Tenant::uncovered`]: each row's
/// target by id, and by UPN (caseless) for rows that never got as far as finding it (a bad
/// anchor still names the user it was meant for).
fn covered(records: &[Record]) -> std::collections::HashSet<String> {
    records
        .iter()
        .flat_map(|r| [&r.cloud_user_id, &r.target_upn, &r.upn])
        .filter(|key| !key.is_empty())
        .map(|key| crate::tenant::caseless(key))
        .collect()
}
/// The columns that hold an anchor or an object id. A well-formed anchor or GUID in them is
/// written exactly in every format (see [`excel_safe_id`]); any other value, such as an
/// `onPremisesImmutableId` someone stored in the tenant by hand, is guarded like free text.
pub const ID_COLUMNS: [&str; 5] = [
    "object_guid",
    "immutable_id",
    "cloud_user_id",
    "previous_immutable_id",
    "holder_id",
];

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

/// [`excel_safe`] for a cell of an [`ID_COLUMNS`] column: a well-formed anchor or GUID (see
/// [`anchor::is_well_formed`]) is written exactly, even when it starts with `+`, because it
/// cannot hold a formula and a script that feeds it to `Update-MgUser` must get the anchor
/// itself. [`from_excel_safe`] reads both this and the escaped form older reports wrote.
pub(crate) fn excel_safe_id(value: &str) -> Cow<'_, str> {
    // The cheap test first: `ids` writes a million anchors, and 63 in 64 start with a letter.
    if needs_apostrophe(value) && !anchor::is_well_formed(value) {
        Cow::Owned(format!("'{value}"))
    } else {
        Cow::Borrowed(value)
    }
}

/// The inverse of [`excel_safe`] and [`excel_safe_id`].
pub fn from_excel_safe(cell: &str) -> &str {
    match cell.strip_prefix('\'') {
        Some(rest) if needs_apostrophe(rest) => rest,
        _ => cell,
    }
}

/// The command line for the Summary sheet, with the values of secret-bearing options left out.
/// Secrets should never be on a command line at all (they come from the environment), but an
/// admin may still type one, or a URL with a password in it; it must not reach a report.
pub(crate) fn redact_args(args: impl IntoIterator<Item = String>) -> String {
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
    fn well_formed_ids_are_exact_and_everything_else_is_guarded() {
        for exact in [
            "+UCRosYTSUiYkAaHBy3s6A==",
            "a29140f9-13c6-4849-9890-0687072dece8",
        ] {
            assert_eq!(excel_safe_id(exact), exact);
            assert_eq!(from_excel_safe(exact), exact);
            // What older reports wrote still reads back exactly.
            assert_eq!(from_excel_safe(&excel_safe(exact)), exact);
        }
        for hostile in ["=HYPERLINK(\"http://x\")", "+1+1", "-E12345", "@SUM(A1)"] {
            let safe = excel_safe_id(hostile);
            assert_eq!(safe, format!("'{hostile}"));
            assert_eq!(from_excel_safe(&safe), hostile);
        }
    }

    #[test]
    fn a_report_write_that_fails_leaves_the_old_report_and_no_temporary_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("r.csv");
        std::fs::write(&path, "the old report").unwrap();
        let failed = replace_whole(&path, |to| {
            std::fs::write(to, "half a rep").unwrap();
            Err(crate::Error::Other("disk full".into()))
        });
        assert!(failed.is_err());
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "the old report");
        assert_eq!(
            std::fs::read_dir(dir.path()).unwrap().count(),
            1,
            "no temporary file"
        );
        replace_whole(&path, |to| {
            std::fs::write(to, "the new report").map_err(|e| crate::Error::io(to, e))
        })
        .unwrap();
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "the new report");
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
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
