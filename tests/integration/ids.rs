//! `hardmatch ids` on every sample and every reader quirk: exact ImmutableIds and messages.

use crate::util::{assert_same, run, sample, stderr, stdout, Dir};

/// The ImmutableIds of the sample people (samples/README.md), by UPN.
const EXPECTED: [(&str, &str); 13] = [
    ("alice.adams@contoso.com", "1wfM9xV8fUSHbcAbDlqeOA=="),
    ("bob.brown@contoso.com", "BpazOkLGm0iEtljAONPvOQ=="),
    ("carol.clark@contoso.com", "MsNKjF+XF0ete7pKTpaP/w=="),
    ("dave.dunn@contoso.com", "1MPSofa1kE+rze8SNFZ4kA=="),
    ("erin.evans@contoso.com", "yYuRNW0Z6kCXeYidebdT8A=="),
    ("gina.gray@contoso.com", "YNUtEnUxmkygYLgUmFN2Vg=="),
    ("hank.hill@contoso.com", "wHbbUOrYl0650JTvXYN9VA=="),
    ("ivan.ito@fed.contoso.com", "T7QuCxT4zU65bifcqZckTQ=="),
    ("jose.jonsson@contoso.com", "b3fGykG3eUab73AhIB35Gg=="),
    ("kate.o'brien@contoso.com", "D+jRzX3jZEKAfuwLKy9New=="),
    ("lena.lopez@contoso.com", "nqvx9hN/00C5/FsgSFqApg=="),
    ("mike.miller@contoso.com", "qKh+p1ndaUWDwLhZNmN1Zw=="),
    ("nina.nash@contoso.com", "H+EUXYXDykOYtGivEfs7jw=="),
];

/// Runs `ids` on a file and returns the CSV rows as (line, upn, immutable_id, outcome, detail).
fn ids(dir: &Dir, input: &std::path::Path, extra: &[&str]) -> (Vec<[String; 5]>, String, i32) {
    let out = run(dir
        .hardmatch()
        .arg("ids")
        .arg(input)
        .args(["-o", "-"])
        .args(extra));
    let mut reader = csv::Reader::from_reader(out.stdout.as_slice());
    let rows = reader
        .records()
        .map(|r| {
            let r = r.expect("ids writes CSV");
            [
                r[0].into(),
                r[1].into(),
                r[3].into(),
                r[4].into(),
                r[5].into(),
            ]
        })
        .collect();
    (rows, stderr(&out), out.status.code().unwrap_or(-1))
}

fn assert_sample(name: &str, lost_consistency_guid: bool, not_users: usize) {
    let dir = Dir::new();
    let (rows, err, code) = ids(&dir, &sample(name), &[]);
    assert_eq!(code, 1, "{name}: some rows need attention\n{err}");
    for (upn, id) in EXPECTED {
        let row = rows
            .iter()
            .find(|r| r[1] == upn)
            .unwrap_or_else(|| panic!("{name}: no row for {upn}"));
        let lost = lost_consistency_guid && (upn.starts_with("mike") || upn.starts_with("nina"));
        if lost {
            assert_eq!(row[3], "invalid-anchor", "{name} {upn}");
            assert!(row[4].contains("System.Byte[]"), "{name}: {}", row[4]);
        } else {
            assert_eq!(
                (row[2].as_str(), row[3].as_str()),
                (id, "computed"),
                "{name} {upn}: {}",
                row[4]
            );
        }
    }
    assert_eq!(
        rows.iter().filter(|r| r[3] == "missing-field").count(),
        1,
        "{name}"
    );
    assert_eq!(
        rows.iter().filter(|r| r[3] == "not-a-user").count(),
        not_users,
        "{name}"
    );
    assert_eq!(
        rows.len(),
        14 + not_users,
        "{name}: one output row per input row"
    );
}

#[test]
fn windows_powershell_51_export() {
    assert_sample("getaduser-ps51.csv", true, 0);
}

#[test]
fn utf16_export() {
    assert_sample("getaduser-utf16.csv", true, 0);
}

#[test]
fn excel_de_semicolon_export() {
    assert_sample("excel-de.csv", false, 0);
}

#[test]
fn csvde_export() {
    assert_sample("csvde.csv", false, 0);
}

#[test]
fn ldifde_export() {
    assert_sample("ldifde.ldf", false, 2);
}

#[test]
fn xlsx_workbook() {
    assert_sample("users.xlsx", false, 0);
}

#[test]
fn lost_value_message_names_file_line_and_column() {
    let dir = Dir::new();
    let (rows, _, _) = ids(&dir, &sample("getaduser-ps51.csv"), &[]);
    let mike = rows
        .iter()
        .find(|r| r[1] == "mike.miller@contoso.com")
        .unwrap();
    assert_eq!(mike[0], "14");
    assert!(
        mike[4].ends_with("getaduser-ps51.csv:14 column mS-DS-ConsistencyGuid: the export lost the value: it reads \"System.Byte[]\", which is how Windows PowerShell's Export-Csv writes a byte[]; re-export with a calculated property such as @{n='mS-DS-ConsistencyGuid';e={[guid]$_.'mS-DS-ConsistencyGuid'}}, or with ldifde or csvde"),
        "{}",
        mike[4]
    );
}

#[test]
fn windows_1252_and_embedded_newlines_keep_lines_right() {
    let dir = Dir::new();
    let file = dir.write(
        "ansi.csv",
        b"UserPrincipalName,ObjectGUID,Description\r\njose@x.com,f7cc07d7-7c15-447d-876d-c01b0e5a9e38,\"Jos\xe9\r\nsecond line\"\r\nbad@x.com,not-a-guid,\r\n",
    );
    let (rows, _, code) = ids(&dir, &file, &[]);
    assert_eq!(code, 1);
    assert_eq!(rows[0][2], "1wfM9xV8fUSHbcAbDlqeOA==");
    assert_eq!(
        rows[1][0], "4",
        "the record after a two-line field starts on line 4"
    );
    assert!(
        rows[1][4].contains("ansi.csv:4 column ObjectGUID: \"not-a-guid\" is not an anchor"),
        "{}",
        rows[1][4]
    );
}

#[test]
fn duplicates_inside_the_input_name_each_other() {
    let dir = Dir::new();
    let file = dir.write(
        "dups.csv",
        "UPN,ObjectGUID\na@x.com,f7cc07d7-7c15-447d-876d-c01b0e5a9e38\nb@x.com,{F7CC07D7-7C15-447D-876D-C01B0E5A9E38}\nA@X.COM,3ab39606-c642-489b-84b6-58c038d3ef39\n",
    );
    let (rows, _, _) = ids(&dir, &file, &[]);
    let outcomes: Vec<&str> = rows.iter().map(|r| r[3].as_str()).collect();
    assert_eq!(
        outcomes,
        [
            "duplicate-anchor-in-input",
            "duplicate-anchor-in-input",
            "computed"
        ]
    );
    assert!(rows[0][4].contains("also on line 3"), "{}", rows[0][4]);
}

#[test]
fn unusable_file_fails_at_once_with_headers_and_aliases() {
    let dir = Dir::new();
    dir.write("names.csv", "Name,Title\nAlice,CEO\n");
    let out = run(dir.hardmatch().args(["ids", "names.csv", "-o", "-"]));
    assert_eq!(out.status.code(), Some(2));
    let err = stderr(&out);
    assert!(
        err.contains("names.csv: no anchor or UPN column. Headers found: Name, Title."),
        "{err}"
    );
    assert!(
        err.contains("UserPrincipalName") && err.contains("--column"),
        "{err}"
    );
}

#[test]
fn column_mapping_by_hand() {
    let dir = Dir::new();
    let file = dir.write(
        "custom.csv",
        "Login,Ident\nalice@x.com,f7cc07d7-7c15-447d-876d-c01b0e5a9e38\n",
    );
    let (rows, _, code) = ids(
        &dir,
        &file,
        &["--column", "upn=Login", "--column", "object-guid=Ident"],
    );
    assert_eq!(code, 0);
    assert_same(
        "alice@x.com 1wfM9xV8fUSHbcAbDlqeOA==",
        &format!("{} {}", rows[0][1], rows[0][2]),
    );
}

#[test]
fn mangled_excel_cells_name_the_cell() {
    let dir = Dir::new();
    let path = dir.join("mangled.xlsx");
    let mut workbook = rust_xlsxwriter::Workbook::new();
    let sheet = workbook.add_worksheet().set_name("Wave 2").unwrap();
    sheet.write_string(0, 0, "UserPrincipalName").unwrap();
    sheet.write_string(0, 1, "ObjectGUID").unwrap();
    sheet.write_string(1, 0, "a@x.com").unwrap();
    sheet.write_number(1, 1, 1.23e15).unwrap();
    sheet.write_string(2, 0, "b@x.com").unwrap();
    sheet
        .write_string(2, 1, "3ab39606-c642-489b-84b6-58c038d3ef39")
        .unwrap();
    workbook.save(&path).unwrap();
    let (rows, _, _) = ids(&dir, &path, &[]);
    assert_eq!(rows[0][3], "invalid-anchor");
    assert!(
        rows[0][4]
            .contains("sheet Wave 2 cell B2 (ObjectGUID): Excel turned the value into the number"),
        "{}",
        rows[0][4]
    );
    assert_eq!(
        (rows[1][0].as_str(), rows[1][2].as_str()),
        ("3", "BpazOkLGm0iEtljAONPvOQ==")
    );
    let out = run(dir
        .hardmatch()
        .args(["ids", "mangled.xlsx", "--sheet", "Nope", "-o", "-"]));
    assert!(
        stderr(&out).contains("no sheet \"Nope\"; the sheets are: Wave 2"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn output_cells_cannot_run_as_formulas() {
    let dir = Dir::new();
    dir.write(
        "evil.csv",
        "UPN,ObjectGUID\n=HYPERLINK(\"http://x\"),f7cc07d7-7c15-447d-876d-c01b0e5a9e38\n",
    );
    let out = run(dir.hardmatch().args(["ids", "evil.csv", "-o", "-"]));
    let text = stdout(&out);
    assert!(text.contains("\"'=HYPERLINK(\"\"http://x\"\")\""), "{text}");
}
