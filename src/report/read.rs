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
    let text = std::fs::read(path).map_err(|e| Error::io(path, e))?;
    if let Some(rows) = crate::plan_file::records_of_json(path, &text)? {
        return Ok(rows);
    }
    #[derive(serde::Deserialize)]
    struct ReportFile {
        rows: Vec<Record>,
    }
    serde_json::from_slice::<ReportFile>(&text)
        .map(|file| file.rows)
        .map_err(|e| not_a_report(path, e))
}

/// Streams the rows into records (a report can have a million rows; they are not held twice).
fn read_csv(path: &Path) -> crate::Result<Vec<Record>> {
    let (mut reader, headers) = csv_reader(path)?;
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

/// A CSV file opened, and its header line (without a byte-order mark).
pub(crate) fn csv_reader(path: &Path) -> crate::Result<(csv::Reader<std::fs::File>, Vec<String>)> {
    let file = std::fs::File::open(path).map_err(|e| Error::io(path, e))?;
    let mut reader = csv::Reader::from_reader(file);
    let headers = reader
        .headers()
        .map_err(|e| not_a_report(path, e))?
        .iter()
        .map(|h| h.trim_start_matches('\u{feff}').to_string())
        .collect();
    Ok((reader, headers))
}

fn read_xlsx(path: &Path) -> crate::Result<Vec<Record>> {
    let table = Table::xlsx(path, "Rows")?;
    check_headers(path, &table.headers)?;
    table.records(path)
}

/// A CSV file or a workbook sheet as text cells under a header row: what a report (or a plan
/// file) is before its rows become records.
pub(crate) struct Table {
    pub(crate) headers: Vec<String>,
    pub(crate) rows: Vec<Vec<String>>,
    /// The sheet the table came from; `None` for CSV.
    pub(crate) sheet: Option<String>,
}

impl Table {
    pub(crate) fn csv(path: &Path) -> crate::Result<Table> {
        let (mut reader, headers) = csv_reader(path)?;
        let rows = reader
            .records()
            .enumerate()
            .map(|(i, cells)| {
                cells
                    .map(|cells| cells.iter().map(str::to_string).collect())
                    .map_err(|e| not_a_report(path, format!("line {}: {e}", i + 2)))
            })
            .collect::<crate::Result<_>>()?;
        Ok(Table {
            headers,
            rows,
            sheet: None,
        })
    }

    pub(crate) fn xlsx(path: &Path, sheet: &str) -> crate::Result<Table> {
        let mut workbook = open_workbook_auto(path).map_err(|e| not_a_report(path, e))?;
        let range = workbook
            .worksheet_range(sheet)
            .map_err(|e| not_a_report(path, format!("no {sheet} sheet ({e})")))?;
        let mut rows = range
            .rows()
            .map(|cells| cells.iter().map(cell_text).collect());
        Ok(Table {
            headers: rows.next().unwrap_or_default(),
            rows: rows.collect(),
            sheet: Some(sheet.to_string()),
        })
    }

    /// Where the `index`th row's cell under `header` is, for a message: `line 5, column
    /// approved` in a CSV, `sheet Rows cell AB5` in a workbook.
    pub(crate) fn place(&self, index: usize, header: &str) -> String {
        let col = self.headers.iter().position(|h| h == header).unwrap_or(0);
        let line = index + 2;
        match &self.sheet {
            None => format!("line {line}, column {header}"),
            Some(sheet) => format!(
                "sheet {sheet} cell {}{line} (column {header})",
                crate::source::column_letters(col as u32)
            ),
        }
    }

    /// The `index`th row's cell under `header`, Excel-safe apostrophe undone; empty when the
    /// table has no such column.
    pub(crate) fn cell(&self, index: usize, header: &str) -> &str {
        self.headers
            .iter()
            .position(|h| h == header)
            .and_then(|col| self.rows[index].get(col))
            .map_or("", |cell| from_excel_safe(cell))
    }

    /// Every row as a record, by header name.
    pub(crate) fn records(&self, path: &Path) -> crate::Result<Vec<Record>> {
        let headers = csv::StringRecord::from(self.headers.clone());
        self.rows
            .iter()
            .enumerate()
            .map(|(i, cells)| {
                record(&headers, cells.iter().map(String::as_str)).map_err(|e| {
                    let place = match &self.sheet {
                        None => format!("line {}", i + 2),
                        Some(sheet) => format!("sheet {sheet} row {}", i + 2),
                    };
                    not_a_report(path, format!("{place}: {e}"))
                })
            })
            .collect()
    }
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
const REPORT_HEADERS: [&str; 4] = ["row", "outcome", "cloud_user_id", "immutable_id"];

/// Whether a header row is a hardmatch report's.
pub(crate) fn is_report(headers: &[String]) -> bool {
    REPORT_HEADERS
        .iter()
        .all(|needed| headers.iter().any(|h| h == needed))
}

fn check_headers(path: &Path, headers: &[String]) -> crate::Result<()> {
    for needed in REPORT_HEADERS {
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
    fn a_report_from_before_the_board_columns_still_reads() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("old.csv");
        let old_columns = &crate::report::COLUMNS[..25];
        assert_eq!(old_columns.last(), Some(&"apply_outcome"));
        let mut cells = vec![""; 25];
        (cells[0], cells[2], cells[12], cells[21]) = ("1", "2", "stamped", "1");
        let text = format!("{}\n{}\n", old_columns.join(","), cells.join(","));
        std::fs::write(&path, text).unwrap();
        let read = read(&path).unwrap();
        assert_eq!(read[0].outcome, Some(Outcome::Stamped));
        assert_eq!(
            (read[0].approved.as_str(), read[0].comment.as_str()),
            ("", "")
        );
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
