//! CSV reports: UTF-8, a header line, every cell made safe to open in Excel.
//!
//! `open` and `write_row` are shared by every command that writes CSV (`ids`, `plan`,
//! `apply`...), so the Excel safety rule lives in one place.

use std::io::{self, BufWriter, Write};
use std::path::Path;

use crate::error::Error;

use super::{excel_safe, Record, COLUMNS};

/// The UTF-8 byte-order mark Excel needs to read a CSV as UTF-8 instead of the ANSI code page.
const UTF8_BOM: &[u8] = b"\xEF\xBB\xBF";

pub type Writer = csv::Writer<Box<dyn Write>>;

/// Opens a CSV report at `path` (`-` is stdout), with a UTF-8 BOM when `excel_bom` is set.
pub fn open(path: &Path, excel_bom: bool) -> crate::Result<Writer> {
    let mut sink: Box<dyn Write> = if path == Path::new("-") {
        Box::new(BufWriter::with_capacity(1 << 16, io::stdout()))
    } else {
        Box::new(BufWriter::with_capacity(
            1 << 16,
            crate::private::create(path).map_err(|e| Error::io(path, e))?,
        ))
    };
    if excel_bom {
        sink.write_all(UTF8_BOM).map_err(|e| Error::io(path, e))?;
    }
    Ok(csv::WriterBuilder::new().from_writer(sink))
}

/// Writes one row, each cell made Excel-safe (copied only when it needs the apostrophe).
pub fn write_row<'a>(
    writer: &mut Writer,
    path: &Path,
    cells: impl IntoIterator<Item = &'a str>,
) -> crate::Result<()> {
    let fail = |e: csv::Error| Error::io(path, e.into());
    for cell in cells {
        writer
            .write_field(excel_safe(cell).as_bytes())
            .map_err(fail)?;
    }
    writer.write_record(None::<&[u8]>).map_err(fail)
}

/// Flushes the writer, reporting a failure against `path`.
pub fn finish(mut writer: Writer, path: &Path) -> crate::Result<()> {
    writer.flush().map_err(|e| Error::io(path, e))
}

/// Writes the full audit report.
pub fn write(path: &Path, records: &[Record], excel_bom: bool) -> crate::Result<()> {
    let mut writer = open(path, excel_bom)?;
    write_row(&mut writer, path, COLUMNS)?;
    for record in records {
        let cells = record.cells();
        write_row(&mut writer, path, cells.iter().map(|c| c.as_ref()))?;
    }
    finish(writer, path)
}
