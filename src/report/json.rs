//! JSON reports, for machines: `{"summary": {...}, "rows": [...]}`, or `{"rows": [...]}` for
//! a command without a summary (`ids`).

use std::io::Write;
use std::path::Path;

use serde::Serialize;

use crate::error::Error;

use super::{Record, Summary};

#[derive(Serialize)]
struct Document<'a> {
    summary: &'a Summary,
    rows: &'a [Record],
}

pub(crate) fn write(path: &Path, records: &[Record], summary: &Summary) -> crate::Result<()> {
    write_value(
        path,
        &Document {
            summary,
            rows: records,
        },
    )
}

/// `{"rows": [...]}`.
pub(crate) fn write_rows<T: Serialize>(path: &Path, rows: &[T]) -> crate::Result<()> {
    #[derive(Serialize)]
    struct Rows<'a, T> {
        rows: &'a [T],
    }
    write_value(path, &Rows { rows })
}

pub(crate) fn write_value(path: &Path, value: &impl Serialize) -> crate::Result<()> {
    let file = crate::private::create(path).map_err(|e| Error::io(path, e))?;
    let mut out = std::io::BufWriter::new(file);
    serde_json::to_writer_pretty(&mut out, value).map_err(|e| Error::io(path, e.into()))?;
    out.flush().map_err(|e| Error::io(path, e))
}
