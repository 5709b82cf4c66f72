//! A write run's plan, typed: one [`PlannedRow`] per row, carrying the planner's decision (an
//! [`Action`], the target's and the holder's state, the value to write) and, once the writer
//! or a resumed journal has answered, what became of the write.
//!
//! `apply` (from an export, or from a plan file re-checked for drift), `clear` and `rollback`
//! each plan these rows; a resume credits them from the journal; the writer's work items are
//! built from them ([`crate::run::stages::work_items`]). The report's [`Record`] is output only:
//! it is made from a row by [`PlannedRow::record`] when the report is written, so an action
//! never travels as its report code between planning and writing.

use crate::outcome::{Outcome, Verdict, Warnings};
use crate::plan::{Action, Holder, TargetState};
use crate::report::{self, Record};

/// One row of a write run's plan, in its report's order.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct PlannedRow {
    /// 1-based report row (a rollback's rows are the undone run's, not 1..n).
    pub(crate) row: usize,
    /// How the report names the row: where it came from, its UPN and anchor.
    pub(crate) named: Named,
    pub(crate) verdict: Verdict,
    pub(crate) warnings: Warnings,
    /// `None`: the row never reached the planner (an input problem); its report cell is empty.
    pub(crate) action: Option<Action>,
    /// The target as the plan saw it (the writer re-reads it from the tenant before writing).
    pub(crate) target: Option<TargetState>,
    /// The report's previous_immutable_id: the target's value before the write (in a
    /// rollback, the value put back; after a resume, the one the journal recorded).
    pub(crate) previous_immutable_id: Option<String>,
    pub(crate) holder: Option<Holder>,
    /// The ImmutableId the row's write sets (`None` clears); a resume matches the journal
    /// by it.
    pub(crate) new_anchor: Option<String>,
    /// The onPremisesObjectIdentifier the write clears (`--clear-object-identifier`), or
    /// that a rollback puts back.
    pub(crate) object_identifier: Option<String>,
    /// The change board's cells, carried from a plan file into the report of `apply PLAN`.
    pub(crate) board: Board,
    /// What the write's request answered, once it was sent.
    pub(crate) answer: Answer,
}

/// The report cells that say which input row a planned row is.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct Named {
    pub(crate) source: String,
    pub(crate) line: u64,
    pub(crate) upn: String,
    pub(crate) target_upn: String,
    pub(crate) object_guid: String,
    pub(crate) immutable_id: String,
    pub(crate) anchor_source: String,
}

/// A plan file's board cells (empty for a run planned from an export).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct Board {
    pub(crate) approved: String,
    pub(crate) comment: String,
    pub(crate) decision_digest: String,
}

/// The audit facts of a row's write: this run's request, or the interrupted run's (from its
/// journal) after a resume.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct Answer {
    pub(crate) http_status: Option<u16>,
    pub(crate) graph_error_code: String,
    pub(crate) request_id: String,
    pub(crate) attempts: u32,
    pub(crate) timestamp: String,
}

impl PlannedRow {
    /// A row with a verdict and nothing planned yet: no action, no target.
    pub(crate) fn new(row: usize, named: Named, verdict: Verdict) -> PlannedRow {
        PlannedRow {
            row,
            named,
            verdict,
            warnings: Warnings::default(),
            action: None,
            target: None,
            previous_immutable_id: None,
            holder: None,
            new_anchor: None,
            object_identifier: None,
            board: Board::default(),
            answer: Answer::default(),
        }
    }

    pub(crate) fn outcome(&self) -> Outcome {
        self.verdict.outcome
    }

    /// Whether the plan still sends a write for this row: an action that writes, and an
    /// outcome that says it will (a resume's credit or a drift check can take that back).
    pub(crate) fn writes(&self) -> bool {
        self.action.is_some_and(|a| a != Action::None)
            && matches!(self.outcome(), Outcome::WouldStamp | Outcome::WouldClear)
    }

    /// Settles the row without a write: the outcome and why; nothing is sent for it.
    pub(crate) fn settle(&mut self, verdict: Verdict) {
        self.verdict = verdict;
        self.action = Some(Action::None);
    }

    /// The row as the report shows it.
    pub(crate) fn record(&self) -> Record {
        let target = self.target.as_ref();
        let holder = self.holder.as_ref();
        let answer = self.answer.clone();
        Record {
            cloud_user_id: target.map(|t| t.id.clone()).unwrap_or_default(),
            cloud_upn: target
                .map(|t| t.user_principal_name.clone())
                .unwrap_or_default(),
            previous_immutable_id: self.previous_immutable_id.clone(),
            action: self
                .action
                .map(Action::code)
                .unwrap_or_default()
                .to_string(),
            outcome: Some(self.verdict.outcome),
            warnings: self.warnings.clone(),
            detail: self.verdict.detail.clone(),
            holder_id: holder.map(|h| h.id.clone()).unwrap_or_default(),
            holder_upn: holder
                .map(|h| h.user_principal_name.clone())
                .unwrap_or_default(),
            holder_deleted_at: holder
                .and_then(|h| h.deleted_date_time.clone())
                .unwrap_or_default(),
            http_status: answer.http_status,
            graph_error_code: answer.graph_error_code,
            request_id: answer.request_id,
            attempts: answer.attempts,
            timestamp: answer.timestamp,
            object_identifier: self.object_identifier.clone(),
            approved: self.board.approved.clone(),
            comment: self.board.comment.clone(),
            decision_digest: self.board.decision_digest.clone(),
            ..self.named.record(self.row)
        }
    }
}

impl Named {
    /// A report record of row `row` with only the cells that name it.
    pub(crate) fn record(&self, row: usize) -> Record {
        Record {
            row,
            source: self.source.clone(),
            line: self.line,
            upn: self.upn.clone(),
            target_upn: self.target_upn.clone(),
            object_guid: self.object_guid.clone(),
            immutable_id: self.immutable_id.clone(),
            anchor_source: self.anchor_source.clone(),
            ..Record::default()
        }
    }
}

/// The report records of a plan, in its order: built only when the report is written.
pub(crate) fn records(rows: &[PlannedRow]) -> Vec<Record> {
    rows.iter().map(PlannedRow::record).collect()
}

/// The outcome table of a plan's rows (see [`crate::report::outcome_table`]).
pub(crate) fn outcome_table(rows: &[PlannedRow]) -> String {
    report::table(
        report::tally(rows.iter().map(PlannedRow::outcome)),
        rows.len(),
        report::tally(rows.iter().flat_map(|r| r.warnings.iter())),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_report_row_shows_the_typed_decision_and_the_answer() {
        let unplanned = PlannedRow::new(
            3,
            Named {
                source: "users.csv:4".into(),
                line: 4,
                ..Named::default()
            },
            Verdict::new(Outcome::InvalidAnchor, "not a GUID"),
        );
        let record = unplanned.record();
        assert_eq!(
            (record.row, record.line, record.action.as_str()),
            (3, 4, ""),
            "a row the planner never saw has no action"
        );
        assert_eq!(record.outcome, Some(Outcome::InvalidAnchor));

        let mut written = unplanned.clone();
        written.action = Some(Action::PurgeHolderThenStamp);
        written.target = Some(TargetState {
            id: "u1".into(),
            user_principal_name: "alice@contoso.com".into(),
            on_premises_immutable_id: None,
            on_premises_sync_enabled: false,
            on_premises_object_identifier: None,
        });
        written.holder = Some(Holder {
            id: "h1".into(),
            user_principal_name: "old@contoso.com".into(),
            deleted_date_time: None,
        });
        written.verdict = Verdict::new(Outcome::Stamped, "stamped");
        written.answer.http_status = Some(204);
        written.answer.request_id = "req-1".into();
        written.board.approved = "yes".into();
        let record = written.record();
        assert_eq!(record.action, "purge-holder-then-stamp");
        assert_eq!(
            (record.cloud_user_id.as_str(), record.holder_upn.as_str()),
            ("u1", "old@contoso.com")
        );
        assert_eq!(
            (record.http_status, record.request_id.as_str()),
            (Some(204), "req-1")
        );
        assert_eq!(record.approved, "yes");
        assert!(!written.writes(), "a stamped row is not written again");
    }
}
