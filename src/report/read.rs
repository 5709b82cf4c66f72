//! Reads a hardmatch report back into records: the CSV, the XLSX (its Rows sheet) or the
//! JSON that [`super::write`] wrote, for the commands that start from an earlier run's report
//! (`verify`).
//!
//! Columns are found by their header, so a report from a version with more or fewer columns
//! still reads; a column it lacks is left empty. The Excel-safe apostrophe is undone.

use std::path::Path;

use calamine::{open_workbook_auto, Data, Reader};

use super::{from_excel_safe, Record};
use crate::error::Error;

/// Reads the report at `path`, in the format its extension names (`.xlsx`, `.json`, else CSV).
pub fn read(path: &Path) -> crate::Result<Vec<Record>> {
    match path
        .extension()
        .and_then(|e| e.to_str())
        .map(str::to_ascii_lowercase)
        .as_deref()
    {
        Some("json") => read_json(path),
        Some("xlsx") => read_xlsx(path),
        _ => read_csv(path),
    }
}

fn not_a_report(path: &Path, why: impl std::fmt::Display) -> Error {
    Error::Input(format!("{}: not a hardmatch report: {why}", path.display()))
}

fn read_json(path: &Path) -> crate::Result<Vec<Record>> {
    #[derive(serde::Deserialize)]
    struct ReportFile {
        rows: Vec<Record>,
    }
    let text = std::fs::read(path).map_err(|e| Error::io(path, e))?;
    serde_json::from_slice::<ReportFile>(&text)
        .map(|file| file.rows)
        .map_err(|e| not_a_report(path, e))
}

fn read_csv(path: &Path) -> crate::Result<Vec<Record>> {
    let file = std::fs::File::open(path).map_err(|e| Error::io(path, e))?;
    let mut reader = csv::Reader::from_reader(file);
    let headers = reader
        .headers()
        .map_err(|e| not_a_report(path, e))?
        .iter()
        .map(|h| h.trim_start_matches('\u{feff}').to_string())
        .collect::<Vec<_>>();
    check_headers(path, &headers)?;
    let headers = csv::StringRecord::from(headers);
    reader
        .records()
        .enumerate()
        .map(|(i, cells)| {
            let line = i + 2;
            let cells = cells.map_err(|e| not_a_report(path, format!("line {line}: {e}")))?;
            record(&headers, cells.iter())
                .map_err(|e| not_a_report(path, format!("line {line}: {e}")))
        })
        .collect()
}

fn read_xlsx(path: &Path) -> crate::Result<Vec<Record>> {
    let mut workbook = open_workbook_auto(path).map_err(|e| not_a_report(path, e))?;
    let range = workbook
        .worksheet_range("Rows")
        .map_err(|e| not_a_report(path, format!("no Rows sheet ({e})")))?;
    let mut rows = range.rows();
    let headers: Vec<String> = rows
        .next()
        .map(|cells| cells.iter().map(cell_text).collect())
        .unwrap_or_default();
    check_headers(path, &headers)?;
    let headers = csv::StringRecord::from(headers);
    rows.enumerate()
        .map(|(i, cells)| {
            let texts: Vec<String> = cells.iter().map(cell_text).collect();
            record(&headers, texts.iter().map(String::as_str))
                .map_err(|e| not_a_report(path, format!("sheet Rows row {}: {e}", i + 2)))
        })
        .collect()
}

/// A workbook cell as the text the CSV report would hold (numbers without a trailing `.0`).
fn cell_text(cell: &Data) -> String {
    match cell {
        Data::Float(f) if f.fract() == 0.0 && f.abs() < 1e15 => format!("{}", *f as i64),
        Data::Empty => String::new(),
        other => other.to_string(),
    }
}

/// The columns without which a file cannot be a report of ours.
fn check_headers(path: &Path, headers: &[String]) -> crate::Result<()> {
    for needed in ["row", "outcome", "cloud_user_id", "immutable_id"] {
        if !headers.iter().any(|h| h == needed) {
            return Err(not_a_report(
                path,
                format!("no `{needed}` column (found: {})", headers.join(", ")),
            ));
        }
    }
    Ok(())
}

/// One row's cells, by header name, into a record; empty cells are `None` where a field is
/// optional.
fn record<'a>(
    headers: &csv::StringRecord,
    cells: impl Iterator<Item = &'a str>,
) -> Result<Record, csv::Error> {
    let cells: csv::StringRecord = cells.map(from_excel_safe).collect();
    cells.deserialize(Some(headers))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::outcome::Outcome;
    use crate::report::{write, Summary};

    fn sample() -> Vec<Record> {
        vec![
            Record {
                row: 1,
                upn: "=cmd|' /C calc'!A0@x.com".into(),
                immutable_id: "+UCRosYTSUiYkAaHBy3s6A==".into(),
                cloud_user_id: "u1".into(),
                previous_immutable_id: Some("1wfM9xV8fUSHbcAbDlqeOA==".into()),
                outcome: Some(Outcome::Stamped),
                http_status: Some(204),
                attempts: 2,
                ..Record::default()
            },
            Record {
                row: 2,
                outcome: Some(Outcome::TargetNotFound),
                detail: "no cloud user".into(),
                ..Record::default()
            },
        ]
    }

    #[test]
    fn every_report_format_reads_back_as_written() {
        let dir = tempfile::tempdir().unwrap();
        for name in ["report.csv", "report.xlsx", "report.json"] {
            let path = dir.path().join(name);
            write(&path, &sample(), &Summary::default(), false).unwrap();
            let read = read(&path).unwrap();
            assert_eq!(read.len(), 2, "{name}");
            for (got, want) in read.iter().zip(sample()) {
                assert_eq!(got.row, want.row, "{name}");
                assert_eq!(got.upn, want.upn, "{name}");
                assert_eq!(got.immutable_id, want.immutable_id, "{name}");
                assert_eq!(got.outcome, want.outcome, "{name}");
                assert_eq!(got.http_status, want.http_status, "{name}");
                assert_eq!(got.attempts, want.attempts, "{name}");
                assert_eq!(got.detail, want.detail, "{name}");
                assert_eq!(
                    got.previous_immutable_id.as_deref().unwrap_or(""),
                    want.previous_immutable_id.as_deref().unwrap_or(""),
                    "{name}"
                );
            }
        }
    }

    #[test]
    fn a_file_that_is_no_report_says_which_column_it_lacks() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("users.csv");
        std::fs::write(&path, "UserPrincipalName,ObjectGUID\na@b.com,x\n").unwrap();
        let error = read(&path).unwrap_err().to_string();
        assert!(error.contains("users.csv: not a hardmatch report: no `row` column (found: UserPrincipalName, ObjectGUID)"), "{error}");
    }
}
