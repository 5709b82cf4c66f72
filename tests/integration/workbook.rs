//! The change board's workbook (issue 18): a Summary that prints on one landscape page, with
//! counts as numbers, times as Excel dates and a chart of outcomes, and a Rows sheet that
//! prints one page wide with its header on every page.
//!
//! CI has no LibreOffice, so this checks what the workbook itself says: its typed cells, read
//! back with calamine, and its print settings, read from the XML inside the zip.
//! `scripts/render-workbook.sh` prints it with LibreOffice and counts the pages.

use std::io::Read;
use std::path::Path;

use calamine::{Data, Reader};

use crate::util::{run, sample, stderr, Dir, Graph};

/// Plans the samples (14 rows) to `plan.xlsx` and returns the test's directory.
fn plan_workbook(graph: &Graph) -> Dir {
    let dir = Dir::new();
    let out = run(graph
        .hardmatch(&dir, &["plan"])
        .arg(sample("excel-de.csv"))
        .args(["-o", "plan.xlsx"]));
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    dir
}

/// The plan's rows as `report::read` reads them back from the Rows sheet.
fn plan_rows(path: &Path) -> Vec<hardmatch::report::Record> {
    hardmatch::report::read::read(path).unwrap()
}

/// The Summary's value beside `label` in its first column.
fn summary_value(path: &Path, label: &str) -> Data {
    let mut workbook = calamine::open_workbook_auto(path).unwrap();
    let summary = workbook.worksheet_range("Summary").unwrap();
    summary
        .rows()
        .find(|row| row[0] == Data::String(label.to_string()))
        .unwrap_or_else(|| panic!("no {label} in the Summary"))[1]
        .clone()
}

/// A part of the xlsx zip, as text.
fn part(path: &Path, name: &str) -> String {
    let mut zip = zip::ZipArchive::new(std::fs::File::open(path).unwrap()).unwrap();
    let mut text = String::new();
    zip.by_name(name)
        .unwrap_or_else(|e| panic!("{name}: {e}"))
        .read_to_string(&mut text)
        .unwrap();
    text
}

/// The XML of the sheet called `name`, found the way Excel finds it: workbook.xml gives the
/// sheet's relationship id, and the workbook's relationships give its part.
fn sheet_xml(path: &Path, name: &str) -> String {
    let workbook = part(path, "xl/workbook.xml");
    let sheet = element(&workbook, &format!(r#"<sheet name="{name}""#));
    let id = attribute(sheet, "r:id");
    let rels = part(path, "xl/_rels/workbook.xml.rels");
    let rel = element(&rels, &format!(r#"Id="{id}""#));
    part(path, &format!("xl/{}", attribute(rel, "Target")))
}

/// The whole element (`<` to `>`) that contains `needle`.
fn element<'a>(xml: &'a str, needle: &str) -> &'a str {
    let at = xml
        .find(needle)
        .unwrap_or_else(|| panic!("no {needle} in {xml}"));
    let start = xml[..=at].rfind('<').unwrap();
    let end = at + xml[at..].find('>').unwrap() + 1;
    &xml[start..end]
}

/// The text inside the first `<tag>...</tag>`.
fn text_of<'a>(xml: &'a str, tag: &str) -> &'a str {
    let open = format!("<{tag}>");
    let at = xml
        .find(&open)
        .unwrap_or_else(|| panic!("no {open} in {xml}"))
        + open.len();
    &xml[at..at + xml[at..].find("</").unwrap()]
}

fn attribute<'a>(element: &'a str, name: &str) -> &'a str {
    let key = format!(r#" {name}=""#);
    let at = element
        .find(&key)
        .unwrap_or_else(|| panic!("no {name} in {element}"))
        + key.len();
    &element[at..at + element[at..].find('"').unwrap()]
}

/// An Excel date (days since 1899-12-30) as Unix seconds.
fn unix_seconds(serial: f64) -> f64 {
    (serial - 25_569.0) * 86_400.0
}

#[test]
fn issue18_summary_counts_are_numbers_and_times_are_utc_dates() {
    let graph = Graph::sample();
    let before = chrono::Utc::now().timestamp() as f64;
    let dir = plan_workbook(&graph);
    let after = chrono::Utc::now().timestamp() as f64;
    let path = dir.join("plan.xlsx");

    let rows = plan_rows(&path).len();
    assert!(rows > 10, "{rows}");
    assert_eq!(summary_value(&path, "rows"), Data::Float(rows as f64));
    assert!(
        matches!(summary_value(&path, "Graph requests"), Data::Float(n) if n >= 4.0),
        "{:?}",
        summary_value(&path, "Graph requests")
    );
    let would_stamp = plan_rows(&path)
        .iter()
        .filter(|r| r.outcome == Some(hardmatch::outcome::Outcome::WouldStamp))
        .count();
    assert_eq!(
        summary_value(&path, "would-stamp"),
        Data::Float(would_stamp as f64)
    );
    for label in ["started", "finished"] {
        let Data::DateTime(time) = summary_value(&path, label) else {
            panic!("{label}: {:?} is not a date", summary_value(&path, label));
        };
        assert!(time.is_datetime(), "{label}: {time:?}");
        let seconds = unix_seconds(time.as_f64());
        // Whole seconds (no nanoseconds), in UTC: the run's own clock, not shifted by a zone.
        assert!(
            (seconds - seconds.round()).abs() < 1e-3,
            "{label}: {seconds}"
        );
        assert!(
            (before - 1.0..=after + 1.0).contains(&seconds),
            "{label}: {seconds} not in {before}..{after}"
        );
    }
    let styles = part(&path, "xl/styles.xml");
    assert!(
        styles.contains(r#"formatCode="yyyy-mm-dd hh:mm:ss &quot;UTC&quot;""#),
        "{styles}"
    );
}

#[test]
fn issue18_summary_prints_on_one_landscape_page_with_a_chart() {
    let graph = Graph::sample();
    let dir = plan_workbook(&graph);
    let path = dir.join("plan.xlsx");
    let summary = sheet_xml(&path, "Summary");

    // Fit to one page wide and one high (1 is the default, so neither is written).
    assert!(
        summary.contains(r#"<pageSetUpPr fitToPage="1"/>"#),
        "{summary}"
    );
    let setup = element(&summary, "<pageSetup ");
    assert_eq!(attribute(setup, "orientation"), "landscape");
    assert!(
        !setup.contains("fitToWidth") && !setup.contains("fitToHeight"),
        "{setup}"
    );
    // Every page says which tenant and run it is from, and which sheet and page it is.
    let header = text_of(&summary, "oddHeader");
    let Data::String(tenant) = summary_value(&path, "tenant") else {
        panic!("no tenant in the Summary");
    };
    assert!(header.contains(&format!("tenant {tenant}")), "{header}");
    assert_eq!(
        text_of(&summary, "oddFooter"),
        "&amp;L&amp;A&amp;RPage &amp;P of &amp;N"
    );
    let workbook = part(&path, "xl/workbook.xml");
    assert!(
        workbook.contains(
            r#"<definedName name="_xlnm.Print_Titles" localSheetId="0">Summary!$1:$1</definedName>"#
        ),
        "{workbook}"
    );

    // The chart: one bar per outcome, drawn from the Summary's own outcome table.
    assert!(summary.contains("<drawing r:id="), "{summary}");
    let chart = part(&path, "xl/charts/chart1.xml");
    assert!(chart.contains(r#"<c:barDir val="bar"/>"#), "{chart}");
    assert!(chart.contains("<c:f>Summary!$A$"), "{chart}");
    let outcomes = plan_rows(&path)
        .iter()
        .filter_map(|r| r.outcome)
        .collect::<std::collections::BTreeSet<_>>()
        .len();
    assert_eq!(
        chart.matches("<c:dPt>").count(),
        outcomes,
        "one colour per bar"
    );
}

#[test]
fn issue18_rows_print_one_page_wide_with_the_header_on_every_page() {
    let graph = Graph::sample();
    let dir = plan_workbook(&graph);
    let path = dir.join("plan.xlsx");
    let rows = sheet_xml(&path, "Rows");

    assert!(rows.contains(r#"<pageSetUpPr fitToPage="1"/>"#), "{rows}");
    let setup = element(&rows, "<pageSetup ");
    assert_eq!(attribute(setup, "orientation"), "landscape");
    // One page wide (the default 1), as many pages down as it takes.
    assert_eq!(attribute(setup, "fitToHeight"), "0");
    assert!(!setup.contains("fitToWidth"), "{setup}");
    let workbook = part(&path, "xl/workbook.xml");
    assert!(
        workbook.contains(
            r#"<definedName name="_xlnm.Print_Titles" localSheetId="1">Rows!$1:$1</definedName>"#
        ),
        "{workbook}"
    );

    // `detail` wraps: its column's style has wrapText, and a row whose detail takes several
    // lines is stored that tall.
    let column = 1 + hardmatch::report::COLUMNS
        .iter()
        .position(|c| *c == "detail")
        .unwrap();
    let detail = element(&rows, &format!(r#"<col min="{column}" max="{column}""#));
    let style: usize = attribute(detail, "style").parse().unwrap();
    let styles = part(&path, "xl/styles.xml");
    let cell_xfs = &styles[styles.find("<cellXfs").unwrap()..];
    let xf = cell_xfs.split("<xf ").nth(style + 1).unwrap();
    assert!(xf.contains(r#"wrapText="1""#), "style {style}: {xf}");
    assert!(rows.contains(r#"customHeight="1""#), "{rows}");
}
