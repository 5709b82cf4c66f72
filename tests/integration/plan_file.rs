//! The change board's plan file (issue 18 item 1, issue 12 item 1): `plan -o plan.xlsx|csv|json`
//! writes `approved` and `comment` columns and an integrity record; the board edits
//! `approved` with a spreadsheet library, a CSV library or a JSON library; `apply PLAN`
//! writes exactly the approved rows, or refuses an edited, foreign or other-version plan.

use std::collections::HashMap;
use std::path::Path;

use calamine::{Data, Reader};

use crate::util::{fast, generated, report_rows, run, sample, stderr, Dir, Graph};

/// A generated tenant of `n` cloud-only users, all of which can be stamped, and a plan of
/// them in `plan` (its format by extension).
fn planned(n: usize, plan: &str) -> (Dir, Graph) {
    let dir = Dir::new();
    let (tenant, export) = generated(&dir, n);
    let graph = Graph::start(tenant, fast());
    let out = run(graph
        .hardmatch(&dir, &["plan"])
        .arg(&export)
        .args(["-o", plan]));
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    (dir, graph)
}

fn apply(graph: &Graph, dir: &Dir, plan: &str, report: &str) -> std::process::Output {
    run(&mut graph.hardmatch(dir, &["apply", plan, "--yes", "-q", "-o", report]))
}

/// Rewrites a workbook as a spreadsheet program would save it: every sheet, every cell,
/// numbers as numbers, with `edit(sheet, row, header, text)` giving a new text for a cell.
fn edit_workbook(path: &Path, edit: impl Fn(&str, u32, &str, &str) -> Option<String>) {
    let mut read = calamine::open_workbook_auto(path).unwrap();
    let mut workbook = rust_xlsxwriter::Workbook::new();
    for name in read.sheet_names() {
        let range = read.worksheet_range(&name).unwrap();
        let sheet = workbook.add_worksheet().set_name(&name).unwrap();
        let headers: Vec<String> = range
            .rows()
            .next()
            .map(|r| r.iter().map(|c| c.to_string()).collect())
            .unwrap_or_default();
        for (row, cells) in (0u32..).zip(range.rows()) {
            for (col, cell) in (0u16..).zip(cells) {
                let header = headers.get(col as usize).map_or("", String::as_str);
                if let Some(text) = edit(&name, row, header, &cell.to_string()) {
                    sheet.write_string(row, col, text).unwrap();
                    continue;
                }
                match cell {
                    Data::Empty => {}
                    Data::Float(f) => {
                        sheet.write_number(row, col, *f).unwrap();
                    }
                    Data::Int(i) => {
                        sheet.write_number(row, col, *i as f64).unwrap();
                    }
                    Data::DateTime(d) => {
                        sheet.write_number(row, col, d.as_f64()).unwrap();
                    }
                    other => {
                        sheet.write_string(row, col, other.to_string()).unwrap();
                    }
                }
            }
        }
    }
    workbook.save(path).unwrap();
}

/// Rewrites a CSV plan with `edit(line, header, cell)` giving a new text for a cell.
fn edit_csv(path: &Path, edit: impl Fn(usize, &str, &str) -> Option<String>) {
    let mut reader = csv::Reader::from_path(path).unwrap();
    let headers = reader.headers().unwrap().clone();
    let rows: Vec<csv::StringRecord> = reader.records().map(Result::unwrap).collect();
    let mut writer = csv::Writer::from_path(path).unwrap();
    writer.write_record(&headers).unwrap();
    for (i, row) in rows.iter().enumerate() {
        let cells: Vec<String> = headers
            .iter()
            .zip(row)
            .map(|(h, c)| edit(i + 2, h, c).unwrap_or_else(|| c.to_string()))
            .collect();
        writer.write_record(&cells).unwrap();
    }
    writer.flush().unwrap();
}

fn edit_json(path: &Path, edit: impl FnOnce(&mut serde_json::Value)) {
    let mut plan: serde_json::Value =
        serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap();
    edit(&mut plan);
    std::fs::write(path, serde_json::to_vec_pretty(&plan).unwrap()).unwrap();
}

/// The report's rows by UPN.
fn by_upn(report: &Path) -> HashMap<String, HashMap<String, String>> {
    report_rows(report)
        .into_iter()
        .map(|r| (r["upn"].clone(), r))
        .collect()
}

/// Checks a report of `apply PLAN` where the board held back the rows in `held`: those are
/// `not-approved` and untouched in the tenant, every other row is stamped, and nothing else
/// was written.
#[track_caller]
fn assert_only_approved_written(graph: &Graph, report: &Path, held: &[&str], n: usize) {
    let rows = by_upn(report);
    assert_eq!(rows.len(), n);
    for (upn, row) in &rows {
        if held.contains(&upn.as_str()) {
            assert_eq!(row["outcome"], "not-approved", "{row:?}");
            assert_eq!(row["approved"].to_ascii_lowercase(), "no", "{row:?}");
            assert_eq!(graph.anchor_of(upn), None, "{upn} was not to be written");
        } else {
            assert_eq!(row["outcome"], "stamped", "{row:?}");
            assert_eq!(row["approved"], "yes", "{row:?}");
            assert_eq!(
                graph.anchor_of(upn).as_deref(),
                Some(row["immutable_id"].as_str())
            );
        }
    }
    assert_eq!(graph.stats().writes_total as usize, n - held.len());
}

/// Every request the emulator has answered.
fn requests(graph: &Graph) -> u64 {
    graph.stats().requests.values().sum()
}

/// The UPNs of a CSV plan's rows, in order.
fn upns_of_csv(plan: &Path) -> Vec<String> {
    report_rows(plan)
        .into_iter()
        .map(|r| r["upn"].clone())
        .collect()
}

#[test]
fn a_board_holds_back_rows_in_the_workbook_and_apply_writes_exactly_the_approved_ones() {
    let (dir, graph) = planned(6, "plan.xlsx");
    let plan = dir.join("plan.xlsx");
    let mut workbook = calamine::open_workbook_auto(&plan).unwrap();
    assert_eq!(workbook.sheet_names(), ["Summary", "Rows", "Plan"]);
    let rows = workbook.worksheet_range("Rows").unwrap();
    let header: Vec<String> = rows
        .rows()
        .next()
        .unwrap()
        .iter()
        .map(|c| c.to_string())
        .collect();
    let col = |name: &str| header.iter().position(|h| h == name).unwrap();
    let upns: Vec<String> = rows
        .rows()
        .skip(1)
        .map(|r| r[col("upn")].to_string())
        .collect();
    assert!(rows.rows().skip(1).all(|r| r[col("approved")] == "yes"));
    let facts = workbook.worksheet_range("Plan").unwrap();
    let fact = |name: &str| {
        facts
            .rows()
            .find(|r| r[0] == name)
            .map(|r| r[1].to_string())
            .unwrap_or_else(|| panic!("no {name} on the Plan sheet"))
    };
    assert_eq!(fact("version"), "1");
    assert_eq!(fact("tenant"), "contoso.com");
    assert_eq!(fact("rows"), "6");
    assert_eq!(fact("digest").len(), 64);
    assert_eq!(fact("input_sha256").len(), 64);

    // The board says No to rows 2 and 5 (any case), and comments on row 1.
    edit_workbook(&plan, |sheet, row, header, _| match (sheet, row, header) {
        ("Rows", 2 | 5, "approved") => Some("No".into()),
        ("Rows", 1, "comment") => Some("CAB-42: go".into()),
        _ => None,
    });
    let out = apply(&graph, &dir, "plan.xlsx", "report.csv");
    assert_eq!(
        out.status.code(),
        Some(1),
        "held-back rows need attention: {}",
        stderr(&out)
    );
    let said = stderr(&out);
    assert!(
        said.contains("plan.xlsx: plan of 6 rows for tenant contoso.com"),
        "{said}"
    );
    assert!(said.contains("planned less than a minute ago"), "{said}");
    assert_only_approved_written(&graph, &dir.join("report.csv"), &[&upns[1], &upns[4]], 6);
    let report = by_upn(&dir.join("report.csv"));
    assert_eq!(report[&upns[0]]["comment"], "CAB-42: go");
    assert!(
        report[&upns[1]]["detail"].contains("approved to no"),
        "{:?}",
        report[&upns[1]]
    );
}

#[test]
fn a_board_edits_approved_in_the_csv_and_applying_twice_writes_once() {
    let (dir, graph) = planned(5, "plan.csv");
    let plan = dir.join("plan.csv");
    let upns = upns_of_csv(&plan);
    edit_csv(&plan, |line, header, _| match (line, header) {
        (3, "approved") => Some("NO".into()),
        (2, "comment") => Some("=looks fine".into()),
        _ => None,
    });
    let out = apply(&graph, &dir, "plan.csv", "first.csv");
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert_only_approved_written(&graph, &dir.join("first.csv"), &[&upns[1]], 5);
    // The comment comes through as the board typed it (made safe for Excel on the way).
    assert_eq!(
        by_upn(&dir.join("first.csv"))[&upns[0]]["comment"],
        "'=looks fine"
    );

    let again = apply(&graph, &dir, "plan.csv", "second.csv");
    assert_eq!(again.status.code(), Some(1), "{}", stderr(&again));
    let second = by_upn(&dir.join("second.csv"));
    for (i, upn) in upns.iter().enumerate() {
        let want = if i == 1 {
            "not-approved"
        } else {
            "already-matched"
        };
        assert_eq!(second[upn]["outcome"], want, "{:?}", second[upn]);
    }
    assert_eq!(graph.stats().writes_total, 4, "nothing written twice");
}

#[test]
fn a_board_edits_approved_in_the_json_and_apply_writes_exactly_the_approved_rows() {
    let (dir, graph) = planned(4, "plan.json");
    let plan = dir.join("plan.json");
    let mut held = String::new();
    edit_json(&plan, |plan| {
        assert_eq!(plan["plan"]["version"], 1);
        let row = &mut plan["rows"][2];
        assert_eq!(row["action"], "stamp");
        assert!(row["target"]["id"].is_string(), "{row}");
        held = row["upn"].as_str().unwrap().to_string();
        row["approved"] = "no".into();
        plan["rows"][0]["comment"] = "ok by CAB".into();
    });
    let out = apply(&graph, &dir, "plan.json", "report.json");
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let report: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.join("report.json")).unwrap()).unwrap();
    let rows = report["rows"].as_array().unwrap();
    assert_eq!(rows[0]["comment"], "ok by CAB");
    for row in rows {
        let upn = row["upn"].as_str().unwrap();
        let want = if upn == held {
            "not-approved"
        } else {
            "stamped"
        };
        assert_eq!(row["outcome"], want, "{row}");
    }
    assert_eq!(graph.anchor_of(&held), None);
    assert_eq!(graph.stats().writes_total, 3);
}

#[test]
fn an_edited_decision_is_refused_naming_its_cell_and_nothing_is_written() {
    let (dir, graph) = planned(3, "plan.csv");
    edit_csv(&dir.join("plan.csv"), |line, header, _| {
        (line == 3 && header == "immutable_id").then(|| "1wfM9xV8fUSHbcAbDlqeOA==".into())
    });
    let before = requests(&graph);
    let out = apply(&graph, &dir, "plan.csv", "report.csv");
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert_eq!(requests(&graph), before, "refused before any Graph request");
    let said = stderr(&out);
    assert!(
        said.contains("plan.csv: line 3, column immutable_id: row 2's decision was edited"),
        "{said}"
    );
    assert!(
        said.contains("only approved and comment may be edited"),
        "{said}"
    );

    run(graph
        .hardmatch(&dir, &["plan"])
        .arg(dir.join("export.csv"))
        .args(["-o", "plan.xlsx"]));
    edit_workbook(&dir.join("plan.xlsx"), |sheet, row, header, _| {
        (sheet == "Rows" && row == 1 && header == "action")
            .then(|| "purge-holder-then-stamp".into())
    });
    let out = apply(&graph, &dir, "plan.xlsx", "report.csv");
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(
        stderr(&out)
            .contains("plan.xlsx: sheet Rows cell L2 (column action): row 1's decision was edited"),
        "{}",
        stderr(&out)
    );

    run(graph
        .hardmatch(&dir, &["plan"])
        .arg(dir.join("export.csv"))
        .args(["-o", "plan.json"]));
    edit_json(&dir.join("plan.json"), |plan| {
        plan["rows"][2]["target"]["previous_immutable_id"] = "1wfM9xV8fUSHbcAbDlqeOA==".into();
    });
    let out = apply(&graph, &dir, "plan.json", "report.csv");
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(
        stderr(&out).contains(
            "plan.json: rows[2].target.previous_immutable_id: row 3's decision was edited"
        ),
        "{}",
        stderr(&out)
    );

    // A cell the board may fill, but with something that is no answer.
    run(graph
        .hardmatch(&dir, &["plan"])
        .arg(dir.join("export.csv"))
        .args(["-o", "plan.csv"]));
    edit_csv(&dir.join("plan.csv"), |line, header, _| {
        (line == 4 && header == "approved").then(|| "maybe".into())
    });
    let out = apply(&graph, &dir, "plan.csv", "report.csv");
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("plan.csv: line 4, column approved: `maybe` is not yes, no or empty"),
        "{}",
        stderr(&out)
    );
    assert_eq!(graph.stats().writes_total, 0);
    assert!(!dir.join("report.csv").exists());
}

#[test]
fn a_plan_for_another_tenant_is_refused_naming_both() {
    let dir = Dir::new();
    let sample_tenant = Graph::sample();
    run(sample_tenant
        .hardmatch(&dir, &["plan"])
        .arg(sample("csvde.csv"))
        .args(["-o", "plan.csv"]));
    let (tenant, _) = generated(&dir, 3);
    let other = Graph::start(tenant, fast());
    let out = apply(&other, &dir, "plan.csv", "report.csv");
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(
        stderr(&out).contains(
            "plan.csv: a plan for tenant contoso.onmicrosoft.com, but this run signed in to tenant contoso.com"
        ),
        "{}",
        stderr(&out)
    );
    assert_eq!(other.stats().writes_total, 0);

    // Pointing the plan at the other tenant by hand breaks its digest.
    edit_csv(&dir.join("plan.csv"), |_, header, _| {
        (header == "plan_tenant").then(|| "contoso.com".into())
    });
    let out = apply(&other, &dir, "plan.csv", "report.csv");
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("plan.csv: the plan does not match its digest"),
        "{}",
        stderr(&out)
    );
    assert_eq!(other.stats().writes_total, 0);
}

/// A plan made offline from a tenant file names the tenant as a live read does (its initial
/// domain), so that it applies to the live tenant it was made for.
#[test]
fn a_plan_from_a_tenant_file_applies_to_its_live_tenant() {
    let dir = Dir::new();
    let out = run(dir
        .hardmatch()
        .arg("plan")
        .arg(sample("csvde.csv"))
        .arg("--snapshot")
        .arg(sample("tenant.json"))
        .args(["-o", "plan.csv"]));
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let graph = Graph::sample();
    let out = apply(&graph, &dir, "plan.csv", "report.csv");
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("plan of 21 rows for tenant contoso.onmicrosoft.com"),
        "{}",
        stderr(&out)
    );
    let report = by_upn(&dir.join("report.csv"));
    assert_eq!(report["alice.adams@contoso.com"]["outcome"], "stamped");
    assert!(graph.anchor_of("alice.adams@contoso.com").is_some());
}

#[test]
fn a_plan_of_another_version_or_no_plan_at_all_is_refused() {
    let (dir, graph) = planned(2, "plan.json");
    edit_json(&dir.join("plan.json"), |plan| {
        plan["plan"]["version"] = 99.into()
    });
    let out = apply(&graph, &dir, "plan.json", "report.csv");
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("plan.json: plan file version 99, written by a newer hardmatch; this hardmatch (0.1.0) reads plan file version 1"),
        "{}",
        stderr(&out)
    );
    run(graph
        .hardmatch(&dir, &["plan"])
        .arg(dir.join("export.csv"))
        .args(["-o", "plan.csv"]));
    edit_csv(&dir.join("plan.csv"), |_, header, _| {
        (header == "plan_version").then(|| "99".into())
    });
    let out = apply(&graph, &dir, "plan.csv", "report.csv");
    assert!(
        stderr(&out).contains("plan.csv: plan file version 99"),
        "{}",
        stderr(&out)
    );

    dir.write("other.json", r#"{"users": []}"#);
    let out = apply(&graph, &dir, "other.json", "report.csv");
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("other.json: not a hardmatch plan"),
        "{}",
        stderr(&out)
    );

    // A plan.json from before plan files had a version: a report's rows, no record.
    dir.write("old.json", r#"{"summary": {}, "rows": []}"#);
    let out = apply(&graph, &dir, "old.json", "report.csv");
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("old.json: a hardmatch report, or a plan from a hardmatch before plan files had a version"),
        "{}",
        stderr(&out)
    );

    // A report is not a plan, and is not planned again as if it were an export.
    run(graph
        .hardmatch(&dir, &["plan"])
        .arg(dir.join("export.csv"))
        .args(["-o", "plan.csv"]));
    assert_eq!(
        apply(&graph, &dir, "plan.csv", "applied.csv").status.code(),
        Some(0)
    );
    let out = apply(&graph, &dir, "applied.csv", "again.csv");
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("applied.csv: a hardmatch report, not a plan"),
        "{}",
        stderr(&out)
    );
    assert_eq!(graph.stats().writes_total, 2);
}
