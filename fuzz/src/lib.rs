//! The checks behind the fuzz targets (fuzz_targets/), beyond "no panic": what must hold for
//! any input, so that a wrong answer fails as loudly as a crash. See TESTING.md.

use hardmatch::anchor::{self, AnchorForm, AnchorKind, ImmutableId, MAX_LEN};
use hardmatch::compute::{self, Candidate, ComputeOptions};
use hardmatch::report::{excel_safe, from_excel_safe};
use hardmatch::run::stages::Prepared;
use hardmatch::source::text::{Bytes, Text};
use hardmatch::source::{self, Format, Input, Location, ReadOptions, Role};

/// libfuzzer-sys's panic hook aborts at once, even on a panic the code under test catches on
/// purpose (`spreadsheet::read` turns calamine's panics into input errors). This hook prints
/// the message and its place (no backtrace: symbolising one per input would crawl) and lets
/// the panic unwind; one nobody catches still reaches the fuzz_target! wrapper, which aborts,
/// so every real crash is still reported, with its message.
fn let_caught_panics_unwind() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| std::panic::set_hook(Box::new(|info| eprintln!("{info}"))));
}

/// Any text through the anchor parser, as both kinds.
pub fn check_anchor(text: &str) {
    let_caught_panics_unwind();
    let _ = anchor::alternative_reading(text);
    for kind in [AnchorKind::Guid, AnchorKind::String] {
        let parsed = match anchor::parse(text, kind) {
            Ok(parsed) => parsed,
            Err(error) => {
                assert!(!error.to_string().is_empty());
                continue;
            }
        };
        let id = &parsed.id;
        check_graph_rules(id);
        if kind == AnchorKind::String {
            assert_eq!(id.as_str(), text.trim());
            assert_eq!(parsed.form, AnchorForm::CustomString);
            continue;
        }
        // The connector-space DN form wraps any ImmutableId, GUID-based or not.
        assert_eq!(reparse(&id.connector_dn()), *id, "{text:?}");
        match id.ad_bytes() {
            Some(bytes) => check_guid_forms(id, bytes),
            None => assert_eq!(parsed.form, AnchorForm::ConnectorDn, "{text:?} -> {id}"),
        }
    }
}

fn reparse(form: &str) -> ImmutableId {
    anchor::parse(form, AnchorKind::Guid)
        .unwrap_or_else(|e| panic!("{form:?} does not parse back: {e}"))
        .id
}

/// Graph's rules for an `onPremisesImmutableId`: not empty, fewer than 60 characters, no `$`
/// or `_`.
fn check_graph_rules(id: &ImmutableId) {
    let value = id.as_str();
    assert!(!value.trim().is_empty(), "empty ImmutableId");
    assert!(value.chars().count() < MAX_LEN, "{value:?} is too long");
    assert!(
        !value.contains(['$', '_']),
        "{value:?} has a forbidden char"
    );
}

/// Every output form of a GUID-based ImmutableId parses back to it.
fn check_guid_forms(id: &ImmutableId, bytes: [u8; 16]) {
    let guid = id.guid().expect("16 bytes are a GUID");
    assert_eq!(guid.to_bytes_le(), bytes);
    assert_eq!(ImmutableId::from_guid(guid), *id);
    let hex = id.hex().expect("GUID-based");
    let forms = [
        guid.to_string(),
        guid.braced().to_string(),
        guid.to_string().to_uppercase(),
        id.to_string(),
        hex.clone(),
        id.ldap_filter().expect("GUID-based"),
        format!("X'{hex}'"),
    ];
    for form in forms {
        assert_eq!(reparse(&form), *id, "{form:?}");
    }
    // Decimal bytes, unless every byte has two decimal digits: such a list reads as hex pairs
    // by the documented rule (src/anchor.rs, parse_separated_bytes).
    if !bytes.iter().all(|b| (10..=99).contains(b)) {
        let decimal = bytes.map(|b| b.to_string()).join(" ");
        assert_eq!(reparse(&decimal), *id, "{decimal:?}");
    }
}

/// Bytes as the binary reads a file of this name: written to a file of that name (one per
/// fuzzing process), then `source::open` and `Source::read` exactly as `hardmatch ids` does:
/// the map, the text check, the encoding, the format sniff, the zip-bomb check, the parse.
/// Then the reader's, compute's and the report's invariants.
pub fn check_export(name: &str, data: &[u8], format: Option<Format>) {
    let_caught_panics_unwind();
    let path = std::env::temp_dir().join(format!("hardmatch-fuzz-{}-{name}", std::process::id()));
    std::fs::write(&path, data).expect("write the input file");
    let options = ReadOptions {
        format,
        ..ReadOptions::default()
    };
    let Ok(source) = source::open(&path, &options) else {
        return;
    };
    let Ok(input) = source.read() else {
        return;
    };
    // The text the reader parsed, decoded again the same way for the checks.
    let text = || Text::decode(name, Bytes::Read(data.to_vec())).expect("it was read as text");
    match input.format {
        Format::Csv => check_csv(text().as_str(), &input),
        Format::Ldif => check_ldif(text().as_str(), &input),
        Format::Spreadsheet => check_spreadsheet(&input),
    }
    check_fields(&input);
    check_compute_and_report(input);
}

/// The physical lines as an editor shows them: ended by LF, CRLF or a CR alone.
fn physical_lines(text: &str) -> Vec<&str> {
    let mut lines = Vec::new();
    let mut rest = text;
    while let Some(end) = rest.find(['\r', '\n']) {
        lines.push(&rest[..end]);
        let after = &rest[end..];
        rest = after.strip_prefix("\r\n").unwrap_or(&after[1..]);
    }
    lines.push(rest);
    lines
}

fn lines_of(input: &Input) -> Vec<u64> {
    input
        .rows
        .iter()
        .map(|row| match &row.location {
            Some(Location::Line(line)) => *line,
            other => panic!("a text row must have a line, not {other:?}"),
        })
        .collect()
}

/// CSV: every row's line is in the file and after the one before; when no quote can make a
/// record span lines, each non-empty line after the header is exactly one row.
fn check_csv(text: &str, input: &Input) {
    let lines = lines_of(input);
    let physical = physical_lines(text);
    let last = physical.len() as u64;
    assert!(lines.iter().all(|&l| (1..=last).contains(&l)), "{lines:?}");
    for pair in lines.windows(2) {
        assert!(pair[0] < pair[1], "rows out of line order: {lines:?}");
    }
    if text.contains('"') {
        return;
    }
    // No quotes: the header is the first non-empty line after an optional #TYPE line, and
    // every later non-empty line is a record.
    let skip = usize::from(text.starts_with("#TYPE"));
    let non_empty: Vec<u64> = physical
        .iter()
        .enumerate()
        .skip(skip)
        .filter(|(_, line)| !line.is_empty())
        .map(|(i, _)| i as u64 + 1)
        .skip(1)
        .collect();
    assert_eq!(lines, non_empty, "one row per non-empty line");
}

/// LDIF: rows in line order, each on the line where its entry's `dn:` starts.
fn check_ldif(text: &str, input: &Input) {
    let lines = lines_of(input);
    let physical: Vec<&str> = text
        .split('\n')
        .map(|l| l.strip_suffix('\r').unwrap_or(l))
        .collect();
    for pair in lines.windows(2) {
        assert!(pair[0] < pair[1], "rows out of line order: {lines:?}");
    }
    for &line in &lines {
        let start = usize::try_from(line - 1).unwrap();
        assert!(start < physical.len(), "line {line} is past the end");
        // The logical line: this one and its continuation lines.
        let mut logical = physical[start].to_string();
        for next in &physical[start + 1..] {
            match next.strip_prefix(' ') {
                Some(rest) => logical.push_str(rest),
                None => break,
            }
        }
        let name = logical.split_once(':').map(|(n, _)| n.trim());
        assert!(
            name.is_some_and(|n| n.eq_ignore_ascii_case("dn")),
            "line {line} is not a dn line: {logical:?}"
        );
    }
}

/// Spreadsheets: Excel's row numbers, in order.
fn check_spreadsheet(input: &Input) {
    let mut previous = 0;
    for row in &input.rows {
        let Some(Location::Sheet { row: number, .. }) = row.location else {
            panic!("a sheet row must have a sheet location: {:?}", row.location);
        };
        assert!(number > previous, "sheet rows out of order");
        previous = number;
    }
}

/// Every field names a header the file has; every place prints.
fn check_fields(input: &Input) {
    for row in &input.rows {
        let _ = input.place(row, None).to_string();
        for role in Role::ALL {
            let Some(field) = row.get(role) else {
                continue;
            };
            let _ = input.place(row, Some(role)).to_string();
            let header = input.header(role).expect("a field's role has a header");
            if input.format != Format::Ldif {
                let column = field.column as usize;
                assert!(
                    column < input.headers.len(),
                    "column {column} has no header"
                );
                assert_eq!(header, input.headers[column].trim());
            }
        }
    }
}

/// One candidate per row, whatever the anchor kind; every ImmutableId obeys Graph's rules.
fn check_compute<'a>(input: &Input<'a>, anchor_kind: AnchorKind) -> Vec<Candidate<'a>> {
    let options = ComputeOptions {
        anchor_kind,
        ..ComputeOptions::default()
    };
    let candidates = compute::compute(input, &options);
    assert_eq!(candidates.len(), input.rows.len());
    for candidate in &candidates {
        if let Some(id) = &candidate.immutable_id {
            check_graph_rules(id);
        }
        // `guid` is the objectGUID whichever attribute gave the anchor: it is the anchor's
        // GUID when objectGUID gave it.
        if let (Some(guid), Some(id), Some(Role::ObjectGuid)) = (
            candidate.guid,
            &candidate.immutable_id,
            candidate.anchor_role,
        ) {
            assert_eq!(ImmutableId::from_guid(guid), *id);
        }
        if let Some(verdict) = &candidate.verdict {
            assert!(!verdict.detail.is_empty());
        }
    }
    candidates
}

/// One report record per row, and the report's CSV cells read back exactly (`rollback`
/// reads reports).
fn check_compute_and_report(input: Input) {
    check_compute(&input, AnchorKind::String);
    let candidates = check_compute(&input, AnchorKind::Guid);
    let prepared = Prepared { input, candidates };
    let records = prepared.records();
    assert_eq!(records.len(), prepared.input.rows.len());
    let mut writer = csv::Writer::from_writer(Vec::new());
    for record in &records {
        let cells = record.cells();
        writer
            .write_record(cells.iter().map(|c| excel_safe(c).into_owned()))
            .unwrap();
    }
    let written = writer.into_inner().unwrap();
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(false)
        .from_reader(written.as_slice());
    let mut read_back = 0;
    for (record, read) in records.iter().zip(reader.records()) {
        let read = read.unwrap();
        let back: Vec<&str> = read.iter().map(from_excel_safe).collect();
        let cells = record.cells();
        let original: Vec<&str> = cells.iter().map(|c| c.as_ref()).collect();
        assert_eq!(back, original, "a report row does not read back");
        read_back += 1;
    }
    assert_eq!(read_back, records.len());
}
