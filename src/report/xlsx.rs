//! XLSX reports for the change board, made to be read on screen and filed on paper.
//!
//! - Summary: the run's facts (counts as numbers, times as Excel dates in UTC), the count of
//!   every outcome and a bar chart of them; it prints on one landscape page.
//! - Rows: one row per input row (frozen header, autofilter, widths that fit, `detail`
//!   wrapped, one colour per outcome group); it prints landscape, one page wide, with the
//!   header row on every page.
//!
//! Both sheets print with the tenant and the run's time in the page header and the sheet and
//! page number in the footer, so a filed page says where it came from.
//!
//! [`write_table`] writes a plain one-sheet table for commands without a summary (`ids`).
//!
//! Values are written as strings, numbers and dates, never as formulas, so no cell can run.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::io::Write;
use std::path::Path;

use chrono::{DateTime, Utc};
use rust_xlsxwriter::{
    Chart, ChartDataLabel, ChartFormat, ChartPoint, ChartSolidFill, Color, DataValidation,
    ExcelDateTime, Format, FormatAlign, Workbook, Worksheet, XlsxError,
};

use crate::error::Error;
use crate::outcome::{Group, Outcome, Warning};

use super::{count_outcomes, count_warnings, Record, Summary, COLUMNS};

pub(crate) fn write(path: &Path, records: &[Record], summary: &Summary) -> crate::Result<()> {
    write_with_facts(path, records, summary, None)
}

/// A plan file's workbook ([`crate::plan_file`]): [`write`], with the `approved` column
/// offering yes or no, and one more sheet, `sheet`, of labelled `facts` (the integrity
/// record).
pub(crate) fn write_plan(
    path: &Path,
    records: &[Record],
    summary: &Summary,
    sheet: &str,
    facts: &[(&str, String)],
) -> crate::Result<()> {
    write_with_facts(path, records, summary, Some((sheet, facts)))
}

fn write_with_facts(
    path: &Path,
    records: &[Record],
    summary: &Summary,
    facts_sheet: Option<(&str, &[(&str, String)])>,
) -> crate::Result<()> {
    let bytes = build(records, summary, facts_sheet)
        .map_err(|e| Error::Other(format!("{}: {e}", path.display())))?;
    let mut file = crate::private::create(path).map_err(|e| Error::io(path, e))?;
    file.write_all(&bytes).map_err(|e| Error::io(path, e))
}

/// A one-sheet workbook: a bold, frozen header with an autofilter, then `rows`; the columns
/// named in `numbers` are written as numbers.
pub(crate) fn write_table<'r>(
    path: &Path,
    sheet_name: &str,
    header: &[&str],
    numbers: &[&str],
    rows: impl Iterator<Item = Vec<Cow<'r, str>>>,
) -> crate::Result<()> {
    let build = || -> Result<Vec<u8>, XlsxError> {
        let mut workbook = Workbook::new();
        let sheet = workbook.add_worksheet().set_name(sheet_name)?;
        let bold = Format::new().set_bold();
        for (col, name) in header.iter().enumerate() {
            sheet.write_string_with_format(0, col as u16, *name, &bold)?;
        }
        let mut last = 0;
        for (i, cells) in rows.enumerate() {
            last = i as u32 + 1;
            for (col, cell) in cells.iter().enumerate().filter(|(_, c)| !c.is_empty()) {
                let number = numbers
                    .contains(&header[col])
                    .then(|| cell.parse::<f64>().ok())
                    .flatten();
                match number {
                    Some(n) => sheet.write_number(last, col as u16, n)?,
                    None => sheet.write_string(last, col as u16, cell.as_ref())?,
                };
            }
        }
        sheet.set_freeze_panes(1, 0)?;
        sheet.autofilter(0, 0, last, header.len() as u16 - 1)?;
        sheet.autofit();
        workbook.save_to_buffer()
    };
    let bytes = build().map_err(|e| Error::Other(format!("{}: {e}", path.display())))?;
    let mut file = crate::private::create(path).map_err(|e| Error::io(path, e))?;
    file.write_all(&bytes).map_err(|e| Error::io(path, e))
}

fn build(
    records: &[Record],
    summary: &Summary,
    facts_sheet: Option<(&str, &[(&str, String)])>,
) -> Result<Vec<u8>, XlsxError> {
    let mut workbook = Workbook::new();
    summary_sheet(workbook.add_worksheet(), records, summary)?;
    rows_sheet(workbook.add_worksheet(), records)?;
    if let Some((name, facts)) = facts_sheet {
        offer_approval(workbook.worksheet_from_name("Rows")?, records.len())?;
        labelled_sheet(workbook.add_worksheet(), name, facts)?;
    }
    for sheet in workbook.worksheets_mut() {
        page_header_and_footer(sheet, summary);
    }
    workbook.save_to_buffer()
}

const SUMMARY_SHEET: &str = "Summary";

/// The Summary's first row: the print title, repeated should the sheet ever need a second page.
const TITLE: &str = "hardmatch report";

/// How the Summary shows the run's start and finish: to the second, and saying the zone,
/// since Excel dates carry none.
const UTC_TIME: &str = "yyyy-mm-dd hh:mm:ss \"UTC\"";

/// One value of the Summary's top block, typed so that Excel can sort, sum and filter it.
enum Fact<'a> {
    Count(u64),
    Time(ExcelDateTime),
    Text(&'a str),
}

impl<'a> Fact<'a> {
    /// A note's value: a whole number is a count; anything else is text.
    fn of(value: &'a str) -> Fact<'a> {
        value.parse().map_or(Fact::Text(value), Fact::Count)
    }

    /// An RFC 3339 time as an Excel date in UTC (to the second); text if it is not one, so
    /// that nothing is lost.
    fn time(rfc3339: &'a str) -> Fact<'a> {
        DateTime::parse_from_rfc3339(rfc3339)
            .ok()
            .and_then(|t| ExcelDateTime::from_timestamp(t.timestamp()).ok())
            .map_or(Fact::Text(rfc3339), Fact::Time)
    }
}

/// The Summary's top block, in order: the run's facts, then every note.
fn facts<'a>(records: &[Record], summary: &'a Summary) -> Vec<(&'a str, Fact<'a>)> {
    let mut facts = vec![
        ("hardmatch version", Fact::Text(&summary.version)),
        ("command line", Fact::Text(&summary.command_line)),
        ("tenant", Fact::Text(&summary.tenant)),
        ("started", Fact::time(&summary.started)),
        ("finished", Fact::time(&summary.finished)),
        ("rows", Fact::Count(records.len() as u64)),
    ];
    facts.extend(
        summary
            .notes
            .iter()
            .map(|(name, value)| (name.as_str(), Fact::of(value))),
    );
    facts
}

/// The widths of the Summary's label and value columns, in characters.
const LABEL_WIDTH: f64 = 34.0;
const VALUE_WIDTH: f64 = 72.0;

fn summary_sheet(
    sheet: &mut Worksheet,
    records: &[Record],
    summary: &Summary,
) -> Result<(), XlsxError> {
    let formats = SummaryFormats::new();
    sheet.set_name(SUMMARY_SHEET)?;
    sheet.write_string_with_format(0, 0, TITLE, &Format::new().set_bold().set_font_size(14))?;
    let after_facts = write_facts(sheet, 2, facts(records, summary), &formats)?;
    let counts: Vec<(Outcome, usize)> = count_outcomes(records).into_iter().collect();
    let first_count = write_outcome_table(sheet, after_facts + 1, &counts, &formats)?;
    sheet.set_column_width(0, LABEL_WIDTH)?;
    sheet.set_column_width(1, VALUE_WIDTH)?;
    sheet.set_column_width(2, 2)?;
    if !counts.is_empty() {
        sheet.insert_chart(2, 3, &outcome_chart(&counts, first_count))?;
    }
    let warnings = count_warnings(records);
    if !warnings.is_empty() {
        let below_outcomes = first_count + counts.len() as u32 + 1;
        write_warning_table(sheet, below_outcomes, &warnings, &formats)?;
    }
    // One landscape page, whatever the number of notes or outcomes: the board files one sheet.
    sheet.set_landscape();
    sheet.set_print_fit_to_pages(1, 1);
    sheet.set_repeat_rows(0, 0)?;
    Ok(())
}

/// The Summary's cell formats. Every one is top-aligned and wraps, so that a long command
/// line or note grows its row downwards instead of running off the page.
struct SummaryFormats {
    text: Format,
    label: Format,
    number: Format,
    time: Format,
}

impl SummaryFormats {
    fn new() -> SummaryFormats {
        let text = Format::new().set_align(FormatAlign::Top).set_text_wrap();
        let number = text.clone().set_align(FormatAlign::Left);
        SummaryFormats {
            label: text.clone().set_bold(),
            time: number.clone().set_num_format(UTC_TIME),
            number,
            text,
        }
    }
}

/// Writes one labelled fact a row from `row` on, each row tall enough for its text, and
/// returns the row after the last.
fn write_facts(
    sheet: &mut Worksheet,
    mut row: u32,
    facts: Vec<(&str, Fact)>,
    formats: &SummaryFormats,
) -> Result<u32, XlsxError> {
    for (name, fact) in facts {
        sheet.write_string_with_format(row, 0, name, &formats.label)?;
        let value_lines = match fact {
            Fact::Count(n) => {
                sheet.write_number_with_format(row, 1, n as f64, &formats.number)?;
                1
            }
            Fact::Time(t) => {
                sheet.write_datetime_with_format(row, 1, t, &formats.time)?;
                1
            }
            Fact::Text(text) => {
                sheet.write_string_with_format(row, 1, text, &formats.text)?;
                wrapped_lines(text, VALUE_WIDTH)
            }
        };
        let lines = wrapped_lines(name, LABEL_WIDTH).max(value_lines);
        fit_row_height(sheet, row, lines)?;
        row += 1;
    }
    Ok(row)
}

/// Writes the outcome table's heading at `row` and a row per outcome below it, and returns
/// the row of the first outcome.
fn write_outcome_table(
    sheet: &mut Worksheet,
    row: u32,
    counts: &[(Outcome, usize)],
    formats: &SummaryFormats,
) -> Result<u32, XlsxError> {
    sheet.write_string_with_format(row, 0, "outcome", &formats.label)?;
    sheet.write_string_with_format(row, 1, "rows", &formats.label)?;
    for (at, (outcome, count)) in (row + 1..).zip(counts) {
        let fill = Tone::of(*outcome).cell_format();
        sheet.write_string_with_format(at, 0, outcome.code(), &fill)?;
        sheet.write_number_with_format(at, 1, *count as f64, &formats.number)?;
    }
    Ok(row + 1)
}

/// The count of every warning (rows that can be stamped but that the admin should look at).
fn write_warning_table(
    sheet: &mut Worksheet,
    row: u32,
    warnings: &BTreeMap<Warning, usize>,
    formats: &SummaryFormats,
) -> Result<(), XlsxError> {
    sheet.write_string_with_format(row, 0, "warning", &formats.label)?;
    sheet.write_string_with_format(row, 1, "rows", &formats.label)?;
    for (at, (warning, count)) in (row + 1..).zip(warnings) {
        sheet.write_string(at, 0, warning.code())?;
        sheet.write_number_with_format(at, 1, *count as f64, &formats.number)?;
    }
    Ok(())
}

/// A bar per outcome, in the table's order and colours, from the table's own cells (rows
/// `first..` of the Summary's first two columns).
fn outcome_chart(counts: &[(Outcome, usize)], first: u32) -> Chart {
    let last = first + counts.len() as u32 - 1;
    let points: Vec<ChartPoint> = counts
        .iter()
        .map(|(outcome, _)| {
            ChartPoint::new().set_format(
                ChartFormat::new()
                    .set_solid_fill(ChartSolidFill::new().set_color(Tone::of(*outcome).bar())),
            )
        })
        .collect();
    let mut chart = Chart::new_bar();
    chart
        .add_series()
        .set_name("rows")
        .set_categories((SUMMARY_SHEET, first, 0, last, 0))
        .set_values((SUMMARY_SHEET, first, 1, last, 1))
        .set_points(&points)
        .set_data_label(ChartDataLabel::new().show_value())
        .set_gap(60);
    chart.title().set_name("Rows by outcome");
    chart.legend().set_hidden();
    // A bar chart draws its categories bottom-up; reversed, they read like the table.
    chart.y_axis().set_reverse();
    chart.x_axis().set_num_format("0");
    chart
        .set_width(520)
        .set_height(120 + 26 * counts.len() as u32);
    chart
}

/// A drop-down of yes and no on every row's `approved` cell. Blank stays allowed (rows the
/// plan does not write); anything else Excel refuses as it is typed (apply refuses it too).
fn offer_approval(sheet: &mut Worksheet, rows: usize) -> Result<(), XlsxError> {
    if rows == 0 {
        return Ok(());
    }
    let approved = column("approved") as u16;
    let validation = DataValidation::new()
        .allow_list_strings(&["yes", "no"])?
        .set_input_title("approved")?
        .set_input_message("yes: write this row; no: hold it back")?;
    sheet.add_data_validation(1, approved, rows as u32, approved, &validation)?;
    Ok(())
}

/// A sheet of `label | value` rows, as text, wide enough to read.
fn labelled_sheet(
    sheet: &mut Worksheet,
    name: &str,
    facts: &[(&str, String)],
) -> Result<(), XlsxError> {
    sheet.set_name(name)?;
    let bold = Format::new().set_bold();
    for (row, (label, value)) in (0..).zip(facts) {
        sheet.write_string_with_format(row, 0, *label, &bold)?;
        sheet.write_string(row, 1, value)?;
    }
    sheet.set_column_width(0, LABEL_WIDTH)?;
    sheet.set_column_width(1, VALUE_WIDTH)?;
    Ok(())
}

/// Columns written as numbers, so that Excel sorts and filters them as numbers.
const NUMERIC_COLUMNS: [&str; 4] = ["row", "line", "http_status", "attempts"];

/// The widest a Rows column grows to fit its cells: wider than any id, narrow enough that a
/// page holds many columns. Longer cells (paths, details, long UPNs) wrap instead.
const MAX_WIDTH: usize = 40;

/// Room beside a column's longest cell: ids in capitals are wider than the digits a column's
/// width counts, and must not wrap.
const PADDING: f64 = 2.0;

fn rows_sheet(sheet: &mut Worksheet, records: &[Record]) -> Result<(), XlsxError> {
    sheet.set_name("Rows")?;
    let header = Format::new()
        .set_bold()
        .set_background_color(Color::RGB(0xD9D9D9));
    // The longest cell of each column, header included, in characters.
    let mut longest: Vec<usize> = COLUMNS.iter().map(|c| c.len()).collect();
    for (col, name) in COLUMNS.iter().enumerate() {
        sheet.write_string_with_format(0, col as u16, *name, &header)?;
    }
    let outcome_col = column("outcome");
    for (i, record) in records.iter().enumerate() {
        let row = i as u32 + 1;
        for (col, cell) in record.cells().iter().enumerate() {
            if cell.is_empty() {
                continue;
            }
            longest[col] = longest[col].max(cell.chars().count());
            let number = NUMERIC_COLUMNS
                .contains(&COLUMNS[col])
                .then(|| cell.parse::<f64>().ok())
                .flatten();
            match (number, col == outcome_col, record.outcome) {
                (Some(n), _, _) => sheet.write_number(row, col as u16, n)?,
                (None, true, Some(outcome)) => sheet.write_string_with_format(
                    row,
                    col as u16,
                    cell.as_ref(),
                    &Tone::of(outcome).cell_format(),
                )?,
                _ => sheet.write_string(row, col as u16, cell.as_ref())?,
            };
        }
    }
    // Cells written without a format take their column's: top-aligned, so that a row reads
    // across, and wrapped where a cell is longer than the column, instead of being cut off.
    let top = Format::new().set_align(FormatAlign::Top);
    let wrap = top.clone().set_text_wrap();
    let wrapped = |col: usize| longest[col] > MAX_WIDTH;
    for (col, chars) in longest.iter().enumerate() {
        let width = (*chars).min(MAX_WIDTH) as f64 + PADDING;
        sheet.set_column_width(col as u16, width)?;
        sheet.set_column_format(col as u16, if wrapped(col) { &wrap } else { &top })?;
    }
    for (i, record) in records.iter().enumerate() {
        let lines = record
            .cells()
            .iter()
            .enumerate()
            .filter(|(col, _)| wrapped(*col))
            .map(|(_, cell)| wrapped_lines(cell, MAX_WIDTH as f64 + PADDING))
            .max()
            .unwrap_or(1);
        fit_row_height(sheet, i as u32 + 1, lines)?;
    }
    sheet.set_freeze_panes(1, 0)?;
    sheet.autofilter(0, 0, records.len() as u32, COLUMNS.len() as u16 - 1)?;
    sheet.set_landscape();
    sheet.set_print_fit_to_pages(1, 0);
    sheet.set_repeat_rows(0, 0)?;
    Ok(())
}

/// About how many lines `text` takes wrapped in a column `width` characters wide. A column's
/// width counts digits, which are wider than the average letter: a line holds about a fifth
/// more characters than that (a tenth is kept back for word breaks).
fn wrapped_lines(text: &str, width: f64) -> usize {
    let per_line = width * 1.1;
    text.split('\n')
        .map(|line| (line.chars().count() as f64 / per_line).ceil().max(1.0) as usize)
        .sum()
}

/// The height of a default (11 point) line, in points.
const LINE_HEIGHT: f64 = 15.0;

/// Makes a row tall enough for its wrapped text. Excel grows such rows when it opens the file,
/// but LibreOffice (and so a PDF made with it) keeps the stored height and hides the rest.
fn fit_row_height(sheet: &mut Worksheet, row: u32, lines: usize) -> Result<(), XlsxError> {
    if lines > 1 {
        sheet.set_row_height(row, LINE_HEIGHT * lines as f64)?;
    }
    Ok(())
}

fn column(name: &str) -> usize {
    COLUMNS
        .iter()
        .position(|c| *c == name)
        .unwrap_or_else(|| panic!("no {name} column"))
}

/// Every printed page says which tenant and which run it belongs to, and where it falls.
fn page_header_and_footer(sheet: &mut Worksheet, summary: &Summary) {
    let when = DateTime::parse_from_rfc3339(&summary.finished).map_or_else(
        |_| summary.finished.clone(),
        |t| {
            t.with_timezone(&Utc)
                .format("%Y-%m-%d %H:%M UTC")
                .to_string()
        },
    );
    let tenant = match summary.tenant.as_str() {
        "" => String::new(),
        tenant => format!("tenant {tenant}"),
    };
    sheet.set_header(format!(
        "&L{}&C{}&R{}",
        TITLE,
        header_text(&tenant),
        header_text(&when)
    ));
    sheet.set_footer("&L&A&RPage &P of &N");
}

/// Text for a page header: `&` starts a control code there, so a literal one is doubled.
fn header_text(text: &str) -> String {
    text.replace('&', "&&")
}

/// How an outcome is coloured, on the Rows and Summary sheets and in the chart: green for
/// success, amber for input and target problems and for rows still waiting on the sync
/// cycle, red for conflicts, service errors and failed matches.
#[derive(Clone, Copy)]
enum Tone {
    Good,
    Attention,
    Bad,
}

impl Tone {
    fn of(outcome: Outcome) -> Tone {
        match outcome.group() {
            _ if outcome.is_success() => Tone::Good,
            Group::Input | Group::Target => Tone::Attention,
            Group::Verify if outcome == Outcome::AwaitingSync => Tone::Attention,
            Group::Success | Group::AnchorConflict | Group::Service | Group::Verify => Tone::Bad,
        }
    }

    /// Excel's pale "good", "neutral" and "bad" cell fills.
    fn cell_format(self) -> Format {
        let fill = match self {
            Tone::Good => 0xC6EFCE,
            Tone::Attention => 0xFFEB9C,
            Tone::Bad => 0xFFC7CE,
        };
        Format::new()
            .set_background_color(Color::RGB(fill))
            .set_align(FormatAlign::Top)
    }

    /// Stronger shades of the same colours, for bars that must stand out on white paper.
    fn bar(self) -> Color {
        Color::RGB(match self {
            Tone::Good => 0x4CA64C,
            Tone::Attention => 0xF0B000,
            Tone::Bad => 0xD9534F,
        })
    }
}

#[cfg(test)]
mod tests {
    use std::io::{Cursor, Read};

    use calamine::{Data, Reader, Xlsx};

    use super::*;

    /// A time the Summary cannot read as RFC 3339 is shown as it was given, never as some
    /// other date; a run with no rows has its Summary but no chart.
    #[test]
    fn an_odd_time_stays_text_and_no_rows_means_no_chart() {
        let summary = Summary {
            tenant: "R&D".into(),
            started: "not a time".into(),
            finished: "2026-12-03T08:10:00.123456789+01:00".into(),
            ..Summary::default()
        };
        let bytes = build(&[], &summary, None).unwrap();
        let mut workbook = Xlsx::new(Cursor::new(&bytes)).unwrap();
        let sheet = workbook.worksheet_range(SUMMARY_SHEET).unwrap();
        let value = |label: &str| {
            sheet
                .rows()
                .find(|row| row[0] == Data::String(label.into()))
                .map(|row| row[1].clone())
        };
        assert_eq!(value("started"), Some(Data::String("not a time".into())));
        let Some(Data::DateTime(finished)) = value("finished") else {
            panic!("{:?}", value("finished"));
        };
        // 07:10:00 UTC, the nanoseconds dropped.
        let expected = 46359.0 + 7.0 / 24.0 + 10.0 / 1440.0;
        assert!((finished.as_f64() - expected).abs() < 1e-9, "{finished:?}");
        assert_eq!(value("rows"), Some(Data::Float(0.0)));

        let mut zip = zip::ZipArchive::new(Cursor::new(&bytes)).unwrap();
        assert!(zip.by_name("xl/charts/chart1.xml").is_err());
        let mut sheet1 = String::new();
        zip.by_name("xl/worksheets/sheet1.xml")
            .unwrap()
            .read_to_string(&mut sheet1)
            .unwrap();
        assert!(
            sheet1.contains("&amp;Ctenant R&amp;&amp;D&amp;R2026-12-03 07:10 UTC"),
            "the header's & doubled: {sheet1}"
        );
    }

    #[test]
    fn a_plan_workbook_offers_yes_or_no_in_approved_and_has_its_facts_sheet() {
        let record = Record {
            row: 1,
            approved: "yes".into(),
            ..Record::default()
        };
        let facts = [("field", "value".to_string()), ("version", "1".to_string())];
        let bytes = build(&[record], &Summary::default(), Some(("Plan", &facts))).unwrap();
        let mut zip = zip::ZipArchive::new(Cursor::new(&bytes)).unwrap();
        let mut rows = String::new();
        zip.by_name("xl/worksheets/sheet2.xml")
            .unwrap()
            .read_to_string(&mut rows)
            .unwrap();
        let approved = crate::source::column_letters(column("approved") as u32);
        assert!(
            rows.contains(&format!(r#"sqref="{approved}2""#)) && rows.contains("\"yes,no\""),
            "{rows}"
        );
        assert!(
            zip.by_name("xl/worksheets/sheet3.xml").is_ok(),
            "the Plan sheet"
        );
    }
}
