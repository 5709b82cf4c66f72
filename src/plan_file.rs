//! The plan file: what `hardmatch plan -o plan.xlsx|plan.csv|plan.json` writes for a change
//! board to approve, and what `hardmatch apply PLAN` carries out (docs/plan-file.md).
//!
//! A plan file is the plan's rows as typed decisions ([`PlanRow`]: the [`Action`], the target
//! and the ImmutableId it is expected to hold, the holder of a conflicting anchor), an
//! `approved` and a `comment` column for the board, and an [`Integrity`] record: the
//! version of this format, the input file's SHA-256, the tenant, the plan's time, the
//! hardmatch version and a SHA-256 digest of every row's decision. The board may change
//! `approved` and `comment`, nothing else: [`Plan::detect`] names the first cell edited.
//!
//! The report's [`Record`] is this module's output (the CSV and XLSX forms are a report with
//! the record beside it), never the work: [`Plan::planned`] turns the typed rows, with the
//! board's answers and the drift check, into the [`PlannedRow`]s apply writes from.

use std::collections::HashMap;
use std::path::Path;

use aws_lc_rs::digest::{digest, Context, SHA256};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::error::Error;
use crate::outcome::{Outcome, Verdict, Warnings};
use crate::plan::{Action, Holder, TargetState};
use crate::planned::{Board, Named, PlannedRow};
use crate::report::read::{csv_reader, is_report, Table};
use crate::report::{self, Format, Record, Summary, COLUMNS};
use crate::resume::InputFingerprint;
use crate::tenant::{Tenant, User};

/// The plan file format this hardmatch writes and reads.
pub(crate) const VERSION: u32 = 1;

/// The columns the board may change; every other column is part of a row's decision.
const BOARD_COLUMNS: [&str; 2] = ["approved", "comment"];

/// The column that holds a row's own digest.
const DIGEST_COLUMN: &str = "decision_digest";

/// The XLSX sheet that holds the integrity record.
const PLAN_SHEET: &str = "Plan";

/// A plan older than this is applied with a warning: the tenant has had time to move on.
const OLD_PLAN: chrono::Duration = chrono::Duration::days(1);

/// What ties a plan file to its input, its tenant and its decisions.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Integrity {
    /// The plan file format ([`VERSION`]).
    pub(crate) version: u32,
    /// The export the plan was made from, as given.
    pub(crate) input: String,
    pub(crate) input_sha256: String,
    pub(crate) tenant: String,
    /// RFC 3339, UTC.
    pub(crate) planned_at: String,
    pub(crate) hardmatch_version: String,
    /// How many rows the plan has.
    pub(crate) rows: usize,
    /// SHA-256 of every row's decision, in row order (see [`plan_digest`]).
    pub(crate) digest: String,
}

/// The integrity record's fields, in the order the CSV columns and the Plan sheet list them.
const INTEGRITY_FIELDS: [&str; 8] = [
    "version",
    "input",
    "input_sha256",
    "tenant",
    "planned_at",
    "hardmatch_version",
    "rows",
    "digest",
];

impl Integrity {
    fn values(&self) -> [String; 8] {
        [
            self.version.to_string(),
            self.input.clone(),
            self.input_sha256.clone(),
            self.tenant.clone(),
            self.planned_at.clone(),
            self.hardmatch_version.clone(),
            self.rows.to_string(),
            self.digest.clone(),
        ]
    }

    /// Reads the record from its fields by name; `place` says where a field is, for an error.
    fn from_fields(
        path: &Path,
        field: impl Fn(&str) -> Option<String>,
        place: impl Fn(&str) -> String,
    ) -> crate::Result<Integrity> {
        let text = |name: &str| {
            field(name).ok_or_else(|| {
                plan_error(path, format!("no {} in the integrity record", place(name)))
            })
        };
        let number = |name: &str| -> crate::Result<usize> {
            let value = text(name)?;
            value.trim().parse().map_err(|_| {
                plan_error(path, format!("{}: `{value}` is not a number", place(name)))
            })
        };
        let version = u32::try_from(number("version")?).unwrap_or(u32::MAX);
        check_version(path, version)?;
        Ok(Integrity {
            version,
            input: text("input")?,
            input_sha256: text("input_sha256")?,
            tenant: text("tenant")?,
            planned_at: text("planned_at")?,
            hardmatch_version: text("hardmatch_version")?,
            rows: number("rows")?,
            digest: text("digest")?,
        })
    }
}

/// The target a decision rested on, and the ImmutableId it is expected to hold when the plan
/// is applied (drift from it is `target-changed-since-plan`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Target {
    pub(crate) id: String,
    pub(crate) user_principal_name: String,
    pub(crate) previous_immutable_id: Option<String>,
}

/// One row of a plan: the decision, typed, and the board's cells.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub(crate) struct PlanRow {
    pub(crate) row: usize,
    pub(crate) source: String,
    pub(crate) line: u64,
    pub(crate) upn: String,
    pub(crate) target_upn: String,
    pub(crate) object_guid: String,
    pub(crate) immutable_id: String,
    pub(crate) anchor_source: String,
    pub(crate) outcome: Outcome,
    pub(crate) action: Action,
    pub(crate) warnings: Warnings,
    pub(crate) detail: String,
    pub(crate) target: Option<Target>,
    pub(crate) holder: Option<Holder>,
    pub(crate) decision_digest: String,
    /// `yes`, `no` or empty, as the board left it (checked by [`Approval::parse`]).
    pub(crate) approved: String,
    pub(crate) comment: String,
}

impl PlanRow {
    /// A planned report record as a plan row. Fails with the column that does not read.
    fn of(record: &Record) -> Result<PlanRow, (&'static str, String)> {
        let outcome = record.outcome.ok_or((
            "outcome",
            "empty: every plan row has an outcome".to_string(),
        ))?;
        // Rows the offline stages settled (a bad anchor) never reached the planner: no action.
        let action = match record.action.as_str() {
            "" => Some(Action::None),
            code => Action::from_code(code),
        }
        .ok_or((
            "action",
            format!("`{}` is not an action hardmatch plans", record.action),
        ))?;
        let given = |s: &String| (!s.is_empty()).then(|| s.clone());
        Ok(PlanRow {
            row: record.row,
            source: record.source.clone(),
            line: record.line,
            upn: record.upn.clone(),
            target_upn: record.target_upn.clone(),
            object_guid: record.object_guid.clone(),
            immutable_id: record.immutable_id.clone(),
            anchor_source: record.anchor_source.clone(),
            outcome,
            action,
            warnings: record.warnings.clone(),
            detail: record.detail.clone(),
            target: given(&record.cloud_user_id).map(|id| Target {
                id,
                user_principal_name: record.cloud_upn.clone(),
                previous_immutable_id: record
                    .previous_immutable_id
                    .clone()
                    .filter(|v| !v.is_empty()),
            }),
            holder: given(&record.holder_id).map(|id| Holder {
                id,
                user_principal_name: record.holder_upn.clone(),
                deleted_date_time: given(&record.holder_deleted_at),
            }),
            decision_digest: record.decision_digest.clone(),
            approved: record.approved.clone(),
            comment: record.comment.clone(),
        })
    }

    /// The row as a report record: what a plan file's CSV and XLSX forms show, and where the
    /// report of `apply PLAN` starts from.
    pub(crate) fn record(&self) -> Record {
        let target = self.target.as_ref();
        let holder = self.holder.as_ref();
        Record {
            cloud_user_id: target.map(|t| t.id.clone()).unwrap_or_default(),
            cloud_upn: target
                .map(|t| t.user_principal_name.clone())
                .unwrap_or_default(),
            previous_immutable_id: target.and_then(|t| t.previous_immutable_id.clone()),
            action: self.action.code().to_string(),
            outcome: Some(self.outcome),
            warnings: self.warnings.clone(),
            detail: self.detail.clone(),
            holder_id: holder.map(|h| h.id.clone()).unwrap_or_default(),
            holder_upn: holder
                .map(|h| h.user_principal_name.clone())
                .unwrap_or_default(),
            holder_deleted_at: holder
                .and_then(|h| h.deleted_date_time.clone())
                .unwrap_or_default(),
            approved: self.approved.clone(),
            comment: self.comment.clone(),
            decision_digest: self.decision_digest.clone(),
            ..self.named().record(self.row)
        }
    }

    /// The cells that name the row: where it came from, its UPN and anchor.
    fn named(&self) -> Named {
        Named {
            source: self.source.clone(),
            line: self.line,
            upn: self.upn.clone(),
            target_upn: self.target_upn.clone(),
            object_guid: self.object_guid.clone(),
            immutable_id: self.immutable_id.clone(),
            anchor_source: self.anchor_source.clone(),
        }
    }

    /// The row as a write run's plan: its decision, typed, and the board's cells for the
    /// report. The target's state is the plan's (the writer re-reads it from the tenant).
    fn planned(&self) -> PlannedRow {
        let named = self.named();
        let verdict = Verdict::new(self.outcome, self.detail.clone());
        let mut planned = PlannedRow::new(self.row, named, verdict);
        planned.warnings = self.warnings.clone();
        planned.action = Some(self.action);
        planned.target = self.target.as_ref().map(|t| TargetState {
            id: t.id.clone(),
            user_principal_name: t.user_principal_name.clone(),
            on_premises_immutable_id: t.previous_immutable_id.clone(),
            on_premises_sync_enabled: false,
            on_premises_object_identifier: None,
        });
        planned.previous_immutable_id = self
            .target
            .as_ref()
            .and_then(|t| t.previous_immutable_id.clone());
        planned.holder = self.holder.clone();
        planned.new_anchor = (self.action != Action::Clear).then(|| self.immutable_id.clone());
        planned.board = Board {
            approved: self.approved.clone(),
            comment: self.comment.clone(),
            decision_digest: self.decision_digest.clone(),
        };
        planned
    }

    /// Whether the plan would write this row.
    fn writes(&self) -> bool {
        self.action != Action::None
            && matches!(self.outcome, Outcome::WouldStamp | Outcome::WouldClear)
    }
}

/// The board's answer for one row.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Approval {
    Yes,
    No,
    /// Left empty: the plan writes nothing for the row, or the board cleared the cell.
    Empty,
}

impl Approval {
    /// `yes` or `no` in any case, or empty; anything else is not an answer.
    pub(crate) fn parse(cell: &str) -> Option<Approval> {
        match cell.trim().to_ascii_lowercase().as_str() {
            "yes" => Some(Approval::Yes),
            "no" => Some(Approval::No),
            "" => Some(Approval::Empty),
            _ => None,
        }
    }
}

/// The decision cells of a record: every report column but the board's and the digest's.
fn decision_cells(record: &Record) -> impl Iterator<Item = (&'static str, String)> + '_ {
    COLUMNS
        .into_iter()
        .zip(record.cells())
        .filter(|(column, _)| !BOARD_COLUMNS.contains(column) && *column != DIGEST_COLUMN)
        .map(|(column, cell)| (column, cell.into_owned()))
}

/// A row's own digest: four hex digits of SHA-256 per decision column, so that an edit is
/// found in its column, not only in its row. [`plan_digest`] is the full SHA-256 that
/// protects the plan as a whole.
fn row_digest(record: &Record) -> String {
    decision_cells(record)
        .map(|(column, cell)| column_hash(column, &cell))
        .collect()
}

fn column_hash(column: &str, cell: &str) -> String {
    let hash = digest(&SHA256, format!("{column}\0{cell}").as_bytes());
    hex::encode(&hash.as_ref()[..2])
}

/// SHA-256 of the integrity record's other fields (so that a plan cannot be pointed at
/// another tenant) and of every row's decision cells, rows in `row` order (a board that sorts
/// the workbook changes no decision), each value ended by a separator no cell holds.
fn plan_digest(integrity: &Integrity, records: &[&Record]) -> String {
    let mut context = Context::new(&SHA256);
    let fields = INTEGRITY_FIELDS.into_iter().zip(integrity.values());
    for (_, value) in fields.filter(|(name, _)| *name != "digest") {
        context.update(value.as_bytes());
        context.update(b"\x1f");
    }
    context.update(b"\x1d");
    for record in records {
        for (_, cell) in decision_cells(record) {
            context.update(cell.as_bytes());
            context.update(b"\x1f");
        }
        context.update(b"\x1e");
    }
    hex::encode(context.finish())
}

/// A plan read back, checked, ready to be applied.
#[derive(Debug)]
pub(crate) struct Plan {
    pub(crate) integrity: Integrity,
    /// In row order.
    pub(crate) rows: Vec<PlanRow>,
    /// The board's answer for each row, by position in `rows`.
    approvals: Vec<Approval>,
}

/// Writes a plan: the planner's records with `approved` set to `yes` for every row that would
/// be written, each row's digest, and the integrity record, in the format the path's
/// extension names. `-` is CSV on stdout. The records are sealed in place (each becomes its
/// plan row's record), so that a large plan is not held twice.
pub(crate) fn write(
    path: &Path,
    records: &mut [Record],
    summary: &Summary,
    planned: Planned<'_>,
    excel_bom: bool,
) -> crate::Result<()> {
    for record in records.iter_mut() {
        seal(record)?;
    }
    let mut integrity = Integrity {
        version: VERSION,
        input: planned.input.display().to_string(),
        input_sha256: InputFingerprint::of(planned.input)?.sha256,
        tenant: tenant_name(planned.tenant),
        planned_at: planned
            .at
            .to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        hardmatch_version: env!("CARGO_PKG_VERSION").to_string(),
        rows: records.len(),
        digest: String::new(),
    };
    integrity.digest = plan_digest(&integrity, &records.iter().collect::<Vec<_>>());
    // `plan` checked its output against the files it reads before reading them.
    let format = report::check_output(path, report::REPORT_FORMATS, &[])?;
    let values = integrity.values();
    report::replace_whole(path, |to| match format {
        Format::Json => {
            let rows = records
                .iter()
                .map(|record| PlanRow::of(record).map_err(|e| unplannable(record, e)))
                .collect::<crate::Result<Vec<_>>>()?;
            let document = JsonPlanOut {
                plan: &integrity,
                summary,
                rows: &rows,
            };
            report::json::write_value(to, &document)
        }
        Format::Csv => {
            let fields = INTEGRITY_FIELDS.map(|f| format!("plan_{f}"));
            let labels: Vec<&str> = fields.iter().map(String::as_str).collect();
            report::csv::write_with_columns(to, records, excel_bom, &labels, &values)
        }
        Format::Xlsx => {
            let facts: Vec<(&str, String)> = [PLAN_SHEET_HEADER]
                .into_iter()
                .map(|(label, value)| (label, value.to_string()))
                .chain(INTEGRITY_FIELDS.into_iter().zip(values.clone()))
                .collect();
            report::xlsx::write_plan(to, records, summary, PLAN_SHEET, &facts)
        }
    })
}

/// What a plan was made from: the export, the tenant, and when.
#[derive(Clone, Copy)]
pub(crate) struct Planned<'a> {
    pub(crate) input: &'a Path,
    pub(crate) tenant: &'a Tenant,
    pub(crate) at: DateTime<Utc>,
}

/// The name a plan gives its tenant, and checks at apply: the initial domain
/// (`contoso.onmicrosoft.com`), which a live read, a snapshot and a hand-written tenant file
/// all know, else the tenant's id. (A live read cannot see the tenant's GUID without
/// Organization.Read.All, which hardmatch does not ask for.)
pub(crate) fn tenant_name(tenant: &Tenant) -> String {
    tenant
        .initial_domain()
        .unwrap_or(&tenant.tenant_id)
        .to_string()
}

/// Makes a planned record its plan row's: the action always named, `approved` yes where the
/// plan writes, the row's digest.
fn seal(record: &mut Record) -> crate::Result<()> {
    let mut row = PlanRow::of(record).map_err(|e| unplannable(record, e))?;
    row.approved = if row.writes() { "yes" } else { "" }.into();
    *record = row.record();
    record.decision_digest = row_digest(record);
    Ok(())
}

/// A record the planner made that no plan row can hold: a bug, not a bad input.
fn unplannable(record: &Record, (column, why): (&str, String)) -> Error {
    Error::Other(format!("row {}: {column}: {why}", record.row))
}

/// The Plan sheet's header row, which tells a plan's sheet from a sheet of an export that
/// happens to be called Plan.
const PLAN_SHEET_HEADER: (&str, &str) = ("field", "value");

/// The JSON form as written, borrowing the plan's parts.
#[derive(Serialize)]
struct JsonPlanOut<'a> {
    plan: &'a Integrity,
    summary: &'a Summary,
    rows: &'a [PlanRow],
}

/// The JSON form: `{"plan": {integrity}, "summary": {...}, "rows": [typed rows]}`.
#[derive(Deserialize)]
struct JsonPlan {
    plan: Integrity,
    rows: Vec<PlanRow>,
}

/// `{"plan": {"version": N}}`: read first, so that another version gets its own message.
#[derive(Deserialize)]
struct JsonVersion {
    plan: VersionOnly,
}

#[derive(Deserialize)]
struct VersionOnly {
    version: u32,
}

fn plan_error(path: &Path, why: impl std::fmt::Display) -> Error {
    Error::Input(format!("{}: {why}", path.display()))
}

fn check_version(path: &Path, version: u32) -> crate::Result<()> {
    if version == VERSION {
        return Ok(());
    }
    let which = if version < VERSION {
        "an older"
    } else {
        "a newer"
    };
    Err(plan_error(
        path,
        format!(
            "plan file version {version}, written by {which} hardmatch; this hardmatch ({}) reads plan file version {VERSION}: plan again with this hardmatch, or apply with the one that planned",
            env!("CARGO_PKG_VERSION")
        ),
    ))
}

/// The report records of a JSON plan file, or `None` when the JSON is no plan (a report).
pub(crate) fn records_of_json(path: &Path, text: &[u8]) -> crate::Result<Option<Vec<Record>>> {
    if serde_json::from_slice::<JsonVersion>(text).is_err() {
        return Ok(None);
    }
    let plan = parse_json(path, text)?;
    Ok(Some(plan.rows.iter().map(PlanRow::record).collect()))
}

fn parse_json(path: &Path, text: &[u8]) -> crate::Result<JsonPlan> {
    let version = serde_json::from_slice::<JsonVersion>(text).map_err(|e| {
        let why = match serde_json::from_slice::<serde_json::Value>(text) {
            Err(_) => format!("not JSON: {e}"),
            Ok(value) if value.get("rows").is_some() => "a hardmatch report, or a plan from a hardmatch before plan files had a version, not a plan: make one with `hardmatch plan INPUT -o plan.json`".into(),
            Ok(_) => "not a hardmatch plan (no `plan` record with a `version`): make one with `hardmatch plan INPUT -o plan.json`".into(),
        };
        plan_error(path, why)
    })?;
    check_version(path, version.plan.version)?;
    serde_json::from_slice(text).map_err(|e| plan_error(path, format!("not a hardmatch plan: {e}")))
}

impl Plan {
    /// The plan in the file at `path`, checked, or `None` when the file is no plan (an export
    /// to plan from). A file that is a hardmatch report but no plan is an error: re-planning a
    /// report as if it were an export would write what nobody approved.
    pub(crate) fn detect(path: &Path) -> crate::Result<Option<Plan>> {
        let extension = path
            .extension()
            .and_then(|e| e.to_str())
            .map(str::to_ascii_lowercase);
        match extension.as_deref() {
            _ if path == Path::new("-") => Ok(None),
            Some("json") => Plan::load_json(path).map(Some),
            Some("xlsx" | "xlsm" | "xls" | "ods") => Plan::detect_workbook(path),
            _ => Plan::detect_csv(path),
        }
    }

    fn load_json(path: &Path) -> crate::Result<Plan> {
        let text = std::fs::read(path).map_err(|e| Error::io(path, e))?;
        let plan = parse_json(path, &text)?;
        let records: Vec<Record> = plan.rows.iter().map(PlanRow::record).collect();
        Plan::checked(path, plan.plan, records, |i, column| {
            format!("rows[{i}].{}", json_field(column))
        })
    }

    fn detect_workbook(path: &Path) -> crate::Result<Option<Plan>> {
        use calamine::Reader;
        let sheets = match calamine::open_workbook_auto(path) {
            Ok(workbook) => workbook.sheet_names(),
            // Not a workbook we can open: the export reader says why.
            Err(_) => return Ok(None),
        };
        let has = |name: &str| sheets.iter().any(|s| s == name);
        let plan_sheet = match has(PLAN_SHEET) {
            true => Some(Table::xlsx(path, PLAN_SHEET)?),
            false => None,
        };
        let Some(facts) = plan_sheet.filter(|facts| {
            facts.headers.first().map(String::as_str) == Some(PLAN_SHEET_HEADER.0)
                && facts.headers.get(1).map(String::as_str) == Some(PLAN_SHEET_HEADER.1)
        }) else {
            if has("Rows") && is_report(&Table::xlsx(path, "Rows")?.headers) {
                return Err(not_a_plan(path));
            }
            return Ok(None);
        };
        let fields: HashMap<String, String> = facts
            .rows
            .iter()
            .filter_map(|cells| Some((cells.first()?.clone(), cells.get(1)?.clone())))
            .collect();
        let integrity = Integrity::from_fields(
            path,
            |name| fields.get(name).cloned(),
            |name| format!("sheet {PLAN_SHEET}: {name}"),
        )?;
        let rows = Table::xlsx(path, "Rows")?;
        let records = rows.records(path)?;
        Plan::checked(path, integrity, records, |i, column| rows.place(i, column)).map(Some)
    }

    fn detect_csv(path: &Path) -> crate::Result<Option<Plan>> {
        // A file that is no CSV (LDIF, say): the export reader says what it is.
        let Ok((_, headers)) = csv_reader(path) else {
            return Ok(None);
        };
        let field_column = |f: &str| format!("plan_{f}");
        if !headers.iter().any(|h| *h == field_column("version")) {
            if is_report(&headers) {
                return Err(not_a_plan(path));
            }
            return Ok(None);
        }
        let table = Table::csv(path)?;
        if table.rows.is_empty() {
            return Err(plan_error(path, "a plan with no rows"));
        }
        // Every row carries the record, so that sorting or filtering in Excel cannot lose it:
        // they must agree.
        for i in 1..table.rows.len() {
            for field in INTEGRITY_FIELDS {
                let column = field_column(field);
                if table.cell(i, &column) != table.cell(0, &column) {
                    return Err(plan_error(
                        path,
                        format!(
                            "{}: the integrity record differs from line 2's; only approved and comment may be edited",
                            table.place(i, &column)
                        ),
                    ));
                }
            }
        }
        let integrity = Integrity::from_fields(
            path,
            |name| Some(table.cell(0, &field_column(name)).to_string()),
            |name| table.place(0, &field_column(name)),
        )?;
        let records = table.records(path)?;
        Plan::checked(path, integrity, records, |i, column| table.place(i, column)).map(Some)
    }

    /// Checks a plan read back: its decisions against their digests, its rows' numbers, the
    /// board's answers; `place(i, column)` names a cell of the `i`th row as the file holds it.
    fn checked(
        path: &Path,
        integrity: Integrity,
        records: Vec<Record>,
        place: impl Fn(usize, &str) -> String,
    ) -> crate::Result<Plan> {
        let edited = |i: usize, column: &str, why: String| {
            plan_error(
                path,
                format!(
                    "{}: {why}; only approved and comment may be edited: refused, nothing was written (plan again to change a decision)",
                    place(i, column)
                ),
            )
        };
        for (i, record) in records.iter().enumerate() {
            if let Some(column) = edited_column(record) {
                return Err(edited(
                    i,
                    column,
                    format!("row {}'s decision was edited", record.row),
                ));
            }
        }
        let mut order: Vec<usize> = (0..records.len()).collect();
        order.sort_by_key(|&i| records[i].row);
        if records.len() != integrity.rows {
            return Err(plan_error(
                path,
                format!(
                    "{} rows, but the plan had {}: rows were added or removed; refused, nothing was written",
                    records.len(),
                    integrity.rows
                ),
            ));
        }
        let sorted: Vec<&Record> = order.iter().map(|&i| &records[i]).collect();
        if plan_digest(&integrity, &sorted) != integrity.digest {
            return Err(plan_error(
                path,
                "the plan does not match its digest: its integrity record (tenant, time, input) or a row's decision_digest was edited, or a row copied; refused, nothing was written",
            ));
        }
        let mut rows = Vec::with_capacity(records.len());
        let mut approvals = Vec::with_capacity(records.len());
        for &i in &order {
            let record = &records[i];
            let approval = Approval::parse(&record.approved).ok_or_else(|| {
                plan_error(
                    path,
                    format!(
                        "{}: `{}` is not yes, no or empty; refused, nothing was written",
                        place(i, "approved"),
                        record.approved
                    ),
                )
            })?;
            let row = PlanRow::of(record).map_err(|(column, why)| edited(i, column, why))?;
            rows.push(row);
            approvals.push(approval);
        }
        Ok(Plan {
            integrity,
            rows,
            approvals,
        })
    }

    /// The cloud users to read again before applying: every target the plan names.
    pub(crate) fn wanted(&self) -> crate::graph::read::Wanted {
        let mut wanted = crate::graph::read::Wanted::default();
        for target in self.rows.iter().filter_map(|r| r.target.as_ref()) {
            wanted.id(&target.id);
        }
        // Who Graph guards now (docs/graph.md, "Sensitive attributes"): a 403 on them is
        // about them, not the app's permission.
        wanted.with_roles();
        wanted
    }

    /// Refuses to apply a plan made for another tenant.
    pub(crate) fn check_tenant(&self, path: &Path, tenant: &Tenant) -> crate::Result<()> {
        let tenant = tenant_name(tenant);
        if self.integrity.tenant.eq_ignore_ascii_case(&tenant) {
            return Ok(());
        }
        Err(plan_error(
            path,
            format!(
                "a plan for tenant {}, but this run signed in to tenant {tenant}; refused, nothing was written",
                self.integrity.tenant
            ),
        ))
    }

    /// What the plan is and how old, as summary lines (`apply` prints them before it asks, and
    /// the report keeps them); a plan older than a day says so loudly.
    pub(crate) fn notes(&self, path: &Path, now: DateTime<Utc>) -> Vec<(String, String)> {
        let integrity = &self.integrity;
        let mut notes = vec![
            (
                "plan".to_string(),
                format!(
                    "{}: plan of {} rows for tenant {}, by hardmatch {} from {} (SHA-256 {})",
                    path.display(),
                    integrity.rows,
                    integrity.tenant,
                    integrity.hardmatch_version,
                    integrity.input,
                    integrity.input_sha256
                ),
            ),
            ("plan digest".to_string(), integrity.digest.clone()),
        ];
        let age = DateTime::parse_from_rfc3339(&integrity.planned_at)
            .map(|at| now.signed_duration_since(at.with_timezone(&Utc)));
        let (label, text) = match age {
            Err(_) => (
                "WARNING: plan age",
                format!("its time `{}` does not read", integrity.planned_at),
            ),
            Ok(age) if age > OLD_PLAN => (
                "WARNING: plan age",
                format!(
                    "planned {} ago, at {}: more than a day old, the tenant may have moved on since (rows that changed are refused as target-changed-since-plan); plan again if in doubt",
                    how_long(age),
                    integrity.planned_at
                ),
            ),
            Ok(age) => (
                "plan age",
                format!("planned {} ago, at {}", how_long(age), integrity.planned_at),
            ),
        };
        notes.push((label.to_string(), text));
        notes
    }

    /// The plan to carry out: every row as planned, then the board's answer and the tenant
    /// now. A row the board did not approve is `not-approved`; an approved row the tenant
    /// moved under is `target-changed-since-plan`, one already written `already-matched`.
    pub(crate) fn planned(&self, tenant: &Tenant) -> Vec<PlannedRow> {
        let users = tenant.users_by_id();
        self.rows
            .iter()
            .zip(&self.approvals)
            .map(|(row, approval)| {
                let mut planned = row.planned();
                if row.writes() {
                    match approval {
                        Approval::Yes => check_drift(row, &mut planned, &users),
                        Approval::No | Approval::Empty => not_approved(&mut planned, *approval),
                    }
                }
                planned
            })
            .collect()
    }
}

/// Where a report column's value sits in a JSON plan row.
fn json_field(column: &str) -> &str {
    match column {
        "cloud_user_id" => "target.id",
        "cloud_upn" => "target.user_principal_name",
        "previous_immutable_id" => "target.previous_immutable_id",
        "holder_id" => "holder.id",
        "holder_upn" => "holder.userPrincipalName",
        "holder_deleted_at" => "holder.deletedDateTime",
        other => other,
    }
}

/// An age to the minute, as `1h 30m` or `2days 2h`.
fn how_long(age: chrono::Duration) -> String {
    let minutes = std::time::Duration::from_secs(age.num_seconds().max(0) as u64 / 60 * 60);
    match minutes.is_zero() {
        true => "less than a minute".to_string(),
        false => humantime::format_duration(minutes).to_string(),
    }
}

fn not_a_plan(path: &Path) -> Error {
    plan_error(
        path,
        "a hardmatch report, not a plan: apply takes an export, or a plan file from `hardmatch plan INPUT -o plan.xlsx` (it has an integrity record); a report is not planned again as if it were an export",
    )
}

/// The first decision column whose cell no longer matches the row's own digest.
fn edited_column(record: &Record) -> Option<&'static str> {
    let stored = record.decision_digest.as_str();
    let mut at = 0;
    for (column, cell) in decision_cells(record) {
        let expected = stored.get(at..at + 4);
        if expected != Some(column_hash(column, &cell).as_str()) {
            return Some(if expected.is_none() {
                DIGEST_COLUMN
            } else {
                column
            });
        }
        at += 4;
    }
    (stored.len() != at).then_some(DIGEST_COLUMN)
}

fn not_approved(planned: &mut PlannedRow, approval: Approval) {
    let detail = match approval {
        Approval::No => "the change board set approved to no: not written",
        _ => "approved is empty: only rows approved yes are written",
    };
    planned.settle(Verdict::new(Outcome::NotApproved, detail));
}

/// Re-checks an approved write against the tenant now: a target that already holds the
/// planned value (the plan was applied before) is `already-matched`; a target whose state
/// moved elsewhere since the plan is `target-changed-since-plan`, not written.
fn check_drift(row: &PlanRow, planned: &mut PlannedRow, users: &HashMap<&str, &User>) {
    let Some(target) = &row.target else {
        return;
    };
    let now = users.get(target.id.as_str()).copied();
    if now.is_some_and(|user| holds_planned_value(user, row)) {
        planned.settle(Verdict::new(
            Outcome::AlreadyMatched,
            format!(
                "{} already holds the planned ImmutableId (the plan was applied before); nothing to write",
                target.user_principal_name
            ),
        ));
        return;
    }
    if let Some(why) = drift(target, now) {
        planned.settle(Verdict::new(
            Outcome::TargetChangedSincePlan,
            format!(
                "{} changed since the plan: {why}; plan again",
                target.user_principal_name
            ),
        ));
    }
}

/// Whether a cloud-only target already holds the anchor a plan row would stamp.
fn holds_planned_value(user: &User, row: &PlanRow) -> bool {
    row.action != Action::Clear
        && user.on_premises_sync_enabled != Some(true)
        && !row.immutable_id.is_empty()
        && user.on_premises_immutable_id.as_deref() == Some(row.immutable_id.as_str())
}

/// How the target moved since the plan, if it did.
fn drift(planned: &Target, now: Option<&User>) -> Option<String> {
    let Some(user) = now else {
        return Some("the target no longer exists".into());
    };
    let held = user
        .on_premises_immutable_id
        .as_deref()
        .filter(|v| !v.is_empty());
    let expected = planned.previous_immutable_id.as_deref();
    if user.on_premises_sync_enabled == Some(true) {
        Some("the target is now synced from on-premises".into())
    } else if held != expected {
        Some(format!(
            "its ImmutableId is now {} (the plan saw {})",
            held.unwrap_or("empty"),
            expected.unwrap_or("empty")
        ))
    } else if !user
        .user_principal_name
        .eq_ignore_ascii_case(&planned.user_principal_name)
    {
        Some(format!(
            "its UPN is now {} (the plan saw {})",
            user.user_principal_name, planned.user_principal_name
        ))
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn planned() -> Record {
        Record {
            row: 1,
            upn: "alice@contoso.com".into(),
            immutable_id: "+UCRosYTSUiYkAaHBy3s6A==".into(),
            cloud_user_id: "u1".into(),
            cloud_upn: "alice@contoso.com".into(),
            action: "stamp".into(),
            outcome: Some(Outcome::WouldStamp),
            ..Record::default()
        }
    }

    #[test]
    fn an_edited_cell_is_found_in_its_column_and_the_board_columns_are_free() {
        let mut record = planned();
        record.decision_digest = row_digest(&record);
        assert_eq!(edited_column(&record), None);
        record.approved = "no".into();
        record.comment = "hold: VIP".into();
        assert_eq!(edited_column(&record), None);
        record.immutable_id = "1wfM9xV8fUSHbcAbDlqeOA==".into();
        assert_eq!(edited_column(&record), Some("immutable_id"));
        let mut record = planned();
        record.decision_digest = row_digest(&record)[..8].into();
        assert_eq!(edited_column(&record), Some(DIGEST_COLUMN));
    }

    /// A plan of three rows, one written (alice), one with nothing to write, one the offline
    /// stages settled (no action), in every format, beside its input.
    fn written_plans(dir: &Path) -> Vec<std::path::PathBuf> {
        let input = dir.join("users.csv");
        std::fs::write(&input, "upn\nalice@contoso.com\n").unwrap();
        let summary = Summary::default();
        let tenant = Tenant {
            tenant_id: "contoso.onmicrosoft.com".into(),
            ..Tenant::default()
        };
        let nothing = Record {
            row: 2,
            upn: "=bob@contoso.com".into(),
            action: "none".into(),
            outcome: Some(Outcome::AlreadyMatched),
            ..planned()
        };
        let settled = Record {
            row: 3,
            outcome: Some(Outcome::InvalidAnchor),
            detail: "not a GUID".into(),
            ..Record::default()
        };
        ["plan.csv", "plan.xlsx", "plan.json"]
            .into_iter()
            .map(|name| {
                let path = dir.join(name);
                let mut records = vec![planned(), nothing.clone(), settled.clone()];
                let planned = Planned {
                    input: &input,
                    tenant: &tenant,
                    at: Utc::now(),
                };
                write(&path, &mut records, &summary, planned, false).unwrap();
                path
            })
            .collect()
    }

    #[test]
    fn a_plan_reads_back_in_every_format_and_a_sorted_csv_still_checks() {
        let dir = tempfile::tempdir().unwrap();
        for path in written_plans(dir.path()) {
            let plan = Plan::detect(&path).unwrap().expect("a plan");
            let what = path.display();
            assert_eq!(plan.integrity.version, VERSION, "{what}");
            assert_eq!(plan.integrity.tenant, "contoso.onmicrosoft.com", "{what}");
            assert_eq!(plan.rows.len(), 3, "{what}");
            assert_eq!(plan.rows[0].action, Action::Stamp, "{what}");
            assert_eq!(plan.rows[0].target.as_ref().unwrap().id, "u1", "{what}");
            assert_eq!(plan.rows[1].upn, "=bob@contoso.com", "{what}");
            assert_eq!(plan.rows[2].action, Action::None, "{what}");
            assert_eq!(
                plan.approvals,
                [Approval::Yes, Approval::Empty, Approval::Empty]
            );
        }
        // The board sorts the CSV, last row first: no decision changed.
        let csv = dir.path().join("plan.csv");
        let text = std::fs::read_to_string(&csv).unwrap();
        let mut lines: Vec<&str> = text.lines().collect();
        lines[1..].reverse();
        std::fs::write(&csv, lines.join("\n")).unwrap();
        let plan = Plan::detect(&csv).unwrap().expect("a plan");
        let rows: Vec<usize> = plan.rows.iter().map(|r| r.row).collect();
        assert_eq!(rows, [1, 2, 3]);
    }

    /// The writes of `apply PLAN` come from the plan's typed rows, the board's answers and
    /// the tenant now, with no report row in between.
    #[test]
    fn only_approved_rows_the_tenant_did_not_move_under_are_written() {
        let dir = tempfile::tempdir().unwrap();
        let path = &written_plans(dir.path())[2];
        let mut plan = Plan::detect(path).unwrap().unwrap();
        let alice = |holds: Option<&str>| Tenant {
            users: vec![User {
                id: "u1".into(),
                user_principal_name: "alice@contoso.com".into(),
                on_premises_immutable_id: holds.map(str::to_string),
                ..User::default()
            }],
            ..Tenant::default()
        };
        let planned = plan.planned(&alice(None));
        let items = crate::run::stages::work_items(&planned, &alice(None));
        let written: Vec<_> = items
            .iter()
            .map(|i| (i.row, i.action, i.new_anchor.as_deref()))
            .collect();
        assert_eq!(
            written,
            [(1, Action::Stamp, Some("+UCRosYTSUiYkAaHBy3s6A=="))]
        );
        assert_eq!(planned[2].action, Some(Action::None));

        let moved = plan.planned(&alice(Some("OTHER")));
        assert_eq!(moved[0].outcome(), Outcome::TargetChangedSincePlan);
        assert!(crate::run::stages::work_items(&moved, &alice(Some("OTHER"))).is_empty());

        plan.approvals[0] = Approval::No;
        let refused = plan.planned(&alice(None));
        assert_eq!(refused[0].outcome(), Outcome::NotApproved);
        assert_eq!(refused[0].action, Some(Action::None));
        assert!(crate::run::stages::work_items(&refused, &alice(None)).is_empty());
    }

    #[test]
    fn a_plan_says_how_old_it_is_and_warns_after_a_day() {
        let dir = tempfile::tempdir().unwrap();
        let path = &written_plans(dir.path())[2];
        let plan = Plan::detect(path).unwrap().unwrap();
        let at = DateTime::parse_from_rfc3339(&plan.integrity.planned_at).unwrap();
        let note = |after: chrono::Duration| {
            let notes = plan.notes(path, at.with_timezone(&Utc) + after);
            let lines: Vec<String> = notes.iter().map(|(k, v)| format!("{k}: {v}")).collect();
            lines.join("\n")
        };
        let fresh = note(chrono::Duration::minutes(90));
        assert!(fresh.contains("plan age: planned 1h 30m ago"), "{fresh}");
        assert!(!fresh.contains("WARNING"), "{fresh}");
        let old = note(chrono::Duration::hours(50));
        assert!(
            old.contains("WARNING: plan age: planned 2days 2h ago"),
            "{old}"
        );
        assert!(old.contains("more than a day old"), "{old}");
    }

    #[test]
    fn approvals_are_yes_no_or_empty_in_any_case() {
        for (cell, want) in [
            ("yes", Some(Approval::Yes)),
            (" YES ", Some(Approval::Yes)),
            ("No", Some(Approval::No)),
            ("", Some(Approval::Empty)),
            ("y", None),
            ("maybe", None),
        ] {
            assert_eq!(Approval::parse(cell), want, "{cell:?}");
        }
    }

    #[test]
    fn another_version_names_the_file_and_both_versions() {
        let error = check_version(Path::new("plan.json"), 99)
            .unwrap_err()
            .to_string();
        assert!(
            error.starts_with("plan.json: plan file version 99, written by a newer hardmatch"),
            "{error}"
        );
        assert!(
            error.contains(&format!("reads plan file version {VERSION}")),
            "{error}"
        );
    }
}
