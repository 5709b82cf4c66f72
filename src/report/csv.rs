//! CSV reports: UTF-8, a header line, every cell made safe to open in Excel.
//!
//! [`write_rows`] is shared by every command that writes CSV (`ids`, `plan`, `apply`...), so
//! the Excel safety rule lives in one place: [`Cells::cell`] for free text, [`Cells::id`] for
//! an anchor or id column. It formats the rows on rayon, in pieces that are
//! written in order: a million-row report is not quoted and escaped on one core.

use std::io::{self, BufWriter, Write};
use std::path::Path;

use rayon::prelude::*;

use crate::error::Error;

use super::{excel_safe, excel_safe_id, Record, COLUMNS, ID_COLUMNS};

/// The UTF-8 byte-order mark Excel needs to read a CSV as UTF-8 instead of the ANSI code page.
const UTF8_BOM: &[u8] = b"\xEF\xBB\xBF";

/// Rows formatted as one piece, and pieces formatted at once (a few MB of output in memory).
const PIECE_ROWS: usize = 16 << 10;
const PIECES_AT_ONCE: usize = 8;

/// The cells of one CSV row, as [`write_rows`] hands it to the caller to fill.
pub(crate) struct Cells {
    writer: csv::Writer<Vec<u8>>,
}

impl Cells {
    /// Adds a cell, made Excel-safe (copied only when it needs the apostrophe).
    pub(crate) fn cell(&mut self, value: &str) {
        self.writer
            .write_field(excel_safe(value).as_bytes())
            .expect("writing to memory cannot fail");
    }

    /// Adds a cell of an anchor or id column: exact when it is a well-formed anchor or GUID,
    /// else Excel-safe like any other cell (see [`excel_safe_id`]).
    pub(crate) fn id(&mut self, value: &str) {
        self.writer
            .write_field(excel_safe_id(value).as_bytes())
            .expect("writing to memory cannot fail");
    }

    fn end_row(&mut self) {
        self.writer
            .write_record(None::<&[u8]>)
            .expect("writing to memory cannot fail");
    }

    fn into_bytes(self) -> Vec<u8> {
        self.writer
            .into_inner()
            .expect("writing to memory cannot fail")
    }
}

/// Writes a CSV file at `path` (`-` is stdout), with a UTF-8 BOM when `excel_bom` is set: the
/// `header`, then `count` rows, row `i` filled by `row(i, cells)`.
pub(crate) fn write_rows(
    path: &Path,
    excel_bom: bool,
    header: &[&str],
    count: usize,
    row: impl Fn(usize, &mut Cells) + Sync,
) -> crate::Result<()> {
    let fail = |e| Error::io(path, e);
    let mut sink = create(path).map_err(fail)?;
    if excel_bom {
        sink.write_all(UTF8_BOM).map_err(fail)?;
    }
    let header = format_piece(0..1, |_, cells| header.iter().for_each(|h| cells.cell(h)));
    sink.write_all(&header).map_err(fail)?;
    let starts: Vec<usize> = (0..count).step_by(PIECE_ROWS).collect();
    let mut formatted: Vec<Vec<u8>> = Vec::new();
    for group in starts.chunks(PIECES_AT_ONCE) {
        // The pieces formatted last are written while these are formatted: writing is one
        // core's copy into the page cache, which the other cores need not wait for.
        let (pieces, written) = rayon::join(
            || {
                group
                    .par_iter()
                    .map(|&start| format_piece(start..count.min(start + PIECE_ROWS), &row))
                    .collect()
            },
            || write_pieces(&mut sink, &formatted),
        );
        written.map_err(fail)?;
        formatted = pieces;
    }
    write_pieces(&mut sink, &formatted).map_err(fail)?;
    sink.flush().map_err(fail)
}

fn write_pieces(sink: &mut impl Write, pieces: &[Vec<u8>]) -> io::Result<()> {
    pieces.iter().try_for_each(|piece| sink.write_all(piece))
}

fn format_piece(rows: std::ops::Range<usize>, row: impl Fn(usize, &mut Cells)) -> Vec<u8> {
    let mut cells = Cells {
        writer: csv::WriterBuilder::new().from_writer(Vec::with_capacity(rows.len() * 128)),
    };
    for i in rows {
        row(i, &mut cells);
        cells.end_row();
    }
    cells.into_bytes()
}

fn create(path: &Path) -> io::Result<Box<dyn Write + Send>> {
    Ok(if path == Path::new("-") {
        Box::new(BufWriter::with_capacity(1 << 16, io::stdout()))
    } else {
        Box::new(BufWriter::with_capacity(
            1 << 16,
            crate::private::create(path)?,
        ))
    })
}

/// Writes the full audit report.
pub(crate) fn write(path: &Path, records: &[Record], excel_bom: bool) -> crate::Result<()> {
    write_with_columns(path, records, excel_bom, &[], &[])
}

/// [`write`], with `extra` columns after the report's, the same `values` on every row (a plan
/// file's integrity record).
pub(crate) fn write_with_columns(
    path: &Path,
    records: &[Record],
    excel_bom: bool,
    extra: &[&str],
    values: &[String],
) -> crate::Result<()> {
    let is_id = COLUMNS.map(|column| ID_COLUMNS.contains(&column));
    let header = [&COLUMNS[..], extra].concat();
    write_rows(path, excel_bom, &header, records.len(), |i, cells| {
        for (value, is_id) in records[i].cells().iter().zip(is_id) {
            if is_id {
                cells.id(value);
            } else {
                cells.cell(value);
            }
        }
        values.iter().for_each(|value| cells.cell(value));
    })
}
