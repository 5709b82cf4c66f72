//! `hardmatch ids` for an export of any size: every row's ImmutableId, or why it has none,
//! without a tenant.
//!
//! The export is read and computed a batch at a time ([`Source::batches`],
//! [`compute::candidate`]); each row is kept as a compact [`Entry`] whose texts sit in one
//! buffer, and the parsed rows, their candidates and the file's mapped pages are dropped
//! behind each batch. A batch's rows are computed, made into entries and freed on every core
//! ([`Piece`]); the reading thread only appends the pieces. Holding every parsed row to the end cost about 530 bytes a row plus the
//! whole mapped file; an entry costs about 100. Duplicates inside the input may sit anywhere in
//! the file, so they are found once every row is in, over the entries, by the same
//! [`DuplicateCheck`] as [`compute::compute`]: the report is what computing the whole export at
//! once gives, row for row, in input order.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::ops::Range;
use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use rayon::prelude::*;
// A fast non-cryptographic hash: the keys are row numbers.
use rustc_hash::FxHashMap as HashMap;
use serde::Serialize;
use uuid::Uuid;

use crate::compute::{self, Candidate, ComputeOptions, DuplicateCheck, SourceAnchor};
use crate::outcome::{Outcome, Verdict};
use crate::report::{self, csv as report_csv};
use crate::source::{Input, Location, Role, Row, Source};

/// The report's columns.
pub const COLUMNS: [&str; 7] = [
    "line",
    "upn",
    "object_guid",
    "immutable_id",
    "anchor_source",
    "outcome",
    "detail",
];

/// What a run found: the export's name, its row count and the rows of each outcome.
pub(crate) struct Summary {
    pub(crate) name: String,
    pub(crate) rows: usize,
    pub(crate) outcomes: BTreeMap<Outcome, usize>,
}

/// Reads and computes an export a batch at a time and writes its ImmutableIds report to
/// `output` in `format` (CSV with a byte-order mark when `excel_bom`).
pub(crate) fn run(
    source: &Source,
    options: &ComputeOptions,
    output: &Path,
    format: report::Format,
    excel_bom: bool,
) -> crate::Result<Summary> {
    let started = Instant::now();
    let ids = Ids::compute(source, options)?;
    let computed = Instant::now();
    ids.write(output, format, excel_bom)?;
    tracing::info!(
        "ids: read and computed in {:.3} s, written in {:.3} s",
        (computed - started).as_secs_f64(),
        computed.elapsed().as_secs_f64()
    );
    Ok(ids.summary())
}

/// Every row of an export, computed and kept compact.
struct Ids {
    /// The export's name, format and columns, without rows: for messages.
    input: Input<'static>,
    /// Every row's entry, in pieces of [`PIECE_ROWS`] rows (the last one may hold fewer), so
    /// that row `i` is in piece `i / PIECE_ROWS`. Each piece stays where its worker made it:
    /// copying the entries into one buffer was the reading thread's job alone, and first
    /// touching a hundred megabytes costs the kernel more than the copy.
    pieces: Vec<Piece>,
    /// How many rows the pieces hold.
    rows: usize,
    /// The verdicts of the rows that share a key with another row.
    duplicates: HashMap<usize, Verdict>,
    /// No one said which attribute the tenant's sync uses (`--source-anchor auto`), so a
    /// row whose two GUID attributes differ says so.
    unsettled: bool,
    /// The sheet a workbook's rows come from (a workbook is read one sheet at a time), so
    /// that an entry's location is a number.
    sheet: Option<Arc<str>>,
}

/// [`Entry::line`] of a row without a location (no reader makes one; a row built by hand).
const NO_LOCATION: u64 = u64::MAX;

/// One row, compact: what its report line and the duplicate checks need. Its texts are
/// `texts[start..]` of its [`Piece`], one after the other: the UPN, the ImmutableId, the target UPN (when it
/// is not the UPN), the other GUID attribute's ImmutableId (when it differs from the
/// anchor), the verdict's detail; `ends` are where each one ends, from `start`.
struct Entry {
    /// The CSV or LDIF line, or the sheet row, the row starts on.
    line: u64,
    guid: Option<Uuid>,
    anchor_role: Option<Role>,
    /// The verdict's outcome; `None` for a computed row.
    outcome: Option<Outcome>,
    target_is_upn: bool,
    start: usize,
    ends: [u32; 5],
}

/// The texts of an [`Entry`], in the order they are kept.
#[derive(Clone, Copy)]
enum Part {
    Upn,
    ImmutableId,
    Target,
    OtherSource,
    Detail,
}

/// The rows of a [`Piece`], which a batch hands to one worker: a few thousand, enough pieces
/// in a batch to keep every core busy.
const PIECE_ROWS: usize = 4 << 10;

/// The entries of a run of rows and their texts, made on a worker.
struct Piece {
    entries: Vec<Entry>,
    texts: String,
    sheet: Option<Arc<str>>,
}

impl Piece {
    /// Computes `rows` of `batch` and keeps each as an entry. Each row is taken once its entry
    /// is made, so that its allocations are freed here, on the worker, instead of a million
    /// times over on the reading thread when the batch is dropped. (The reading thread made
    /// every entry and freed every row, about a fifth of the run, while the other core waited.)
    fn compute<'a>(batch: &Input<'a>, rows: &mut [Row<'a>], options: &ComputeOptions) -> Piece {
        let mut piece = Piece {
            entries: Vec::with_capacity(rows.len()),
            texts: String::new(),
            sheet: None,
        };
        for row in rows {
            piece.push(row, &compute::candidate(batch, row, options));
            *row = Row::default();
        }
        piece
    }

    /// Adds the entries of the piece of the rows after this one's.
    fn append(&mut self, next: Piece) {
        let base = self.texts.len();
        self.texts.push_str(&next.texts);
        self.entries
            .extend(next.entries.into_iter().map(|entry| Entry {
                start: base + entry.start,
                ..entry
            }));
        self.sheet = self.sheet.take().or(next.sheet);
    }

    fn push(&mut self, row: &Row<'_>, candidate: &Candidate<'_>) {
        let upn = row.value(Role::Upn).unwrap_or_default();
        let target = candidate.target_upn.as_deref().unwrap_or_default();
        let target_is_upn = !upn.is_empty() && target == upn;
        let texts = [
            upn,
            candidate.immutable_id.as_ref().map_or("", |id| id.as_str()),
            if target_is_upn { "" } else { target },
            candidate
                .differing_source()
                .map_or("", |(_, other)| other.as_str()),
            candidate.verdict.as_ref().map_or("", |v| v.detail.as_str()),
        ];
        let start = self.texts.len();
        let mut ends = [0; 5];
        for (end, text) in ends.iter_mut().zip(texts) {
            self.texts.push_str(text);
            *end = u32::try_from(self.texts.len() - start).expect("a record is at most 16 MiB");
        }
        let line = match &row.location {
            Some(Location::Line(line)) => *line,
            Some(Location::Sheet { sheet, row }) => {
                debug_assert!(self.sheet.as_ref().is_none_or(|s| s == sheet));
                self.sheet.get_or_insert_with(|| sheet.clone());
                u64::from(*row)
            }
            None => NO_LOCATION,
        };
        self.entries.push(Entry {
            line,
            guid: candidate.guid,
            anchor_role: candidate.anchor_role,
            outcome: candidate.verdict.as_ref().map(|v| v.outcome),
            target_is_upn,
            start,
            ends,
        });
    }
}

impl Ids {
    fn compute(source: &Source, options: &ComputeOptions) -> crate::Result<Ids> {
        let mut ids: Option<Ids> = None;
        for mut batch in source.batches()? {
            for note in &batch.notes {
                eprintln!("hardmatch: {note}");
            }
            let ids = ids.get_or_insert_with(|| Ids::new(&batch, options));
            // Taken out, so that the workers change the rows while they read the batch's names.
            let mut rows = std::mem::take(&mut batch.rows);
            ids.add(&batch, &mut rows, options);
        }
        let mut ids = ids.expect("a source gives at least one batch");
        let read = Instant::now();
        ids.find_duplicates();
        tracing::debug!(
            "ids: duplicates found in {:.3} s",
            read.elapsed().as_secs_f64()
        );
        tracing::info!(
            "{}: {} rows as {:?}; {} with an input problem",
            ids.input.name,
            ids.rows,
            ids.input.format,
            ids.rows - ids.open_rows()
        );
        Ok(ids)
    }

    fn new(batch: &Input<'_>, options: &ComputeOptions) -> Ids {
        Ids {
            input: Input {
                name: batch.name.clone(),
                format: batch.format,
                headers: batch.headers.clone(),
                columns: batch.columns.clone(),
                rows: Vec::new(),
                notes: Vec::new(),
            },
            pieces: Vec::new(),
            rows: 0,
            duplicates: HashMap::default(),
            unsettled: options.source_anchor == SourceAnchor::Auto,
            sheet: None,
        }
    }

    /// Computes a batch's `rows` on every core, a piece at a time. The first rows fill up the
    /// last piece, so that every piece but the last keeps holding [`PIECE_ROWS`] rows.
    fn add<'a>(&mut self, batch: &Input<'a>, rows: &mut [Row<'a>], options: &ComputeOptions) {
        let added = rows.len();
        let room = (PIECE_ROWS - self.rows % PIECE_ROWS) % PIECE_ROWS;
        let (head, rest) = rows.split_at_mut(room.min(added));
        let runs: Vec<&mut [Row<'a>]> = std::iter::once(head)
            .chain(rest.chunks_mut(PIECE_ROWS))
            .collect();
        let pieces: Vec<Piece> = runs
            .into_par_iter()
            .map(|rows| Piece::compute(batch, rows, options))
            .collect();
        if self.sheet.is_none() {
            self.sheet = pieces.iter().find_map(|piece| piece.sheet.clone());
        }
        let mut pieces = pieces.into_iter();
        let head = pieces.next().expect("the head run, maybe empty");
        if !head.entries.is_empty() {
            let last = self
                .pieces
                .last_mut()
                .expect("room is left only in a piece");
            last.append(head);
        }
        self.pieces.extend(pieces);
        self.rows += added;
    }

    /// Row `i`'s entry and the piece that holds its texts.
    fn entry(&self, i: usize) -> (&Entry, &Piece) {
        let piece = &self.pieces[i / PIECE_ROWS];
        (&piece.entries[i % PIECE_ROWS], piece)
    }

    fn location(&self, i: usize) -> Option<Location> {
        let line = self.entry(i).0.line;
        match &self.sheet {
            _ if line == NO_LOCATION => None,
            Some(sheet) => Some(Location::Sheet {
                sheet: sheet.clone(),
                row: line as u32,
            }),
            None => Some(Location::Line(line)),
        }
    }

    fn text(&self, i: usize, part: Part) -> &str {
        let (entry, piece) = self.entry(i);
        let k = part as usize;
        let from = if k == 0 { 0 } else { entry.ends[k - 1] };
        let range: Range<usize> = entry.start + from as usize..entry.start + entry.ends[k] as usize;
        &piece.texts[range]
    }

    /// A row's key for a duplicate check, if it has one.
    fn key(&self, i: usize, check: DuplicateCheck) -> Option<compute::Key<'_>> {
        let text = match check {
            DuplicateCheck::Anchor => self.text(i, Part::ImmutableId),
            DuplicateCheck::Target if self.entry(i).0.target_is_upn => self.text(i, Part::Upn),
            DuplicateCheck::Target => self.text(i, Part::Target),
        };
        (!text.is_empty()).then(|| check.key(text))
    }

    fn is_open(&self, i: usize) -> bool {
        self.entry(i).0.outcome.is_none() && !self.duplicates.contains_key(&i)
    }

    fn open_rows(&self) -> usize {
        (0..self.rows).filter(|&i| self.is_open(i)).count()
    }

    /// Runs the duplicate checks in order, as [`compute::compute`] does.
    fn find_duplicates(&mut self) {
        for check in DuplicateCheck::ALL {
            let found = check.find(
                &self.input,
                self.rows,
                |i| self.is_open(i),
                |i| self.key(i, check),
                |i| self.location(i),
            );
            self.duplicates.extend(found);
        }
    }

    /// Row `i`'s outcome and detail.
    fn outcome(&self, i: usize) -> (Outcome, &str) {
        match self.duplicates.get(&i) {
            Some(verdict) => (verdict.outcome, verdict.detail.as_str()),
            None => (
                self.entry(i).0.outcome.unwrap_or(Outcome::Computed),
                self.text(i, Part::Detail),
            ),
        }
    }

    fn row(&self, i: usize) -> IdRow<'_> {
        let (entry, _) = self.entry(i);
        let (outcome, detail) = self.outcome(i);
        let other = self.text(i, Part::OtherSource);
        let detail = if self.unsettled && detail.is_empty() && !other.is_empty() {
            Cow::Owned(format!(
                "anchor-source-differs: used mS-DS-ConsistencyGuid, not objectGUID ({other}); if the tenant's sync anchors on objectGUID, use --source-anchor object-guid (plan finds out from already-synced users)"
            ))
        } else {
            Cow::Borrowed(detail)
        };
        IdRow {
            line: self.location(i).map_or(0, |l| l.line()),
            upn: self.text(i, Part::Upn),
            object_guid: entry.guid,
            immutable_id: self.text(i, Part::ImmutableId),
            anchor_source: entry
                .anchor_role
                .map_or("", |role| compute::anchor_source(&self.input, role)),
            outcome,
            detail,
        }
    }

    fn write(&self, output: &Path, format: report::Format, excel_bom: bool) -> crate::Result<()> {
        let count = self.rows;
        match format {
            report::Format::Csv => self.write_csv(output, excel_bom),
            report::Format::Xlsx => report::xlsx::write_table(
                output,
                "ImmutableIds",
                &COLUMNS,
                &["line"],
                (0..count).map(|i| self.row(i).cells()),
            ),
            report::Format::Json => report::json::write_rows(
                output,
                &(0..count).map(|i| self.row(i)).collect::<Vec<_>>(),
            ),
        }
    }

    /// CSV, the fast path (a million rows a second): no cell is copied that need not be.
    fn write_csv(&self, output: &Path, excel_bom: bool) -> crate::Result<()> {
        report_csv::write_rows(output, excel_bom, &COLUMNS, self.rows, |i, cells| {
            let row = self.row(i);
            cells.cell(itoa::Buffer::new().format(row.line));
            cells.cell(row.upn);
            let mut guid = Uuid::encode_buffer();
            cells.id(row
                .object_guid
                .map_or("", |g| g.hyphenated().encode_lower(&mut guid)));
            cells.id(row.immutable_id);
            cells.cell(row.anchor_source);
            cells.cell(row.outcome.code());
            cells.cell(&row.detail);
        })
    }

    fn summary(&self) -> Summary {
        let mut outcomes = BTreeMap::new();
        for i in 0..self.rows {
            *outcomes.entry(self.outcome(i).0).or_default() += 1;
        }
        Summary {
            name: self.input.name.clone(),
            rows: self.rows,
            outcomes,
        }
    }
}

/// One report row, in every format.
#[derive(Serialize)]
struct IdRow<'a> {
    line: u64,
    upn: &'a str,
    object_guid: Option<Uuid>,
    immutable_id: &'a str,
    anchor_source: &'a str,
    outcome: Outcome,
    detail: Cow<'a, str>,
}

impl<'a> IdRow<'a> {
    /// The cells in [`COLUMNS`] order.
    fn cells(&self) -> Vec<Cow<'a, str>> {
        vec![
            Cow::Owned(self.line.to_string()),
            Cow::Borrowed(self.upn),
            Cow::Owned(self.object_guid.map(|g| g.to_string()).unwrap_or_default()),
            Cow::Borrowed(self.immutable_id),
            Cow::Borrowed(self.anchor_source),
            Cow::Borrowed(self.outcome.code()),
            self.detail.clone(),
        ]
    }
}
