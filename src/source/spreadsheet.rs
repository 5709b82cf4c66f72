//! Workbooks (XLSX, XLSM, XLSB, XLS, ODS) through calamine: the first sheet or `--sheet`, the
//! first non-empty row that names a known column as the header (else the first non-empty row),
//! Excel's own row numbers and cell references in every message. Excel likes to turn a GUID
//! into a number or a date; such a cell is a row problem that names the cell, never a guess.
//!
//! A zip-based workbook is checked before calamine inflates anything (see `check_parts`):
//! a zip bomb, a part that inflates to gigabytes, is refused with bounded memory; so is an ODS
//! whose repeated rows and columns would make calamine's dense sheets billions of cells
//! (see `check_ods_extent`).

use std::borrow::Cow;
use std::fs::File;
use std::io::{BufReader, Read};
use std::path::Path;
use std::sync::Arc;

use calamine::{open_workbook_auto, Data, Reader, Sheets};

use super::columns::{self, ColumnMap};
use super::{
    classify_object_class, column_letters, Field, Format, Input, Location, ReadOptions, Role, Row,
};
use crate::error::Error;
use crate::outcome::{Outcome, Verdict};

pub fn read(name: &str, path: &Path, options: &ReadOptions) -> crate::Result<Input<'static>> {
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
    let rows = sheet_rows(&mut workbook, &sheet)
        .map_err(|e| Error::Input(format!("{name} sheet {sheet}: cannot be read: {e}")))?;
    let header_at = header_row(&rows, options);
    let headers = rows
        .get(header_at)
        .map_or_else(Vec::new, |row| headers_of(&row.cells));
    let map = ColumnMap::new(name, &headers, &options.columns)?;
    let roles = map.roles();
    columns::require_usable(&format!("{name} sheet {sheet}"), &roles, &headers)?;
    let sheet_name: Arc<str> = Arc::from(sheet.as_str());
    let rows = rows
        .iter()
        .skip(header_at + 1)
        .map(|sheet_row| row_of(name, &sheet_name, sheet_row, &map))
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
    let ods_extent = match zip.by_name("content.xml") {
        Ok(content) => check_ods_extent(name, BufReader::new(content)),
        Err(_) => Ok(()),
    };
    ods_extent
}

/// The most cells calamine may hold for an ODS workbook. calamine reads every sheet of an ODS
/// at once into dense ranges of about 56 bytes a cell (value and formula); a million users
/// with twenty columns is twenty million cells.
const MAX_ODS_CELLS: u64 = 32 << 20;

/// Refuses an ODS workbook whose sheets calamine would expand past Excel's last cell or past
/// [`MAX_ODS_CELLS`]. ODS compresses runs with `number-rows-repeated` and
/// `number-columns-repeated`, and calamine expands every run up to the last non-empty cell:
/// a 2 KB file with one value after a million repeated rows of 16,000 repeated cells asked
/// for 6 GB and aborted. Trailing empty runs (LibreOffice writes a million empty rows after
/// the data) cost nothing and are not counted. The count errs high: a cell with any content
/// or value type counts as non-empty.
fn check_ods_extent(name: &str, content: impl std::io::BufRead) -> crate::Result<()> {
    use quick_xml::events::{BytesStart, Event};

    let repeats = |e: &BytesStart, attribute: &[u8]| -> u64 {
        e.try_get_attribute(attribute)
            .ok()
            .flatten()
            .and_then(|a| std::str::from_utf8(&a.value).ok()?.trim().parse().ok())
            .unwrap_or(1)
    };
    let has_value = |e: &BytesStart| {
        e.attributes().flatten().any(|a| {
            let key = a.key.as_ref();
            key == b"office:value-type" || key == b"table:formula"
        })
    };
    let mut reader = quick_xml::Reader::from_reader(content);
    let mut buf = Vec::new();
    let mut sheet = OdsExtent::default();
    let mut cells = 0u64;
    loop {
        let event = reader.read_event_into(&mut buf);
        match event {
            Ok(Event::Start(ref e)) | Ok(Event::Empty(ref e)) => {
                let opened = matches!(event, Ok(Event::Start(_)));
                match e.name().as_ref() {
                    b"table:table-row" => {
                        sheet.start_row(repeats(e, b"table:number-rows-repeated"))
                    }
                    b"table:table-cell" | b"table:covered-table-cell" => sheet.cell(
                        repeats(e, b"table:number-columns-repeated"),
                        opened || has_value(e),
                    ),
                    _ => {}
                }
            }
            Ok(Event::End(ref e)) => match e.name().as_ref() {
                b"table:table-row" => sheet.end_row(),
                b"table:table" => cells = cells.saturating_add(std::mem::take(&mut sheet).cells()),
                _ => {}
            },
            Ok(Event::Eof) => break,
            // Malformed XML is calamine's to report, with its own message.
            Err(_) => return Ok(()),
            Ok(_) => {}
        }
        if sheet.rows > u64::from(EXCEL_ROWS) || sheet.width > u64::from(EXCEL_COLUMNS) {
            return Err(Error::Input(format!(
                "{name}: not a usable workbook: a sheet has content beyond row {EXCEL_ROWS} or column {EXCEL_COLUMNS} once its repeated rows and columns are counted, so the file is damaged or hostile; open it in a spreadsheet and save it again, or save the sheet as CSV"
            )));
        }
        if cells.saturating_add(sheet.cells()) > MAX_ODS_CELLS {
            return Err(Error::Input(format!(
                "{name}: not a usable workbook: its sheets hold more than {} million cells once their repeated rows and columns are counted, more than hardmatch reads from an ODS file; save the sheet as CSV",
                MAX_ODS_CELLS >> 20
            )));
        }
        buf.clear();
    }
    Ok(())
}

/// What calamine would allocate for one ODS sheet, counted while its rows go by.
#[derive(Default)]
struct OdsExtent {
    /// Rows so far with their repeats, up to and including the last one with content.
    rows: u64,
    /// Rows so far with their repeats, empty ones included.
    rows_seen: u64,
    /// The first row with content, counted with repeats.
    first_row: Option<u64>,
    /// The widest row, with repeats, up to its last cell with content.
    width: u64,
    /// Cells calamine pushes while reading: every row up to its last cell with content.
    read: u64,
    row_repeats: u64,
    column: u64,
    row_end: u64,
}

impl OdsExtent {
    fn start_row(&mut self, repeats: u64) {
        self.row_repeats = repeats;
        self.column = 0;
        self.row_end = 0;
    }

    fn cell(&mut self, repeats: u64, has_content: bool) {
        self.column = self.column.saturating_add(repeats);
        if has_content {
            self.row_end = self.column;
            self.width = self.width.max(self.row_end);
        }
    }

    fn end_row(&mut self) {
        let first = self.rows_seen;
        self.rows_seen = self.rows_seen.saturating_add(self.row_repeats);
        if self.row_end > 0 {
            self.first_row.get_or_insert(first);
            self.rows = self.rows_seen;
            self.read = self.read.saturating_add(self.row_end);
        }
    }

    /// The cells read, and the dense range calamine then builds from them.
    fn cells(&self) -> u64 {
        let rows = self.rows - self.first_row.unwrap_or(self.rows);
        self.read.saturating_add(rows.saturating_mul(self.width))
    }
}

fn unreadable(name: &str, error: zip::result::ZipError) -> Error {
    Error::Input(format!("{name}: not a readable workbook: {error}"))
}

/// Excel's limits: 1,048,576 rows and 16,384 columns (A to XFD). No format holds more.
const EXCEL_ROWS: u32 = 1 << 20;
const EXCEL_COLUMNS: u32 = 1 << 14;

/// A non-empty row of a sheet: its 0-based index and its non-blank cells, by 0-based column,
/// in column order.
struct SheetRow {
    index: u32,
    cells: Vec<(u32, Data)>,
}

/// The sheet's non-empty rows, sparse. calamine's own `worksheet_range` is dense: two cells at
/// A1 and XFD1048576 would make it allocate seventeen billion cells, so an XLSX sheet is read
/// cell by cell instead (XLS is dense too, but at most 65,536 rows of 256 columns).
fn sheet_rows(
    workbook: &mut Sheets<BufReader<File>>,
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
            ColumnMap::new("", &headers, &options.columns).is_ok_and(|map| {
                let roles = map.roles();
                columns::require_usable("", &roles, &headers).is_ok()
            })
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
