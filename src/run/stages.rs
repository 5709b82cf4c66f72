//! The stages joined: reader -> compute -> planner -> writer -> reporter.
//!
//! The runs in [`crate::run`] call these functions; they never call the stages directly. Each
//! function takes the output of the stage before and gives one report [`Record`] per input
//! row, in input order, so that the reporter can never lose a row.

use std::io::Write;
use std::sync::Arc;

use tokio_util::sync::CancellationToken;

use crate::compute::{self, Candidate, ComputeOptions};
use crate::graph::read::{ReadStrategy, TenantRead, Wanted};
use crate::graph::GraphClient;
use crate::journal::{Entry, GroupCommit, Journal, Replay};
use crate::outcome::Outcome;
use crate::outcome::Warning;
use crate::plan::{
    Action, Decision, Holder, MatchBy, Mode, PlanOptions, Subject, TargetState, TenantIndex,
};
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
            ..Record::default()
        };
        if let Some(verdict) = &candidate.verdict {
            record.outcome = Some(verdict.outcome);
            record.detail = verdict.detail.clone();
        }
        record
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

    /// The planner's decision for every row that the offline stages left open.
    pub(crate) fn decide(&self, tenant: &Tenant, options: &PlanOptions) -> Vec<Option<Decision>> {
        let index = TenantIndex::new(tenant);
        self.input
            .rows
            .iter()
            .zip(&self.candidates)
            .map(|(row, candidate)| {
                candidate
                    .verdict
                    .is_none()
                    .then(|| index.decide(&subject(row, candidate), options))
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

/// Fills a record with a planner decision.
pub(crate) fn apply_decision(record: &mut Record, decision: &Decision) {
    record.outcome = Some(decision.verdict.outcome);
    record.detail = decision.verdict.detail.clone();
    record.warnings = decision.warnings.clone();
    record.action = decision.action.code().to_string();
    if let Some(target) = &decision.target {
        record.cloud_user_id = target.id.clone();
        record.cloud_upn = target.user_principal_name.clone();
        record.previous_immutable_id = target.on_premises_immutable_id.clone();
        if decision.action == Action::ClearObjectIdentifierThenStamp {
            record.object_identifier = target.on_premises_object_identifier.clone();
        }
    }
    if let Some(holder) = &decision.holder {
        record.holder_id = holder.id.clone();
        record.holder_upn = holder.user_principal_name.clone();
        record.holder_deleted_at = holder.deleted_date_time.clone().unwrap_or_default();
    }
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

/// The writes a set of planned records calls for: every row whose action sends something.
/// `new_anchor` gives the value each row's write sets (`None` clears).
pub(crate) fn work_items(
    records: &[Record],
    tenant: &Tenant,
    new_anchor: impl Fn(&Record) -> Option<String>,
) -> Vec<WorkItem> {
    let context = WriteContext::new(tenant);
    let users = tenant.users_by_id();
    records
        .iter()
        .filter_map(|record| {
            let action = Action::from_code(&record.action).filter(|a| *a != Action::None)?;
            let planned = record
                .outcome
                .is_some_and(|o| matches!(o, Outcome::WouldStamp | Outcome::WouldClear));
            if !planned {
                return None;
            }
            let user = users.get(record.cloud_user_id.as_str()).copied();
            let target = user.map(TargetState::of).unwrap_or_else(|| TargetState {
                id: record.cloud_user_id.clone(),
                user_principal_name: record.cloud_upn.clone(),
                on_premises_immutable_id: record.previous_immutable_id.clone(),
                on_premises_sync_enabled: false,
                on_premises_object_identifier: record.object_identifier.clone(),
            });
            let holder = (!record.holder_id.is_empty()).then(|| Holder {
                id: record.holder_id.clone(),
                user_principal_name: record.holder_upn.clone(),
                deleted_date_time: (!record.holder_deleted_at.is_empty())
                    .then(|| record.holder_deleted_at.clone()),
            });
            let facts = RowFacts {
                object_identifier: record.object_identifier.clone(),
                roles_unknown: record.warnings.contains(Warning::RolesUnknown),
            };
            Some(context.work_item(
                record.row,
                action,
                target,
                new_anchor(record),
                holder,
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
        WriteContext {
            initial: tenant.initial_domain().map(str::to_string),
            privileges: Privileges::new(tenant),
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
        let privileged = privileged_because(&self.privileges, &target.id, facts.roles_unknown);
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

/// Carries out `items`, journaled, and writes each row's result into `records`. Returns the
/// signal that stopped the run early, if one did.
pub(crate) async fn execute(
    execution: Execution<'_>,
    records: &mut [Record],
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
    record_results(records, results);
    let stopped = *stop.lock().expect("stop lock");
    Ok(stopped)
}

/// Writes each row's result into its record.
fn record_results(records: &mut [Record], results: Vec<crate::write::Written>) {
    let stamp_time = crate::journal::now();
    let index = row_index(records);
    for written in results {
        let record = &mut records[index[&written.row]];
        record.outcome = Some(written.verdict.outcome);
        record.detail = written.verdict.detail;
        record.timestamp = stamp_time.clone();
        if let Some(meta) = written.meta {
            record.http_status = meta.status;
            record.graph_error_code = meta.code;
            record.request_id = meta.request_id.unwrap_or_default();
            record.attempts = meta.attempts;
        }
        if let Some(holder) = written.holder {
            record.holder_id = holder.id;
            record.holder_upn = holder.user_principal_name;
            record.holder_deleted_at = holder.deleted_date_time.unwrap_or_default();
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

/// Position of each report row number in `records` (a rollback's rows are not 1..n).
fn row_index(records: &[Record]) -> std::collections::HashMap<usize, usize> {
    records
        .iter()
        .enumerate()
        .map(|(i, r)| (r.row, i))
        .collect()
}
