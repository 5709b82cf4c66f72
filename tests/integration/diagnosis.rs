//! Issue 18 item 4: a file or an output path that cannot work stops the command at once, with
//! the fix, before a single Graph request; every command writes the format its output's
//! extension names, or refuses it.

use calamine::Reader as _;

use crate::util::{report_rows, run, sample, stderr, Dir, Graph};

/// Runs the binary against the sample emulator and asserts it stopped with exit 2 before
/// sending any request. Returns stderr.
#[track_caller]
fn fails_before_graph(dir: &Dir, args: &[&str]) -> String {
    let graph = Graph::sample();
    let out = run(&mut graph.hardmatch(dir, args));
    let said = stderr(&out);
    assert_eq!(out.status.code(), Some(2), "{args:?}: {said}");
    let stats = graph.stats();
    assert_eq!(
        stats.requests.values().sum::<u64>(),
        0,
        "{args:?}: no Graph request: {:?}",
        stats.requests
    );
    said
}

#[test]
fn a_misnamed_upn_column_fails_fast_with_the_column_to_map() {
    let dir = Dir::new();
    dir.write(
        "login.csv",
        "Login,ObjectGUID,Name\nalice.adams@contoso.com,f7cc07d7-7c15-447d-876d-c01b0e5a9e38,Alice\n",
    );
    for args in [
        &["plan", "login.csv", "-o", "r.csv"][..],
        &["apply", "login.csv", "--yes", "-o", "r.csv"],
    ] {
        let said = fails_before_graph(&dir, args);
        assert!(
            said.contains("login.csv: no UPN column")
                && said.contains("Headers found: Login, ObjectGUID, Name.")
                && said.contains("--column upn=Login"),
            "{said}"
        );
        assert!(
            !dir.join("r.csv").exists(),
            "no report for a run that never started"
        );
    }
    // The hint works.
    let graph = Graph::sample();
    let out = run(&mut graph.hardmatch(
        &dir,
        &[
            "plan",
            "login.csv",
            "--column",
            "upn=Login",
            "-o",
            "plan.csv",
        ],
    ));
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(
        report_rows(&dir.join("plan.csv"))[0]["outcome"],
        "would-stamp"
    );
}

#[test]
fn an_export_without_an_anchor_column_fails_fast_except_for_clear() {
    let dir = Dir::new();
    dir.write(
        "upns.csv",
        "UserPrincipalName,AD Guid\nbob.brown@contoso.com,3ab39606-c642-489b-84b6-58c038d3ef39\n",
    );
    let said = fails_before_graph(&dir, &["plan", "upns.csv", "-o", "plan.csv"]);
    assert!(
        said.contains("upns.csv: no anchor column")
            && said.contains("Headers found: UserPrincipalName, AD Guid.")
            && said.contains("--column object-guid=AD Guid"),
        "{said}"
    );
    let out = run(dir.hardmatch().args(["ids", "upns.csv", "-o", "ids.csv"]));
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    // `clear` needs no anchor: a list of UPNs is enough.
    let graph = Graph::sample();
    let out = run(&mut graph.hardmatch(&dir, &["clear", "upns.csv", "--yes", "-q", "-o", "c.csv"]));
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(report_rows(&dir.join("c.csv"))[0]["outcome"], "cleared");
}

/// A workbook whose first sheet is notes, and `users` sheets after it.
fn workbook(dir: &Dir, name: &str, user_sheets: &[&str]) {
    let mut book = rust_xlsxwriter::Workbook::new();
    let notes = book.add_worksheet().set_name("Notes").unwrap();
    notes
        .write_string(0, 0, "Wave 1, approved by the board")
        .unwrap();
    for sheet_name in user_sheets {
        let sheet = book.add_worksheet().set_name(*sheet_name).unwrap();
        sheet.write_string(0, 0, "UserPrincipalName").unwrap();
        sheet.write_string(0, 1, "ObjectGUID").unwrap();
        sheet.write_string(1, 0, "alice.adams@contoso.com").unwrap();
        sheet
            .write_string(1, 1, "f7cc07d7-7c15-447d-876d-c01b0e5a9e38")
            .unwrap();
    }
    book.save(dir.join(name)).unwrap();
}

#[test]
fn a_workbook_whose_users_are_not_on_the_first_sheet() {
    let dir = Dir::new();
    workbook(&dir, "one.xlsx", &["Users"]);
    let out = run(dir.hardmatch().args(["ids", "one.xlsx", "-o", "ids.csv"]));
    let said = stderr(&out);
    assert_eq!(out.status.code(), Some(0), "{said}");
    assert!(
        said.contains("one.xlsx: reading sheet Users, the only one with the columns needed (the first sheet, Notes, has not)"),
        "{said}"
    );
    assert_eq!(
        report_rows(&dir.join("ids.csv"))[0]["immutable_id"],
        "1wfM9xV8fUSHbcAbDlqeOA=="
    );

    workbook(&dir, "two.xlsx", &["Wave A", "Wave B"]);
    let said = fails_before_graph(&dir, &["plan", "two.xlsx", "-o", "plan.csv"]);
    assert!(
        said.contains("two.xlsx sheet Notes: no anchor or UPN column")
            && said.contains(
                "The sheets Wave A, Wave B have the columns needed: choose one with --sheet NAME"
            ),
        "{said}"
    );
    let out = run(dir
        .hardmatch()
        .args(["ids", "two.xlsx", "--sheet", "Wave B", "-o", "ids.csv"]));
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));

    let mut book = rust_xlsxwriter::Workbook::new();
    for name in ["Notes", "Contacts"] {
        let sheet = book.add_worksheet().set_name(name).unwrap();
        sheet.write_string(0, 0, "Name").unwrap();
        sheet.write_string(1, 0, "Alice").unwrap();
    }
    book.save(dir.join("none.xlsx")).unwrap();
    let out = run(dir.hardmatch().args(["ids", "none.xlsx", "-o", "ids.csv"]));
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("none.xlsx sheet Notes: no anchor or UPN column")
            && stderr(&out).contains("No other sheet (Contacts) has the columns needed either"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn an_output_path_that_cannot_be_written_fails_before_graph() {
    let dir = Dir::new();
    let export = sample("csvde.csv");
    let export = export.to_str().unwrap();
    let said = fails_before_graph(&dir, &["plan", export, "-o", "missing-dir/plan.xlsx"]);
    assert!(
        said.contains("missing-dir/plan.xlsx: the directory missing-dir does not exist"),
        "{said}"
    );
    let victim = dir.write("victim.csv", "precious");
    std::os::unix::fs::symlink(&victim, dir.join("link.csv")).unwrap();
    let said = fails_before_graph(&dir, &["apply", export, "--yes", "-o", "link.csv"]);
    assert!(
        said.contains("link.csv: is a symbolic link to a file"),
        "{said}"
    );
    assert_eq!(std::fs::read_to_string(&victim).unwrap(), "precious");
    for (args, output) in [
        (&["plan", export, "-o"][..], "plan.xls"),
        (&["apply", export, "--yes", "-o"], "report.txt"),
        (&["snapshot", "-o"], "tenant.csv"),
    ] {
        let said = fails_before_graph(&dir, &[args, &[output]].concat());
        assert!(
            said.contains(&format!("{output}: cannot write .")),
            "{said}"
        );
        assert!(!dir.join(output).exists());
    }
}

#[test]
fn ids_writes_the_format_its_output_names() {
    let dir = Dir::new();
    let export = sample("getaduser-ps51.csv");
    for name in ["ids.xlsx", "ids.json", "ids.csv"] {
        let out = run(dir.hardmatch().arg("ids").arg(&export).args(["-o", name]));
        assert_eq!(out.status.code(), Some(1), "{name}: {}", stderr(&out));
    }
    let csv = report_rows(&dir.join("ids.csv"));

    let mut book = calamine::open_workbook_auto(dir.join("ids.xlsx")).expect("a real workbook");
    let range = book.worksheet_range("ImmutableIds").unwrap();
    let mut rows = range.rows();
    let header: Vec<String> = rows.next().unwrap().iter().map(|c| c.to_string()).collect();
    assert_eq!(
        header,
        [
            "line",
            "upn",
            "object_guid",
            "immutable_id",
            "anchor_source",
            "outcome",
            "detail"
        ]
    );
    let xlsx: Vec<Vec<String>> = rows
        .map(|r| r.iter().map(|c| c.to_string()).collect())
        .collect();
    assert_eq!(xlsx.len(), csv.len());
    for (x, c) in xlsx.iter().zip(&csv) {
        let expected: Vec<String> = header.iter().map(|h| c[h].clone()).collect();
        assert_eq!(*x, expected);
    }
    assert!(
        matches!(range.get((1, 0)), Some(calamine::Data::Float(_))),
        "line is a number"
    );

    let json: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.join("ids.json")).unwrap()).unwrap();
    let json = json["rows"].as_array().unwrap();
    assert_eq!(json.len(), csv.len());
    assert_eq!(json[0]["line"], 3);
    assert_eq!(json[0]["upn"], csv[0]["upn"]);
    assert_eq!(json[0]["immutable_id"], csv[0]["immutable_id"]);
    assert_eq!(json[0]["outcome"], "computed");

    let out = run(dir
        .hardmatch()
        .arg("ids")
        .arg(&export)
        .args(["-o", "ids.txt"]));
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("ids.txt: cannot write .txt; name the file .csv, .xlsx, .json"),
        "{}",
        stderr(&out)
    );
}
