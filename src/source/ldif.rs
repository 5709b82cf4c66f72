//! LDIF exports: RFC 2849 as ldifde and ldapsearch write it. Hand-written because no
//! maintained crate reads ldifde's habits: folds right after `attr: ` and inside base64,
//! `attr:value` without a space, `changetype`/`-` lines, UTF-16LE from `ldifde -u`.
//!
//! Binary attributes (`objectGUID:: <base64>`) keep their base64 text: it IS the
//! ImmutableId, and the anchor parser reads base64. Text attributes with `::` are decoded.

use std::collections::BTreeSet;
use std::sync::Arc;

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;

use super::columns;
use super::{classify_object_class, Field, Format, Input, Location, ReadOptions, Role, Row};
use crate::outcome::{Outcome, Verdict};

/// One logical (unfolded) line and the physical line it starts on.
struct Logical {
    line: u64,
    text: String,
}

/// One `attr: value` of an entry.
struct Attribute {
    name: String,
    value: Result<String, String>,
    line: u64,
}

/// Reads LDIF text (already decoded) into rows, one per entry.
pub fn read(name: &str, text: &str, options: &ReadOptions) -> crate::Result<Input> {
    let mut rows = Vec::new();
    let mut seen: BTreeSet<String> = BTreeSet::new();
    let mut mapped: Vec<(Role, Arc<str>)> = Vec::new();
    for entry in entries(text) {
        let (row, names) = row_of(name, &entry, options, &mut mapped);
        seen.extend(names);
        if let Some(row) = row {
            rows.push(row);
        }
    }
    let headers: Vec<String> = seen.into_iter().collect();
    let roles: Vec<Role> = mapped.iter().map(|(r, _)| *r).collect();
    columns::require_usable(name, &roles, &headers)?;
    Ok(Input {
        name: name.to_string(),
        format: Format::Ldif,
        headers,
        columns: mapped,
        rows,
    })
}

/// Splits the text into entries of unfolded logical lines; comments are dropped.
fn entries(text: &str) -> Vec<Vec<Logical>> {
    let mut entries = Vec::new();
    let mut current: Vec<Logical> = Vec::new();
    let mut in_comment = false;
    for (i, raw) in text.split('\n').enumerate() {
        let line = raw.strip_suffix('\r').unwrap_or(raw);
        let number = i as u64 + 1;
        if let Some(rest) = line.strip_prefix(' ') {
            // RFC 2849: a continuation line; remove exactly the one leading space.
            if !in_comment {
                if let Some(last) = current.last_mut() {
                    last.text.push_str(rest);
                }
            }
            continue;
        }
        in_comment = line.starts_with('#');
        if in_comment {
            continue;
        }
        if line.trim().is_empty() {
            if !current.is_empty() {
                entries.push(std::mem::take(&mut current));
            }
            continue;
        }
        current.push(Logical {
            line: number,
            text: line.to_string(),
        });
    }
    if !current.is_empty() {
        entries.push(current);
    }
    entries
}

/// `attr: value`, `attr:value`, `attr:: base64`, `attr:< url`.
fn attribute(logical: &Logical) -> Option<Attribute> {
    let (name, rest) = logical.text.split_once(':')?;
    let name = name.trim().to_string();
    let value = if let Some(b64) = rest.strip_prefix(':') {
        Ok(format!("::{}", b64.trim()))
    } else if let Some(url) = rest.strip_prefix('<') {
        Err(format!(
            "{name} is given by URL ({}), which hardmatch does not follow; export the value inline",
            url.trim()
        ))
    } else {
        Ok(rest.strip_prefix(' ').unwrap_or(rest).to_string())
    };
    Some(Attribute {
        name,
        value,
        line: logical.line,
    })
}

fn row_of(
    file: &str,
    entry: &[Logical],
    options: &ReadOptions,
    mapped: &mut Vec<(Role, Arc<str>)>,
) -> (Option<Row>, Vec<String>) {
    let attributes: Vec<Attribute> = entry.iter().filter_map(attribute).collect();
    let names: Vec<String> = attributes.iter().map(|a| a.name.clone()).collect();
    let Some(dn) = attributes
        .iter()
        .find(|a| a.name.eq_ignore_ascii_case("dn"))
    else {
        // `version: 1` and other headers before the first entry are not entries.
        return (None, Vec::new());
    };
    let mut row = Row::new(Location::Line(dn.line));
    let mut classes: Vec<String> = Vec::new();
    for attr in &attributes {
        let value = match &attr.value {
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
        let value = match (value.strip_prefix("::"), role.is_text()) {
            (Some(b64), true) => decode_text(b64).unwrap_or_else(|| b64.to_string()),
            (Some(b64), false) => b64.to_string(),
            (None, _) => value.clone(),
        };
        if role == Role::ObjectClass {
            classes.push(value.clone());
        }
        if row.get(role).is_none() {
            let header: Arc<str> = Arc::from(attr.name.as_str());
            if !mapped.iter().any(|(r, _)| *r == role) {
                mapped.push((role, header.clone()));
            }
            row.set(
                role,
                Field {
                    value,
                    header,
                    column: attr.line as u32,
                },
            );
        }
    }
    if row.problem.is_none() {
        if let Some(problem) = classify_object_class(classes.iter().map(String::as_str)) {
            row.problem = Some(Verdict::new(
                Outcome::NotAUser,
                format!("{file}:{}: {problem}", dn.line),
            ));
        }
    }
    (Some(row), names)
}

fn decode_text(b64: &str) -> Option<String> {
    String::from_utf8(BASE64.decode(b64.trim()).ok()?).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read_text(text: &str) -> Input {
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
        let outcomes: Vec<_> = input
            .rows
            .iter()
            .map(|r| r.problem.as_ref().map(|p| p.outcome))
            .collect();
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
