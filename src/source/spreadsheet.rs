//! Workbooks (XLSX, XLSM, XLSB, XLS, ODS) through calamine: the first sheet or `--sheet`, the
//! first non-empty row that names a known column as the header (else the first non-empty row),
//! Excel's own row numbers and cell references in every message. Excel likes to turn a GUID
//! into a number or a date; such a cell is a row problem that names the cell, never a guess.
//!
//! A zip-based workbook is checked before calamine inflates anything (see [`check_parts`]):
//! a zip bomb, a part that inflates to gigabytes, is refused with bounded memory.

use std::borrow::Cow;
use std::io::Read;
use std::path::Path;
use std::sync::Arc;

use calamine::{open_workbook_auto, Data, Reader};

use super::columns::{self, ColumnMap};
use super::{
    classify_object_class, column_letters, Field, Format, Input, Location, ReadOptions, Role, Row,
};
use crate::error::Error;
use crate::outcome::{Outcome, Verdict};

pub fn read(name: &str, path: &Path, options: &ReadOptions) -> crate::Result<Input<'static>> {
    check_parts(name, path)?;
    let mut workbook = open_workbook_auto(path)
        .map_err(|e| Error::Input(format!("{name}: not a readable workbook: {e}")))?;
    let sheets = workbook.sheet_names();
    let sheet = match &options.sheet {
        Some(wanted) => sheets
            .iter()
            .find(|s| s.eq_ignore_ascii_case(wanted))
            .cloned()
            .ok_or_else(|| {
                Error::Input(format!(
                    "{name}: no sheet {wanted:?}; the sheets are: {}",
                    sheets.join(", ")
                ))
            })?,
        None => sheets
            .first()
            .cloned()
            .ok_or_else(|| Error::Input(format!("{name}: the workbook has no sheets")))?,
    };
    let range = workbook
        .worksheet_range(&sheet)
        .map_err(|e| Error::Input(format!("{name} sheet {sheet}: cannot be read: {e}")))?;
    let (first_row, first_col) = range.start().unwrap_or((0, 0));
    let non_empty: Vec<(usize, &[Data])> = range
        .rows()
        .enumerate()
        .filter(|(_, cells)| cells.iter().any(|c| !is_blank(c)))
        .collect();
    let header_at = header_row(&non_empty, first_col as usize, options);
    let headers = non_empty
        .get(header_at)
        .map_or_else(Vec::new, |(_, cells)| headers_of(cells, first_col as usize));
    let rows_iter = non_empty.into_iter().skip(header_at + 1);
    let map = ColumnMap::new(name, &headers, &options.columns)?;
    let roles = map.roles();
    columns::require_usable(&format!("{name} sheet {sheet}"), &roles, &headers)?;
    let sheet_name: Arc<str> = Arc::from(sheet.as_str());
    let rows = rows_iter
        .map(|(offset, cells)| {
            let excel_row = first_row + offset as u32 + 1;
            row_of(
                name,
                &sheet_name,
                excel_row,
                first_col as usize,
                cells,
                &map,
            )
        })
        .collect();
    Ok(Input {
        name: name.to_string(),
        format: Format::Spreadsheet,
        columns: map.found(),
        headers,
        rows,
    })
}

/// The most one part of a workbook (a sheet's XML, the shared strings) may inflate to, and
/// all parts together. A sheet of a million AD users with a dozen columns is a few hundred MB.
const MAX_PART: u64 = 1 << 30;
const MAX_PARTS: u64 = 2 << 30;

/// Deflate cannot inflate more than about 1,032 times: a part compressed smaller than
/// `MAX_PART / MAX_RATIO` cannot be over the limit, whatever its header says.
const MAX_RATIO: u64 = 1032;

/// Refuses a zip-based workbook (XLSX, XLSM, XLSB, ODS) with a part over [`MAX_PART`] or parts
/// over [`MAX_PARTS`] in all. The sizes the zip declares are checked first; a part large enough
/// to hide more than it declares is inflated once into nothing, counting, and stopped at the
/// limit. Anything that is not a zip (XLS) is left to calamine.
fn check_parts(name: &str, path: &Path) -> crate::Result<()> {
    let file = std::fs::File::open(path).map_err(|e| Error::io(path, e))?;
    let Ok(mut zip) = zip::ZipArchive::new(std::io::BufReader::new(file)) else {
        return Ok(());
    };
    let refuse = |part: &str, size: String| {
        Error::Input(format!(
            "{name}: not a usable workbook: its part {part} inflates to {size}, more than the {} MiB hardmatch reads (a zip bomb?); save the sheet again from Excel, or export the users as CSV",
            MAX_PART >> 20
        ))
    };
    let mut total = 0u64;
    for i in 0..zip.len() {
        let (part, declared, compressed) = {
            let entry = zip.by_index_raw(i).map_err(|e| unreadable(name, e))?;
            (
                entry.name().to_string(),
                entry.size(),
                entry.compressed_size(),
            )
        };
        total = total.saturating_add(declared);
        if declared > MAX_PART {
            return Err(refuse(&part, format!("{} MiB", declared >> 20)));
        }
        if total > MAX_PARTS {
            return Err(refuse("list", format!("{} MiB in all", total >> 20)));
        }
        if compressed.saturating_mul(MAX_RATIO) > MAX_PART {
            let entry = zip.by_index(i).map_err(|e| unreadable(name, e))?;
            let inflated =
                std::io::copy(&mut Read::take(entry, MAX_PART + 1), &mut std::io::sink())
                    .map_err(|e| unreadable(name, e.into()))?;
            if inflated > MAX_PART {
                return Err(refuse(
                    &part,
                    format!("more than it declares ({declared} bytes)"),
                ));
            }
        }
    }
    Ok(())
}

fn unreadable(name: &str, error: zip::result::ZipError) -> Error {
    Error::Input(format!("{name}: not a readable workbook: {error}"))
}

/// Which non-empty row is the header: the first whose cells name a usable column (admins
/// put a title above the table), or the first non-empty row when none does.
fn header_row(rows: &[(usize, &[Data])], first_col: usize, options: &ReadOptions) -> usize {
    const LOOK_AHEAD: usize = 20;
    rows.iter()
        .take(LOOK_AHEAD)
        .position(|(_, cells)| {
            let headers = headers_of(cells, first_col);
            ColumnMap::new("", &headers, &options.columns).is_ok_and(|map| {
                let roles = map.roles();
                columns::require_usable("", &roles, &headers).is_ok()
            })
        })
        .unwrap_or(0)
}

/// A header row's cells as text, indexed from column A.
fn headers_of(cells: &[Data], first_col: usize) -> Vec<String> {
    let mut headers = vec![String::new(); first_col];
    headers.extend(cells.iter().map(|c| cell_text(c).trim().to_string()));
    headers
}

fn row_of(
    file: &str,
    sheet: &Arc<str>,
    excel_row: u32,
    first_col: usize,
    cells: &[Data],
    map: &ColumnMap,
) -> Row<'static> {
    let mut row = Row::new(Location::Sheet {
        sheet: sheet.clone(),
        row: excel_row,
    });
    for (role, index, header) in &map.columns {
        let Some(cell) = index.checked_sub(first_col).and_then(|i| cells.get(i)) else {
            continue;
        };
        if is_blank(cell) {
            continue;
        }
        if role.is_anchor() && row.problem.is_none() {
            if let Some(why) = mangled(cell) {
                row.problem = Some(Verdict::new(
                    Outcome::InvalidAnchor,
                    format!(
                        "{file} sheet {sheet} cell {}{excel_row} ({header}): {why}; format the column as Text, paste the values again (or re-import the CSV with the column typed as Text) and run again",
                        column_letters(*index as u32)
                    ),
                ));
            }
        }
        row.set(
            *role,
            Field {
                value: Cow::Owned(cell_text(cell)),
                column: *index as u32,
            },
        );
    }
    if row.problem.is_none() {
        if let Some(problem) =
            classify_object_class(row.value(Role::ObjectClass).unwrap_or("").split(';'))
        {
            row.problem = Some(Verdict::new(
                Outcome::NotAUser,
                format!("{file} sheet {sheet} row {excel_row}: {problem}"),
            ));
        }
    }
    row
}

fn is_blank(cell: &Data) -> bool {
    match cell {
        Data::Empty => true,
        Data::String(s) => s.trim().is_empty(),
        _ => false,
    }
}

/// Why an anchor cell cannot be a GUID any more, if Excel changed it.
fn mangled(cell: &Data) -> Option<String> {
    match cell {
        Data::Int(_) | Data::Float(_) => Some(format!(
            "Excel turned the value into the number {}",
            cell_text(cell)
        )),
        Data::DateTime(_) | Data::DateTimeIso(_) | Data::DurationIso(_) => Some(format!(
            "Excel turned the value into a date or time ({})",
            cell_text(cell)
        )),
        Data::Error(e) => Some(format!("the cell holds the Excel error {e}")),
        Data::String(s) if is_scientific(s.trim()) => Some(format!(
            "the value {s} is a number in scientific notation: Excel rounded it"
        )),
        _ => None,
    }
}

/// `1.23E+15`: what Excel shows for a long digit-only value it took for a number.
fn is_scientific(s: &str) -> bool {
    let Some((mantissa, exponent)) = s.split_once(['E', 'e']) else {
        return false;
    };
    let exponent = exponent.strip_prefix(['+', '-']).unwrap_or(exponent);
    !mantissa.is_empty()
        && mantissa.bytes().all(|b| b.is_ascii_digit() || b == b'.')
        && !exponent.is_empty()
        && exponent.bytes().all(|b| b.is_ascii_digit())
}

/// A cell as text: whole numbers without `.0`, everything else as calamine shows it.
fn cell_text(cell: &Data) -> String {
    match cell {
        Data::Float(f) if f.fract() == 0.0 && f.abs() < 1e15 => format!("{}", *f as i64),
        Data::String(s) => s.clone(),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scientific_notation_is_spotted() {
        assert!(is_scientific("1.23E+15"));
        assert!(is_scientific("8E-05"));
        assert!(!is_scientific("8c4ac332-975f-4717-ad7b-ba4a4e968fff"));
        assert!(!is_scientific("E12345"));
    }
}
