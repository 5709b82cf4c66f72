//! Issue 17 item 1: anchors and ids are written exactly in every report format, even when
//! they start with `+`, while free text and malformed values from the tenant stay guarded.
//!
//! Base64 ImmutableIds start with `+` about once in 64; GUID text never starts with `-`,
//! `=` or `@`, and neither does base64, so `+` is the character to test. The first vector is
//! the one issue 17 found in a public 272-user Get-ADUser export; the others are GUIDs made
//! to give a `+`.

use std::collections::HashMap;
use std::path::Path;

use calamine::Reader as _;
use hardmatch::tenant::{Domain, Tenant, User};

use crate::util::{fast, report_rows, run, stderr, Dir, Graph};

const PLUS_ONE: (&str, &str) = (
    "a29140f9-13c6-4849-9890-0687072dece8",
    "+UCRosYTSUiYkAaHBy3s6A==",
);
const PLUS_TWO: (&str, &str) = (
    "010040f9-0302-0504-0607-08090a0b0c0d",
    "+UAAAQIDBAUGBwgJCgsMDQ==",
);
const PLUS_THREE: (&str, &str) = (
    "010000f8-0302-0504-0607-08090a0b0c0d",
    "+AAAAQIDBAUGBwgJCgsMDQ==",
);
/// Another `+` anchor, which plus.two's cloud user already holds.
const OTHER_PLUS: &str = "++EAAQIDBAUGBwgJCgsMDQ==";
/// What someone stored by hand in the tenant: not an anchor, so it stays guarded.
const HOSTILE_STORED: &str = "=HYPERLINK(\"http://x\",\"y\")";
const HOLDER_ID: &str = "0b000000-0000-4000-8000-000000000009";

fn user(id: &str, upn: &str, anchor: Option<&str>) -> User {
    User {
        id: id.into(),
        user_principal_name: upn.into(),
        on_premises_immutable_id: anchor.map(Into::into),
        ..User::default()
    }
}

fn tenant() -> Tenant {
    Tenant {
        tenant_id: "exact".into(),
        domains: vec![Domain {
            id: "contoso.com".into(),
            ..Domain::default()
        }],
        users: vec![
            user(
                "0b000000-0000-4000-8000-000000000001",
                "plus.one@contoso.com",
                None,
            ),
            user(
                "0b000000-0000-4000-8000-000000000002",
                "plus.two@contoso.com",
                Some(OTHER_PLUS),
            ),
            user(
                "0b000000-0000-4000-8000-000000000003",
                "plus.three@contoso.com",
                None,
            ),
            user(HOLDER_ID, "holder@contoso.com", Some(PLUS_THREE.1)),
            user(
                "0b000000-0000-4000-8000-000000000004",
                "hostile@contoso.com",
                Some(HOSTILE_STORED),
            ),
        ],
        ..Tenant::default()
    }
}

fn export(dir: &Dir) {
    dir.write(
        "export.csv",
        format!(
            "UserPrincipalName,ObjectGUID\n\
             plus.one@contoso.com,{}\n\
             plus.two@contoso.com,{}\n\
             plus.three@contoso.com,{}\n\
             hostile@contoso.com,f7cc07d7-7c15-447d-876d-c01b0e5a9e38\n\
             -minus@contoso.com,3ab39606-c642-489b-84b6-58c038d3ef39\n",
            PLUS_ONE.0, PLUS_TWO.0, PLUS_THREE.0
        ),
    );
}

/// A report's rows by column name, as written: CSV cells raw (no apostrophe removed), the
/// XLSX's Rows sheet (or its only sheet) read back with calamine, JSON rows' string values.
fn cells(path: &Path) -> Vec<HashMap<String, String>> {
    match path.extension().and_then(|e| e.to_str()) {
        Some("csv") => report_rows(path),
        Some("xlsx") => {
            let mut book = calamine::open_workbook_auto(path).expect("a real workbook");
            let names = book.sheet_names();
            let sheet = match names.iter().find(|name| *name == "Rows") {
                Some(rows) => rows.clone(),
                None => names.last().cloned().expect("a sheet"),
            };
            let range = book.worksheet_range(&sheet).unwrap();
            let mut rows = range.rows();
            let header: Vec<String> = rows.next().unwrap().iter().map(|c| c.to_string()).collect();
            rows.map(|row| {
                header
                    .iter()
                    .cloned()
                    .zip(row.iter().map(|c| c.to_string()))
                    .collect()
            })
            .collect()
        }
        Some("json") => {
            let doc: serde_json::Value =
                serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap();
            doc["rows"]
                .as_array()
                .expect("rows")
                .iter()
                .map(|row| {
                    let mut cells: HashMap<String, String> = row
                        .as_object()
                        .unwrap()
                        .iter()
                        .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_string()))
                        .collect();
                    // A plan file's rows hold the target and the holder as objects.
                    for (object, field, column) in [
                        ("target", "previous_immutable_id", "previous_immutable_id"),
                        ("holder", "id", "holder_id"),
                    ] {
                        if let Some(value) = row[object][field].as_str() {
                            cells.insert(column.into(), value.into());
                        }
                    }
                    cells
                })
                .collect()
        }
        other => panic!("unexpected report {other:?}"),
    }
}

/// Checks every anchor and id cell of a report (and the free text beside them).
#[track_caller]
fn assert_exact(path: &Path, planned: bool) {
    let rows = cells(path);
    let by_upn = |upn: &str| {
        rows.iter()
            .find(|r| r["upn"].ends_with(upn))
            .unwrap_or_else(|| panic!("{}: no row for {upn}: {rows:?}", path.display()))
    };
    let what = path.display();
    for (upn, (guid, id)) in [
        ("plus.one@contoso.com", PLUS_ONE),
        ("plus.two@contoso.com", PLUS_TWO),
        ("plus.three@contoso.com", PLUS_THREE),
    ] {
        let row = by_upn(upn);
        assert_eq!(row["object_guid"], guid, "{what} {upn}");
        assert_eq!(row["immutable_id"], id, "{what} {upn}");
    }
    let csv = path.extension().is_some_and(|e| e == "csv");
    let guarded = |text: &str| {
        if csv {
            format!("'{text}")
        } else {
            text.to_string()
        }
    };
    assert_eq!(
        by_upn("minus@contoso.com")["upn"],
        guarded("-minus@contoso.com")
    );
    if planned {
        assert_eq!(
            by_upn("plus.two@contoso.com")["previous_immutable_id"],
            OTHER_PLUS
        );
        assert_eq!(by_upn("plus.three@contoso.com")["holder_id"], HOLDER_ID);
        assert_eq!(
            by_upn("hostile@contoso.com")["previous_immutable_id"],
            guarded(HOSTILE_STORED),
            "{what}: a value from the tenant that is not an anchor stays guarded"
        );
    }
}

#[test]
fn anchors_starting_with_plus_are_exact_in_every_report_and_format() {
    let dir = Dir::new();
    export(&dir);
    for report in ["ids.csv", "ids.xlsx", "ids.json"] {
        let out = run(dir.hardmatch().args(["ids", "export.csv", "-o", report]));
        assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
        assert_exact(&dir.join(report), false);
    }

    let graph = Graph::start(tenant(), fast());
    for report in ["plan.csv", "plan.xlsx", "plan.json"] {
        let out = run(&mut graph.hardmatch(&dir, &["plan", "export.csv", "-o", report]));
        assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
        assert_exact(&dir.join(report), true);
    }
    for report in ["applied.csv", "applied.xlsx", "applied.json"] {
        let out = run(&mut graph.hardmatch(&dir, &["apply", "export.csv", "--yes", "-o", report]));
        assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
        assert_exact(&dir.join(report), true);
    }
    assert_eq!(
        graph.anchor_of("plus.one@contoso.com").as_deref(),
        Some(PLUS_ONE.1),
        "the exact value reached the tenant"
    );
}

/// Rollback reads both forms: the exact anchors reports write now, and the `'+...` that
/// older reports wrote.
#[test]
fn rollback_reads_exact_anchors_and_the_escaped_ones_of_older_reports() {
    let dir = Dir::new();
    export(&dir);
    let graph = Graph::start(tenant(), fast());
    let out = run(&mut graph.hardmatch(
        &dir,
        &[
            "apply",
            "export.csv",
            "--overwrite",
            "--yes",
            "-o",
            "applied.csv",
        ],
    ));
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert_eq!(
        graph.anchor_of("plus.two@contoso.com").as_deref(),
        Some(PLUS_TWO.1)
    );
    let report = std::fs::read_to_string(dir.join("applied.csv")).unwrap();
    assert!(report.contains(&format!(",{},", PLUS_TWO.1)), "{report}");
    assert!(report.contains(&format!(",{OTHER_PLUS},")), "{report}");
    // What an older hardmatch wrote: an apostrophe before every anchor that starts with `+`.
    let older = report.replace(",+", ",'+");
    assert!(older.contains(&format!(",'{OTHER_PLUS},")));
    dir.write("older.csv", older);

    let out = run(&mut graph.hardmatch(
        &dir,
        &["rollback", "older.csv", "--yes", "-o", "rolled-back.csv"],
    ));
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(
        graph.anchor_of("plus.two@contoso.com").as_deref(),
        Some(OTHER_PLUS),
        "put back exactly, apostrophe removed"
    );
    assert_eq!(graph.anchor_of("plus.one@contoso.com"), None);
}
