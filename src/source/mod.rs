//! The reader stage: an AD export (CSV, LDIF, XLSX/XLS/ODS) in, [`Row`]s out, each with the
//! place it came from so that every message can name the file, line and column (or sheet and
//! cell).
//!
//! [`open`] gives a [`Source`]: a text file mapped (or decoded when it is not UTF-8, see
//! [`text`]), or a workbook's path. [`Source::read`] gives the [`Input`], whose rows borrow
//! their values from the source's text: a million rows do not copy the file.
//!
//! A bad row never stops a read: it becomes a row whose [`Row::problem`] says what is wrong.
//! Only a file that cannot be used at all (unreadable, not text, a zip bomb, no UPN or no anchor
//! column, a header line over [`csv::MAX_RECORD`]) is an [`Error`]. Memory stays
//! bounded on hostile input: binary files are refused from their first 64 KiB, records and
//! LDIF entries over [`csv::MAX_RECORD`] are row errors stepped over without a copy, and
//! workbook parts over 1 GiB are refused before they are inflated.

pub(crate) mod columns;
pub(crate) mod csv;
mod guard;
pub(crate) mod ldif;
pub(crate) mod spreadsheet;
pub mod text;

use std::borrow::Cow;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use self::text::{Bytes, Text};
use crate::error::Error;
use crate::outcome::Verdict;

/// What a column (or LDIF attribute) means to hardmatch.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Role {
    Upn,
    ObjectGuid,
    ConsistencyGuid,
    ImmutableId,
    Mail,
    TargetUpn,
    CloudObjectId,
    DisplayName,
    ObjectClass,
    DistinguishedName,
    /// The user's SMTP addresses (multi-valued: `;`-joined in csvde, repeated in LDIF).
    ProxyAddresses,
}

impl Role {
    pub(crate) const COUNT: usize = 11;
    pub const ALL: [Role; Role::COUNT] = [
        Role::Upn,
        Role::ObjectGuid,
        Role::ConsistencyGuid,
        Role::ImmutableId,
        Role::Mail,
        Role::TargetUpn,
        Role::CloudObjectId,
        Role::DisplayName,
        Role::ObjectClass,
        Role::DistinguishedName,
        Role::ProxyAddresses,
    ];

    /// The name used by `--column ROLE=Header`.
    pub(crate) fn name(self) -> &'static str {
        match self {
            Role::Upn => "upn",
            Role::ObjectGuid => "object-guid",
            Role::ConsistencyGuid => "consistency-guid",
            Role::ImmutableId => "immutable-id",
            Role::Mail => "mail",
            Role::TargetUpn => "target-upn",
            Role::CloudObjectId => "cloud-object-id",
            Role::DisplayName => "display-name",
            Role::ObjectClass => "object-class",
            Role::DistinguishedName => "dn",
            Role::ProxyAddresses => "proxy-addresses",
        }
    }

    pub(crate) fn from_name(name: &str) -> Option<Role> {
        Role::ALL
            .into_iter()
            .find(|r| r.name().eq_ignore_ascii_case(name))
    }

    /// Roles whose value is an anchor in some encoding, not text to decode.
    pub(crate) fn is_anchor(self) -> bool {
        matches!(
            self,
            Role::ObjectGuid | Role::ConsistencyGuid | Role::ImmutableId
        )
    }

    /// Roles whose value is text (csvde and LDIF may encode it).
    pub(crate) fn is_text(self) -> bool {
        !self.is_anchor()
    }
}

/// The input formats the reader understands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    Csv,
    Ldif,
    /// XLSX, XLSM, XLS or ODS, all through calamine.
    Spreadsheet,
}

/// Where a row starts in its file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Location {
    /// CSV record or LDIF entry: the 1-based physical line it starts on.
    Line(u64),
    /// Spreadsheet row: the sheet name and the 1-based row number Excel shows.
    Sheet { sheet: Arc<str>, row: u32 },
}

impl Location {
    /// The line (or sheet row) number, for the report's `line` column.
    pub(crate) fn line(&self) -> u64 {
        match self {
            Location::Line(line) => *line,
            Location::Sheet { row, .. } => u64::from(*row),
        }
    }
}

/// One value of a row, borrowed from the file's text where it can be.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Field<'a> {
    pub value: Cow<'a, str>,
    /// 0-based column index (CSV, spreadsheet); for LDIF the 1-based line of the attribute.
    pub column: u32,
}

/// One input record: a user, or something that pretends to be one.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Row<'a> {
    pub location: Option<Location>,
    /// Only the roles the file has; a handful, so a scan beats an index (and keeps a million
    /// rows small).
    fields: Vec<(Role, Field<'a>)>,
    /// Set by the reader when the record cannot be a candidate (`not-a-user`, a malformed
    /// record, a cell Excel mangled). Later stages keep it and add nothing.
    pub(crate) problem: Option<Verdict>,
}

impl<'a> Row<'a> {
    pub(crate) fn new(location: Location) -> Self {
        Row::with_capacity(location, 0)
    }

    /// A row with room for `fields` fields, allocated once.
    pub fn with_capacity(location: Location, fields: usize) -> Self {
        Row {
            location: Some(location),
            fields: Vec::with_capacity(fields),
            problem: None,
        }
    }

    pub fn get(&self, role: Role) -> Option<&Field<'a>> {
        self.fields.iter().find(|(r, _)| *r == role).map(|(_, f)| f)
    }

    /// The trimmed, non-empty value of a role, if the row has one.
    pub(crate) fn value(&self, role: Role) -> Option<&str> {
        self.get(role)
            .map(|f| f.value.trim())
            .filter(|v| !v.is_empty())
    }

    pub fn set(&mut self, role: Role, field: Field<'a>) {
        match self.fields.iter_mut().find(|(r, _)| *r == role) {
            Some(slot) => slot.1 = field,
            None => self.fields.push((role, field)),
        }
    }
}

/// A whole export, read. Its rows borrow from the [`Source`] it was read from.
#[derive(Debug)]
pub struct Input<'a> {
    /// The path as the user gave it, for messages.
    pub name: String,
    pub format: Format,
    /// The headers (or attribute names) found, for messages and `--column`.
    pub headers: Vec<String>,
    /// The roles found and the header (or attribute name) each came from.
    pub columns: Vec<(Role, Arc<str>)>,
    pub rows: Vec<Row<'a>>,
    /// What the reader decided on the user's behalf and must say (on stderr), such as reading
    /// a workbook's only usable sheet instead of its first.
    pub notes: Vec<String>,
}

impl Input<'_> {
    /// A place in the file a message can point to: `users.csv:12 column ObjectGUID`, or
    /// `users.xlsx sheet Users cell C12 (ObjectGUID)`, for the row or one of its fields.
    pub fn place(&self, row: &Row<'_>, role: Option<Role>) -> Place {
        let field = role.and_then(|role| {
            let column = row.get(role)?.column;
            let header = self.columns.iter().find(|(r, _)| *r == role)?.1.clone();
            Some((header, column))
        });
        Place {
            file: self.name.clone(),
            location: row.location.clone(),
            field,
            format: self.format,
        }
    }

    /// The place of a row of this file by its location alone (`users.csv:12`), for a caller
    /// that no longer holds the row.
    pub(crate) fn place_at(&self, location: Option<Location>) -> Place {
        Place {
            file: self.name.clone(),
            location,
            field: None,
            format: self.format,
        }
    }

    /// The header (or attribute name) a role was read from.
    pub fn header(&self, role: Role) -> Option<&str> {
        self.columns
            .iter()
            .find(|(r, _)| *r == role)
            .map(|(_, h)| &**h)
    }

    /// Each row's problem outcome, `None` for a row the reader had nothing to say about.
    #[cfg(test)]
    pub(crate) fn outcomes(&self) -> Vec<Option<crate::outcome::Outcome>> {
        self.rows
            .iter()
            .map(|r| r.problem.as_ref().map(|p| p.outcome))
            .collect()
    }
}

/// A printable position in an input file.
#[derive(Clone, Debug)]
pub struct Place {
    file: String,
    location: Option<Location>,
    field: Option<(Arc<str>, u32)>,
    format: Format,
}

impl fmt::Display for Place {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.location {
            Some(Location::Line(line)) => {
                write!(f, "{}:{}", self.file, line)?;
                match (&self.field, self.format) {
                    (Some((header, attr_line)), Format::Ldif) => {
                        write!(f, " attribute {header} (line {attr_line})")
                    }
                    (Some((header, _)), _) => write!(f, " column {header}"),
                    (None, _) => Ok(()),
                }
            }
            Some(Location::Sheet { sheet, row }) => {
                write!(f, "{} sheet {}", self.file, sheet)?;
                match &self.field {
                    Some((header, col)) => {
                        write!(f, " cell {}{} ({header})", column_letters(*col), row)
                    }
                    None => write!(f, " row {row}"),
                }
            }
            None => f.write_str(&self.file),
        }
    }
}

/// Excel's column letters for a 0-based column index: 0 -> A, 25 -> Z, 26 -> AA.
pub(crate) fn column_letters(mut col: u32) -> String {
    let mut letters = Vec::new();
    loop {
        letters.push(b'A' + (col % 26) as u8);
        if col < 26 {
            break;
        }
        col = col / 26 - 1;
    }
    letters.reverse();
    String::from_utf8(letters).expect("ASCII letters")
}

/// How to read an export; every field has a sensible default.
#[derive(Clone, Debug, Default)]
pub struct ReadOptions {
    /// Force the format instead of detecting it.
    pub format: Option<Format>,
    /// Force the CSV delimiter instead of sniffing it.
    pub delimiter: Option<u8>,
    /// `--column role=Header` mappings, which win over the aliases.
    pub columns: Vec<(Role, String)>,
    /// The spreadsheet's sheet; when not given, the first one, or the only one that has the
    /// columns the command needs.
    pub sheet: Option<String>,
    /// The command needs no anchor column (`clear`), only a way to find each cloud user.
    pub anchor_optional: bool,
}

/// An export opened for reading, its format decided: a CSV or LDIF file's text (mapped, or
/// decoded when it is not UTF-8), or a workbook's path. [`Source::read`] gives rows that
/// borrow from it.
pub struct Source {
    name: String,
    path: PathBuf,
    options: ReadOptions,
    body: Body,
}

/// One variant per format, each with what its reader needs. Both matches on formats are
/// exhaustive, so a new format is a compile error until it is opened and read.
enum Body {
    Csv(Text),
    Ldif(Text),
    Workbook,
}

/// Opens an export in the format `--format` forces, or the one it is detected to be. A text
/// file must look like text (see [`text`]).
pub fn open(path: &Path, options: &ReadOptions) -> crate::Result<Source> {
    let name = path.display().to_string();
    let text = || {
        let bytes = Bytes::open(path).map_err(|e| Error::io(path, e))?;
        Text::decode(&name, bytes)
    };
    let body = match options.format {
        Some(Format::Csv) => Body::Csv(text()?),
        Some(Format::Ldif) => Body::Ldif(text()?),
        Some(Format::Spreadsheet) => Body::Workbook,
        None => detect(path, &name)?,
    };
    Ok(Source {
        name,
        path: path.to_path_buf(),
        options: options.clone(),
        body,
    })
}

/// A workbook by extension or signature (a workbook with a misleading extension); else text,
/// LDIF or CSV by [`is_ldif`].
fn detect(path: &Path, name: &str) -> crate::Result<Body> {
    if has_workbook_extension(path) {
        return Ok(Body::Workbook);
    }
    let bytes = Bytes::open(path).map_err(|e| Error::io(path, e))?;
    if is_workbook(&bytes) {
        return Ok(Body::Workbook);
    }
    let text = Text::decode(name, bytes)?;
    Ok(if is_ldif(path, text.as_str()) {
        Body::Ldif(text)
    } else {
        Body::Csv(text)
    })
}

impl Source {
    /// Reads every row.
    pub fn read(&self) -> crate::Result<Input<'_>> {
        let (name, options) = (self.name.as_str(), &self.options);
        match &self.body {
            Body::Csv(text) => csv::read(name, text.as_str(), options),
            Body::Ldif(text) => ldif::read(name, text.as_str(), options),
            Body::Workbook => spreadsheet::read(name, &self.path, options),
        }
    }
}

/// A CSV batch: 2 chunks of 2 MB per core, about 10,000 rows a chunk of a Get-ADUser export.
/// Enough chunks to keep every core busy, few enough rows (about 20 MB on two cores) to hold
/// at once.
const BATCH_CHUNK: usize = 2 << 20;
const BATCH_CHUNKS_PER_CORE: usize = 2;

impl Source {
    /// Reads the rows a batch at a time, for a caller that keeps no more than a batch of rows:
    /// a CSV export in batches of a few chunks parsed on every core, the file's mapped pages
    /// given back behind each batch. LDIF and workbooks come as one batch. There is always a
    /// first batch, possibly without rows, so the header is there for an empty export.
    pub(crate) fn batches(&self) -> crate::Result<Batches<'_>> {
        let (name, options) = (self.name.as_str(), &self.options);
        let reader = match &self.body {
            Body::Csv(text) => {
                let release = |part: &[u8]| text.release_bytes(part);
                let records = csv::open(name, text.as_str(), options, BATCH_CHUNK, &release)?;
                BatchReader::Csv { records, text }
            }
            Body::Ldif(_) | Body::Workbook => BatchReader::Whole(Some(self.read()?)),
        };
        Ok(Batches {
            reader,
            handed_out: None,
        })
    }
}

/// An export read a batch of rows at a time: [`Source::batches`].
pub(crate) struct Batches<'a> {
    reader: BatchReader<'a>,
    /// The text of the batch handed out last, released when the next is asked for.
    handed_out: Option<&'a str>,
}

enum BatchReader<'a> {
    Csv {
        records: csv::Records<'a>,
        text: &'a Text,
    },
    Whole(Option<Input<'a>>),
}

impl<'a> Iterator for Batches<'a> {
    type Item = Input<'a>;

    fn next(&mut self) -> Option<Input<'a>> {
        match &mut self.reader {
            BatchReader::Csv { records, text } => {
                if let Some(part) = self.handed_out.take() {
                    text.release(part);
                }
                let chunks = BATCH_CHUNKS_PER_CORE * rayon::current_num_threads();
                let (rows, part) = records.next_batch(chunks)?;
                self.handed_out = Some(part);
                Some(records.input(rows))
            }
            BatchReader::Whole(input) => input.take(),
        }
    }
}

fn has_workbook_extension(path: &Path) -> bool {
    let ext = path
        .extension()
        .and_then(|e| e.to_str())
        .unwrap_or("")
        .to_ascii_lowercase();
    matches!(ext.as_str(), "xlsx" | "xlsm" | "xlsb" | "xls" | "ods")
}

/// Zip (XLSX, ODS) and OLE2 (XLS) signatures, for workbooks with a misleading extension.
fn is_workbook(bytes: &[u8]) -> bool {
    bytes.starts_with(guard::ZIP_SIGNATURE) || bytes.starts_with(guard::OLE2_SIGNATURE)
}

/// LDIF by extension, or by its first meaningful line (`dn:`, `version:`); else CSV.
fn is_ldif(path: &Path, text: &str) -> bool {
    let ext = path
        .extension()
        .and_then(|e| e.to_str())
        .unwrap_or("")
        .to_ascii_lowercase();
    if matches!(ext.as_str(), "ldf" | "ldif") {
        return true;
    }
    // The first 64 KiB are enough, and a file that is one huge line is not scanned whole.
    let mut end = text.len().min(64 << 10);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    let first = text[..end]
        .lines()
        .map(str::trim_start)
        .find(|l| !l.is_empty() && !l.starts_with('#'));
    first.is_some_and(|l| {
        let start = l.get(..8).unwrap_or(l).to_ascii_lowercase();
        start.starts_with("dn:") || start.starts_with("version:")
    })
}

/// Why an entry with these objectClass values is not a user, if it is not. A computer is also
/// of class `user` in AD, so computer is checked first. One pass over the classes, and an
/// allocation only for a non-user: it runs for every row.
pub(crate) fn classify_object_class<'a>(
    classes: impl Iterator<Item = &'a str> + Clone,
) -> Option<String> {
    const OTHERS: [&str; 3] = ["computer", "group", "contact"];
    const USERS: [&str; 3] = ["user", "person", "inetOrgPerson"];
    let (mut other, mut user, mut any) = (None, false, false);
    for class in classes.clone().map(str::trim).filter(|c| !c.is_empty()) {
        any = true;
        let is = |name: &str| class.eq_ignore_ascii_case(name);
        if let Some(i) = OTHERS.iter().position(|o| is(o)) {
            other = Some(other.map_or(i, |j: usize| j.min(i)));
        }
        user |= USERS.iter().any(|u| is(u));
    }
    if let Some(other) = other.map(|i| OTHERS[i]) {
        return Some(format!(
            "a {other} (objectClass {other}), not a user: hardmatch only matches user accounts"
        ));
    }
    if user || !any {
        return None;
    }
    let listed: Vec<&str> = classes.map(str::trim).filter(|c| !c.is_empty()).collect();
    Some(format!(
        "objectClass {} is not a user: hardmatch only matches user accounts",
        listed.join(";")
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn column_letters_follow_excel() {
        assert_eq!(column_letters(0), "A");
        assert_eq!(column_letters(25), "Z");
        assert_eq!(column_letters(26), "AA");
        assert_eq!(column_letters(27), "AB");
        assert_eq!(column_letters(701), "ZZ");
        assert_eq!(column_letters(702), "AAA");
    }
}
