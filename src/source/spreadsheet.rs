//! Workbooks (XLSX, XLSM, XLSB, XLS, ODS) through calamine: `--sheet`, else the first sheet, or
//! the only sheet that has the columns the command needs when the first has not (said in
//! [`Input::notes`]); the first non-empty row that names a known column as the header (else the
//! first non-empty row),
//! Excel's own row numbers and cell references in every message. Excel likes to turn a GUID
//! into a number or a date; such a cell is a row problem that names the cell, never a guess.
//!
//! Every workbook passes `guard::check` before calamine reads it: zip bombs, ODS repeats and
//! XLS containers that would make calamine allocate gigabytes are refused there.

use std::borrow::Cow;
use std::io::{Read, Seek};
use std::path::Path;
use std::sync::Arc;

use calamine::{open_workbook_auto, Data, Reader, Sheets};

use super::columns::{self, ColumnMap};
use super::guard::{self, Checked};
use super::{
    classify_object_class, column_letters, Field, Format, Input, Location, ReadOptions, Role, Row,
};
use crate::error::Error;
use crate::outcome::{Outcome, Verdict};

pub(crate) fn read(
    name: &str,
    path: &Path,
    options: &ReadOptions,
) -> crate::Result<Input<'static>> {
    unpanicked(name, || read_workbook(name, path, options))
}

/// calamine panics on some malformed files (found by fuzzing: a cell reference of seven
/// letters or more overflows its column arithmetic, which panics wherever overflow checks are
/// on). A workbook it cannot read is an input error that says what to do, never a crash.
/// Nothing outlives the closure, so a panic inside it leaves no broken state behind.
fn unpanicked(
    name: &str,
    read: impl FnOnce() -> crate::Result<Input<'static>>,
) -> crate::Result<Input<'static>> {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(read)).unwrap_or_else(|panic| {
        let why = panic
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| panic.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "an internal error".to_string());
        Err(Error::Input(format!(
            "{name}: not a readable workbook: the workbook reader failed ({why}); open it in Excel and save it again, or save the sheet as CSV"
        )))
    })
}

fn read_workbook(name: &str, path: &Path, options: &ReadOptions) -> crate::Result<Input<'static>> {
    let not_readable =
        |e: calamine::Error| Error::Input(format!("{name}: not a readable workbook: {e}"));
    match guard::check(name, path)? {
        Checked::File => read_sheets(
            name,
            open_workbook_auto(path).map_err(not_readable)?,
            options,
        ),
        Checked::RebuiltXls(xls) => {
            let xls = calamine::Xls::new(xls).map_err(|e| not_readable(e.into()))?;
            read_sheets(name, Sheets::Xls(xls), options)
        }
    }
}

/// The chosen sheet of a workbook calamine has opened, as rows: `--sheet`, else the first
/// sheet, else the only other sheet that has the columns the command needs.
fn read_sheets<RS: Read + Seek>(
    name: &str,
    mut workbook: Sheets<RS>,
    options: &ReadOptions,
) -> crate::Result<Input<'static>> {
    let sheets = workbook.sheet_names();
    if let Some(wanted) = &options.sheet {
        let sheet = sheets
            .iter()
            .find(|s| s.eq_ignore_ascii_case(wanted))
            .ok_or_else(|| {
                Error::Input(format!(
                    "{name}: no sheet {wanted:?}; the sheets are: {}",
                    sheets.join(", ")
                ))
            })?;
        let table = table(name, &mut workbook, sheet, options)?.usable()?;
        return Ok(table.into_input(name, Vec::new()));
    }
    let first = sheets
        .first()
        .ok_or_else(|| Error::Input(format!("{name}: the workbook has no sheets")))?;
    let unusable = match table(name, &mut workbook, first, options)? {
        Sheet::Usable(table) => return Ok(table.into_input(name, Vec::new())),
        Sheet::Unusable(why) => why,
    };
    // The other sheets, checked one at a time (only one is held in memory); one that cannot
    // be read at all is skipped, as the first sheet's problem is what the admin asked about.
    let mut usable = Vec::new();
    for sheet in &sheets[1..] {
        if let Ok(Sheet::Usable(_)) = table(name, &mut workbook, sheet, options) {
            usable.push(sheet.as_str());
        }
    }
    match usable.as_slice() {
        [] if sheets.len() == 1 => Err(unusable),
        [] => Err(Error::Input(format!(
            "{unusable}. No other sheet ({}) has the columns needed either",
            sheets[1..].join(", ")
        ))),
        [only] => {
            let note = format!(
                "{name}: reading sheet {only}, the only one with the columns needed (the first sheet, {first}, has not)"
            );
            let table = table(name, &mut workbook, only, options)?.usable()?;
            Ok(table.into_input(name, vec![note]))
        }
        several => Err(Error::Input(format!(
            "{unusable}. The sheets {} have the columns needed: choose one with --sheet NAME",
            several.join(", ")
        ))),
    }
}

/// A sheet read and its header mapped, or why the command cannot use it.
enum Sheet {
    Usable(Table),
    Unusable(Error),
}

impl Sheet {
    fn usable(self) -> crate::Result<Table> {
        match self {
            Sheet::Usable(table) => Ok(table),
            Sheet::Unusable(why) => Err(why),
        }
    }
}

/// A sheet's rows with its header row found and mapped.
struct Table {
    sheet: Arc<str>,
    rows: Vec<SheetRow>,
    header_at: usize,
    headers: Vec<String>,
    map: ColumnMap,
}

/// Reads a sheet and maps its header. An `Err` is a sheet that cannot be read at all.
fn table<RS: Read + Seek>(
    name: &str,
    workbook: &mut Sheets<RS>,
    sheet: &str,
    options: &ReadOptions,
) -> crate::Result<Sheet> {
    let rows = sheet_rows(workbook, sheet)
        .map_err(|e| Error::Input(format!("{name} sheet {sheet}: cannot be read: {e}")))?;
    let header_at = header_row(&rows, options);
    let headers = rows
        .get(header_at)
        .map_or_else(Vec::new, |row| headers_of(&row.cells));
    let place = format!("{name} sheet {sheet}");
    let checked = ColumnMap::new(&place, &headers, &options.columns).and_then(|map| {
        columns::require_usable(&place, &map.found(), &headers, options.anchor_optional)?;
        Ok(map)
    });
    Ok(match checked {
        Ok(map) => Sheet::Usable(Table {
            sheet: Arc::from(sheet),
            rows,
            header_at,
            headers,
            map,
        }),
        Err(why) => Sheet::Unusable(why),
    })
}

impl Table {
    fn into_input(self, name: &str, notes: Vec<String>) -> Input<'static> {
        let rows = self
            .rows
            .iter()
            .skip(self.header_at + 1)
            .map(|sheet_row| row_of(name, &self.sheet, sheet_row, &self.map))
            .collect();
        Input {
            name: name.to_string(),
            format: Format::Spreadsheet,
            columns: self.map.found(),
            headers: self.headers,
            rows,
            notes,
        }
    }
}

/// Excel's limits: 1,048,576 rows and 16,384 columns (A to XFD). No format holds more.
pub(super) const EXCEL_ROWS: u32 = 1 << 20;
pub(super) const EXCEL_COLUMNS: u32 = 1 << 14;

/// A non-empty row of a sheet: its 0-based index and its non-blank cells, by 0-based column,
/// in column order.
struct SheetRow {
    index: u32,
    cells: Vec<(u32, Data)>,
}

/// The sheet's non-empty rows, sparse. calamine's own `worksheet_range` is dense: two cells at
/// A1 and XFD1048576 would make it allocate seventeen billion cells, so an XLSX sheet is read
/// cell by cell instead (XLS is dense too, but at most 65,536 rows of 256 columns).
fn sheet_rows<RS: Read + Seek>(
    workbook: &mut Sheets<RS>,
    sheet: &str,
) -> Result<Vec<SheetRow>, String> {
    let mut cells: Vec<((u32, u32), Data)> = Vec::new();
    // XLSX and XLSB readers are different types with the same methods and no shared trait.
    macro_rules! stream_cells {
        ($book:expr) => {{
            let mut reader = $book
                .worksheet_cells_reader(sheet)
                .map_err(|e| e.to_string())?;
            while let Some(cell) = reader.next_cell().map_err(|e| e.to_string())? {
                let value = Data::from(cell.get_value().clone());
                if !is_blank(&value) {
                    cells.push((cell.get_position(), value));
                }
            }
        }};
    }
    match workbook {
        Sheets::Xlsx(xlsx) => stream_cells!(xlsx),
        // XLSB holds as many cells as XLSX, and calamine streams them as well.
        Sheets::Xlsb(xlsb) => stream_cells!(xlsb),
        other => {
            let range = other.worksheet_range(sheet).map_err(|e| e.to_string())?;
            let (row0, col0) = range.start().unwrap_or((0, 0));
            cells.extend(
                range
                    .cells()
                    .filter(|(_, _, value)| !is_blank(value))
                    .map(|(r, c, value)| ((row0 + r as u32, col0 + c as u32), value.clone())),
            );
        }
    }
    // Past Excel's last cell (XFD1048576) the file is damaged, and a header row's width would
    // be whatever the damage says: column ZZZZZZ asked for 7.7 GB of empty headers.
    if let Some(((row, col), _)) = cells
        .iter()
        .find(|((row, col), _)| *row >= EXCEL_ROWS || *col >= EXCEL_COLUMNS)
    {
        return Err(format!(
            "a cell at row {} column {} lies beyond Excel's last cell XFD1048576, so the file is damaged; open it in Excel and save it again, or save the sheet as CSV",
            u64::from(*row) + 1,
            u64::from(*col) + 1
        ));
    }
    if !cells.is_sorted_by_key(|(pos, _)| *pos) {
        cells.sort_by_key(|(pos, _)| *pos);
    }
    let mut rows: Vec<SheetRow> = Vec::new();
    for ((index, column), value) in cells {
        match rows.last_mut() {
            Some(row) if row.index == index => row.cells.push((column, value)),
            _ => rows.push(SheetRow {
                index,
                cells: vec![(column, value)],
            }),
        }
    }
    Ok(rows)
}

/// Which non-empty row is the header: the first whose cells name a usable column (admins
/// put a title above the table), or the first non-empty row when none does.
fn header_row(rows: &[SheetRow], options: &ReadOptions) -> usize {
    const LOOK_AHEAD: usize = 20;
    rows.iter()
        .take(LOOK_AHEAD)
        .position(|row| {
            let headers = headers_of(&row.cells);
            ColumnMap::new("", &headers, &options.columns)
                .is_ok_and(|map| columns::names_a_known_column(&map.roles()))
        })
        .unwrap_or(0)
}

/// A header row's cells as text, indexed from column A.
fn headers_of(cells: &[(u32, Data)]) -> Vec<String> {
    let width = cells.last().map_or(0, |(column, _)| *column as usize + 1);
    let mut headers = vec![String::new(); width];
    for (column, cell) in cells {
        headers[*column as usize] = cell_text(cell).trim().to_string();
    }
    headers
}

fn row_of(file: &str, sheet: &Arc<str>, sheet_row: &SheetRow, map: &ColumnMap) -> Row<'static> {
    let excel_row = sheet_row.index + 1;
    let cells = &sheet_row.cells;
    let mut row = Row::new(Location::Sheet {
        sheet: sheet.clone(),
        row: excel_row,
    });
    for (role, index, header) in &map.columns {
        let Ok(at) = cells.binary_search_by_key(&(*index as u32), |(column, _)| *column) else {
            continue;
        };
        let cell = &cells[at].1;
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

    fn fixture(name: &str) -> std::path::PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures")
            .join(name)
    }

    /// Found by fuzzing (fuzz target `spreadsheet`): calamine panicked on the cell reference
    /// `TableStyleLight2` (a style name where a reference belongs).
    #[test]
    fn a_workbook_calamine_panics_on_is_an_input_error() {
        let path = fixture("long-cell-reference.xlsx");
        match read("bad.xlsx", &path, &ReadOptions::default()) {
            // Release builds wrap the arithmetic instead of panicking: any answer but a crash.
            Ok(_) if cfg!(debug_assertions) => panic!("overflow checks are on: calamine panics"),
            Ok(_) => {}
            Err(e) => assert!(
                e.to_string()
                    .starts_with("bad.xlsx: not a readable workbook: the workbook reader failed"),
                "{e}"
            ),
        }
    }

    /// A header cell at column ZZZZZZ (321 million) made a header row of that many empty
    /// names (7.7 GB) before anything was read.
    #[test]
    fn a_cell_beyond_excels_last_column_is_damage() {
        let error = read(
            "wide.xlsx",
            &fixture("column-beyond-xfd.xlsx"),
            &ReadOptions::default(),
        )
        .unwrap_err();
        assert_eq!(
            error.to_string(),
            "wide.xlsx sheet Users: cannot be read: a cell at row 1 column 321272406 lies beyond Excel's last cell XFD1048576, so the file is damaged; open it in Excel and save it again, or save the sheet as CSV"
        );
    }

    #[test]
    fn scientific_notation_is_spotted() {
        assert!(is_scientific("1.23E+15"));
        assert!(is_scientific("8E-05"));
        assert!(!is_scientific("8c4ac332-975f-4717-ad7b-ba4a4e968fff"));
        assert!(!is_scientific("E12345"));
    }
}
