//! JSON reports, for machines: `{"summary": {...}, "rows": [...]}`.

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

pub fn write(path: &Path, records: &[Record], summary: &Summary) -> crate::Result<()> {
    let file = crate::private::create(path).map_err(|e| Error::io(path, e))?;
    let mut out = std::io::BufWriter::new(file);
    serde_json::to_writer_pretty(
        &mut out,
        &Document {
            summary,
            rows: records,
        },
    )
    .map_err(|e| Error::io(path, e.into()))?;
    out.flush().map_err(|e| Error::io(path, e))
}
