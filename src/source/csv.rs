//! CSV exports: Get-ADUser | Export-Csv (Windows PowerShell 5.1 and 7), csvde, and Excel's
//! "CSV" and "CSV UTF-8" in any locale. This file knows the quirks: the `#TYPE` line, the
//! sniffed delimiter, csvde's `X'..'` text values, and line numbers that stay right across
//! quoted fields with embedded newlines. Large files are parsed in chunks on rayon (see
//! `split_records`).
//!
//! The records are split here rather than by the csv crate, which copies every record into its
//! own buffer and walks a state machine byte by byte: a field's value is borrowed from the
//! file's text and copied only when it must change (a doubled quote, csvde's `X'..'`), and
//! memchr finds the quotes and delimiters. The grammar is RFC 4180 as Export-Csv and Excel
//! write it, with the csv crate's leniencies: `\r\n`, `\n` or `\r` end a record, blank lines
//! are skipped, a quote inside an unquoted field is kept, text after a closing quote is kept.
//!
//! A record longer than [`MAX_RECORD`] is an input error for that row (and for the file when
//! it is the header): it is stepped over without being copied, so a 10 GB line costs no
//! memory beyond the mapped file.

use std::borrow::Cow;

use rayon::prelude::*;

use super::columns::{self, ColumnMap};
use super::{classify_object_class, Field, Input, Location, ReadOptions, Role, Row};
use crate::error::Error;
use crate::outcome::{Outcome, Verdict};

/// The longest record (CSV) or entry (LDIF) read: 16 MiB. An AD user with every attribute
/// and thousands of group memberships is a few hundred KiB; anything longer is not a user.
pub(crate) const MAX_RECORD: usize = 16 << 20;

/// The most columns a header may have: Excel's limit.
const MAX_COLUMNS: usize = 16_384;

/// Reads CSV text (already decoded to UTF-8) into rows that borrow from it.
pub fn read<'a>(name: &str, text: &'a str, options: &ReadOptions) -> crate::Result<Input<'a>> {
    // 8 MB pieces: enough of them to keep both cores busy, few enough to cost nothing.
    let mut records = open(name, text, options, 8 << 20, &|_| {})?;
    let rows = records
        .next_batch(usize::MAX)
        .map_or_else(Vec::new, |(rows, _)| rows);
    Ok(records.input(rows))
}

/// A CSV export whose header has been read and whose records are split into chunks: parsed
/// all at once by [`read`], or a batch of chunks at a time by [`Records::next_batch`] for a
/// reader that holds no more than a batch of rows.
pub(crate) struct Records<'a> {
    name: String,
    /// The records after the header.
    data: &'a str,
    delimiter: u8,
    headers: Vec<String>,
    map: ColumnMap,
    chunks: Vec<Chunk>,
    /// The first chunk not parsed yet.
    next: usize,
}

/// Reads the header of CSV text and splits the records after it into chunks of about
/// `chunk_size` bytes. The file's bytes are read once to split it; each piece read is given to
/// `release`.
pub(crate) fn open<'a>(
    name: &str,
    text: &'a str,
    options: &ReadOptions,
    chunk_size: usize,
    release: &(dyn Fn(&[u8]) + Sync),
) -> crate::Result<Records<'a>> {
    let (body, skipped_lines) = skip_type_line(text);
    let delimiter = options.delimiter.unwrap_or_else(|| sniff_delimiter(body));
    let mut parser = Parser::new(body, delimiter, skipped_lines);
    let headers: Vec<String> = match parser.next_record(MAX_COLUMNS) {
        Some(Record::Fields { spans, .. }) => spans
            .iter()
            .map(|span| span.value(body).trim().to_string())
            .collect(),
        Some(Record::TooLong { line, len }) => {
            return Err(Error::Input(format!(
                "{name}:{line}: the header line is {} MiB long, more than the {} MiB a record may have: this is not an AD export",
                len >> 20,
                MAX_RECORD >> 20
            )))
        }
        None => Vec::new(),
    };
    let map = ColumnMap::new(name, &headers, &options.columns)?;
    columns::require_usable(name, &map.found(), &headers, options.anchor_optional)?;
    let data = &body[parser.pos..];
    let chunks = split_records(data.as_bytes(), parser.line - 1, chunk_size, release);
    Ok(Records {
        name: name.to_string(),
        data,
        delimiter,
        headers,
        map,
        chunks,
        next: 0,
    })
}

impl<'a> Records<'a> {
    /// The file's [`Input`] with these rows.
    pub(crate) fn input(&self, rows: Vec<Row<'a>>) -> Input<'a> {
        Input {
            name: self.name.clone(),
            format: super::Format::Csv,
            columns: self.map.found(),
            headers: self.headers.clone(),
            rows,
            notes: Vec::new(),
        }
    }

    /// The rows of the next `chunks` chunks, parsed on rayon, in order, and the text they were
    /// read from; `None` once every chunk is parsed.
    ///
    /// A chunk that ends inside a quoted field (other than the file's last) shows that the
    /// split after it fell inside one (a stray quote in an unquoted field fooled the quote
    /// count of [`split_records`]): then everything from that chunk's start to the end of the
    /// file is parsed again in one piece. The chunks before it ended between records, so
    /// their rows are what one piece would give.
    pub(crate) fn next_batch(&mut self, chunks: usize) -> Option<(Vec<Row<'a>>, &'a str)> {
        if self.next >= self.chunks.len() {
            return None;
        }
        let batch = self.chunks[self.next..self.chunks.len().min(self.next.saturating_add(chunks))]
            .to_vec();
        let last_of_file = self.chunks.len() - 1 - self.next;
        self.next += batch.len();
        let parsed: Vec<(Vec<Row>, bool)> =
            batch.par_iter().map(|chunk| self.parse(*chunk)).collect();
        let fooled = parsed
            .iter()
            .enumerate()
            .position(|(i, (_, open_quote))| *open_quote && i != last_of_file);
        let mut rows = Vec::with_capacity(parsed.iter().map(|(rows, _)| rows.len()).sum());
        for (mut chunk_rows, _) in parsed.into_iter().take(fooled.unwrap_or(batch.len())) {
            rows.append(&mut chunk_rows);
        }
        let end = match fooled {
            Some(i) => {
                self.next = self.chunks.len();
                let rest = Chunk {
                    end: self.data.len(),
                    ..batch[i]
                };
                rows.append(&mut self.parse(rest).0);
                self.data.len()
            }
            None => batch[batch.len() - 1].end,
        };
        Some((rows, &self.data[batch[0].start..end]))
    }

    /// The rows of one chunk, and whether its last field's quote was left open.
    fn parse(&self, chunk: Chunk) -> (Vec<Row<'a>>, bool) {
        let map = &self.map;
        let wanted = map.columns.iter().map(|(_, i, _)| i + 1).max().unwrap_or(0);
        let text = &self.data[chunk.start..chunk.end];
        let mut parser = Parser::new(text, self.delimiter, chunk.lines_before);
        // A record per line at most: room for all of them at once, and no more.
        let mut rows = Vec::with_capacity(count(b'\n', text.as_bytes()) + 1);
        while let Some(record) = parser.next_record(wanted) {
            rows.push(row_of(&self.name, text, &record, self.headers.len(), map));
        }
        (rows, parser.open_quote)
    }
}

/// A run of whole records, as byte offsets into the data, and the lines before it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Chunk {
    start: usize,
    end: usize,
    lines_before: u64,
}

/// Splits the records into chunks of about `chunk_size` bytes, at line ends outside quotes, so
/// that both cores parse. A line end is outside quotes when an even number of `"` precede it:
/// in RFC 4180 CSV (and Export-Csv's) every quote inside a quoted field is doubled. The quotes
/// and line ends of each `chunk_size` block are counted in parallel; a file with an odd number
/// of quotes in all is not split: it is parsed in one piece, as written.
fn split_records(
    data: &[u8],
    lines_before: u64,
    chunk_size: usize,
    release: &(dyn Fn(&[u8]) + Sync),
) -> Vec<Chunk> {
    let whole = vec![Chunk {
        start: 0,
        end: data.len(),
        lines_before,
    }];
    if data.len() < 2 * chunk_size {
        return whole;
    }
    let counts: Vec<(usize, u64)> = (0..data.len().div_ceil(chunk_size))
        .into_par_iter()
        .map(|block| {
            let range = block * chunk_size..((block + 1) * chunk_size).min(data.len());
            let counts = (
                count(b'"', &data[range.clone()]),
                line_ends(data, range.clone()),
            );
            release(&data[range]);
            counts
        })
        .collect();
    if counts.iter().map(|(quotes, _)| quotes).sum::<usize>() % 2 == 1 {
        return whole;
    }
    let mut chunks = Vec::with_capacity(counts.len());
    let (mut start, mut lines_at_start) = (0, lines_before);
    let (mut quotes_before_block, mut lines_before_block) = (0, lines_before);
    for (block, (quotes, lines)) in counts.iter().enumerate() {
        let block_start = block * chunk_size;
        if block_start > start {
            // Walk from this block's start to the first line end with an even number of
            // quotes before it, counting the lines on the way.
            let (mut end, mut parity) = (block_start, quotes_before_block);
            while let Some(newline) = memchr::memchr(b'\n', &data[end..]) {
                parity += count(b'"', &data[end..end + newline]);
                end += newline + 1;
                if parity % 2 == 0 {
                    break;
                }
            }
            if end < data.len() && parity % 2 == 0 {
                let lines_at_end = lines_before_block + line_ends(data, block_start..end);
                chunks.push(Chunk {
                    start,
                    end,
                    lines_before: lines_at_start,
                });
                (start, lines_at_start) = (end, lines_at_end);
            }
        }
        quotes_before_block += quotes;
        lines_before_block += lines;
    }
    chunks.push(Chunk {
        start,
        end: data.len(),
        lines_before: lines_at_start,
    });
    chunks
}

fn count(byte: u8, haystack: &[u8]) -> usize {
    memchr::memchr_iter(byte, haystack).count()
}

/// The line ends in `data[range]`: every `\n`, and every `\r` alone (not followed by `\n`,
/// inside the range or just after it), which ends a line too: Excel's "CSV (Macintosh)" ends
/// its lines so, and with `\n` alone counted every row of such a file was line 1.
fn line_ends(data: &[u8], range: std::ops::Range<usize>) -> u64 {
    let part = &data[range.clone()];
    let lone_cr = memchr::memchr_iter(b'\r', part)
        .filter(|&i| data.get(range.start + i + 1) != Some(&b'\n'))
        .count();
    (count(b'\n', part) + lone_cr) as u64
}

/// Where a field lies in the text: `start..end` as written, and for a quoted field the
/// closing quote and whether doubled quotes inside need undoing.
#[derive(Clone, Copy, Debug)]
struct Span {
    start: usize,
    end: usize,
    /// The closing quote of a quoted field (`end` when it has none).
    close: usize,
    quoted: bool,
    escaped: bool,
}

impl Span {
    /// The field's value: borrowed, unless a doubled quote or text after the closing quote
    /// makes it differ from every slice of the text.
    fn value(self, text: &str) -> Cow<'_, str> {
        if !self.quoted {
            return Cow::Borrowed(&text[self.start..self.end]);
        }
        let inside = &text[self.start + 1..self.close];
        let after = &text[(self.close + 1).min(self.end)..self.end];
        if !self.escaped && after.is_empty() {
            return Cow::Borrowed(inside);
        }
        let mut value = inside.replace("\"\"", "\"");
        value.push_str(after);
        Cow::Owned(value)
    }
}

/// One record from [`Parser::next_record`].
enum Record<'p> {
    /// The first fields the caller asked for, and how many the record has in all.
    Fields {
        line: u64,
        spans: &'p [Span],
        count: usize,
    },
    /// A record over [`MAX_RECORD`], stepped over.
    TooLong { line: u64, len: usize },
}

/// Splits CSV text into records, keeping the physical line each starts on.
struct Parser<'a> {
    bytes: &'a [u8],
    delimiter: u8,
    pos: usize,
    /// The 1-based line `pos` is on.
    line: u64,
    spans: Vec<Span>,
    /// Whether a quoted field ran to the end of the text without its closing quote.
    open_quote: bool,
}

impl<'a> Parser<'a> {
    fn new(text: &'a str, delimiter: u8, lines_before: u64) -> Self {
        Parser {
            bytes: text.as_bytes(),
            delimiter,
            pos: 0,
            line: lines_before + 1,
            spans: Vec::new(),
            open_quote: false,
        }
    }

    /// The next record, keeping the spans of its first `wanted` fields; `None` at the end.
    fn next_record(&mut self, wanted: usize) -> Option<Record<'_>> {
        self.skip_blank_lines();
        if self.pos >= self.bytes.len() {
            return None;
        }
        let (start, line) = (self.pos, self.line);
        self.spans.clear();
        let mut count = 0;
        loop {
            let span = self.field();
            count += 1;
            if count <= wanted {
                self.spans.push(span);
            }
            let at_delimiter = self.bytes.get(self.pos) == Some(&self.delimiter);
            if at_delimiter && self.pos - start > MAX_RECORD {
                self.skip_to_record_end();
            }
            if !at_delimiter || self.pos - start > MAX_RECORD {
                break;
            }
            self.pos += 1;
        }
        self.end_record();
        let len = self.pos - start;
        if len > MAX_RECORD {
            return Some(Record::TooLong { line, len });
        }
        Some(Record::Fields {
            line,
            spans: &self.spans,
            count,
        })
    }

    fn skip_blank_lines(&mut self) {
        while let Some(&b) = self.bytes.get(self.pos) {
            match b {
                b'\n' => self.line += 1,
                // A CR alone ends a line (see `line_ends`).
                b'\r' if self.bytes.get(self.pos + 1) != Some(&b'\n') => self.line += 1,
                b'\r' => {}
                _ => break,
            }
            self.pos += 1;
        }
    }

    /// Moves to the end of an overlong record, between two fields now: the next line end
    /// outside quotes.
    fn skip_to_record_end(&mut self) {
        let mut quoted = false;
        while let Some(i) = memchr::memchr2(b'"', b'\n', &self.bytes[self.pos..]) {
            let at = self.pos + i;
            self.pos = at;
            match self.bytes[at] {
                b'"' => quoted = !quoted,
                _ if !quoted => return,
                _ => self.line += 1,
            }
            self.pos += 1;
        }
        self.pos = self.bytes.len();
    }

    /// Steps over the line end of a record (`\r\n`, `\n` or `\r`), one line whichever.
    fn end_record(&mut self) {
        let cr = self.bytes.get(self.pos) == Some(&b'\r');
        if cr {
            self.pos += 1;
        }
        let lf = self.bytes.get(self.pos) == Some(&b'\n');
        if lf {
            self.pos += 1;
        }
        if cr || lf {
            self.line += 1;
        }
    }

    /// One field from `pos`, leaving `pos` on the delimiter or line end after it.
    fn field(&mut self) -> Span {
        let start = self.pos;
        if self.bytes.get(start) != Some(&b'"') {
            self.pos = self.unquoted_end(start);
            return Span {
                start,
                end: self.pos,
                close: self.pos,
                quoted: false,
                escaped: false,
            };
        }
        let (mut at, mut escaped) = (start + 1, false);
        let close = loop {
            match memchr::memchr3(b'"', b'\n', b'\r', &self.bytes[at..]) {
                None => {
                    self.open_quote = true;
                    break self.bytes.len();
                }
                Some(i) if self.bytes[at + i] == b'\n' => {
                    self.line += 1;
                    at += i + 1;
                }
                Some(i) if self.bytes[at + i] == b'\r' => {
                    if self.bytes.get(at + i + 1) != Some(&b'\n') {
                        self.line += 1;
                    }
                    at += i + 1;
                }
                Some(i) if self.bytes.get(at + i + 1) == Some(&b'"') => {
                    escaped = true;
                    at += i + 2;
                }
                Some(i) => break at + i,
            }
        };
        // Text between the closing quote and the delimiter is kept, as the csv crate does.
        self.pos = match self.bytes.get(close + 1) {
            Some(&b) if b != self.delimiter && b != b'\n' && b != b'\r' => {
                self.unquoted_end(close + 1)
            }
            _ => (close + 1).min(self.bytes.len()),
        };
        Span {
            start,
            end: self.pos,
            close,
            quoted: true,
            escaped,
        }
    }

    fn unquoted_end(&self, from: usize) -> usize {
        memchr::memchr3(self.delimiter, b'\n', b'\r', &self.bytes[from..])
            .map_or(self.bytes.len(), |i| from + i)
    }
}

/// Windows PowerShell 5.1's Export-Csv starts with `#TYPE <type name>` unless told not to.
fn skip_type_line(text: &str) -> (&str, u64) {
    if text.starts_with("#TYPE") {
        match memchr::memchr2(b'\r', b'\n', &text.as_bytes()[..text.len().min(MAX_RECORD)]) {
            Some(end) => {
                let rest = &text[end..];
                (rest.strip_prefix("\r\n").unwrap_or(&rest[1..]), 1)
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
    for b in body.bytes().take(MAX_RECORD) {
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

fn row_of<'a>(
    name: &str,
    text: &'a str,
    record: &Record<'_>,
    header_count: usize,
    map: &ColumnMap,
) -> Row<'a> {
    let (line, spans, count) = match *record {
        Record::Fields { line, spans, count } => (line, spans, count),
        Record::TooLong { line, len } => return too_long(name, line, len),
    };
    let mut row = Row::with_capacity(Location::Line(line), map.columns.len());
    for (role, index, _) in &map.columns {
        let Some(span) = spans.get(*index) else {
            continue;
        };
        let value = span.value(text);
        let value = match role.is_text().then(|| csvde_text(&value)).flatten() {
            Some(decoded) => Cow::Owned(decoded),
            None => value,
        };
        row.set(
            *role,
            Field {
                value,
                column: *index as u32,
            },
        );
    }
    if count > header_count && header_count > 1 {
        row.problem = Some(Verdict::new(
            Outcome::MissingField,
            format!(
                "{name}:{line}: the record has {count} fields but the header has {header_count}, so its columns cannot be trusted (a value with an unquoted delimiter?); fix the line and run again"
            ),
        ));
    } else if is_repeated_header(text, spans, count, header_count, map) {
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
/// Export-Csv's `#TYPE` line mid-file: neither is a user with a bad anchor. A record is the
/// header again when it has as many fields and each mapped one reads as its header.
fn is_repeated_header(
    text: &str,
    spans: &[Span],
    count: usize,
    header_count: usize,
    map: &ColumnMap,
) -> bool {
    let type_line = count == 1
        && spans
            .first()
            .is_some_and(|s| s.value(text).starts_with("#TYPE"));
    type_line
        || (count == header_count
            && map.columns.iter().all(|(_, index, header)| {
                spans
                    .get(*index)
                    .is_some_and(|s| s.value(text).trim() == &**header)
            }))
}

fn too_long<'a>(name: &str, line: u64, len: usize) -> Row<'a> {
    let mut row = Row::new(Location::Line(line));
    row.problem = Some(Verdict::new(
        Outcome::MissingField,
        format!(
            "{name}:{line}: the record is {} MiB long, more than the {} MiB a record may have (a missing closing quote?); it was skipped: fix the line and run again",
            len >> 20,
            MAX_RECORD >> 20
        ),
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
    String::from_utf8(hex::decode(hex).ok()?).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read_text(text: &str) -> Input<'_> {
        read("t.csv", text, &ReadOptions::default()).unwrap()
    }

    fn lines(input: &Input<'_>) -> Vec<u64> {
        input
            .rows
            .iter()
            .map(|r| r.location.as_ref().unwrap().line())
            .collect()
    }

    #[test]
    fn type_line_quotes_and_embedded_newlines_keep_line_numbers() {
        let input = read_text(
            "#TYPE Selected.Microsoft.ActiveDirectory.Management.ADUser\r\n\"UserPrincipalName\",\"ObjectGUID\",\"Description\"\r\n\"a@x.com\",\"g1\",\"two\r\nlines\"\r\n\r\n\"b@x.com\",\"g2\",\"\"\r\n",
        );
        assert_eq!(lines(&input), [3, 6]);
        assert_eq!(input.rows[1].value(Role::Upn), Some("b@x.com"));
    }

    #[test]
    fn quoting_as_the_csv_crate_reads_it() {
        let input = read_text(
            "UPN,GUID,Name\n\"a \"\"b\"\"\",g,\"x\"y\n\"c,d\",\"e\"\"\"\"\",z\"q\rlast,\"g\",\"unterminated\n,,",
        );
        let values: Vec<_> = input
            .rows
            .iter()
            .map(|r| {
                [Role::Upn, Role::ObjectGuid, Role::DisplayName]
                    .map(|role| r.get(role).map(|f| f.value.to_string()).unwrap_or_default())
            })
            .collect();
        assert_eq!(
            values,
            [
                ["a \"b\"", "g", "xy"],
                ["c,d", "e\"\"", "z\"q"],
                ["last", "g", "unterminated\n,,"]
            ]
        );
        // `z"q\r` ends its line with a CR alone, so `last` is on line 4, as an editor shows it.
        assert_eq!(lines(&input), [2, 3, 4]);
    }

    #[test]
    fn semicolons_are_sniffed_and_csvde_text_decoded() {
        let input = read_text("UPN;GUID;Name\nj@x.com;g;X'4ac3b6'\n");
        assert_eq!(input.rows[0].value(Role::DisplayName), Some("Jö"));
        // A sign is not a hex digit: X'+a' is text as written, not a byte.
        assert_eq!(csvde_text("X'+a'"), None);
        let tabbed = read_text("UPN\tGUID\na@x.com\tg\n");
        assert_eq!(tabbed.rows[0].value(Role::ObjectGuid), Some("g"));
    }

    #[test]
    fn shifted_records_and_non_users_are_problems() {
        let input = read_text("DN,objectClass,userPrincipalName,objectGUID\n\"CN=a\",top;person;user,a@x.com,X'00'\n\"CN=WS\",top;person;user;computer,ws@x.com,X'01'\nCN=b,c,top,user,b@x.com,X'02'\n");
        let outcomes = input.outcomes();
        assert_eq!(
            outcomes,
            [None, Some(Outcome::NotAUser), Some(Outcome::MissingField)]
        );
    }

    #[test]
    fn an_overlong_record_is_a_row_problem_and_the_next_one_is_read() {
        let text = format!(
            "UPN,GUID\na@x.com,g1\nb@x.com,\"{}\n\n\",{}\nc@x.com,g3\n",
            "x".repeat(MAX_RECORD),
            "\"\",".repeat(1000)
        );
        let input = read_text(&text);
        assert_eq!(lines(&input), [2, 3, 6]);
        let problem = input.rows[1].problem.as_ref().unwrap();
        assert!(
            problem
                .detail
                .starts_with("t.csv:3: the record is 16 MiB long"),
            "{}",
            problem.detail
        );
        assert_eq!(input.rows[2].value(Role::ObjectGuid), Some("g3"));
        let err = read(
            "t.csv",
            &"y".repeat(MAX_RECORD + 1),
            &ReadOptions::default(),
        )
        .err()
        .unwrap();
        assert!(
            err.to_string()
                .starts_with("t.csv:1: the header line is 16 MiB long"),
            "{err}"
        );
    }

    /// Every record and field as this parser reads them.
    fn parse_all(text: &str) -> Vec<Vec<String>> {
        let mut parser = Parser::new(text, b',', 0);
        let mut records = Vec::new();
        while let Some(record) = parser.next_record(usize::MAX) {
            let Record::Fields { spans, .. } = record else {
                unreachable!("short input")
            };
            records.push(spans.iter().map(|s| s.value(text).into_owned()).collect());
        }
        records
    }

    proptest::proptest! {
        /// Any text of quotes, delimiters, line ends and letters reads as the csv crate reads it.
        #[test]
        fn reads_what_the_csv_crate_reads(text in "[a\",\r\n ]{0,40}") {
            let mut reader = ::csv::ReaderBuilder::new()
                .has_headers(false)
                .flexible(true)
                .from_reader(text.as_bytes());
            let expected: Vec<Vec<String>> = reader
                .byte_records()
                .map(|r| r.unwrap().iter().map(|f| String::from_utf8_lossy(f).into_owned()).collect())
                .collect();
            proptest::prop_assert_eq!(parse_all(&text), expected);
        }
    }

    #[test]
    fn a_stray_quote_that_fools_the_split_falls_back_to_one_piece() {
        let mut data = String::from("UPN,Note\na@x.com,5\" screen\n");
        for i in 0..2_000 {
            data.push_str(&format!("u{i}@x.com,\"two\nlines\"\n"));
        }
        data.push_str("z@x.com,12\" monitor\n");
        let one = read_chunked(&data, usize::MAX / 4, usize::MAX);
        assert_eq!(one.len(), 2_002);
        for batch in [usize::MAX, 3, 1] {
            let split = read_chunked(&data, 1 << 10, batch);
            assert!(one == split, "the same rows, lines and values");
            assert_eq!(split[2_000].value(Role::Upn), Some("u1999@x.com"));
        }
    }

    /// Every row of `text` (a header line, then records), its records split into chunks of
    /// `chunk_size` bytes and parsed `batch` chunks at a time.
    fn read_chunked(text: &str, chunk_size: usize, batch: usize) -> Vec<Row<'_>> {
        let options = ReadOptions {
            anchor_optional: true,
            ..ReadOptions::default()
        };
        let mut records = open("t.csv", text, &options, chunk_size, &|_| {}).unwrap();
        let mut rows = Vec::new();
        while let Some((mut batch_rows, _)) = records.next_batch(batch) {
            rows.append(&mut batch_rows);
        }
        rows
    }

    /// Excel's "CSV (Macintosh)" ends lines with a CR alone: each record has its own line
    /// (every row was line 1), and a `#TYPE` line so ended is skipped alone (the whole file was).
    #[test]
    fn cr_only_line_ends_number_each_record() {
        let input = read_text(
            "#TYPE x\rUPN,ObjectGUID\ra@x.com,g1\r\rb@x.com,\"two\rlines\"\rc@x.com,g3\r",
        );
        assert_eq!(lines(&input), [3, 5, 7]);
        // Mixed: a CRLF file with a CR alone inside a quoted field.
        let mixed = read_text("UPN,ObjectGUID\r\na@x.com,\"x\ry\"\r\nb@x.com,z\r\n");
        assert_eq!(lines(&mixed), [2, 4]);
    }

    /// Chunks count a CR alone as a line end too, across a chunk's edge as well.
    #[test]
    fn chunked_parsing_counts_lone_crs() {
        let mut data = String::from("UPN,Note\r\n");
        for i in 0..2_000 {
            data.push_str(&format!("u{i}@x.com,\"a\rb\"\r\n"));
        }
        let one = read_chunked(&data, usize::MAX / 4, usize::MAX);
        assert_eq!(one[1_999].location, Some(Location::Line(2 + 2 * 1_999)));
        for batch in [usize::MAX, 1] {
            let split = read_chunked(&data, 1 << 10, batch);
            assert!(one == split, "the same rows, lines and values");
        }
    }

    #[test]
    fn joined_exports_repeat_the_header_and_type_lines() {
        let input = read_text("#TYPE T\r\n\"UPN\",\"ObjectGUID\"\r\n\"a@x.com\",\"g\"\r\n#TYPE T\r\n\"UPN\",\"ObjectGUID\"\r\n\"b@x.com\",\"g2\"\r\n");
        let outcomes = input.outcomes();
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
        let data = &text[text.find('\n').unwrap() + 1..];
        let chunks = split_records(data.as_bytes(), 1, 64 << 10, &|_| {});
        assert!(chunks.len() > 10);
        assert!(chunks.windows(2).all(|w| w[0].end == w[1].start));
        let headers = vec![
            "UserPrincipalName".to_string(),
            "ObjectGUID".into(),
            "Description".into(),
        ];
        let map = ColumnMap::new("t.csv", &headers, &[]).unwrap();
        let parse = |chunk: Chunk| {
            let text = &data[chunk.start..chunk.end];
            let mut parser = Parser::new(text, b',', chunk.lines_before);
            let mut rows = Vec::new();
            while let Some(record) = parser.next_record(3) {
                rows.push(row_of("t.csv", text, &record, 3, &map));
            }
            rows
        };
        let one = parse(Chunk {
            start: 0,
            end: data.len(),
            lines_before: 1,
        });
        let split: Vec<Row> = chunks.into_iter().flat_map(parse).collect();
        assert_eq!(one.len(), 20_000);
        assert!(one == split, "the same rows, lines and values");
        assert_eq!(split[998].location, Some(Location::Line(1000 + 1 + 1)));
    }
}
