//! XLSX reports for the change board: a Summary sheet (counts by outcome, the command line
//! with secrets left out, tenant, time, version) and a Rows sheet (frozen header, autofilter,
//! widths that fit, one colour per outcome group).
//!
//! Values are written as strings and numbers, never as formulas, so no cell can run.

use std::io::Write;
use std::path::Path;

use rust_xlsxwriter::{Color, Format, Workbook, Worksheet, XlsxError};

use crate::error::Error;
use crate::outcome::{Group, Outcome};

use super::{count_outcomes, count_warnings, Record, Summary, COLUMNS};

pub fn write(path: &Path, records: &[Record], summary: &Summary) -> crate::Result<()> {
    let bytes =
        build(records, summary).map_err(|e| Error::Other(format!("{}: {e}", path.display())))?;
    let mut file = crate::private::create(path).map_err(|e| Error::io(path, e))?;
    file.write_all(&bytes).map_err(|e| Error::io(path, e))
}

fn build(records: &[Record], summary: &Summary) -> Result<Vec<u8>, XlsxError> {
    let mut workbook = Workbook::new();
    summary_sheet(workbook.add_worksheet(), records, summary)?;
    rows_sheet(workbook.add_worksheet(), records)?;
    workbook.save_to_buffer()
}

fn summary_sheet(
    sheet: &mut Worksheet,
    records: &[Record],
    summary: &Summary,
) -> Result<(), XlsxError> {
    let bold = Format::new().set_bold();
    sheet.set_name("Summary")?;
    let mut facts = vec![
        ("hardmatch version", summary.version.clone()),
        ("command line", summary.command_line.clone()),
        ("tenant", summary.tenant.clone()),
        ("started", summary.started.clone()),
        ("finished", summary.finished.clone()),
        ("rows", records.len().to_string()),
    ];
    facts.extend(summary.notes.iter().map(|(k, v)| (k.as_str(), v.clone())));
    let mut row = 0;
    for (name, value) in facts {
        sheet.write_string_with_format(row, 0, name, &bold)?;
        sheet.write_string(row, 1, value)?;
        row += 1;
    }
    row += 1;
    sheet.write_string_with_format(row, 0, "outcome", &bold)?;
    sheet.write_string_with_format(row, 1, "rows", &bold)?;
    for (outcome, count) in count_outcomes(records) {
        row += 1;
        sheet.write_string_with_format(row, 0, outcome.code(), &group_format(outcome))?;
        sheet.write_number(row, 1, count as f64)?;
    }
    let warnings = count_warnings(records);
    if !warnings.is_empty() {
        row += 2;
        sheet.write_string_with_format(row, 0, "warning", &bold)?;
        sheet.write_string_with_format(row, 1, "rows", &bold)?;
        for (warning, count) in warnings {
            row += 1;
            sheet.write_string(row, 0, warning.code())?;
            sheet.write_number(row, 1, count as f64)?;
        }
    }
    sheet.set_column_width(0, 30)?;
    sheet.set_column_width(1, 80)?;
    Ok(())
}

/// Columns written as numbers, so that Excel sorts and filters them as numbers.
const NUMERIC_COLUMNS: [&str; 4] = ["row", "line", "http_status", "attempts"];

fn rows_sheet(sheet: &mut Worksheet, records: &[Record]) -> Result<(), XlsxError> {
    sheet.set_name("Rows")?;
    let header = Format::new()
        .set_bold()
        .set_background_color(Color::RGB(0xD9D9D9));
    let mut widths: Vec<usize> = COLUMNS.iter().map(|c| c.len() + 2).collect();
    for (col, name) in COLUMNS.iter().enumerate() {
        sheet.write_string_with_format(0, col as u16, *name, &header)?;
    }
    let outcome_col = COLUMNS
        .iter()
        .position(|c| *c == "outcome")
        .expect("outcome column");
    for (i, record) in records.iter().enumerate() {
        let row = i as u32 + 1;
        for (col, cell) in record.cells().iter().enumerate() {
            if cell.is_empty() {
                continue;
            }
            widths[col] = widths[col].max(cell.chars().count().min(60));
            let number = NUMERIC_COLUMNS
                .contains(&COLUMNS[col])
                .then(|| cell.parse::<f64>().ok())
                .flatten();
            match (number, col == outcome_col, record.outcome) {
                (Some(n), _, _) => sheet.write_number(row, col as u16, n)?,
                (None, true, Some(outcome)) => sheet.write_string_with_format(
                    row,
                    col as u16,
                    cell.as_ref(),
                    &group_format(outcome),
                )?,
                _ => sheet.write_string(row, col as u16, cell.as_ref())?,
            };
        }
    }
    for (col, width) in widths.iter().enumerate() {
        sheet.set_column_width(col as u16, *width as f64 + 1.0)?;
    }
    sheet.set_freeze_panes(1, 0)?;
    sheet.autofilter(0, 0, records.len() as u32, COLUMNS.len() as u16 - 1)?;
    Ok(())
}

/// Green for success, amber for input and target problems, red for conflicts and service errors.
fn group_format(outcome: Outcome) -> Format {
    let fill = match outcome.group() {
        Group::Success => 0xC6EFCE,
        Group::Input | Group::Target => 0xFFEB9C,
        Group::AnchorConflict | Group::Service => 0xFFC7CE,
    };
    Format::new().set_background_color(Color::RGB(fill))
}
