//! The writer stage: carries out planned writes at the Graph write quota, journaling each one
//! before it is sent, and turns every answer into an outcome for the report.
//!
//! It talks to Graph through the [`Directory`] seam, so that its unit tests run against an
//! in-memory directory under paused time. Pacing, throttling and retries are the write-rate
//! policy's ([`WriteRate`]): every request, not every row, takes a token of the quota.
//! Concurrency is bounded so that latency never caps throughput. Rows are independent: one
//! failure never stops the others, except what would fail every row: 403s before any write
//! went through (the app lacks the permission; a 403 on a target known or possibly guarded,
//! privileged or in a role-assignable group, does not count), and a token that cannot be
//! renewed.

use std::future::Future;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use futures::stream::{self, StreamExt};
use tokio_util::sync::CancellationToken;

use crate::graph::pace::{StaleRead, Unsent, WriteRate, DEFAULT_WRITE_RATE};
use crate::graph::{Answer, Directory, GraphError, Meta, Write};
use crate::journal::{now, Entry, GroupCommit, Replay, Step};
use crate::outcome::{Outcome, Verdict};
use crate::plan::{Action, Holder, TargetState};
use crate::tenant::{Privileges, Tenant, SENSITIVE_ATTRIBUTES_RULE};

/// One row's planned write.
#[derive(Clone, Debug)]
pub(crate) struct WorkItem {
    /// 1-based report row.
    pub(crate) row: usize,
    pub(crate) action: Action,
    pub(crate) target: TargetState,
    /// The anchor to set; `None` clears it.
    pub(crate) new_anchor: Option<String>,
    pub(crate) holder: Option<Holder>,
    /// For the federated hop: the stopover UPN in the initial domain.
    pub(crate) hop_upn: Option<String>,
    /// With `clear-object-identifier-then-stamp`, the onPremisesObjectIdentifier cleared
    /// before the stamp; with `put-back-object-identifier` (rollback), the one put back.
    pub(crate) object_identifier: Option<String>,
    /// Why the target is, or may be, guarded (see [`privileged_because`]): a 403 on it is
    /// Graph guarding its sensitive attributes, not evidence that the app lacks the
    /// permission, so it never stops the run.
    pub(crate) privileged: Option<String>,
}

/// Why Graph guards, or may guard, a target's sensitive attributes
/// ([`Privileges::guarded`]): the privileged roles it is known to hold, the role-assignable
/// groups it is a member or owner of, or the role and group data the plan could not read
/// (`roles_unknown`, the `roles-unknown` warning).
pub(crate) fn privileged_because(
    privileges: &Privileges,
    user_id: &str,
    roles_unknown: bool,
) -> Option<String> {
    if let Some(guarded) = privileges.guarded(user_id) {
        return Some(guarded.to_string());
    }
    roles_unknown.then(|| "may hold a privileged role or be in a role-assignable group (the plan could not read roles or groups)".into())
}

/// What writing onPremisesObjectIdentifier needs (SECURITY.md).
pub(crate) const OBJECT_IDENTIFIER_RIGHTS: &str = "writing onPremisesObjectIdentifier needs the permission User-OnPremisesSyncBehavior.ReadWrite.All (granted with admin consent) and a caller in the Global Administrator or Hybrid Identity Administrator role (for an app: that role assigned to its service principal)";

/// The detail of a row a canary (`--max-writes`) left for later: not a failure.
pub(crate) const CANARY_LEFT: &str =
    "--max-writes was reached; continue with --resume (the command is in the summary) to write this row";

impl WorkItem {
    /// The write requests this row sends when all goes well: the purge, the hop's way out and
    /// back, and the anchor. What the progress bar and its ETA count.
    pub(crate) fn requests(&self) -> u64 {
        let purge = self.action == Action::PurgeHolderThenStamp && self.holder.is_some();
        let hop = self.action.hops() && self.hop_upn.is_some();
        1 + u64::from(purge) + 2 * u64::from(hop) + u64::from(self.object_identifier.is_some())
    }
}

/// How the writer runs.
#[derive(Clone, Debug)]
pub(crate) struct WriteOptions {
    /// Write requests per second (the documented quota is [`DEFAULT_WRITE_RATE`]).
    pub(crate) rate: f64,
    pub(crate) concurrency: usize,
    /// Stop after this many rows were written (a canary batch).
    pub(crate) max_writes: Option<usize>,
    /// Read each written user back and compare.
    pub(crate) verify: bool,
    /// After this many 403s with no write let through yet, stop: the app lacks the
    /// permission. Once a write went through, a 403 is about its target only.
    pub(crate) forbidden_limit: usize,
    /// What success is called: `stamped`, `cleared` or `restored`.
    pub(crate) success: Outcome,
}

impl Default for WriteOptions {
    fn default() -> Self {
        WriteOptions {
            rate: DEFAULT_WRITE_RATE,
            concurrency: 32,
            max_writes: None,
            verify: false,
            forbidden_limit: 3,
            success: Outcome::Stamped,
        }
    }
}

/// Why a row's steps stopped.
enum RowFailure {
    /// Graph refused the request of this step (or the read-back after it).
    Graph(GraphError, Step),
    /// The intent could not be journaled, so the request was not sent.
    Unjournaled,
    /// The run stopped before Graph took the row's first request.
    Stopped,
}

/// What happened to one row.
#[derive(Clone, Debug)]
pub(crate) struct Written {
    pub(crate) row: usize,
    pub(crate) verdict: Verdict,
    pub(crate) meta: Option<Meta>,
    pub(crate) holder: Option<Holder>,
}

/// Where the writer journals: a [`GroupCommit`] in a run. Its unit tests write a
/// [`crate::journal::Journal`] in place instead, so that paused time cannot run ahead while a
/// thread syncs the disk.
pub(crate) trait Journaling: Sync {
    fn record(&self, entry: Entry) -> impl Future<Output = crate::Result<()>> + Send;
}

impl Journaling for GroupCommit {
    fn record(&self, entry: Entry) -> impl Future<Output = crate::Result<()>> + Send {
        GroupCommit::record(self, entry)
    }
}

/// Called after each row with the write requests it stood for, for the progress bar.
pub(crate) type OnRow<'a> = Box<dyn Fn(&Written, u64) + Send + Sync + 'a>;

/// Everything the writer needs besides the items.
pub(crate) struct Writer<'a, D: Directory, J: Journaling = GroupCommit> {
    pub(crate) directory: &'a D,
    pub(crate) journal: &'a J,
    /// On resume, the rows whose write an interrupted run sent without journaling the answer
    /// (rows it finished are not given to the writer at all: see [`crate::resume`]).
    pub(crate) replay: Option<&'a Replay>,
    /// For naming the holder of a conflicting anchor.
    pub(crate) tenant: &'a Tenant,
    pub(crate) cancel: CancellationToken,
    pub(crate) options: WriteOptions,
    pub(crate) on_row: OnRow<'a>,
}

/// The state one run's rows share.
struct Run {
    pace: WriteRate,
    /// Cancelled by Ctrl-C (through the writer's `cancel`) or by a run-wide failure.
    stop: CancellationToken,
    /// Rows that started writing, for `--max-writes`.
    started: AtomicUsize,
    evidence: Evidence,
}

/// What the answers so far say about the app's right to write.
#[derive(Default)]
struct Evidence {
    /// Writes Graph judged on their merits (applied, or refused for a reason of the target's
    /// own): the app may write.
    let_through: AtomicUsize,
    forbidden: AtomicUsize,
    /// Set once the run was stopped for a run-wide failure, so that it is said once.
    stopped: AtomicBool,
}

/// Why a whole run stops.
enum RunStop {
    /// 403s, and no write went through.
    NoPermission,
    /// Graph refused the token and no new one could be had.
    Unauthorized(String),
}

const STOPPED: &str = "the run stopped before this row was written";

/// The code of a `--verify` read-back that differs from the value written.
const VERIFY_MISMATCH: &str = "VerifyMismatch";

impl<D: Directory, J: Journaling> Writer<'_, D, J> {
    /// Writes every item and returns one [`Written`] per item, in any order.
    pub(crate) async fn run(&self, items: Vec<WorkItem>) -> Vec<Written> {
        let run = Run {
            pace: WriteRate::new(self.options.rate),
            stop: self.cancel.child_token(),
            started: AtomicUsize::new(0),
            evidence: Evidence::default(),
        };
        let written = stream::iter(items)
            .map(|item| self.row(&run, item))
            .buffer_unordered(self.options.concurrency.max(1))
            .collect()
            .await;
        tracing::info!("the write rate ended at {:.2}/s", run.pace.rate());
        written
    }

    async fn row(&self, run: &Run, item: WorkItem) -> Written {
        if run.stop.is_cancelled() {
            return not_attempted(&item, STOPPED);
        }
        let canary_done = self
            .options
            .max_writes
            .is_some_and(|max| run.started.fetch_add(1, Ordering::SeqCst) >= max);
        if canary_done {
            return not_attempted(&item, CANARY_LEFT);
        }
        let written = self.write_row(run, &item).await;
        (self.on_row)(&written, item.requests());
        written
    }

    async fn write_row(&self, run: &Run, item: &WorkItem) -> Written {
        match self.steps(run, item).await {
            Ok(meta) => {
                run.evidence.let_through.fetch_add(1, Ordering::SeqCst);
                let mut detail = match (&item.new_anchor, self.options.success) {
                    (_, Outcome::Restored) => format!(
                        "put back {}",
                        item.new_anchor.as_deref().unwrap_or("(no value)")
                    ),
                    (Some(anchor), _) => format!("stamped {anchor}"),
                    (None, _) => "cleared".to_string(),
                };
                if let Some(linked) = &item.object_identifier {
                    detail.push_str(&match item.action {
                        Action::PutBackObjectIdentifier => {
                            format!(" and onPremisesObjectIdentifier {linked}")
                        }
                        _ => format!(" after clearing onPremisesObjectIdentifier {linked}"),
                    });
                }
                Written {
                    row: item.row,
                    verdict: Verdict::new(self.options.success, detail),
                    meta: Some(meta),
                    holder: None,
                }
            }
            Err(RowFailure::Graph(error, step)) => {
                self.judge_run(run, item, step, &error);
                self.failure(item, step, error).await
            }
            Err(RowFailure::Unjournaled) => not_attempted(
                item,
                "not sent: the journal could not be written (see the error above), and nothing is sent that a resume could not account for",
            ),
            Err(RowFailure::Stopped) => not_attempted(item, STOPPED),
        }
    }

    /// The row's requests, each journaled before it is sent. Only the first can be stopped:
    /// once Graph has taken one, the row is finished, so that no user is left half-way (a
    /// holder purged but no stamp, a UPN out in the stopover domain).
    async fn steps(&self, run: &Run, item: &WorkItem) -> Result<Meta, RowFailure> {
        let finish = CancellationToken::new();
        let mut stop = &run.stop;
        if item.action == Action::PurgeHolderThenStamp {
            if let Some(holder) = &item.holder {
                let purge = Write::Purge {
                    id: holder.id.clone(),
                };
                self.step(run, stop, item, Step::PurgeHolder, purge, Some(&holder.id))
                    .await?;
                stop = &finish;
            }
        }
        if let Some(linked) = &item.object_identifier {
            let (value, previous) = match item.action {
                Action::PutBackObjectIdentifier => (Some(linked.clone()), None),
                _ => (None, Some(linked.as_str())),
            };
            let write = Write::ObjectIdentifier {
                user_id: item.target.id.clone(),
                value,
            };
            self.step(run, stop, item, Step::ObjectIdentifier, write, previous)
                .await?;
            stop = &finish;
        }
        let hop = item.action.hops();
        let user_id = &item.target.id;
        let home = &item.target.user_principal_name;
        if let (true, Some(stopover)) = (hop, &item.hop_upn) {
            let out = Write::Upn {
                user_id: user_id.clone(),
                upn: stopover.clone(),
            };
            self.step(run, stop, item, Step::UpnOut, out, Some(home))
                .await?;
            stop = &finish;
        }
        if self.in_doubt_and_applied(item).await {
            return Ok(Meta {
                attempts: 0,
                ..Meta::default()
            });
        }
        let anchor = Write::Anchor {
            user_id: user_id.clone(),
            value: item.new_anchor.clone(),
        };
        let previous = item.target.on_premises_immutable_id.as_deref();
        let meta = self
            .step(run, stop, item, Step::Anchor, anchor, previous)
            .await?;
        if let (true, Some(stopover)) = (hop, &item.hop_upn) {
            let back = Write::Upn {
                user_id: user_id.clone(),
                upn: home.clone(),
            };
            self.step(run, &finish, item, Step::UpnBack, back, Some(stopover))
                .await?;
        }
        if self.options.verify {
            self.verify(item)
                .await
                .map_err(|e| RowFailure::Graph(e, Step::Anchor))?;
        }
        Ok(meta)
    }

    /// On resume: an anchor write whose intent was journaled but whose result was not may have
    /// reached Graph. Read the user: if it already holds the new value, record that and do not
    /// send the write again.
    async fn in_doubt_and_applied(&self, item: &WorkItem) -> bool {
        let in_doubt = self
            .replay
            .and_then(|r| r.rows.get(&item.row))
            .is_some_and(|h| h.in_doubt().contains(&Step::Anchor));
        if !in_doubt {
            return false;
        }
        let applied = crate::resume::applied_after_all(
            self.directory,
            &item.target.id,
            item.new_anchor.as_deref(),
        )
        .await;
        if applied {
            self.journal(Entry::Result {
                row: item.row,
                step: Step::Anchor,
                user_id: item.target.id.clone(),
                applied: true,
                outcome: self.options.success,
                http_status: None,
                request_id: None,
                at: now(),
            })
            .await;
        }
        applied
    }

    /// Waits for leave to send, journals the intent (`previous`: what the write replaces),
    /// sends (retried as the write-rate policy says), journals the result. Nothing is sent
    /// unless its intent is on disk. A step stopped before Graph took it leaves its intent
    /// without a result: a resume reads the user before writing again.
    async fn step(
        &self,
        run: &Run,
        stop: &CancellationToken,
        item: &WorkItem,
        step: Step,
        write: Write,
        previous: Option<&str>,
    ) -> Result<Meta, RowFailure> {
        let permit = run.pace.acquire(stop).await.ok_or(RowFailure::Stopped)?;
        let intent = Entry::Intent {
            row: item.row,
            step,
            user_id: item.target.id.clone(),
            upn: item.target.user_principal_name.clone(),
            previous: previous.map(str::to_string),
            new: write.value().map(str::to_string),
            at: now(),
        };
        if !self.journal(intent).await {
            return Err(RowFailure::Unjournaled);
        }
        if stop.is_cancelled() {
            return Err(RowFailure::Stopped);
        }
        let sent = run.pace.send(self.directory, &write, permit, stop).await;
        let sent = self
            .past_a_stale_purge(run, stop, item, step, &write, sent)
            .await;
        let result = match sent {
            Ok(answer) => Ok(answer),
            Err(Unsent::Refused(error)) => Err(error),
            Err(Unsent::Stopped) => return Err(RowFailure::Stopped),
        };
        let (applied, outcome, meta) = match &result {
            Ok(answer) => (true, self.options.success, Some(answer.meta.clone())),
            Err(e) => (false, step_outcome(e, step), e.meta().cloned()),
        };
        self.journal(Entry::Result {
            row: item.row,
            step,
            user_id: item.target.id.clone(),
            applied,
            outcome,
            http_status: meta.as_ref().and_then(|m| m.status),
            request_id: meta.as_ref().and_then(|m| m.request_id.clone()),
            at: now(),
        })
        .await;
        result
            .map(|answer| answer.meta)
            .map_err(|e| RowFailure::Graph(e, step))
    }

    /// A conflict with the very holder this row has just purged may be Graph still seeing it
    /// (no read-after-write guarantee): the anchor write is sent again, with backoff, before
    /// the conflict stands. Each attempt is a write like any other (one token each).
    async fn past_a_stale_purge(
        &self,
        run: &Run,
        stop: &CancellationToken,
        item: &WorkItem,
        step: Step,
        write: &Write,
        sent: Result<Answer, Unsent>,
    ) -> Result<Answer, Unsent> {
        let purged = item
            .holder
            .as_ref()
            .filter(|_| step == Step::Anchor && item.action == Action::PurgeHolderThenStamp);
        let Some(purged) = purged else { return sent };
        let held_by_purged = |sent: &Result<Answer, Unsent>| {
            matches!(sent, Err(Unsent::Refused(GraphError::Conflict { holder_id, .. }))
                if holder_id.as_deref().is_none_or(|id| id.eq_ignore_ascii_case(&purged.id)))
        };
        let again = || run.pace.write(self.directory, write, stop);
        StaleRead::default()
            .settle(
                "the holder this row purged still holds the anchor",
                sent,
                again,
                held_by_purged,
            )
            .await
    }

    /// Learns from a row's failure what it says about the run: a 403 before any write went
    /// through, `forbidden_limit` times, means the app lacks the permission; a token Graph
    /// refuses and that cannot be renewed fails every row. Either stops the run.
    ///
    /// Some 403s say nothing about the app's right to write users, and never count: one on a
    /// target that is (or may be) privileged or in a role-assignable group (Graph guards its
    /// sensitive attributes), and one
    /// to the onPremisesObjectIdentifier write (its own permission and role, which the row's
    /// detail names).
    fn judge_run(&self, run: &Run, item: &WorkItem, step: Step, error: &GraphError) {
        let evidence = &run.evidence;
        match error {
            GraphError::Forbidden(_)
                if item.privileged.is_some() || step == Step::ObjectIdentifier => {}
            GraphError::Forbidden(_) => {
                let forbidden = evidence.forbidden.fetch_add(1, Ordering::SeqCst) + 1;
                if forbidden >= self.options.forbidden_limit
                    && evidence.let_through.load(Ordering::SeqCst) == 0
                {
                    self.stop_run(run, RunStop::NoPermission);
                }
            }
            GraphError::Auth(why) => self.stop_run(run, RunStop::Unauthorized(why.clone())),
            GraphError::Conflict { .. }
            | GraphError::Synced(_)
            | GraphError::Federated(_)
            | GraphError::NotFound(_) => {
                evidence.let_through.fetch_add(1, Ordering::SeqCst);
            }
            GraphError::Throttled(_)
            | GraphError::Transport(_)
            | GraphError::Setup(_)
            | GraphError::Other(_) => {}
        }
    }

    /// Stops the run, saying why once: the rows not yet written become `not-attempted`.
    fn stop_run(&self, run: &Run, why: RunStop) {
        if run.evidence.stopped.swap(true, Ordering::SeqCst) {
            return;
        }
        run.stop.cancel();
        let message = match why {
            RunStop::NoPermission => format!(
                "Graph refused the first {} writes (403 Authorization_RequestDenied) and let none through: the app lacks the permission to write users (User.ReadWrite.All, or User.ReadUpdate.All; see SECURITY.md). Grant it with admin consent, then resume this run (--resume JOURNAL)",
                run.evidence.forbidden.load(Ordering::SeqCst)
            ),
            RunStop::Unauthorized(why) => format!(
                "{}; no new token can be had (a HARDMATCH_ACCESS_TOKEN cannot be renewed: get a new one, or sign in another way), then resume this run (--resume JOURNAL)",
                why.trim_end_matches('.')
            ),
        };
        eprintln!("hardmatch: stopping: {message}. The rows not written are `not-attempted`.");
    }

    /// Reads the written user back; a mismatch is read again (it may be a stale read) before
    /// it stands.
    async fn verify(&self, item: &WorkItem) -> Result<(), GraphError> {
        let first = self.read_back(item).await;
        let mismatch = |read: &Result<(), GraphError>| matches!(read, Err(GraphError::Other(meta)) if meta.code == VERIFY_MISMATCH);
        StaleRead::default()
            .settle(
                "the read-back differs from the value written",
                first,
                || self.read_back(item),
                mismatch,
            )
            .await
    }

    async fn read_back(&self, item: &WorkItem) -> Result<(), GraphError> {
        let user = self.directory.get_user(&item.target.id).await?;
        let now_holds = user
            .as_ref()
            .and_then(|u| u.on_premises_immutable_id.clone())
            .filter(|v| !v.is_empty());
        if now_holds == item.new_anchor {
            Ok(())
        } else {
            Err(GraphError::Other(Box::new(Meta {
                code: VERIFY_MISMATCH.into(),
                message: format!(
                    "read back {} instead of {}",
                    now_holds.as_deref().unwrap_or("no value"),
                    item.new_anchor.as_deref().unwrap_or("no value")
                ),
                ..Meta::default()
            })))
        }
    }

    /// Records `entry` durably; says whether it could. A journal failure stops the run:
    /// writing without a journal would break the promise that a resume never repeats a write.
    async fn journal(&self, entry: Entry) -> bool {
        match self.journal.record(entry).await {
            Ok(()) => true,
            Err(e) => {
                if !self.cancel.is_cancelled() {
                    eprintln!("hardmatch: {e}; stopping");
                }
                self.cancel.cancel();
                false
            }
        }
    }

    async fn failure(&self, item: &WorkItem, step: Step, error: GraphError) -> Written {
        if let GraphError::Conflict { property, .. } = &error {
            if property.eq_ignore_ascii_case("userPrincipalName") {
                return self.upn_conflict(item, step, error).await;
            }
        }
        let outcome = outcome_of(&error);
        let mut holder = None;
        let detail = match &error {
            GraphError::Forbidden(meta) if step == Step::ObjectIdentifier => format!(
                "Graph refused to write onPremisesObjectIdentifier ({meta}): {OBJECT_IDENTIFIER_RIGHTS}; nothing else was sent for this user"
            ),
            GraphError::Conflict { holder_id, .. } => {
                holder = self.conflict_holder(holder_id.as_deref(), item).await;
                let name = holder.as_ref().map_or_else(
                    || holder_id.clone().unwrap_or_else(|| "another object".into()),
                    |h| format!("{} (id {})", h.user_principal_name, h.id),
                );
                match outcome {
                    Outcome::AnchorHeldByDeletedUser => format!("Graph refused: the deleted user {name} holds the anchor; pass --purge-deleted-holders to remove it for good"),
                    _ => format!("Graph refused: {name} already holds the anchor"),
                }
            }
            GraphError::Forbidden(meta) => {
                let rule = SENSITIVE_ATTRIBUTES_RULE;
                match &item.privileged {
                    Some(why) => format!("Graph refused this user ({meta}): {} {why}; {rule}; the run went on (this 403 is about this user, not the app's permission)", item.target.user_principal_name),
                    None => format!("Graph refused this user ({meta}): {rule}; check this user's roles"),
                }
            }
            other => format!("Graph refused: {other}"),
        };
        Written {
            row: item.row,
            verdict: Verdict::new(outcome_for(outcome, &holder), detail),
            meta: error.meta().cloned(),
            holder,
        }
    }

    /// A hop step refused because another user holds the UPN it moves to: on the way out the
    /// user was left where it was (`federated-domain`); on the way back it holds its new value
    /// but stays at the stopover until its home UPN is free and a resume moves it home. The
    /// holder is found by that UPN, not by the anchor.
    async fn upn_conflict(&self, item: &WorkItem, step: Step, error: GraphError) -> Written {
        let home = &item.target.user_principal_name;
        let stopover = item.hop_upn.as_deref().unwrap_or("the stopover UPN");
        let taken = match step {
            Step::UpnBack => home.as_str(),
            _ => stopover,
        };
        let holder = match self.upn_holder(taken).await {
            Some(user) => format!("{} (id {})", user.user_principal_name, user.id),
            None => "another object".to_string(),
        };
        let detail = match step {
            Step::UpnBack => format!(
                "Graph refused to move the user home from the federated hop: {holder} now holds {home} (userPrincipalName conflict); it holds {} and is still at {stopover}; free {home}, then resume this run (--resume JOURNAL moves it home)",
                item.new_anchor.as_deref().unwrap_or("no ImmutableId")
            ),
            _ => format!(
                "the federated hop's stopover UPN {stopover} is taken by {holder} (userPrincipalName conflict): {home} was left where it was, unchanged; rename or remove that user, then resume this run"
            ),
        };
        Written {
            row: item.row,
            verdict: Verdict::new(step_outcome(&error, step), detail),
            meta: error.meta().cloned(),
            holder: None,
        }
    }

    /// The user that holds `upn`: from the tenant as read before the run, else looked up in
    /// Graph (one that took it since). A failed lookup leaves it unnamed.
    async fn upn_holder(&self, upn: &str) -> Option<crate::tenant::User> {
        let wanted = crate::tenant::caseless(upn);
        let known = self
            .tenant
            .users
            .iter()
            .find(|u| crate::tenant::caseless(&u.user_principal_name) == wanted);
        match known {
            Some(user) => Some(user.clone()),
            None => self.directory.get_user(upn).await.ok().flatten(),
        }
    }

    /// Who holds the anchor a write was refused for: from the tenant as read before the run,
    /// else looked up in Graph (a holder that appeared since, or one a per-row read did not
    /// fetch). A failed lookup leaves the holder unnamed; the row's outcome stands.
    async fn conflict_holder(&self, holder_id: Option<&str>, item: &WorkItem) -> Option<Holder> {
        if let Some(known) = holder_id.and_then(|id| find_holder(self.tenant, id)) {
            return Some(known);
        }
        let anchor = item.new_anchor.as_deref()?;
        let user = self
            .directory
            .anchor_holder(holder_id, anchor)
            .await
            .ok()??;
        Some(Holder::of(&user))
    }
}

/// The report outcome of a failed call.
pub(crate) fn outcome_of(error: &GraphError) -> Outcome {
    match error {
        GraphError::Conflict { .. } => Outcome::AnchorHeldByUser,
        GraphError::Synced(_) => Outcome::TargetSynced,
        GraphError::Federated(_) => Outcome::FederatedDomain,
        GraphError::NotFound(_) => Outcome::TargetNotFound,
        GraphError::Forbidden(_) => Outcome::PermissionDenied,
        GraphError::Throttled(_) => Outcome::ThrottledOut,
        GraphError::Auth(_)
        | GraphError::Setup(_)
        | GraphError::Transport(_)
        | GraphError::Other(_) => Outcome::GraphError,
    }
}

/// The outcome of a failed step, for the journal and the report: a UPN conflict is the hop's,
/// not an anchor conflict. On the way out the user stayed home (`federated-domain`); on the
/// way back it is left at the stopover (`graph-error`, until a resume moves it home).
fn step_outcome(error: &GraphError, step: Step) -> Outcome {
    match error {
        GraphError::Conflict { property, .. }
            if property.eq_ignore_ascii_case("userPrincipalName") =>
        {
            match step {
                Step::UpnBack => Outcome::GraphError,
                _ => Outcome::FederatedDomain,
            }
        }
        _ => outcome_of(error),
    }
}

/// A conflict whose holder is in the recycle bin is the deleted-user conflict.
fn outcome_for(outcome: Outcome, holder: &Option<Holder>) -> Outcome {
    match (outcome, holder) {
        (Outcome::AnchorHeldByUser, Some(h)) if h.deleted_date_time.is_some() => {
            Outcome::AnchorHeldByDeletedUser
        }
        _ => outcome,
    }
}

fn find_holder(tenant: &Tenant, id: &str) -> Option<Holder> {
    tenant
        .users
        .iter()
        .chain(&tenant.deleted_users)
        .find(|u| u.id.eq_ignore_ascii_case(id))
        .map(Holder::of)
}

fn not_attempted(item: &WorkItem, why: &str) -> Written {
    Written {
        row: item.row,
        verdict: Verdict::new(Outcome::NotAttempted, why),
        meta: None,
        holder: None,
    }
}

#[cfg(test)]
mod tests {
    //! The writer against an in-memory Graph, under paused time: every figure is exact, and
    //! no test sleeps.

    use std::collections::{HashMap, HashSet};
    use std::sync::Mutex;
    use std::time::Duration;

    use tokio::time::Instant;

    use super::*;
    use crate::graph::{Answer, Attempt};
    use crate::journal::Journal;
    use crate::tenant::User;

    /// An in-memory Graph: its users, every request sent to it and when, and the answers a
    /// test asks for.
    #[derive(Default)]
    struct Fake {
        users: Mutex<HashMap<String, User>>,
        sent: Mutex<Vec<(Instant, Write)>>,
        /// Anchor writes and purges applied, per user or deleted user.
        applied: Mutex<HashMap<String, usize>>,
        latency: Duration,
        /// Users whose writes are refused with 403 (privileged users, for this app).
        forbidden: HashSet<String>,
        /// UPNs another user holds: a move to one is a userPrincipalName conflict.
        taken_upns: HashSet<String>,
        /// Every request before this moment is answered 429, Retry-After to its end.
        storm_until: Mutex<Option<Instant>>,
        /// Graph throttling below the documented quota: a token bucket of (capacity, writes
        /// per second); requests finding it empty get 429.
        limit: Option<(f64, f64)>,
        bucket: Mutex<(f64, Option<Instant>)>,
        /// Requests after this many get 401: a token that expired and cannot be renewed.
        token_lasts: Option<usize>,
        /// Requests from this one (1-based) on are applied but never answered: the process
        /// dies with them in flight.
        dies_at: Option<usize>,
        /// When each 429 was answered, and its Retry-After.
        throttled: Mutex<Vec<(Instant, Duration)>>,
        /// Called with each request's number as it is sent (a Ctrl-C at a given moment).
        on_send: Option<Box<dyn Fn(usize) + Send + Sync>>,
    }

    fn meta(status: u16) -> Box<Meta> {
        Box::new(Meta {
            status: Some(status),
            ..Meta::default()
        })
    }

    impl Fake {
        fn with_users(n: usize) -> Fake {
            let users = (1..=n)
                .map(|row| {
                    let user = User {
                        id: format!("u{row}"),
                        user_principal_name: format!("user{row}@fed.contoso.com"),
                        ..User::default()
                    };
                    (user.id.clone(), user)
                })
                .collect();
            Fake {
                users: Mutex::new(users),
                latency: Duration::from_millis(100),
                ..Fake::default()
            }
        }

        fn sent(&self) -> Vec<(Instant, Write)> {
            self.sent.lock().unwrap().clone()
        }

        fn applied_twice(&self) -> usize {
            self.applied
                .lock()
                .unwrap()
                .values()
                .filter(|&&n| n > 1)
                .count()
        }

        /// 429 from the storm or the bucket, with how long to wait.
        fn throttle(&self, now: Instant) -> Option<Duration> {
            if let Some(until) = *self.storm_until.lock().unwrap() {
                if now < until {
                    return Some(until - now);
                }
            }
            let (capacity, per_second) = self.limit?;
            let mut bucket = self.bucket.lock().unwrap();
            let (tokens, last) = &mut *bucket;
            let elapsed = last.map_or(capacity / per_second, |l| (now - l).as_secs_f64());
            *tokens = (*tokens + elapsed * per_second).min(capacity);
            *last = Some(now);
            if *tokens >= 1.0 {
                *tokens -= 1.0;
                None
            } else {
                Some(Duration::from_secs_f64((1.0 - *tokens) / per_second))
            }
        }

        fn apply(&self, write: &Write) -> Result<(), GraphError> {
            let mut users = self.users.lock().unwrap();
            let key = match write {
                Write::Anchor { user_id, value } => {
                    if self.forbidden.contains(user_id) {
                        return Err(GraphError::Forbidden(meta(403)));
                    }
                    users.get_mut(user_id).unwrap().on_premises_immutable_id = value.clone();
                    user_id
                }
                Write::Upn { user_id, upn } => {
                    if self.taken_upns.contains(upn) {
                        return Err(GraphError::Conflict {
                            property: "userPrincipalName".into(),
                            holder_id: Some("squatter".into()),
                            meta: meta(400),
                        });
                    }
                    users.get_mut(user_id).unwrap().user_principal_name = upn.clone();
                    return Ok(());
                }
                Write::Purge { id } => id,
                Write::ObjectIdentifier { user_id, value } => {
                    users
                        .get_mut(user_id)
                        .unwrap()
                        .on_premises_object_identifier = value.clone();
                    return Ok(());
                }
            };
            *self.applied.lock().unwrap().entry(key.clone()).or_insert(0) += 1;
            Ok(())
        }
    }

    impl Directory for Fake {
        async fn write(&self, write: &Write, _attempt: u32) -> Attempt {
            let n = {
                let mut sent = self.sent.lock().unwrap();
                sent.push((Instant::now(), write.clone()));
                sent.len()
            };
            if let Some(on_send) = &self.on_send {
                on_send(n);
            }
            tokio::time::sleep(self.latency / 2).await;
            if self.token_lasts.is_some_and(|last| n > last) {
                return Attempt::Refused(GraphError::Auth(
                    "Graph refused the token: InvalidAuthenticationToken Lifetime validation failed, the token is expired.".into(),
                ));
            }
            if let Some(wait) = self.throttle(Instant::now()) {
                tokio::time::sleep(self.latency / 2).await;
                self.throttled.lock().unwrap().push((Instant::now(), wait));
                return Attempt::Throttled {
                    retry_after: Some(wait),
                    error: GraphError::Other(meta(429)),
                };
            }
            let applied = self.apply(write);
            if self.dies_at.is_some_and(|at| n >= at) {
                std::future::pending::<()>().await;
            }
            tokio::time::sleep(self.latency / 2).await;
            match applied {
                Ok(()) => Attempt::Done(Answer {
                    body: serde_json::Value::Null,
                    meta: *meta(204),
                }),
                Err(error) => Attempt::Refused(error),
            }
        }

        async fn took_effect(&self, _write: &Write) -> bool {
            unreachable!("no answer is unclear in these tests")
        }

        async fn get_user(&self, id: &str) -> Result<Option<User>, GraphError> {
            Ok(self.users.lock().unwrap().get(id).cloned())
        }

        async fn anchor_holder(
            &self,
            _holder_id: Option<&str>,
            _anchor: &str,
        ) -> Result<Option<User>, GraphError> {
            Ok(None)
        }
    }

    fn stamp(row: usize) -> WorkItem {
        WorkItem {
            row,
            action: Action::Stamp,
            target: TargetState {
                id: format!("u{row}"),
                user_principal_name: format!("user{row}@fed.contoso.com"),
                on_premises_immutable_id: None,
                on_premises_sync_enabled: false,
                on_premises_object_identifier: None,
            },
            new_anchor: Some(format!("anchor{row}")),
            holder: None,
            hop_upn: None,
            object_identifier: None,
            privileged: None,
        }
    }

    fn hop(row: usize) -> WorkItem {
        WorkItem {
            action: Action::FederatedHopThenStamp,
            hop_upn: Some(format!("user{row}@contoso.onmicrosoft.com")),
            ..stamp(row)
        }
    }

    fn options(rate: f64) -> WriteOptions {
        WriteOptions {
            rate,
            ..WriteOptions::default()
        }
    }

    /// A journal written in place: each entry on disk before `record` returns.
    struct InPlace(Mutex<Journal>);

    impl Journaling for InPlace {
        async fn record(&self, entry: Entry) -> crate::Result<()> {
            self.0.lock().unwrap().record(&entry)
        }
    }

    /// The journal's first line, as a run writes it.
    fn run_entry() -> Entry {
        Entry::Run {
            version: "test".into(),
            command: "hardmatch apply".into(),
            input: "users.csv".into(),
            started: now(),
            identity: None,
        }
    }

    /// What a resume hands the writer: the journal's rows by row number (every row of these
    /// tests keeps its number).
    fn replay_of(path: &std::path::Path) -> Replay {
        let journaled = Journal::read(path).unwrap();
        Replay {
            rows: journaled
                .targets
                .iter()
                .map(|history| (history.row, history.clone()))
                .collect(),
        }
    }

    /// A run of `items` against `fake` with a new journal at `path`, or resuming it.
    async fn run(
        fake: &Fake,
        items: Vec<WorkItem>,
        options: WriteOptions,
        cancel: CancellationToken,
        path: &std::path::Path,
    ) -> Vec<Written> {
        let replay = path.exists().then(|| replay_of(path));
        let journal = match replay {
            Some(_) => Journal::reopen(path).unwrap(),
            None => Journal::create(path, &run_entry()).unwrap(),
        };
        let journal = InPlace(Mutex::new(journal));
        let tenant = Tenant::default();
        let writer = Writer {
            directory: fake,
            journal: &journal,
            replay: replay.as_ref(),
            tenant: &tenant,
            cancel,
            options,
            on_row: Box::new(|_, _| {}),
        };
        let mut written = writer.run(items).await;
        written.sort_by_key(|w| w.row);
        written
    }

    fn count(written: &[Written], outcome: Outcome) -> usize {
        written
            .iter()
            .filter(|w| w.verdict.outcome == outcome)
            .count()
    }

    /// Seconds from `start` to each request.
    fn offsets(sent: &[(Instant, Write)], start: Instant) -> Vec<f64> {
        sent.iter()
            .map(|(at, _)| (*at - start).as_secs_f64())
            .collect()
    }

    // Paused time jumps ahead whenever every task waits, also while the journal's thread
    // syncs; so a request may go later than its token, never earlier. Bounds are set that way.

    #[tokio::test(start_paused = true)]
    async fn every_request_of_a_hop_row_takes_its_own_token_of_the_quota() {
        let dir = tempfile::tempdir().unwrap();
        let fake = Fake::with_users(40);
        let items = (1..=40).map(hop).collect();
        let start = Instant::now();
        let written = run(
            &fake,
            items,
            options(20.0),
            CancellationToken::new(),
            &dir.path().join("j"),
        )
        .await;
        assert_eq!(count(&written, Outcome::Stamped), 40);
        let sent = fake.sent();
        assert_eq!(sent.len(), 120, "three PATCHes a row");
        // governor's burst of one second's worth, then one request every 50 ms: 40 rows at
        // 20 rows a second would take 1 s; 120 requests at 20 a second take 5.
        for (i, offset) in offsets(&sent, start).iter().enumerate() {
            let earliest = (i as f64 + 1.0 - 20.0) * 0.05;
            assert!(*offset >= earliest - 1e-3, "request {i} at {offset} s");
        }
        let all = start.elapsed().as_secs_f64();
        assert!((5.0..6.0).contains(&all), "120 requests at 20/s: {all} s");
        assert_eq!(fake.applied_twice(), 0);
    }

    #[tokio::test(start_paused = true)]
    async fn a_retry_after_closes_the_gate_and_one_probe_reopens_it() {
        let dir = tempfile::tempdir().unwrap();
        let fake = Fake::with_users(60);
        let start = Instant::now();
        *fake.storm_until.lock().unwrap() = Some(start + Duration::from_secs(5));
        let items = (1..=60).map(stamp).collect();
        let written = run(
            &fake,
            items,
            options(20.0),
            CancellationToken::new(),
            &dir.path().join("j"),
        )
        .await;
        assert_eq!(count(&written, Outcome::Stamped), 60);
        let (answered, retry_after) = fake.throttled.lock().unwrap()[0];
        let reopens = answered + retry_after;
        let after: Vec<Instant> = fake
            .sent()
            .into_iter()
            .map(|(at, _)| at)
            .filter(|at| *at > answered)
            .collect();
        let late = |at: Instant| (at - reopens).as_secs_f64();
        assert!(
            after[0] >= reopens,
            "nothing goes before Retry-After: {}",
            late(after[0])
        );
        assert!(
            late(after[0]) <= 0.1 * retry_after.as_secs_f64() + 0.2,
            "the probe goes soon after (jitter is 10%): {} s late",
            late(after[0])
        );
        assert!(
            after[1] >= after[0] + fake.latency,
            "the others wait for the probe's answer: {} then {}",
            late(after[0]),
            late(after[1])
        );
        let throttled = fake.throttled.lock().unwrap().len();
        assert!(
            throttled <= 25,
            "the first writes met the storm, then only the probe: {throttled}"
        );
        assert_eq!(fake.applied_twice(), 0);
    }

    #[tokio::test(start_paused = true)]
    async fn a_service_throttling_at_half_the_rate_is_written_near_its_floor() {
        let dir = tempfile::tempdir().unwrap();
        let mut fake = Fake::with_users(600);
        // Graph allows 10 writes a second (a bucket of 10) while hardmatch is told 20.
        fake.limit = Some((10.0, 10.0));
        let items = (1..=600).map(stamp).collect();
        let start = Instant::now();
        let written = run(
            &fake,
            items,
            options(20.0),
            CancellationToken::new(),
            &dir.path().join("j"),
        )
        .await;
        assert_eq!(count(&written, Outcome::Stamped), 600);
        let elapsed = start.elapsed().as_secs_f64();
        let floor = (600.0 - 10.0) / 10.0;
        let ratio = elapsed / floor;
        let throttled: Vec<f64> = fake
            .throttled
            .lock()
            .unwrap()
            .iter()
            .map(|(at, _)| (*at - start).as_secs_f64())
            .collect();
        println!("600 writes at 20/s against a limit of 10/s: {elapsed:.1} s, {ratio:.2}x the floor, {} 429s at {throttled:.1?}", throttled.len());
        assert!(ratio < 1.2, "{ratio:.2}x the floor");
        assert!(throttled.len() < 100, "{} 429s", throttled.len());
        assert_eq!(fake.applied_twice(), 0);
    }

    #[tokio::test(start_paused = true)]
    async fn an_app_without_the_permission_stops_after_three_403s() {
        let dir = tempfile::tempdir().unwrap();
        let mut fake = Fake::with_users(50);
        fake.forbidden = (1..=50).map(|row| format!("u{row}")).collect();
        let items = (1..=50).map(stamp).collect();
        let options = WriteOptions {
            concurrency: 4,
            ..options(2.0)
        };
        let written = run(
            &fake,
            items,
            options,
            CancellationToken::new(),
            &dir.path().join("j"),
        )
        .await;
        let denied = count(&written, Outcome::PermissionDenied);
        assert!(
            (3..=5).contains(&denied),
            "the third 403 and those in flight: {denied}"
        );
        assert_eq!(count(&written, Outcome::NotAttempted), 50 - denied);
        assert_eq!(fake.sent().len(), denied, "nothing sent after the stop");
    }

    #[tokio::test(start_paused = true)]
    async fn privileged_targets_are_denied_one_by_one_and_the_run_goes_on() {
        let dir = tempfile::tempdir().unwrap();
        let mut fake = Fake::with_users(40);
        // Every third user holds a privileged role, the first of them on row 3.
        fake.forbidden = (1..=40)
            .filter(|r| r % 3 == 0)
            .map(|r| format!("u{r}"))
            .collect();
        let items = (1..=40).map(stamp).collect();
        let written = run(
            &fake,
            items,
            options(2.0),
            CancellationToken::new(),
            &dir.path().join("j"),
        )
        .await;
        assert_eq!(count(&written, Outcome::PermissionDenied), 13);
        assert_eq!(count(&written, Outcome::Stamped), 27);
        let denied = written.iter().find(|w| w.row == 3).unwrap();
        assert!(
            denied.verdict.detail.contains("sensitive attributes"),
            "{}",
            denied.verdict.detail
        );
    }

    #[tokio::test(start_paused = true)]
    async fn targets_known_to_be_privileged_never_stop_the_run_even_before_any_write() {
        let dir = tempfile::tempdir().unwrap();
        let mut fake = Fake::with_users(20);
        // Rows 1 to 5, then every fifth, are admins: five 403s before any write.
        let admin = |row: usize| row <= 4 || row.is_multiple_of(5);
        fake.forbidden = (1..=20)
            .filter(|&r| admin(r))
            .map(|r| format!("u{r}"))
            .collect();
        let items = (1..=20)
            .map(|row| WorkItem {
                privileged: admin(row)
                    .then(|| "is assigned Global Administrator directly".to_string()),
                ..stamp(row)
            })
            .collect();
        let options = WriteOptions {
            concurrency: 1,
            ..options(20.0)
        };
        let written = run(
            &fake,
            items,
            options,
            CancellationToken::new(),
            &dir.path().join("j"),
        )
        .await;
        assert_eq!(count(&written, Outcome::PermissionDenied), 8);
        assert_eq!(count(&written, Outcome::Stamped), 12);
        let first = &written[0].verdict.detail;
        assert!(
            first.contains("Global Administrator directly")
                && first.contains("sensitive attributes"),
            "{first}"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_home_upn_taken_during_the_hop_leaves_the_user_stamped_at_the_stopover_and_says_so() {
        let dir = tempfile::tempdir().unwrap();
        let mut fake = Fake::with_users(2);
        // While user 2 is out at the stopover, another user takes its home UPN.
        fake.taken_upns = HashSet::from(["user2@fed.contoso.com".to_string()]);
        let written = run(
            &fake,
            vec![hop(1), hop(2)],
            options(20.0),
            CancellationToken::new(),
            &dir.path().join("j"),
        )
        .await;
        assert_eq!(written[0].verdict.outcome, Outcome::Stamped);
        let stranded = &written[1].verdict;
        assert_eq!(stranded.outcome, Outcome::GraphError);
        for said in [
            "now holds user2@fed.contoso.com",
            "holds anchor2",
            "still at user2@contoso.onmicrosoft.com",
            "--resume",
        ] {
            assert!(
                stranded.detail.contains(said),
                "{said}: {}",
                stranded.detail
            );
        }
        let users = fake.users.lock().unwrap();
        assert_eq!(
            users["u2"].user_principal_name,
            "user2@contoso.onmicrosoft.com"
        );
        assert_eq!(
            users["u2"].on_premises_immutable_id.as_deref(),
            Some("anchor2")
        );
        let journaled = Journal::read(&dir.path().join("j")).unwrap();
        let history = journaled.targets.iter().find(|h| h.row == 2).unwrap();
        assert!(history.applied(Step::UpnOut) && !history.applied(Step::UpnBack));
    }

    #[tokio::test(start_paused = true)]
    async fn a_token_that_cannot_be_renewed_stops_the_run() {
        let dir = tempfile::tempdir().unwrap();
        let mut fake = Fake::with_users(100);
        fake.token_lasts = Some(30);
        let items = (1..=100).map(stamp).collect();
        let written = run(
            &fake,
            items,
            options(20.0),
            CancellationToken::new(),
            &dir.path().join("j"),
        )
        .await;
        assert_eq!(count(&written, Outcome::Stamped), 30);
        let failed = count(&written, Outcome::GraphError);
        assert!((1..=32).contains(&failed), "only those in flight: {failed}");
        assert_eq!(count(&written, Outcome::NotAttempted), 70 - failed);
        assert_eq!(fake.sent().len(), 30 + failed);
    }

    #[tokio::test(start_paused = true)]
    async fn ctrl_c_mid_write_finishes_what_is_in_flight_and_sends_nothing_more() {
        let dir = tempfile::tempdir().unwrap();
        let cancel = CancellationToken::new();
        let mut fake = Fake::with_users(30);
        // Six hop rows: Ctrl-C comes as the tenth request goes, mid-way through a hop.
        let ctrl_c = cancel.clone();
        fake.on_send = Some(Box::new(move |n| {
            if n == 10 {
                ctrl_c.cancel();
            }
        }));
        let items = (1..=30)
            .map(|r| if r <= 6 { hop(r) } else { stamp(r) })
            .collect();
        let written = run(&fake, items, options(20.0), cancel, &dir.path().join("j")).await;
        let stamped = count(&written, Outcome::Stamped);
        assert_eq!(stamped + count(&written, Outcome::NotAttempted), 30);
        assert!(stamped < 30, "it stopped");
        let users = fake.users.lock().unwrap();
        for w in &written {
            let user = &users[&format!("u{}", w.row)];
            assert!(
                user.user_principal_name.ends_with("@fed.contoso.com"),
                "no user is left in the stopover domain: {}",
                user.user_principal_name
            );
            let stamped_in_graph = user.on_premises_immutable_id.is_some();
            assert_eq!(
                stamped_in_graph,
                w.verdict.outcome == Outcome::Stamped,
                "row {}",
                w.row
            );
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_crash_between_intent_and_answer_then_resume_writes_nothing_twice() {
        let dir = tempfile::tempdir().unwrap();
        let journal = dir.path().join("j");
        let mut fake = Fake::with_users(20);
        // The process dies with the eighth request applied but unanswered.
        fake.dies_at = Some(8);
        let items: Vec<WorkItem> = (1..=20).map(stamp).collect();
        let options = WriteOptions {
            concurrency: 1,
            ..options(20.0)
        };
        let crashed = run(
            &fake,
            items.clone(),
            options.clone(),
            CancellationToken::new(),
            &journal,
        );
        assert!(tokio::time::timeout(Duration::from_secs(60), crashed)
            .await
            .is_err());
        let replay = replay_of(&journal);
        assert_eq!(
            replay.rows[&8].in_doubt(),
            vec![Step::Anchor],
            "the intent, no result"
        );
        assert_eq!(replay.rows.len(), 8);

        // As `resume` does: rows the journal shows finished are not handed to the writer.
        fake.dies_at = None;
        let left: Vec<WorkItem> = items
            .into_iter()
            .filter(|item| {
                !replay
                    .rows
                    .get(&item.row)
                    .is_some_and(|history| history.applied(Step::Anchor))
            })
            .collect();
        assert_eq!(left.len(), 13, "rows 8 to 20");
        let written = run(&fake, left, options, CancellationToken::new(), &journal).await;
        assert_eq!(count(&written, Outcome::Stamped), 13);
        assert_eq!(fake.applied_twice(), 0, "no write applied twice");
        assert_eq!(fake.sent().len(), 20, "rows 1-8 not sent again");
        let read_back = written[0].meta.as_ref().map(|m| m.attempts);
        assert_eq!(read_back, Some(0), "row 8 was read back, not sent again");
    }
}
