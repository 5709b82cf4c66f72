//! What a workbook must pass before calamine reads it. calamine trusts the sizes, counts and
//! links a file declares, and a small hostile file can make it allocate gigabytes or loop
//! until memory runs out; each check here measures what calamine would build, in small
//! memory, and refuses the file with a message naming it when that is too much:
//!
//! - zip-based workbooks (XLSX, XLSM, XLSB, ODS): a part that inflates past 1 GiB (a zip
//!   bomb), declared or counted while inflating;
//! - ODS: repeated rows and columns that calamine would expand into billions of cells;
//! - XLS (an OLE2 compound file): the container is read with the cfb crate, which checks its
//!   sector chains (calamine follows them without looking for loops: a 6 KB file grew to
//!   24 GB), and handed to calamine rebuilt by cfb; its sheets' declared dimensions and cell
//!   positions are measured before calamine makes them dense.

use std::fs::File;
use std::io::{BufReader, Cursor, Read, Seek, Write};
use std::path::Path;

use super::spreadsheet::{EXCEL_COLUMNS, EXCEL_ROWS};
use crate::error::Error;

/// A workbook calamine may read: the file as it is, or an XLS rebuilt in memory.
pub(super) enum Checked {
    File,
    RebuiltXls(Cursor<Vec<u8>>),
}

/// How every zip file (XLSX, XLSM, XLSB, ODS) begins.
pub(super) const ZIP_SIGNATURE: &[u8] = b"PK\x03\x04";

/// How every OLE2 compound file (XLS, and encrypted Office files) begins.
pub(super) const OLE2_SIGNATURE: &[u8] = &[0xD0, 0xCF, 0x11, 0xE0, 0xA1, 0xB1, 0x1A, 0xE1];

/// Checks the workbook at `path` (see the module docs).
pub(super) fn check(name: &str, path: &Path) -> crate::Result<Checked> {
    let io = |e| Error::io(path, e);
    let mut file = std::fs::File::open(path).map_err(io)?;
    let mut signature = Vec::with_capacity(OLE2_SIGNATURE.len());
    (&mut file)
        .take(OLE2_SIGNATURE.len() as u64)
        .read_to_end(&mut signature)
        .map_err(io)?;
    file.rewind().map_err(io)?;
    if signature == OLE2_SIGNATURE {
        return rebuilt_xls(name, file).map(Checked::RebuiltXls);
    }
    check_zip(name, file)?;
    Ok(Checked::File)
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
/// limit. Anything that is not a zip is left alone.
fn check_zip(name: &str, file: File) -> crate::Result<()> {
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

/// Refuses an ODS workbook whose sheets calamine would expand past Excel's last cell or past
/// [`MAX_CELLS`] (calamine reads every sheet of an ODS at once). ODS compresses runs with `number-rows-repeated` and
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
    // As calamine reads it: what calamine would accept is measured, not refused.
    let config = reader.config_mut();
    config.check_end_names = false;
    config.check_comments = false;
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
            // What cannot be measured is not read: a part this reader cannot follow (a damaged
            // zip entry, XML calamine's reader would also stop at) could hide any number of
            // repeats after the point where it failed (found by fuzzing).
            Err(e) => {
                return Err(Error::Input(format!(
                    "{name}: not a readable workbook: its content.xml cannot be read at byte {}: {e}; open it in a spreadsheet and save it again, or save the sheet as CSV",
                    reader.error_position()
                )))
            }
            Ok(_) => {}
        }
        if sheet.rows > u64::from(EXCEL_ROWS) || sheet.width > u64::from(EXCEL_COLUMNS) {
            return Err(Error::Input(format!(
                "{name}: not a usable workbook: a sheet has content beyond row {EXCEL_ROWS} or column {EXCEL_COLUMNS} once its repeated rows and columns are counted, so the file is damaged or hostile; open it in a spreadsheet and save it again, or save the sheet as CSV"
            )));
        }
        if cells.saturating_add(sheet.cells()) > MAX_CELLS {
            return Err(too_many_cells(name));
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

/// The most cells calamine may build for a workbook's sheets when it makes them dense (ODS and
/// XLS): about 56 bytes a cell (value and formula); a million users with twenty columns is
/// twenty million cells.
const MAX_CELLS: u64 = 32 << 20;

fn too_many_cells(name: &str) -> Error {
    Error::Input(format!(
        "{name}: not a usable workbook: its sheets hold more than {} million cells once their declared size and repeated rows and columns are counted, more than hardmatch reads from this format; save the sheet as CSV or XLSX",
        MAX_CELLS >> 20
    ))
}

/// Reads an XLS file's workbook stream through the cfb crate, which refuses sector chains
/// that loop or cross and streams longer than the file, measures its sheets
/// ([`check_biff_extent`]), and writes the stream into a new compound file for calamine: what
/// calamine then parses has chains cfb wrote, whatever the original's were.
fn rebuilt_xls(name: &str, file: File) -> crate::Result<Cursor<Vec<u8>>> {
    let unreadable = |e: std::io::Error| {
        Error::Input(format!(
            "{name}: not a readable workbook: {e}; open it in Excel and save it again, or save the sheet as CSV"
        ))
    };
    let mut container = cfb::CompoundFile::open(file).map_err(unreadable)?;
    let stream_name = ["/Workbook", "/Book"]
        .into_iter()
        .find(|s| container.is_stream(s))
        .ok_or_else(|| {
            Error::Input(format!(
                "{name}: not a readable workbook: the file holds no Excel workbook (an encrypted or password-protected file is stored this way); save it again without a password, or save the sheet as CSV"
            ))
        })?;
    let mut stream = container.open_stream(stream_name).map_err(unreadable)?;
    if stream.len() > MAX_PART {
        return Err(Error::Input(format!(
            "{name}: not a usable workbook: its workbook stream is {} MiB, more than the {} MiB hardmatch reads; save the sheet as CSV",
            stream.len() >> 20,
            MAX_PART >> 20
        )));
    }
    let mut workbook = Vec::new();
    stream.read_to_end(&mut workbook).map_err(unreadable)?;
    check_biff_extent(name, &workbook)?;
    let rebuild = || -> std::io::Result<Cursor<Vec<u8>>> {
        // Version 3, as Excel writes XLS: calamine refuses a version 4 file whose root has no
        // mini stream, which is what cfb writes for one stream of 4 KB or more.
        let mut rebuilt =
            cfb::CompoundFile::create_with_version(cfb::Version::V3, Cursor::new(Vec::new()))?;
        rebuilt.create_stream("/Workbook")?.write_all(&workbook)?;
        rebuilt.flush()?;
        let mut bytes = rebuilt.into_inner();
        bytes.set_position(0);
        Ok(bytes)
    };
    rebuild().map_err(unreadable)
}

/// BIFF records as calamine frames them: a type, a length and that many bytes. A CONTINUE
/// record comes out on its own here (calamine appends it to the record before, which changes
/// nothing this module looks at: cell positions open a record).
struct BiffRecords<'a>(&'a [u8]);

impl<'a> Iterator for BiffRecords<'a> {
    type Item = (u16, &'a [u8]);

    fn next(&mut self) -> Option<Self::Item> {
        let header = self.0.get(..4)?;
        let typ = u16::from_le_bytes([header[0], header[1]]);
        let len = usize::from(u16::from_le_bytes([header[2], header[3]]));
        let data = self.0.get(4..4 + len)?;
        self.0 = &self.0[4 + len..];
        Some((typ, data))
    }
}

const BIFF_EOF: u16 = 0x000A;
const BIFF_BOUNDSHEET: u16 = 0x0085;
const BIFF_DIMENSIONS: u16 = 0x0200;
const BIFF_MULRK: u16 = 0x00BD;
/// The records calamine makes a cell of, each with its row and column first: Number, Label,
/// BoolErr, Rk, LabelSst, Formula (and MulRk, a run of cells in one row).
const BIFF_CELLS: [u16; 7] = [0x0203, 0x0204, 0x0205, 0x027E, 0x00FD, 0x0006, BIFF_MULRK];

fn u16_at(data: &[u8], at: usize) -> Option<u32> {
    Some(u32::from(u16::from_le_bytes(
        data.get(at..at + 2)?.try_into().ok()?,
    )))
}

fn u32_at(data: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_le_bytes(data.get(at..at + 4)?.try_into().ok()?))
}

/// Refuses a workbook stream whose sheets calamine would make too large: for each sheet (at
/// the offset its BoundSheet record gives, read to its EOF record as calamine reads it), the
/// cells its Dimensions record makes calamine reserve, and the dense range spanned by its
/// cells' positions.
fn check_biff_extent(name: &str, workbook: &[u8]) -> crate::Result<()> {
    let sheet_offsets: Vec<usize> = BiffRecords(workbook)
        .take_while(|(typ, _)| *typ != BIFF_EOF)
        .filter(|(typ, _)| *typ == BIFF_BOUNDSHEET)
        .filter_map(|(_, data)| Some(u32_at(data, 0)? as usize))
        .collect();
    let mut cells = 0u64;
    for offset in sheet_offsets {
        let Some(sheet) = workbook.get(offset..) else {
            continue;
        };
        let mut span: Option<(u32, u32, u32, u32)> = None;
        for (typ, data) in BiffRecords(sheet).take_while(|(typ, _)| *typ != BIFF_EOF) {
            if typ == BIFF_DIMENSIONS {
                cells = cells.saturating_add(reserved_by_dimensions(data));
            } else if BIFF_CELLS.contains(&typ) {
                let (Some(row), Some(first)) = (u16_at(data, 0), u16_at(data, 2)) else {
                    continue;
                };
                let last = match typ {
                    BIFF_MULRK => data.len().checked_sub(2).and_then(|at| u16_at(data, at)),
                    _ => None,
                }
                .map_or(first, |last| last.max(first));
                span = Some(match span {
                    None => (row, row, first, last),
                    Some((r0, r1, c0, c1)) => {
                        (r0.min(row), r1.max(row), c0.min(first), c1.max(last))
                    }
                });
            }
            if cells > MAX_CELLS {
                return Err(too_many_cells(name));
            }
        }
        if let Some((r0, r1, c0, c1)) = span {
            let dense = u64::from(r1 - r0 + 1) * u64::from(c1 - c0 + 1);
            // calamine builds the range twice: values and formulas.
            cells = cells.saturating_add(dense.saturating_mul(2));
        }
        if cells > MAX_CELLS {
            return Err(too_many_cells(name));
        }
    }
    Ok(())
}

/// The cells calamine reserves for a Dimensions record, with calamine's own arithmetic: rows
/// and columns counted from the record's first and last-plus-one, wrapping as a release build
/// does (a debug build panics instead, which the reader catches).
fn reserved_by_dimensions(data: &[u8]) -> u64 {
    let fields = match data.len() {
        10 => (
            u16_at(data, 0),
            u16_at(data, 2),
            u16_at(data, 4),
            u16_at(data, 6),
        ),
        14 => (
            u32_at(data, 0),
            u32_at(data, 4),
            u16_at(data, 8),
            u16_at(data, 10),
        ),
        _ => return 0,
    };
    let (Some(first_row), Some(rows_end), Some(mut first_col), Some(cols_end)) = fields else {
        return 0;
    };
    if first_col > 0xFF || cols_end < first_col {
        first_col = 0;
    }
    if rows_end == 0 || cols_end == 0 {
        return 0;
    }
    let rows = (rows_end - 1).wrapping_sub(first_row).wrapping_add(1);
    let cols = (cols_end - 1).wrapping_sub(first_col).wrapping_add(1);
    u64::from(rows).saturating_mul(u64::from(cols))
}
