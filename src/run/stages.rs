//! The stages joined: reader -> compute -> planner -> writer -> reporter.
//!
//! The runs in [`crate::run`] call these functions; they never call the stages directly. Each
//! function takes the output of the stage before and gives one [`PlannedRow`] per input row,
//! in input order, so that the reporter can never lose a row.

use std::io::Write;
use std::sync::Arc;

use tokio_util::sync::CancellationToken;

use crate::compute::{self, Candidate, ComputeOptions};
use crate::graph::read::{ReadStrategy, TenantRead, Wanted};
use crate::graph::GraphClient;
use crate::journal::{Entry, GroupCommit, Journal, Replay};
use crate::outcome::Warning;
use crate::plan::{
    Action, Decision, Holder, MatchBy, Mode, PlanOptions, Subject, TargetState, TenantIndex,
};
use crate::planned::{Named, PlannedRow};
use crate::progress;
use crate::report::Record;
use crate::source::{Input, Role, Row, Source};
use crate::tenant::{Privileges, Tenant};
use crate::write::{privileged_because, WorkItem, WriteOptions, Writer};

/// An export read and computed: the offline half of every run. Its rows borrow from the
/// [`Source`] they were read from.
pub struct Prepared<'a> {
    pub input: Input<'a>,
    pub candidates: Vec<Candidate<'a>>,
}

/// Reads an opened export and computes every row's ImmutableId (on rayon's threads).
pub(crate) fn prepare<'a>(
    source: &'a Source,
    options: &ComputeOptions,
) -> crate::Result<Prepared<'a>> {
    let input = source.read()?;
    for note in &input.notes {
        eprintln!("hardmatch: {note}");
    }
    let candidates = compute::compute(&input, options);
    tracing::info!(
        "{}: {} rows as {:?}; {} with an input problem",
        input.name,
        input.rows.len(),
        input.format,
        candidates.iter().filter(|c| c.verdict.is_some()).count()
    );
    Ok(Prepared { input, candidates })
}

impl Prepared<'_> {
    /// One report record per row with what the offline stages know: the row's place, its UPN
    /// and anchor, and an input outcome where the row has one (what the fuzz targets check;
    /// a run's report is made from its plan).
    pub fn records(&self) -> Vec<Record> {
        self.input
            .rows
            .iter()
            .zip(&self.candidates)
            .enumerate()
            .map(|(i, (row, candidate))| {
                let mut record = self.named(row, candidate).record(i + 1);
                if let Some(verdict) = &candidate.verdict {
                    record.outcome = Some(verdict.outcome);
                    record.detail = verdict.detail.clone();
                }
                record
            })
            .collect()
    }

    /// How the report names an input row: its place, its UPN and anchor.
    fn named(&self, row: &Row, candidate: &Candidate) -> Named {
        Named {
            source: self.input.place(row, None).to_string(),
            line: row.location.as_ref().map_or(0, |l| l.line()),
            upn: row.value(Role::Upn).unwrap_or_default().to_string(),
            target_upn: candidate
                .target_upn
                .as_deref()
                .unwrap_or_default()
                .to_string(),
            object_guid: candidate.guid.map(|g| g.to_string()).unwrap_or_default(),
            immutable_id: candidate
                .immutable_id
                .as_ref()
                .map(|id| id.to_string())
                .unwrap_or_default(),
            anchor_source: candidate
                .anchor_role
                .map(|role| compute::anchor_source(&self.input, role).to_string())
                .unwrap_or_default(),
        }
    }

    /// The cloud users this export's rows need to be planned: each open row's target (by
    /// CloudObjectId, or by UPN or mail as `match_by` says) and, when stamping, its anchor's
    /// current holder.
    pub(crate) fn wanted(&self, match_by: MatchBy, mode: Mode) -> Wanted {
        let mut wanted = Wanted::default();
        for (row, candidate) in self.input.rows.iter().zip(&self.candidates) {
            if candidate.verdict.is_some() {
                continue;
            }
            if let Some(id) = row.value(Role::CloudObjectId) {
                wanted.id(id);
            } else if let (MatchBy::Mail, Some(mail)) = (match_by, row.value(Role::Mail)) {
                wanted.mail(mail);
            } else if let Some(upn) = &candidate.target_upn {
                match match_by {
                    MatchBy::Upn => wanted.upn(upn),
                    MatchBy::Mail => wanted.mail(upn),
                }
            }
            if let (Mode::Stamp, Some(anchor)) = (mode, &candidate.immutable_id) {
                wanted.anchor(&anchor.to_string());
                // `--source-anchor auto` may settle on the other attribute once the tenant
                // is read: its holder must be known too.
                if let Some((_, other)) = candidate.differing_source() {
                    wanted.anchor(other.as_str());
                }
            }
        }
        if mode == Mode::Stamp {
            wanted.with_sync_facts();
        }
        wanted
    }

    /// The plan: one typed row per input row, in input order. A row the offline stages
    /// settled (an input problem) keeps its verdict; every other row gets the planner's
    /// decision.
    pub(crate) fn plan(&self, tenant: &Tenant, options: &PlanOptions) -> Vec<PlannedRow> {
        let index = TenantIndex::new(tenant);
        self.input
            .rows
            .iter()
            .zip(&self.candidates)
            .enumerate()
            .map(|(i, (row, candidate))| {
                let named = self.named(row, candidate);
                match &candidate.verdict {
                    Some(problem) => PlannedRow::new(i + 1, named, problem.clone()),
                    None => {
                        let decision = index.decide(&subject(row, candidate), options);
                        planned_row(i + 1, named, decision, options.mode)
                    }
                }
            })
            .collect()
    }
}

/// What the planner needs of one row.
pub(crate) fn subject<'r>(row: &'r Row, candidate: &'r Candidate) -> Subject<'r> {
    /// How Windows PowerShell's Export-Csv writes a multi-valued property: the values are lost.
    const LOST_COLLECTION: &str = "Microsoft.ActiveDirectory.Management.ADPropertyValueCollection";
    Subject {
        anchor: candidate.immutable_id.as_ref(),
        upn: candidate.target_upn.as_deref(),
        mail: row.value(Role::Mail),
        cloud_object_id: row.value(Role::CloudObjectId),
        object_guid: candidate.guid,
        on_premises_upn: row.value(Role::Upn),
        proxy_addresses: row
            .value(Role::ProxyAddresses)
            .filter(|v| *v != LOST_COLLECTION),
    }
}

/// A row with the planner's decision; `mode` says what its write sets (its anchor when
/// stamping, nothing when clearing).
fn planned_row(row: usize, named: Named, decision: Decision, mode: Mode) -> PlannedRow {
    let new_anchor = match mode {
        Mode::Stamp => Some(named.immutable_id.clone()),
        Mode::Clear => None,
    };
    let mut planned = PlannedRow::new(row, named, decision.verdict);
    planned.warnings = decision.warnings;
    planned.action = Some(decision.action);
    planned.new_anchor = new_anchor;
    if let Some(target) = &decision.target {
        planned.previous_immutable_id = target.on_premises_immutable_id.clone();
        if decision.action == Action::ClearObjectIdentifierThenStamp {
            planned.object_identifier = target.on_premises_object_identifier.clone();
        }
    }
    planned.target = decision.target;
    planned.holder = decision.holder;
    planned
}

/// Reads what the run needs of the tenant through Graph, the way `strategy` says, with a
/// progress line on a terminal.
pub(crate) async fn read_tenant(
    client: &crate::graph::GraphClient,
    wanted: &Wanted,
    strategy: ReadStrategy,
) -> crate::Result<TenantRead> {
    tracing::info!("reading the tenant ({strategy:?})");
    let bar = progress::spinner("reading the tenant");
    let started = chrono::Utc::now();
    let mut read = client
        .read_tenant(wanted, strategy, |what, n| {
            bar.set_message(format!("reading the tenant: {n} {what}"))
        })
        .await
        .map_err(|e| crate::Error::Other(format!("cannot read the tenant: {e}")))?;
    read.tenant.taken_at = Some(started);
    bar.finish_and_clear();
    tracing::info!("tenant read: {}", read.how);
    Ok(read)
}

/// The writes a plan calls for: every row that still [`writes`](PlannedRow::writes), on its
/// target as the tenant holds it now (as planned, if the tenant no longer shows it).
pub(crate) fn work_items(rows: &[PlannedRow], tenant: &Tenant) -> Vec<WorkItem> {
    let context = WriteContext::new(tenant);
    let users = tenant.users_by_id();
    rows.iter()
        .filter(|row| row.writes())
        .filter_map(|row| {
            let action = row.action?;
            let planned = row.target.as_ref()?;
            let target = users
                .get(planned.id.as_str())
                .map(|user| TargetState::of(user))
                .unwrap_or_else(|| planned.clone());
            let facts = RowFacts {
                object_identifier: row.object_identifier.clone(),
                roles_unknown: row.warnings.contains(Warning::RolesUnknown),
            };
            Some(context.work_item(
                row.row,
                action,
                target,
                row.new_anchor.clone(),
                row.holder.clone(),
                facts,
            ))
        })
        .collect()
}

/// What every row's write in a run needs from the tenant as read: the initial domain a
/// federated hop stops over in, and who is privileged (a 403 on them never stops the run).
pub(crate) struct WriteContext {
    initial: Option<String>,
    privileges: Privileges,
    /// Roles or groups this run's read could not see: any target may be guarded, whether or
    /// not its row was planned with `roles-unknown` (a plan file, a clear, a rollback).
    roles_unknown: bool,
}

/// What the plan knew about a row beyond its target: the onPremisesObjectIdentifier to clear
/// or put back, and whether the target's roles could not be read.
#[derive(Default)]
pub(crate) struct RowFacts {
    pub(crate) object_identifier: Option<String>,
    pub(crate) roles_unknown: bool,
}

impl WriteContext {
    pub(crate) fn new(tenant: &Tenant) -> WriteContext {
        let privileges = Privileges::new(tenant);
        WriteContext {
            initial: tenant.initial_domain().map(str::to_string),
            roles_unknown: !privileges.unknown().is_empty(),
            privileges,
        }
    }

    /// One row's write: `action` on `target` (as the tenant holds it now), setting
    /// `new_anchor` (`None` clears).
    pub(crate) fn work_item(
        &self,
        row: usize,
        action: Action,
        target: TargetState,
        new_anchor: Option<String>,
        holder: Option<Holder>,
        facts: RowFacts,
    ) -> WorkItem {
        let hop_upn = action
            .hops()
            .then(|| {
                let local = target
                    .user_principal_name
                    .split('@')
                    .next()
                    .unwrap_or_default();
                self.initial
                    .as_ref()
                    .map(|domain| format!("{local}@{domain}"))
            })
            .flatten();
        let object_identifier = matches!(
            action,
            Action::ClearObjectIdentifierThenStamp | Action::PutBackObjectIdentifier
        )
        .then(|| {
            // A plan without it (a plan file): the tenant as read now.
            facts
                .object_identifier
                .or_else(|| target.on_premises_object_identifier.clone())
        })
        .flatten();
        let roles_unknown = facts.roles_unknown || self.roles_unknown;
        let privileged = privileged_because(&self.privileges, &target.id, roles_unknown);
        WorkItem {
            row,
            action,
            target,
            new_anchor,
            holder,
            hop_upn,
            object_identifier,
            privileged,
        }
    }
}

/// How to carry out the writes of a run.
pub(crate) struct Execution<'a> {
    pub(crate) client: Arc<GraphClient>,
    pub(crate) tenant: &'a Tenant,
    /// The run's journal, open and locked: new, or the interrupted run's (see
    /// [`crate::resume`]).
    pub(crate) journal: Journal,
    /// On resume: the rows whose write the interrupted run may have sent, and the results to
    /// journal for writes it sent that took effect.
    pub(crate) replay: Option<Replay>,
    pub(crate) settled: Vec<Entry>,
    pub(crate) options: WriteOptions,
    pub(crate) quiet: bool,
}

/// Why a run stopped before its last row: a signal, each with its exit code.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Stop {
    /// Ctrl-C (SIGINT) or SIGHUP (the terminal went away): exit 130.
    Interrupted,
    /// SIGTERM (systemd, `timeout`, a container stopping): exit 143.
    #[cfg_attr(not(unix), expect(dead_code, reason = "Windows has no SIGTERM"))]
    Terminated,
}

impl Stop {
    pub(crate) fn exit_code(self) -> crate::exit_code::ExitCode {
        match self {
            Stop::Interrupted => crate::exit_code::ExitCode::Interrupted,
            Stop::Terminated => crate::exit_code::ExitCode::Terminated,
        }
    }
}

/// Carries out `items`, journaled, and gives each row of `rows` its write's answer. Returns
/// the signal that stopped the run early, if one did.
pub(crate) async fn execute(
    execution: Execution<'_>,
    rows: &mut [PlannedRow],
    items: Vec<WorkItem>,
) -> crate::Result<Option<Stop>> {
    let journal_path = execution.journal.path().to_owned();
    let journal = GroupCommit::start(execution.journal);
    for settled in execution.settled {
        journal.record(settled).await?;
    }
    let cancel = CancellationToken::new();
    let stop = Arc::new(std::sync::Mutex::new(None));
    let watcher = tokio::spawn(watch_signals(
        cancel.clone(),
        Arc::clone(&stop),
        Arc::clone(&execution.client),
    ));
    let total = match execution.options.max_writes {
        Some(max) => items.len().min(max),
        None => items.len(),
    };
    // A canary counts its own rows; each row costs one write request or more (a hop three).
    let requests: u64 = items.iter().take(total).map(WorkItem::requests).sum();
    tracing::info!(
        "writing {total} rows ({requests} requests) at {} writes/s, {} in flight, journal {}",
        execution.options.rate,
        execution.options.concurrency,
        journal_path.display()
    );
    let bar = progress::rows(requests, execution.quiet);
    let client = Arc::clone(&execution.client);
    let writer = Writer {
        directory: execution.client.as_ref(),
        journal: &journal,
        replay: execution.replay.as_ref(),
        tenant: execution.tenant,
        cancel: cancel.clone(),
        options: execution.options,
        on_row: Box::new(|_, requests| {
            bar.inc(requests);
            bar.set_message(format!("throttled {}", client.throttled()));
        }),
    };
    let results = writer.run(items).await;
    bar.finish_and_clear();
    tracing::info!("writes done: {} rows answered", results.len());
    watcher.abort();
    record_results(rows, results);
    let stopped = *stop.lock().expect("stop lock");
    Ok(stopped)
}

/// Gives each written row its answer: the outcome, the request, and the holder as written.
fn record_results(rows: &mut [PlannedRow], results: Vec<crate::write::Written>) {
    let stamp_time = crate::journal::now();
    let index = row_index(rows);
    for written in results {
        let row = &mut rows[index[&written.row]];
        row.verdict = written.verdict;
        row.answer.timestamp = stamp_time.clone();
        if let Some(meta) = written.meta {
            row.answer.http_status = meta.status;
            row.answer.graph_error_code = meta.code;
            row.answer.request_id = meta.request_id.unwrap_or_default();
            row.answer.attempts = meta.attempts;
        }
        if let Some(holder) = written.holder {
            row.holder = Some(holder);
        }
    }
}

/// Waits for Ctrl-C, SIGTERM or SIGHUP: the first stops new writes (those in flight finish
/// and are journaled); a second one also cuts short any Retry-After wait, so that the run
/// ends now with the rows still waiting `throttled-out`.
async fn watch_signals(
    cancel: CancellationToken,
    stop: Arc<std::sync::Mutex<Option<Stop>>>,
    client: Arc<GraphClient>,
) {
    let Some(first) = next_signal().await else {
        return;
    };
    *stop.lock().expect("stop lock") = Some(first);
    cancel.cancel();
    let why = match first {
        Stop::Interrupted => "interrupted",
        Stop::Terminated => "terminated",
    };
    // After SIGHUP the terminal may be gone: a failed message must not stop the stopping.
    let say = |message: String| {
        let _ = writeln!(std::io::stderr(), "{message}");
    };
    say(format!("\nhardmatch: {why}: finishing the writes in flight, sending no more (signal again to stop waiting for Graph)"));
    if next_signal().await.is_some() {
        client.abandon_waits();
        say("\nhardmatch: no longer waiting for Graph".into());
    }
}

/// The next stop signal, or `None` if none can be listened for.
#[cfg(unix)]
async fn next_signal() -> Option<Stop> {
    use tokio::signal::unix::{signal, SignalKind};
    let (mut term, mut hangup) = (
        signal(SignalKind::terminate()).ok()?,
        signal(SignalKind::hangup()).ok()?,
    );
    tokio::select! {
        result = tokio::signal::ctrl_c() => result.ok().map(|()| Stop::Interrupted),
        _ = term.recv() => Some(Stop::Terminated),
        _ = hangup.recv() => Some(Stop::Interrupted),
    }
}

#[cfg(not(unix))]
async fn next_signal() -> Option<Stop> {
    tokio::signal::ctrl_c()
        .await
        .ok()
        .map(|()| Stop::Interrupted)
}

/// Position of each report row number in `rows` (a rollback's rows are not 1..n).
fn row_index(rows: &[PlannedRow]) -> std::collections::HashMap<usize, usize> {
    rows.iter().enumerate().map(|(i, r)| (r.row, i)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::outcome::{Outcome, Verdict};
    use crate::planned::Named;
    use crate::tenant::User;

    fn user(id: &str, holds: Option<&str>) -> User {
        User {
            id: id.into(),
            user_principal_name: format!("{id}@contoso.com"),
            on_premises_immutable_id: holds.map(str::to_string),
            ..User::default()
        }
    }

    /// A row planned `action` on `id` (as the plan saw it, holding nothing), setting `anchor`.
    fn planned(row: usize, id: &str, action: Action, anchor: &str) -> PlannedRow {
        let mut planned = PlannedRow::new(
            row,
            Named::default(),
            Verdict::new(Outcome::WouldStamp, "will stamp"),
        );
        planned.action = Some(action);
        planned.target = Some(TargetState::of(&user(id, None)));
        planned.new_anchor = Some(anchor.into());
        planned
    }

    #[test]
    fn the_writes_are_built_from_the_typed_plan_on_the_tenant_as_read_now() {
        let mut purge = planned(1, "a", Action::PurgeHolderThenStamp, "A");
        purge.holder = Some(Holder {
            id: "deleted".into(),
            user_principal_name: "old@contoso.com".into(),
            deleted_date_time: Some("2026-11-30T10:00:00Z".into()),
        });
        let mut unlink = planned(2, "b", Action::ClearObjectIdentifierThenStamp, "B");
        unlink.object_identifier = Some("linked-b".into());
        let mut credited = planned(3, "c", Action::Stamp, "C");
        credited.settle(Verdict::new(
            Outcome::Stamped,
            "written by the interrupted run",
        ));
        let mut nothing = planned(4, "d", Action::None, "D");
        nothing.verdict = Verdict::new(Outcome::AlreadyMatched, "holds D");
        let unplanned = PlannedRow::new(
            5,
            Named::default(),
            Verdict::new(Outcome::InvalidAnchor, "not a GUID"),
        );
        let tenant = Tenant {
            users: vec![user("a", Some("MOVED")), user("b", None)],
            ..Tenant::default()
        };
        let rows = [purge, unlink, credited, nothing, unplanned];
        let items = work_items(&rows, &tenant);
        let summary: Vec<_> = items
            .iter()
            .map(|i| (i.row, i.action, i.new_anchor.as_deref()))
            .collect();
        assert_eq!(
            summary,
            [
                (1, Action::PurgeHolderThenStamp, Some("A")),
                (2, Action::ClearObjectIdentifierThenStamp, Some("B")),
            ]
        );
        assert_eq!(items[0].holder, rows[0].holder, "the holder to purge");
        assert_eq!(
            items[0].target.on_premises_immutable_id.as_deref(),
            Some("MOVED"),
            "the target as the tenant holds it now, not as planned"
        );
        assert_eq!(items[1].object_identifier.as_deref(), Some("linked-b"));
    }

    #[test]
    fn a_clear_sets_nothing_and_a_target_gone_from_the_read_is_written_as_planned() {
        let mut clear = planned(1, "gone", Action::Clear, "");
        clear.verdict = Verdict::new(Outcome::WouldClear, "will clear X");
        clear.new_anchor = None;
        let items = work_items(&[clear], &Tenant::default());
        assert_eq!(items.len(), 1);
        assert_eq!(items[0].new_anchor, None);
        assert_eq!(items[0].target.id, "gone");
    }
}
