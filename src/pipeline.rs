//! The one place where the stages meet: reader -> compute -> planner -> writer -> reporter.
//!
//! Commands call these functions; they never call the stages directly. Each function takes
//! the output of the stage before and gives one report [`Record`] per input row, in input
//! order, so that the reporter can never lose a row.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use tokio_util::sync::CancellationToken;

use crate::compute::{self, Candidate, ComputeOptions};
use crate::graph::read::{ReadStrategy, TenantRead, Wanted};
use crate::graph::GraphClient;
use crate::journal::{Entry, GroupCommit, Journal, Replay, Step};
use crate::outcome::Outcome;
use crate::plan::{
    Action, Decision, Holder, MatchBy, Mode, PlanOptions, Subject, TargetState, TenantIndex,
};
use crate::progress;
use crate::report::Record;
use crate::source::{Input, Role, Row, Source};
use crate::tenant::Tenant;
use crate::write::{WorkItem, WriteOptions, Writer};

/// An export read and computed: the offline half of every run. Its rows borrow from the
/// [`Source`] they were read from.
pub struct Prepared<'a> {
    pub input: Input<'a>,
    pub candidates: Vec<Candidate<'a>>,
}

/// Reads an opened export and computes every row's ImmutableId (on rayon's threads).
pub fn prepare<'a>(source: &'a Source, options: &ComputeOptions) -> crate::Result<Prepared<'a>> {
    let input = source.read()?;
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
    pub fn wanted(&self, match_by: MatchBy, mode: Mode) -> Wanted {
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
            }
        }
        wanted
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

/// Reads what the run needs of the tenant through Graph, the way `strategy` says, with a
/// progress line on a terminal.
pub async fn read_tenant(
    client: &crate::graph::GraphClient,
    wanted: &Wanted,
    strategy: ReadStrategy,
) -> crate::Result<TenantRead> {
    tracing::info!("reading the tenant ({strategy:?})");
    let bar = progress::spinner("reading the tenant");
    let read = client
        .read_tenant(wanted, strategy, |what, n| {
            bar.set_message(format!("reading the tenant: {n} {what}"))
        })
        .await
        .map_err(|e| crate::Error::Other(format!("cannot read the tenant: {e}")))?;
    bar.finish_and_clear();
    tracing::info!("tenant read: {}", read.how);
    Ok(read)
}

/// The writes a set of planned records calls for: every row whose action sends something.
/// `new_anchor` gives the value each row's write sets (`None` clears).
pub fn work_items(
    records: &[Record],
    tenant: &Tenant,
    new_anchor: impl Fn(&Record) -> Option<String>,
) -> Vec<WorkItem> {
    let initial = TenantIndex::new(tenant)
        .initial_domain()
        .map(str::to_string);
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
            });
            let hop_upn = (action == Action::FederatedHopThenStamp)
                .then(|| {
                    let local = target
                        .user_principal_name
                        .split('@')
                        .next()
                        .unwrap_or_default();
                    initial.as_ref().map(|domain| format!("{local}@{domain}"))
                })
                .flatten();
            let holder = (!record.holder_id.is_empty()).then(|| Holder {
                id: record.holder_id.clone(),
                user_principal_name: record.holder_upn.clone(),
                deleted_date_time: (!record.holder_deleted_at.is_empty())
                    .then(|| record.holder_deleted_at.clone()),
            });
            Some(WorkItem {
                row: record.row,
                action,
                target,
                new_anchor: new_anchor(record),
                holder,
                hop_upn,
            })
        })
        .collect()
}

/// How to carry out the writes of a run.
pub struct Execution<'a> {
    pub client: Arc<GraphClient>,
    pub tenant: &'a Tenant,
    pub journal_path: PathBuf,
    /// Continue the run this journal belongs to, instead of starting a new journal.
    pub resume: bool,
    pub options: WriteOptions,
    pub quiet: bool,
    pub command: String,
    pub input: String,
}

/// Carries out `items`, journaled, and writes each row's result into `records`. Returns
/// whether the run was interrupted (Ctrl-C).
pub async fn execute(
    execution: Execution<'_>,
    records: &mut [Record],
    items: Vec<WorkItem>,
) -> crate::Result<bool> {
    let replay = if execution.resume {
        Some(Journal::replay(&execution.journal_path)?)
    } else {
        None
    };
    let journal = GroupCommit::start(match &replay {
        Some(_) => Journal::append_to(&execution.journal_path)?,
        None => {
            let mut journal = Journal::create(&execution.journal_path)?;
            journal.record(&Entry::Run {
                version: env!("CARGO_PKG_VERSION").to_string(),
                command: execution.command.clone(),
                input: execution.input.clone(),
                started: chrono::Utc::now().to_rfc3339(),
            })?;
            journal
        }
    });
    if let Some(replay) = &replay {
        for settled in credit_interrupted_run(records, replay, execution.tenant) {
            journal.record(settled).await?;
        }
    }
    let cancel = CancellationToken::new();
    let interrupted = Arc::new(AtomicBool::new(false));
    let watcher = tokio::spawn({
        let cancel = cancel.clone();
        let interrupted = Arc::clone(&interrupted);
        async move {
            if tokio::signal::ctrl_c().await.is_ok() {
                eprintln!(
                    "\nhardmatch: interrupted: finishing the writes in flight, sending no more"
                );
                interrupted.store(true, Ordering::SeqCst);
                cancel.cancel();
            }
        }
    });
    tracing::info!(
        "writing {} rows ({} requests) at {} writes/s, {} in flight, journal {}",
        items.len(),
        items.iter().map(WorkItem::requests).sum::<u64>(),
        execution.options.rate,
        execution.options.concurrency,
        execution.journal_path.display()
    );
    let requests = items.iter().map(WorkItem::requests).sum();
    let bar = progress::rows(requests, execution.quiet);
    let client = Arc::clone(&execution.client);
    let writer = Writer {
        directory: execution.client.as_ref(),
        journal: &journal,
        replay: replay.as_ref(),
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
    let stamp_time = chrono::Utc::now().to_rfc3339();
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
    Ok(interrupted.load(Ordering::SeqCst))
}

/// On resume, the tenant already shows what the interrupted run wrote, so the planner calls
/// those rows `already-matched`. The journal knows better: they were written by this run.
/// Returns the results to journal for writes the interrupted run sent but could not record
/// (killed before the answer): the tenant shows they took effect, and rollback needs to know.
fn credit_interrupted_run(records: &mut [Record], replay: &Replay, tenant: &Tenant) -> Vec<Entry> {
    let index = row_index(records);
    let users = tenant.users_by_id();
    let mut settled = Vec::new();
    for (row, history) in &replay.rows {
        let Some(record) = index.get(row).map(|&i| &mut records[i]) else {
            continue;
        };
        let Some(Entry::Intent { user_id, new, .. }) = history.intents.iter().find(|e| {
            matches!(
                e,
                Entry::Intent {
                    step: Step::Anchor,
                    ..
                }
            )
        }) else {
            continue;
        };
        let now_holds = users
            .get(user_id.as_str())
            .and_then(|u| u.on_premises_immutable_id.clone());
        let applied = history
            .result(Step::Anchor)
            .is_some_and(|r| matches!(r, Entry::Result { applied: true, .. }));
        let took_effect = now_holds.is_some() && now_holds == *new;
        if !applied && took_effect {
            settled.push(Entry::Result {
                row: *row,
                step: Step::Anchor,
                applied: true,
                outcome: Outcome::Stamped,
                http_status: None,
                request_id: None,
                at: chrono::Utc::now().to_rfc3339(),
            });
        }
        if applied || took_effect {
            record.outcome = history
                .outcome()
                .filter(|_| applied)
                .or(Some(Outcome::Stamped));
            record.detail =
                "written by the interrupted run (from its journal); not sent again".into();
            record.action = Action::None.code().into();
        }
    }
    settled
}

/// Position of each report row number in `records` (a rollback's rows are not 1..n).
fn row_index(records: &[Record]) -> std::collections::HashMap<usize, usize> {
    records
        .iter()
        .enumerate()
        .map(|(i, r)| (r.row, i))
        .collect()
}

/// On resume, before the tenant is read: a federated hop cut short between moving the UPN
/// out and moving it back leaves the user under the stopover domain, where the plan would not
/// find it. Move each such user home first, journaled like any step.
pub async fn repair_interrupted_hops(
    client: &GraphClient,
    journal_path: &std::path::Path,
) -> crate::Result<usize> {
    let replay = Journal::replay(journal_path)?;
    let mut journal = None;
    let mut repaired = 0;
    for (row, history) in &replay.rows {
        let moved_out = matches!(
            history.result(Step::UpnOut),
            Some(Entry::Result { applied: true, .. })
        );
        let moved_back = matches!(
            history.result(Step::UpnBack),
            Some(Entry::Result { applied: true, .. })
        );
        let Some(Entry::Intent {
            user_id, upn: home, ..
        }) = history.intents.iter().find(|e| {
            matches!(
                e,
                Entry::Intent {
                    step: Step::UpnOut,
                    ..
                }
            )
        })
        else {
            continue;
        };
        if !moved_out || moved_back {
            continue;
        }
        let journal = match &mut journal {
            Some(j) => j,
            None => journal.insert(Journal::append_to(journal_path)?),
        };
        journal.record(&Entry::Intent {
            row: *row,
            step: Step::UpnBack,
            user_id: user_id.clone(),
            upn: home.clone(),
            previous: None,
            new: Some(home.clone()),
            at: chrono::Utc::now().to_rfc3339(),
        })?;
        let result = client.set_upn(user_id, home).await;
        journal.record(&Entry::Result {
            row: *row,
            step: Step::UpnBack,
            applied: result.is_ok(),
            outcome: result
                .as_ref()
                .map_or(Outcome::GraphError, |_| Outcome::Stamped),
            http_status: result.as_ref().ok().and_then(|a| a.meta.status),
            request_id: result.as_ref().ok().and_then(|a| a.meta.request_id.clone()),
            at: chrono::Utc::now().to_rfc3339(),
        })?;
        result.map_err(|e| crate::Error::Other(format!("cannot move {home} back from its federated hop: {e}; move it back by hand, then resume")))?;
        repaired += 1;
    }
    Ok(repaired)
}
