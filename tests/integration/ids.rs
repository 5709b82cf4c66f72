//! `hardmatch ids` on every sample and every reader quirk: exact ImmutableIds and messages.

use crate::util::{assert_same, run, sample, stderr, stdout, Dir};

/// The ImmutableIds of the sample people (samples/README.md), by UPN.
const EXPECTED: [(&str, &str); 20] = [
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
    ("pete.price@contoso.com", "ChssTY+ee0qMbV5POiscDQ=="),
    ("quinn.quigley@contoso.com", "Gyw9Xp8KjEudfm9aSzwtHg=="),
    ("rosa.reyes@contoso.com", "LD1ObwobnUyOj3prXE0+Lw=="),
    ("sam.stone@contoso.com", "PU5fehssDk2fmot8bV5POg=="),
    ("tara.tate@contoso.local", "Tl9qiyw9H06KC5yNfm9aSw=="),
    ("uma.ueda@contoso.com", "X2p7nD1OKk+bHA2ej3prXA=="),
    ("vic.vance@contoso.com", "hHOw0xPRxk6opFseDC9qfg=="),
];

/// People in every sample export (samples/README.md).
const PEOPLE: usize = 21;

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
                r[5].into(),
                r[6].into(),
            ]
        })
        .collect();
    (rows, stderr(&out), out.status.code().unwrap_or(-1))
}

fn assert_sample(name: &str, lost_consistency_guid: bool, not_users: usize) {
    let dir = Dir::new();
    let (rows, err, code) = ids(&dir, &sample(name), &[]);
    assert_eq!(code, 1, "{name}: some rows need attention\n{err}");
    // Every person but olga (no anchor, so not in EXPECTED) has an ImmutableId.
    for (upn, id) in &EXPECTED {
        let (upn, id) = (*upn, *id);
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
        PEOPLE + not_users,
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
fn xls_workbook() {
    assert_sample("users.xls", false, 0);
}

#[test]
fn ods_workbook() {
    assert_sample("users.ods", false, 0);
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

// Shapes written by other tools and people, each reproduced by hand (no file copied), named
// after its quirk. Each checks ImmutableIds, line numbers, not-a-user rows and messages.

/// Writes `contents` as `name` and runs `ids` on it by its relative name, so that messages
/// start with `name:`.
fn ids_of(name: &str, contents: impl AsRef<[u8]>) -> (Vec<[String; 5]>, i32) {
    let dir = Dir::new();
    dir.write(name, contents);
    let (rows, _, code) = ids(&dir, std::path::Path::new(name), &[]);
    (rows, code)
}

/// (line, upn, immutable_id, outcome) of every row, for comparing a whole run at once.
fn summary(rows: &[[String; 5]]) -> Vec<(u64, &str, &str, &str)> {
    rows.iter()
        .map(|r| {
            (
                r[0].parse().expect("a line number"),
                r[1].as_str(),
                r[2].as_str(),
                r[3].as_str(),
            )
        })
        .collect()
}

#[test]
fn ldapsearch_extended_ldif_with_comments_references_and_result_trailer() {
    // OpenLDAP's ldapsearch against AD: `# extended LDIF` header, a comment before each entry,
    // a dn folded at 78 columns, an entry the binder may not read (dn only), a search
    // reference and the `search:`/`result:` trailer, which are not entries.
    let (rows, code) = ids_of(
        "users.ldif",
        "# extended LDIF\n#\n# LDAPv3\n# base <dc=contoso,dc=com> with scope subtree\n# filter: (objectClass=*)\n# requesting: ALL\n#\n\n\
         # contoso.com\ndn: DC=contoso,DC=com\nobjectClass: top\nobjectClass: domain\nobjectClass: domainDNS\nobjectGUID:: 7AZOUMEioUOTwM9IB/gzYw==\n\n\
         # Alice Adams, Staff, contoso.com\ndn: CN=Alice Adams,OU=Staff,DC=contoso,DC=com\nobjectClass: top\nobjectClass: person\nobjectClass: organizationalPerson\nobjectClass: user\n\
         objectGUID:: 1wfM9xV8fUSHbcAbDlqeOA==\nobjectSid:: AQUAAAAAAAUVAAAAMvuhxgsd8Uf1yHJFVQQAAA==\nuserPrincipalName: alice.adams@contoso.com\n\n\
         # {4026EDF8-DBDA-4AED-8266-5A04B80D9327}, Policies, System, contoso.com\ndn: CN={4026EDF8-DBDA-4AED-8266-5A04B80D9327},CN=Policies,CN=System,DC=contoso\n ,DC=com\n\n\
         # Bob Brown, Staff, contoso.com\ndn: CN=Bob Brown,OU=Staff,DC=contoso,DC=com\nobjectClass: user\nobjectGUID:: BpazOkLGm0\n iEtljAONPvOQ==\nuserPrincipalName: bob.brown@contoso.com\n\n\
         # search reference\nref: ldap://ForestDnsZones.contoso.com/DC=ForestDnsZones,DC=contoso,DC=com\n\n\
         # search result\nsearch: 2\nresult: 0 Success\n\n# numResponses: 6\n# numEntries: 4\n# numReferences: 1\n",
    );
    assert_eq!(code, 1);
    assert_eq!(
        summary(&rows),
        [
            (10, "", "7AZOUMEioUOTwM9IB/gzYw==", "not-a-user"),
            (
                17,
                "alice.adams@contoso.com",
                "1wfM9xV8fUSHbcAbDlqeOA==",
                "computed"
            ),
            (27, "", "", "missing-field"),
            (
                31,
                "bob.brown@contoso.com",
                "BpazOkLGm0iEtljAONPvOQ==",
                "computed"
            ),
        ]
    );
    assert_same(
        "users.ldif:10: objectClass top;domain;domainDNS is not a user: hardmatch only matches user accounts",
        &rows[0][4],
    );
}

#[test]
fn ldifde_unicode_export_with_a_leading_blank_line() {
    // `ldifde -u`: UTF-16LE with a BOM, CRLF, a blank first line, `changetype: add`, a
    // non-ASCII DN in plain text.
    let text = "\r\ndn: CN=José Jönsson,OU=Staff,DC=contoso,DC=com\r\nchangetype: add\r\nobjectClass: top\r\nobjectClass: user\r\nobjectGUID:: b3fGykG3eUab73AhIB35Gg==\r\nuserPrincipalName: jose.jonsson@contoso.com\r\n\r\n";
    let bytes: Vec<u8> = [0xFF, 0xFE]
        .into_iter()
        .chain(text.encode_utf16().flat_map(u16::to_le_bytes))
        .collect();
    let (rows, code) = ids_of("unicode.ldf", bytes);
    assert_eq!(code, 0);
    assert_eq!(
        summary(&rows),
        [(
            2,
            "jose.jonsson@contoso.com",
            "b3fGykG3eUab73AhIB35Gg==",
            "computed"
        )]
    );
}

#[test]
fn export_csv_with_semicolon_delimiter_bom_and_type_line() {
    // Windows PowerShell 5.1: Export-Csv -Delimiter ';' -Encoding UTF8 (a BOM, then #TYPE),
    // a `;` inside a quoted field.
    let (rows, code) = ids_of(
        "semicolon.csv",
        "\u{feff}#TYPE Selected.Microsoft.ActiveDirectory.Management.ADUser\r\n\"UserPrincipalName\";\"ObjectGUID\";\"GivenName\"\r\n\"alice.adams@contoso.com\";\"f7cc07d7-7c15-447d-876d-c01b0e5a9e38\";\"Alice\"\r\n\"kate.o'brien@contoso.com\";\"cdd1e80f-e37d-4264-807e-ec0b2b2f4d7b\";\"Kate; K.\"\r\n",
    );
    assert_eq!(code, 0);
    assert_eq!(
        summary(&rows),
        [
            (
                3,
                "alice.adams@contoso.com",
                "1wfM9xV8fUSHbcAbDlqeOA==",
                "computed"
            ),
            (
                4,
                "kate.o'brien@contoso.com",
                "D+jRzX3jZEKAfuwLKy9New==",
                "computed"
            ),
        ]
    );
}

#[test]
fn type_line_replaced_by_an_empty_line() {
    // A common clean-up: `-replace '#TYPE ...', ''` leaves the first line empty.
    let (rows, code) = ids_of(
        "cleaned.csv",
        "\r\nUserPrincipalName,ObjectGUID\r\nalice.adams@contoso.com,f7cc07d7-7c15-447d-876d-c01b0e5a9e38\r\nbob.brown@contoso.com,nope\r\n",
    );
    assert_eq!(code, 1, "some rows need attention");
    assert_eq!(
        summary(&rows),
        [
            (
                3,
                "alice.adams@contoso.com",
                "1wfM9xV8fUSHbcAbDlqeOA==",
                "computed"
            ),
            (4, "bob.brown@contoso.com", "", "invalid-anchor"),
        ]
    );
    assert!(
        rows[1][4].starts_with("cleaned.csv:4 column ObjectGUID: \"nope\" is not an anchor"),
        "{}",
        rows[1][4]
    );
}

#[test]
fn powershell_7_export_without_bom_or_type_line_quoting_as_needed() {
    // PowerShell 7: UTF-8 without a BOM, no #TYPE line, LF; `-UseQuotes AsNeeded` quotes only
    // the DN with a comma in it.
    let (rows, code) = ids_of(
        "ps7.csv",
        "DistinguishedName,Enabled,Name,ObjectClass,ObjectGUID,UserPrincipalName\n\"CN=Jönsson, José,OU=Staff,DC=contoso,DC=com\",True,José Jönsson,user,cac6776f-b741-4679-9bef-7021201df91a,jose.jonsson@contoso.com\n\"CN=WS-0042,OU=Clients,DC=contoso,DC=com\",True,WS-0042,computer,50db76c0-d8ea-4e97-b9d0-94ef5d837d54,\n",
    );
    assert_eq!(code, 1, "some rows need attention");
    assert_eq!(
        summary(&rows),
        [
            (
                2,
                "jose.jonsson@contoso.com",
                "b3fGykG3eUab73AhIB35Gg==",
                "computed"
            ),
            (3, "", "wHbbUOrYl0650JTvXYN9VA==", "not-a-user"),
        ]
    );
}

#[test]
fn excel_unicode_text_is_utf16_and_tab_separated() {
    // Excel's "Unicode Text (*.txt)": UTF-16LE with a BOM, tabs, CRLF.
    let text = "Name\tUserPrincipalName\tObjectGUID\r\nJosé Jönsson\tjose.jonsson@contoso.com\tcac6776f-b741-4679-9bef-7021201df91a\r\nAlice\talice.adams@contoso.com\t{F7CC07D7-7C15-447D-876D-C01B0E5A9E38}\r\n";
    let bytes: Vec<u8> = [0xFF, 0xFE]
        .into_iter()
        .chain(text.encode_utf16().flat_map(u16::to_le_bytes))
        .collect();
    let (rows, code) = ids_of("users.txt", bytes);
    assert_eq!(code, 0);
    assert_eq!(
        summary(&rows),
        [
            (
                2,
                "jose.jonsson@contoso.com",
                "b3fGykG3eUab73AhIB35Gg==",
                "computed"
            ),
            (
                3,
                "alice.adams@contoso.com",
                "1wfM9xV8fUSHbcAbDlqeOA==",
                "computed"
            ),
        ]
    );
}

#[test]
fn excel_mac_csv_ends_lines_with_cr_alone() {
    // Excel's "CSV (Macintosh)": CR line ends. Every row used to say line 1.
    let (rows, code) = ids_of(
        "mac.csv",
        "UserPrincipalName,ObjectGUID\ralice.adams@contoso.com,f7cc07d7-7c15-447d-876d-c01b0e5a9e38\rbob.brown@contoso.com,nope\r",
    );
    assert_eq!(code, 1, "some rows need attention");
    assert_eq!(
        summary(&rows),
        [
            (
                2,
                "alice.adams@contoso.com",
                "1wfM9xV8fUSHbcAbDlqeOA==",
                "computed"
            ),
            (3, "bob.brown@contoso.com", "", "invalid-anchor"),
        ]
    );
    assert!(
        rows[1][4].starts_with("mac.csv:3 column ObjectGUID"),
        "{}",
        rows[1][4]
    );
}

#[test]
fn joined_exports_repeat_header_and_type_lines() {
    // `Get-Content a.csv, b.csv > all.csv`: the second #TYPE and header lines are not users.
    let part = |upn: &str, guid: &str| {
        format!("#TYPE Selected.Microsoft.ActiveDirectory.Management.ADUser\r\n\"UserPrincipalName\",\"ObjectGUID\"\r\n\"{upn}\",\"{guid}\"\r\n")
    };
    let (rows, _) = ids_of(
        "all.csv",
        part(
            "alice.adams@contoso.com",
            "f7cc07d7-7c15-447d-876d-c01b0e5a9e38",
        ) + &part(
            "bob.brown@contoso.com",
            "3ab39606-c642-489b-84b6-58c038d3ef39",
        ),
    );
    assert_eq!(
        summary(&rows),
        [
            (
                3,
                "alice.adams@contoso.com",
                "1wfM9xV8fUSHbcAbDlqeOA==",
                "computed"
            ),
            (
                4,
                "#TYPE Selected.Microsoft.ActiveDirectory.Management.ADUser",
                "",
                "not-a-user"
            ),
            (5, "UserPrincipalName", "", "not-a-user"),
            (
                6,
                "bob.brown@contoso.com",
                "BpazOkLGm0iEtljAONPvOQ==",
                "computed"
            ),
        ]
    );
    assert_same(
        "all.csv:5: a repeated header line, not a user (were several exports joined into one file?)",
        &rows[2][4],
    );
}

#[test]
fn anchor_forms_of_other_tools() {
    // ADSI Edit's 0x-prefixed bytes, a SQL 0x value, comma-separated decimal bytes, and the
    // AADInternals mistake made through UTF-16 ([Text.Encoding]::Unicode).
    let utf16_mistake = {
        use base64::Engine as _;
        let bytes: Vec<u8> = "f7cc07d7-7c15-447d-876d-c01b0e5a9e38"
            .encode_utf16()
            .flat_map(u16::to_le_bytes)
            .collect();
        base64::engine::general_purpose::STANDARD.encode(bytes)
    };
    let (rows, _) = ids_of(
        "forms.csv",
        format!(
            "UPN;mS-DS-ConsistencyGuid\n\
             a@x.com;0xD7 0x07 0xCC 0xF7 0x15 0x7C 0x7D 0x44 0x87 0x6D 0xC0 0x1B 0x0E 0x5A 0x9E 0x38\n\
             b@x.com;0x0696B33A42C69B4884B658C038D3EF39\n\
             c@x.com;50,195,74,140,95,151,23,71,173,123,186,74,78,150,143,255\n\
             d@x.com;{utf16_mistake}\n"
        ),
    );
    assert_eq!(
        summary(&rows),
        [
            (2, "a@x.com", "1wfM9xV8fUSHbcAbDlqeOA==", "computed"),
            (3, "b@x.com", "BpazOkLGm0iEtljAONPvOQ==", "computed"),
            (4, "c@x.com", "MsNKjF+XF0ete7pKTpaP/w==", "computed"),
            (5, "d@x.com", "", "invalid-anchor"),
        ]
    );
    assert!(
        rows[3][4].contains("base64 of the GUID's text")
            && rows[3][4].contains("the ImmutableId of f7cc07d7-7c15-447d-876d-c01b0e5a9e38 is 1wfM9xV8fUSHbcAbDlqeOA=="),
        "{}",
        rows[3][4]
    );
}

#[test]
fn csvde_writes_only_the_most_specific_object_class() {
    // Real csvde exports carry one objectClass value per entry (`user`, `computer`, `contact`),
    // not the whole `top;person;...` chain; DN and distinguishedName both present.
    let x = |hex: &str| format!("X'{hex}'");
    let (rows, code) = ids_of(
        "csvde.csv",
        format!(
            "DN,objectClass,distinguishedName,name,objectGUID,sAMAccountName,userPrincipalName\r\n\
             \"CN=WS-0042,OU=Clients,DC=contoso,DC=com\",computer,\"CN=WS-0042,OU=Clients,DC=contoso,DC=com\",WS-0042,{},WS-0042$,\r\n\
             \"CN=Alice Adams,OU=Staff,DC=contoso,DC=com\",user,\"CN=Alice Adams,OU=Staff,DC=contoso,DC=com\",Alice Adams,{},aadams,alice.adams@contoso.com\r\n\
             \"CN=Ext Partner,OU=Contacts,DC=contoso,DC=com\",contact,\"CN=Ext Partner,OU=Contacts,DC=contoso,DC=com\",Ext Partner,{},,\r\n",
            x("c076db50ead8974eb9d094ef5d837d54"),
            x("d707ccf7157c7d44876dc01b0e5a9e38"),
            x("0696b33a42c69b4884b658c038d3ef39"),
        ),
    );
    assert_eq!(code, 1);
    assert_eq!(
        summary(&rows),
        [
            (2, "", "wHbbUOrYl0650JTvXYN9VA==", "not-a-user"),
            (
                3,
                "alice.adams@contoso.com",
                "1wfM9xV8fUSHbcAbDlqeOA==",
                "computed"
            ),
            (4, "", "BpazOkLGm0iEtljAONPvOQ==", "not-a-user"),
        ]
    );
    assert_same(
        "csvde.csv:2: a computer (objectClass computer), not a user: hardmatch only matches user accounts",
        &rows[0][4],
    );
}

/// Issue 17: `ids` keeps a compact entry per row, not the parsed rows and the whole mapped
/// file. 400,000 rows (a 44 MB file) peaked at 252 MiB when every row was held to the end
/// (530 bytes a row and the file); computed a batch at a time, 142 MiB (release builds).
/// Duplicates far apart, in different batches, still name each other, exactly.
#[test]
fn issue17_a_large_export_is_computed_a_batch_at_a_time() {
    const ROWS: usize = 400_000;
    let guid =
        |i: usize| uuid::Uuid::from_u128(0x5e1f_0000_0000_4000_8000_0000_0000_0000 + i as u128);
    let mut text = String::from("\"DistinguishedName\",\"ObjectGUID\",\"UserPrincipalName\"\r\n");
    for i in 0..ROWS {
        // The last row has the first row's objectGUID; the one before it the second row's UPN.
        let (g, upn) = match i {
            _ if i == ROWS - 1 => (guid(0), format!("last{i}@contoso.com")),
            _ if i == ROWS - 2 => (guid(i), "USER0000001@Contoso.com".to_string()),
            _ => (guid(i), format!("user{i:07}@contoso.com")),
        };
        text.push_str(&format!(
            "\"CN=User {i:07},OU=Staff,DC=contoso,DC=com\",\"{g}\",\"{upn}\"\r\n"
        ));
    }
    let dir = Dir::new();
    dir.write("big.csv", &text);
    drop(text);
    let (out, peak_kib) = crate::util::run_measuring_memory(
        dir.hardmatch().args(["ids", "big.csv", "-o", "ids.csv"]),
    );
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let report = std::fs::read_to_string(dir.join("ids.csv")).unwrap();
    let lines: Vec<&str> = report.lines().collect();
    assert_eq!(lines.len(), ROWS + 1);
    let (first, last) = (2, ROWS as u64 + 1);
    let id = hardmatch::anchor::ImmutableId::from_guid(guid(0));
    assert_eq!(
        lines[1],
        format!("{first},user0000000@contoso.com,{},{id},objectGUID,duplicate-anchor-in-input,big.csv:{first}: the ImmutableId {id} is also on line {last}; keep one row per user", guid(0))
    );
    assert!(lines[ROWS].ends_with(&format!(",duplicate-anchor-in-input,big.csv:{last}: the ImmutableId {id} is also on line {first}; keep one row per user")), "{}", lines[ROWS]);
    assert!(lines[2].ends_with(&format!(",duplicate-target-in-input,big.csv:3: the target UPN user0000001@contoso.com is also on line {}; keep one row per user", last - 1)), "{}", lines[2]);
    assert!(
        lines[ROWS - 1].contains(",duplicate-target-in-input,"),
        "{}",
        lines[ROWS - 1]
    );
    let computed = lines.iter().filter(|l| l.contains(",computed,")).count();
    assert_eq!(computed, ROWS - 4);
    assert!(
        peak_kib < 200 * 1024,
        "peak memory {} MiB, expected under 200 MiB",
        peak_kib / 1024
    );
}
