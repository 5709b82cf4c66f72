//! CSV exports: Get-ADUser | Export-Csv (Windows PowerShell 5.1 and 7), csvde, and Excel's
//! "CSV" and "CSV UTF-8" in any locale. The csv crate parses; this file knows the quirks:
//! the `#TYPE` line, the sniffed delimiter, csvde's `X'..'` text values, and line numbers
//! that stay right across quoted fields with embedded newlines. Large files are parsed in
//! chunks on rayon (see [`split_records`]).

use std::sync::Arc;

use csv::{ByteRecord, ReaderBuilder};
use rayon::prelude::*;

use super::columns::{self, ColumnMap};
use super::{classify_object_class, Field, Input, Location, ReadOptions, Role, Row};
use crate::error::Error;
use crate::outcome::{Outcome, Verdict};

/// Reads CSV text (already decoded to UTF-8) into rows.
pub fn read(name: &str, text: &str, options: &ReadOptions) -> crate::Result<Input> {
    let (body, skipped_lines) = skip_type_line(text);
    let delimiter = options.delimiter.unwrap_or_else(|| sniff_delimiter(body));
    let mut reader = ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .delimiter(delimiter)
        .from_reader(body.as_bytes());
    let mut record = ByteRecord::new();
    let headers = match reader.read_byte_record(&mut record) {
        Ok(true) => record
            .iter()
            .map(|h| String::from_utf8_lossy(h).trim().to_string())
            .collect(),
        Ok(false) => Vec::new(),
        Err(e) => {
            return Err(Error::Input(format!(
                "{name}: the header line cannot be read as CSV: {e}"
            )))
        }
    };
    let map = ColumnMap::new(name, &headers, &options.columns)?;
    let roles = map.roles();
    columns::require_usable(name, &roles, &headers)?;

    // The records after the header, and how many lines come before them.
    let data_start = (reader.position().byte() as usize).min(body.len());
    let data = &body.as_bytes()[data_start..];
    let lines_before = skipped_lines + line_ends(body.as_bytes(), 0..data_start);
    // 8 MB pieces: enough of them to keep both cores busy, few enough to cost nothing.
    let rows = split_records(data, lines_before, 8 << 20)
        .into_par_iter()
        .flat_map_iter(|chunk| read_chunk(name, chunk, delimiter, &headers, &map))
        .collect();
    Ok(Input {
        name: name.to_string(),
        format: super::Format::Csv,
        columns: map.found(),
        headers,
        rows,
    })
}

/// A run of whole records and the number of lines before it in the file.
#[derive(Clone, Copy)]
struct Chunk<'a> {
    bytes: &'a [u8],
    lines_before: u64,
}

/// Splits the records into chunks of about `chunk_size` bytes, at line ends outside quotes, so that
/// both cores parse. A line end is outside quotes when an even number of `"` precede it: in
/// RFC 4180 CSV (and Export-Csv's) every quote inside a quoted field is doubled. A file with an
/// odd number of quotes in all is not split: it is parsed in one piece, as written.
fn split_records(data: &[u8], lines_before: u64, chunk_size: usize) -> Vec<Chunk<'_>> {
    let whole = vec![Chunk {
        bytes: data,
        lines_before,
    }];
    if data.len() < 2 * chunk_size || memchr::memchr_iter(b'"', data).count() % 2 == 1 {
        return whole;
    }
    let mut chunks = Vec::new();
    let (mut start, mut lines) = (0, lines_before);
    let mut quotes_before_start = 0usize;
    while data.len() - start > chunk_size {
        let mut end = start + chunk_size;
        let mut quotes = quotes_before_start + memchr::memchr_iter(b'"', &data[start..end]).count();
        // Move to the next line end with an even quote count before it.
        loop {
            let Some(newline) = memchr::memchr(b'\n', &data[end..]) else {
                end = data.len();
                break;
            };
            quotes += memchr::memchr_iter(b'"', &data[end..end + newline]).count();
            end += newline + 1;
            if quotes % 2 == 0 {
                break;
            }
        }
        chunks.push(Chunk {
            bytes: &data[start..end],
            lines_before: lines,
        });
        lines += line_ends(data, start..end);
        quotes_before_start = quotes;
        start = end;
    }
    if start < data.len() {
        chunks.push(Chunk {
            bytes: &data[start..],
            lines_before: lines,
        });
    }
    chunks
}

/// Parses one chunk of whole records into rows.
fn read_chunk(
    name: &str,
    chunk: Chunk<'_>,
    delimiter: u8,
    headers: &[String],
    map: &ColumnMap,
) -> Vec<Row> {
    let mut reader = ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .delimiter(delimiter)
        .from_reader(chunk.bytes);
    let mut record = ByteRecord::new();
    let mut rows = Vec::with_capacity(chunk.bytes.len() / 128);
    let mut lines = LineCounter::new(chunk.bytes, chunk.lines_before);
    loop {
        match reader.read_byte_record(&mut record) {
            Ok(false) => break,
            Ok(true) => {
                let line = lines.line_at(record.position().map_or(0, |p| p.byte()));
                rows.push(row_of(name, &record, line, headers, map));
            }
            Err(e) => {
                let line = lines.line_at(reader.position().byte());
                rows.push(unreadable(name, line, &e));
            }
        }
    }
    rows
}

/// Physical line numbers from byte offsets. The csv crate's own line count lags by one after
/// a CRLF record end (it counts the `\n` only when the next record starts), and Export-Csv
/// writes CRLF, so lines are counted here, incrementally, from where each record starts.
struct LineCounter<'a> {
    body: &'a [u8],
    counted_to: usize,
    newlines: u64,
    first_line: u64,
}

impl<'a> LineCounter<'a> {
    fn new(body: &'a [u8], skipped_lines: u64) -> Self {
        LineCounter {
            body,
            counted_to: 0,
            newlines: 0,
            first_line: skipped_lines + 1,
        }
    }

    /// The 1-based line of the first character of the record that starts at `byte`.
    fn line_at(&mut self, byte: u64) -> u64 {
        let mut start = (byte as usize).min(self.body.len());
        while start < self.body.len() && matches!(self.body[start], b'\r' | b'\n') {
            start += 1;
        }
        if start > self.counted_to {
            self.newlines += line_ends(self.body, self.counted_to..start);
            self.counted_to = start;
        }
        self.first_line + self.newlines
    }
}

/// The line ends in `bytes[range]`: LF, CRLF, and a CR alone, which ends a record for the csv
/// crate too (Excel's "CSV (Macintosh)" and old Mac files; with LF alone every row was line 1).
/// A CR is alone unless the byte after it, inside or outside the range, is a LF.
fn line_ends(bytes: &[u8], range: std::ops::Range<usize>) -> u64 {
    let lf = memchr::memchr_iter(b'\n', &bytes[range.clone()]).count();
    let lone_cr = memchr::memchr_iter(b'\r', &bytes[range.clone()])
        .filter(|&i| bytes.get(range.start + i + 1) != Some(&b'\n'))
        .count();
    (lf + lone_cr) as u64
}

/// Windows PowerShell 5.1's Export-Csv starts with `#TYPE <type name>` unless told not to.
fn skip_type_line(text: &str) -> (&str, u64) {
    if text.starts_with("#TYPE") {
        match text.find(['\r', '\n']) {
            Some(end) => {
                let rest = &text[end..];
                let rest = rest.strip_prefix("\r\n").unwrap_or(&rest[1..]);
                (rest, 1)
            }
            None => ("", 1),
        }
    } else {
        (text, 0)
    }
}

/// The delimiter of the header line: whichever of `,` `;` tab occurs most outside quotes
/// (Excel writes `;` where the locale's list separator is `;`, as in de-DE).
fn sniff_delimiter(body: &str) -> u8 {
    let mut counts = [(b',', 0usize), (b';', 0), (b'\t', 0)];
    let mut quoted = false;
    for b in body.bytes() {
        match b {
            b'\n' if !quoted => break,
            b'"' => quoted = !quoted,
            _ if !quoted => {
                if let Some(entry) = counts.iter_mut().find(|(d, _)| *d == b) {
                    entry.1 += 1;
                }
            }
            _ => {}
        }
    }
    counts
        .iter()
        .max_by_key(|(d, n)| (*n, *d == b','))
        .map_or(b',', |(d, _)| *d)
}

fn row_of(name: &str, record: &ByteRecord, line: u64, headers: &[String], map: &ColumnMap) -> Row {
    let mut row = Row::new(Location::Line(line));
    for (role, index, header) in &map.columns {
        let Some(raw) = record.get(*index) else {
            continue;
        };
        // The text was decoded to UTF-8 already, so the strict check (fast) nearly always holds.
        let value = std::str::from_utf8(raw)
            .map_or_else(|_| String::from_utf8_lossy(raw), std::borrow::Cow::Borrowed);
        let value = match role.is_text().then(|| csvde_text(&value)).flatten() {
            Some(text) => text,
            None => value.into_owned(),
        };
        row.set(
            *role,
            Field {
                value,
                header: Arc::clone(header),
                column: *index as u32,
            },
        );
    }
    if record.len() > headers.len() && headers.len() > 1 {
        row.problem = Some(Verdict::new(
            Outcome::MissingField,
            format!(
                "{name}:{line}: the record has {} fields but the header has {}, so its columns cannot be trusted (a value with an unquoted delimiter?); fix the line and run again",
                record.len(),
                headers.len()
            ),
        ));
    } else if is_repeated_header(record, headers) {
        row.problem = Some(Verdict::new(
            Outcome::NotAUser,
            format!("{name}:{line}: a repeated header line, not a user (were several exports joined into one file?)"),
        ));
    } else if let Some(problem) =
        classify_object_class(row.value(Role::ObjectClass).unwrap_or("").split(';'))
    {
        row.problem = Some(Verdict::new(
            Outcome::NotAUser,
            format!("{name}:{line}: {problem}"),
        ));
    }
    row
}

/// Exports joined into one file (`Get-Content *.csv > all.csv`) repeat the header line and
/// Export-Csv's `#TYPE` line mid-file: neither is a user with a bad anchor.
fn is_repeated_header(record: &ByteRecord, headers: &[String]) -> bool {
    let same = |field: &[u8], header: &String| {
        std::str::from_utf8(field).is_ok_and(|f| f.trim() == header)
    };
    (record.len() == 1 && record[0].starts_with(b"#TYPE"))
        || (record.len() == headers.len() && record.iter().zip(headers).all(|(f, h)| same(f, h)))
}

fn unreadable(name: &str, line: u64, error: &csv::Error) -> Row {
    let mut row = Row::new(Location::Line(line));
    row.problem = Some(Verdict::new(
        Outcome::MissingField,
        format!("{name}:{line}: the record cannot be read as CSV: {error}"),
    ));
    row
}

/// csvde writes non-ASCII strings as `X'<utf-8 hex>'`; text roles get their text back
/// (`None` when the value is not in that form). Anchor roles keep `X'..'`, which the anchor
/// parser reads as AD-order bytes.
fn csvde_text(value: &str) -> Option<String> {
    let hex = value
        .strip_prefix("X'")
        .and_then(|v| v.strip_suffix('\''))?;
    {
        let bytes: Option<Vec<u8>> = (0..hex.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(hex.get(i..i + 2)?, 16).ok())
            .collect();
        String::from_utf8(bytes?).ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read_text(text: &str) -> Input {
        read("t.csv", text, &ReadOptions::default()).unwrap()
    }

    #[test]
    fn type_line_quotes_and_embedded_newlines_keep_line_numbers() {
        let input = read_text(
            "#TYPE Selected.Microsoft.ActiveDirectory.Management.ADUser\r\n\"UserPrincipalName\",\"ObjectGUID\",\"Description\"\r\n\"a@x.com\",\"g1\",\"two\r\nlines\"\r\n\"b@x.com\",\"g2\",\"\"\r\n",
        );
        let lines: Vec<u64> = input
            .rows
            .iter()
            .map(|r| r.location.as_ref().unwrap().line())
            .collect();
        assert_eq!(lines, [3, 5]);
        assert_eq!(input.rows[1].value(Role::Upn), Some("b@x.com"));
    }

    /// Excel's "CSV (Macintosh)" ends lines with a CR alone: each record has its own line.
    #[test]
    fn cr_only_line_ends_number_each_record() {
        let line_numbers = |text: &str| -> Vec<u64> {
            read_text(text)
                .rows
                .iter()
                .map(|r| r.location.as_ref().unwrap().line())
                .collect()
        };
        assert_eq!(
            line_numbers(
                "#TYPE x\rUPN,ObjectGUID\ra@x.com,g1\r\rb@x.com,\"two\rlines\"\rc@x.com,g3\r"
            ),
            [3, 5, 7]
        );
        // Mixed: a CRLF file with a CR alone inside a quoted field, and the header's CRLF.
        assert_eq!(
            line_numbers("UPN,Note\r\na@x.com,\"x\ry\"\r\nb@x.com,z\r\n"),
            [2, 4]
        );
    }

    #[test]
    fn joined_exports_repeat_the_header_and_type_lines() {
        let input = read_text("#TYPE T\r\n\"UPN\",\"ObjectGUID\"\r\n\"a@x.com\",\"g\"\r\n#TYPE T\r\n\"UPN\",\"ObjectGUID\"\r\n\"b@x.com\",\"g2\"\r\n");
        let outcomes: Vec<_> = input
            .rows
            .iter()
            .map(|r| r.problem.as_ref().map(|p| p.outcome))
            .collect();
        assert_eq!(
            outcomes,
            [None, Some(Outcome::NotAUser), Some(Outcome::NotAUser), None]
        );
        assert_eq!(
            input.rows[2].problem.as_ref().unwrap().detail,
            "t.csv:5: a repeated header line, not a user (were several exports joined into one file?)"
        );
    }

    #[test]
    fn semicolons_are_sniffed_and_csvde_text_decoded() {
        let input = read_text("UPN;GUID;Name\nj@x.com;g;X'4ac3b6'\n");
        assert_eq!(input.rows[0].value(Role::DisplayName), Some("Jö"));
        let tabbed = read_text("UPN\tGUID\na@x.com\tg\n");
        assert_eq!(tabbed.rows[0].value(Role::ObjectGuid), Some("g"));
    }

    #[test]
    fn shifted_records_and_non_users_are_problems() {
        let input = read_text("DN,objectClass,userPrincipalName,objectGUID\n\"CN=a\",top;person;user,a@x.com,X'00'\n\"CN=WS\",top;person;user;computer,ws@x.com,X'01'\nCN=b,c,top,user,b@x.com,X'02'\n");
        let outcomes: Vec<_> = input
            .rows
            .iter()
            .map(|r| r.problem.as_ref().map(|p| p.outcome))
            .collect();
        assert_eq!(
            outcomes,
            [None, Some(Outcome::NotAUser), Some(Outcome::MissingField)]
        );
    }

    #[test]
    fn chunked_parsing_matches_one_piece() {
        let mut text = String::from("\"UserPrincipalName\",\"ObjectGUID\",\"Description\"\r\n");
        for i in 0..20_000 {
            let note = if i % 997 == 0 {
                "two\r\nlines, \"\"quoted\"\""
            } else {
                "plain"
            };
            text.push_str(&format!(
                "\"u{i}@x.com\",\"f7cc07d7-7c15-447d-876d-c01b0e5a9e38\",\"{note}\"\r\n"
            ));
        }
        let data = &text.as_bytes()[text.find('\n').unwrap() + 1..];
        let chunks = split_records(data, 1, 64 << 10);
        assert!(chunks.len() > 10);
        let headers = vec![
            "UserPrincipalName".to_string(),
            "ObjectGUID".into(),
            "Description".into(),
        ];
        let map = ColumnMap::new("t.csv", &headers, &[]).unwrap();
        let one: Vec<Row> = read_chunk(
            "t.csv",
            Chunk {
                bytes: data,
                lines_before: 1,
            },
            b',',
            &headers,
            &map,
        );
        let split: Vec<Row> = chunks
            .into_iter()
            .flat_map(|c| read_chunk("t.csv", c, b',', &headers, &map))
            .collect();
        assert_eq!(one.len(), 20_000);
        assert!(one == split, "the same rows, lines and values");
        assert_eq!(split[998].location, Some(Location::Line(1000 + 1 + 1)));
    }
}
