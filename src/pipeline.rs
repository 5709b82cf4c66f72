//! The one place where the stages meet: reader -> compute -> planner -> writer -> reporter.
//!
//! Commands call these functions; they never call the stages directly. Each function takes
//! the output of the stage before and gives one report [`Record`] per input row, in input
//! order, so that the reporter can never lose a row.

use crate::cli::input::InputArgs;
use crate::compute::{self, Candidate};
use crate::plan::{Decision, PlanOptions, Subject, TenantIndex};
use crate::progress;
use crate::report::Record;
use crate::source::{self, Input, Role, Row};
use crate::tenant::Tenant;

/// An export read and computed: the offline half of every run.
pub struct Prepared {
    pub input: Input,
    pub candidates: Vec<Candidate>,
}

/// Reads the export and computes every row's ImmutableId (on rayon's threads).
pub fn prepare(args: &InputArgs) -> crate::Result<Prepared> {
    let input = source::read(&args.input, &args.read_options())?;
    let candidates = compute::compute(&input, &args.compute_options());
    Ok(Prepared { input, candidates })
}

impl Prepared {
    /// One record per row with what the offline stages know: the row's place, its UPN and
    /// anchor, and an input outcome where the row has one.
    pub fn records(&self) -> Vec<Record> {
        self.input
            .rows
            .iter()
            .zip(&self.candidates)
            .enumerate()
            .map(|(i, (row, candidate))| self.base_record(i, row, candidate))
            .collect()
    }

    fn base_record(&self, index: usize, row: &Row, candidate: &Candidate) -> Record {
        let mut record = Record {
            row: index + 1,
            source: self.input.place(row, None).to_string(),
            line: row.location.as_ref().map_or(0, |l| l.line()),
            upn: row.value(Role::Upn).unwrap_or_default().to_string(),
            target_upn: candidate.target_upn.clone().unwrap_or_default(),
            object_guid: candidate.guid.map(|g| g.to_string()).unwrap_or_default(),
            immutable_id: candidate
                .immutable_id
                .as_ref()
                .map(|id| id.to_string())
                .unwrap_or_default(),
            ..Record::default()
        };
        if let Some(verdict) = &candidate.verdict {
            record.outcome = Some(verdict.outcome);
            record.detail = verdict.detail.clone();
        }
        record
    }

    /// The planner's decision for every row that the offline stages left open.
    pub fn decide(&self, tenant: &Tenant, options: &PlanOptions) -> Vec<Option<Decision>> {
        let index = TenantIndex::new(tenant);
        self.input
            .rows
            .iter()
            .zip(&self.candidates)
            .map(|(row, candidate)| {
                candidate.verdict.is_none().then(|| {
                    let subject = Subject {
                        anchor: candidate.immutable_id.as_ref(),
                        upn: candidate.target_upn.as_deref(),
                        mail: row.value(Role::Mail),
                        cloud_object_id: row.value(Role::CloudObjectId),
                    };
                    index.decide(&subject, options)
                })
            })
            .collect()
    }
}

/// Fills a record with a planner decision.
pub fn apply_decision(record: &mut Record, decision: &Decision) {
    record.outcome = Some(decision.verdict.outcome);
    record.detail = decision.verdict.detail.clone();
    record.action = decision.action.code().to_string();
    if let Some(target) = &decision.target {
        record.cloud_user_id = target.id.clone();
        record.cloud_upn = target.user_principal_name.clone();
        record.previous_immutable_id = target.on_premises_immutable_id.clone();
    }
    if let Some(holder) = &decision.holder {
        record.holder_id = holder.id.clone();
        record.holder_upn = holder.user_principal_name.clone();
        record.holder_deleted_at = holder.deleted_date_time.clone().unwrap_or_default();
    }
}

/// Reads the whole tenant through Graph, with a progress line on a terminal.
pub async fn read_tenant(client: &crate::graph::GraphClient) -> crate::Result<Tenant> {
    let bar = progress::spinner("reading the tenant");
    let tenant = client
        .snapshot(|what, n| bar.set_message(format!("reading the tenant: {n} {what}")))
        .await
        .map_err(|e| crate::Error::Other(format!("cannot read the tenant: {e}")))?;
    bar.finish_and_clear();
    Ok(tenant)
}
