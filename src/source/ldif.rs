//! LDIF exports: RFC 2849 as ldifde and ldapsearch write it. Hand-written because no
//! maintained crate reads ldifde's habits: folds right after `attr: ` and inside base64,
//! `attr:value` without a space, `changetype`/`-` lines, UTF-16LE from `ldifde -u`.
//!
//! Binary attributes (`objectGUID:: <base64>`) keep their base64 text: it IS the
//! ImmutableId, and the anchor parser reads base64. Text attributes with `::` are decoded.

use std::borrow::Cow;
use std::collections::BTreeSet;
use std::sync::Arc;

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;

use super::columns;
use super::csv::MAX_RECORD;
use super::{classify_object_class, Field, Format, Input, Location, ReadOptions, Role, Row};
use crate::outcome::{Outcome, Verdict};

/// One logical (unfolded) line and the physical line it starts on. Borrowed from the text
/// unless it was folded.
struct Logical<'a> {
    line: u64,
    text: Cow<'a, str>,
}

/// One `attr: value` of an entry.
struct Attribute<'a> {
    name: Cow<'a, str>,
    value: Result<Value<'a>, String>,
    line: u64,
}

enum Value<'a> {
    Text(Cow<'a, str>),
    /// `attr:: <base64>`.
    Base64(Cow<'a, str>),
}

/// Reads LDIF text (already decoded) into rows, one per entry, that borrow from it.
pub fn read<'a>(name: &str, text: &'a str, options: &ReadOptions) -> crate::Result<Input<'a>> {
    let mut rows = Vec::new();
    let mut seen: BTreeSet<String> = BTreeSet::new();
    let mut mapped: Vec<(Role, Arc<str>)> = Vec::new();
    for entry in entries(text) {
        let (row, names) = match entry {
            Entry::Lines(lines) => row_of(name, lines, options, &mut mapped),
            Entry::TooLong { line } => (Some(too_long(name, line)), Vec::new()),
        };
        seen.extend(names);
        if let Some(row) = row {
            rows.push(row);
        }
    }
    let headers: Vec<String> = seen.into_iter().collect();
    columns::require_usable(name, &mapped, &headers, options.anchor_optional)?;
    Ok(Input {
        name: name.to_string(),
        format: Format::Ldif,
        headers,
        columns: mapped,
        rows,
        notes: Vec::new(),
    })
}

/// An entry's logical lines, or the line where an entry over [`MAX_RECORD`] starts.
enum Entry<'a> {
    Lines(Vec<Logical<'a>>),
    TooLong { line: u64 },
}

/// Splits the text into entries of unfolded logical lines; comments are dropped. An entry
/// longer than [`MAX_RECORD`] is dropped as it is read, so that it costs no memory.
fn entries(text: &str) -> Vec<Entry<'_>> {
    let mut entries = Vec::new();
    let mut current: Vec<Logical> = Vec::new();
    let (mut in_comment, mut size, mut first_line) = (false, 0usize, 0u64);
    for (i, raw) in text.split('\n').enumerate() {
        let line = raw.strip_suffix('\r').unwrap_or(raw);
        let number = i as u64 + 1;
        if line.trim().is_empty() && !line.starts_with(' ') {
            entries.extend(finish(&mut current, size, first_line));
            size = 0;
            continue;
        }
        if size == 0 {
            first_line = number;
        }
        size += raw.len() + 1;
        if size > MAX_RECORD {
            current.clear();
            continue;
        }
        if let Some(rest) = line.strip_prefix(' ') {
            // RFC 2849: a continuation line; remove exactly the one leading space.
            if !in_comment {
                if let Some(last) = current.last_mut() {
                    last.text.to_mut().push_str(rest);
                }
            }
            continue;
        }
        in_comment = line.starts_with('#');
        if !in_comment {
            current.push(Logical {
                line: number,
                text: Cow::Borrowed(line),
            });
        }
    }
    entries.extend(finish(&mut current, size, first_line));
    entries
}

/// The entry read so far, if any, leaving `current` empty.
fn finish<'a>(current: &mut Vec<Logical<'a>>, size: usize, first_line: u64) -> Option<Entry<'a>> {
    if size > MAX_RECORD {
        current.clear();
        return Some(Entry::TooLong { line: first_line });
    }
    (!current.is_empty()).then(|| Entry::Lines(std::mem::take(current)))
}

/// A part of a logical line, borrowed when the line is.
fn part<'a>(text: &Cow<'a, str>, part: &str) -> Cow<'a, str> {
    match text {
        Cow::Borrowed(whole) => {
            let start = part.as_ptr() as usize - whole.as_ptr() as usize;
            Cow::Borrowed(&whole[start..start + part.len()])
        }
        Cow::Owned(_) => Cow::Owned(part.to_string()),
    }
}

/// `attr: value`, `attr:value`, `attr:: base64`, `attr:< url`.
fn attribute<'a>(logical: &Logical<'a>) -> Option<Attribute<'a>> {
    let (name, rest) = logical.text.split_once(':')?;
    let value = if let Some(b64) = rest.strip_prefix(':') {
        Ok(Value::Base64(part(&logical.text, b64.trim())))
    } else if let Some(url) = rest.strip_prefix('<') {
        Err(format!(
            "{} is given by URL ({}), which hardmatch does not follow; export the value inline",
            name.trim(),
            url.trim()
        ))
    } else {
        Ok(Value::Text(part(
            &logical.text,
            rest.strip_prefix(' ').unwrap_or(rest),
        )))
    };
    Some(Attribute {
        name: part(&logical.text, name.trim()),
        value,
        line: logical.line,
    })
}

fn row_of<'a>(
    file: &str,
    entry: Vec<Logical<'a>>,
    options: &ReadOptions,
    mapped: &mut Vec<(Role, Arc<str>)>,
) -> (Option<Row<'a>>, Vec<String>) {
    let attributes: Vec<Attribute> = entry.iter().filter_map(attribute).collect();
    let names: Vec<String> = attributes.iter().map(|a| a.name.to_string()).collect();
    let Some(dn_line) = attributes
        .iter()
        .find(|a| a.name.eq_ignore_ascii_case("dn"))
        .map(|a| a.line)
    else {
        // `version: 1` and other headers before the first entry are not entries.
        return (None, Vec::new());
    };
    let mut row = Row::new(Location::Line(dn_line));
    let mut classes: Vec<Cow<'a, str>> = Vec::new();
    for attr in attributes {
        let value = match attr.value {
            Ok(v) => v,
            Err(problem) => {
                row.problem = Some(Verdict::new(
                    Outcome::MissingField,
                    format!("{file}:{}: {problem}", attr.line),
                ));
                continue;
            }
        };
        let role = if attr.name.eq_ignore_ascii_case("dn") {
            Some(Role::DistinguishedName)
        } else {
            columns::role_of(&attr.name, &options.columns)
        };
        let Some(role) = role else { continue };
        let value = match value {
            Value::Base64(b64) if role.is_text() => decode_text(&b64).map_or(b64, Cow::Owned),
            Value::Base64(b64) | Value::Text(b64) => b64,
        };
        if role == Role::ObjectClass {
            classes.push(value.clone());
        }
        if let (Role::ProxyAddresses, Some(earlier)) = (role, row.get(role)) {
            // Multi-valued: every value counts, joined as csvde joins them.
            let joined = format!("{};{value}", earlier.value);
            let column = earlier.column;
            row.set(
                role,
                Field {
                    value: Cow::Owned(joined),
                    column,
                },
            );
        } else if row.get(role).is_none() {
            if !mapped.iter().any(|(r, _)| *r == role) {
                mapped.push((role, Arc::from(&*attr.name)));
            }
            row.set(
                role,
                Field {
                    value,
                    column: attr.line as u32,
                },
            );
        }
    }
    if row.problem.is_none() {
        if let Some(problem) = classify_object_class(classes.iter().map(|c| &**c)) {
            row.problem = Some(Verdict::new(
                Outcome::NotAUser,
                format!("{file}:{dn_line}: {problem}"),
            ));
        }
    }
    (Some(row), names)
}

fn too_long<'a>(file: &str, line: u64) -> Row<'a> {
    let mut row = Row::new(Location::Line(line));
    row.problem = Some(Verdict::new(
        Outcome::MissingField,
        format!(
            "{file}:{line}: the entry is longer than the {} MiB an entry may have; it was skipped: fix the entry and run again",
            MAX_RECORD >> 20
        ),
    ));
    row
}

fn decode_text(b64: &str) -> Option<String> {
    String::from_utf8(BASE64.decode(b64.trim()).ok()?).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read_text(text: &str) -> Input<'_> {
        read("x.ldf", text, &ReadOptions::default()).unwrap()
    }

    #[test]
    fn ldifde_folding_and_base64() {
        // Folded right after `objectGUID:: ` and again inside the base64.
        let input = read_text(
            "version: 1\n\n# a comment\n dn: folded comment\ndn: CN=Alice,DC=contoso,DC=com\nchangetype: add\nobjectClass: top\nobjectClass: user\nuserPrincipalName:alice@contoso.com\nobjectGUID:: \n 1wfM9xV8fU\n SHbcAbDlqeOA==\ndisplayName:: Sm/DqyDDlg==\n-\n\ndn:: Q049Sm9zw6ksREM9Y29udG9zbw==\nuserPrincipalName: jose@contoso.com\n",
        );
        assert_eq!(input.rows.len(), 2);
        let alice = &input.rows[0];
        assert_eq!(alice.location, Some(Location::Line(5)));
        assert_eq!(
            alice.value(Role::ObjectGuid),
            Some("1wfM9xV8fUSHbcAbDlqeOA==")
        );
        assert_eq!(alice.value(Role::Upn), Some("alice@contoso.com"));
        assert_eq!(alice.value(Role::DisplayName), Some("Jo\u{eb} \u{d6}"));
        assert_eq!(
            input.rows[1].value(Role::DistinguishedName),
            Some("CN=José,DC=contoso")
        );
    }

    #[test]
    fn computers_groups_and_urls_are_problems() {
        let input = read_text(
            "dn: CN=WS-0042,DC=x\nobjectClass: user\nobjectClass: computer\nsAMAccountName: WS-0042$\nobjectGUID:: AAAAAAAAAAAAAAAAAAAAAA==\n\ndn: CN=G,DC=x\nobjectClass: group\n\ndn: CN=U,DC=x\nuserPrincipalName: u@x.com\nobjectGUID:< file:///tmp/x\n",
        );
        let outcomes = input.outcomes();
        assert_eq!(
            outcomes,
            [
                Some(Outcome::NotAUser),
                Some(Outcome::NotAUser),
                Some(Outcome::MissingField)
            ]
        );
        assert!(input.rows[0]
            .problem
            .as_ref()
            .unwrap()
            .detail
            .starts_with("x.ldf:1: a computer"));
        assert!(input.rows[2]
            .problem
            .as_ref()
            .unwrap()
            .detail
            .starts_with("x.ldf:12: objectGUID is given by URL"));
    }
}
