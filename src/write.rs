//! The writer stage: carries out planned writes at the Graph write quota, journaling each one
//! before it is sent, and turns every answer into an outcome for the report.
//!
//! Pacing is governor's (a token bucket at `--write-rate`, 20/s by default: 3,000 writes per
//! 150 s per app and tenant); concurrency is bounded so that latency never caps throughput;
//! a 429 pauses the whole client for its Retry-After (see [`GraphClient`]). Rows are
//! independent: one failure never stops the others, except repeated 403s, which mean the app
//! lacks the permission and would fail every row.

use std::num::NonZeroU32;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use futures::stream::{self, StreamExt};
use governor::{Quota, RateLimiter};
use tokio_util::sync::CancellationToken;

use crate::graph::{GraphClient, GraphError, Meta};
use crate::journal::{now, Entry, GroupCommit, Replay, Step};
use crate::outcome::{Outcome, Verdict};
use crate::plan::{Action, Holder, TargetState};
use crate::tenant::Tenant;

/// One row's planned write.
#[derive(Clone, Debug)]
pub struct WorkItem {
    /// 1-based report row.
    pub row: usize,
    pub action: Action,
    pub target: TargetState,
    /// The anchor to set; `None` clears it.
    pub new_anchor: Option<String>,
    pub holder: Option<Holder>,
    /// For the federated hop: the stopover UPN in the initial domain.
    pub hop_upn: Option<String>,
}

/// The detail of a row a canary (`--max-writes`) left for later: not a failure.
pub const CANARY_LEFT: &str =
    "--max-writes was reached; continue with --resume (the command is in the summary) to write this row";

/// How the writer runs.
#[derive(Clone, Debug)]
pub struct WriteOptions {
    /// Writes per second (the documented quota is 20).
    pub rate: f64,
    pub concurrency: usize,
    /// Stop after this many rows were written (a canary batch).
    pub max_writes: Option<usize>,
    /// Read each written user back and compare.
    pub verify: bool,
    /// After this many 403s in a row, stop: the app lacks the permission.
    pub forbidden_limit: usize,
    /// What success is called: `stamped`, `cleared` or `restored`.
    pub success: Outcome,
}

impl Default for WriteOptions {
    fn default() -> Self {
        WriteOptions {
            rate: 20.0,
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
    Graph(GraphError),
    /// The intent could not be journaled, so the request was not sent.
    Unjournaled,
}

/// What happened to one row.
#[derive(Clone, Debug)]
pub struct Written {
    pub row: usize,
    pub verdict: Verdict,
    pub meta: Option<Meta>,
    pub holder: Option<Holder>,
}

/// Everything the writer needs besides the items.
pub struct Writer<'a> {
    pub client: Arc<GraphClient>,
    pub journal: &'a GroupCommit,
    /// On resume, the rows whose write an interrupted run sent without journaling the answer
    /// (rows it finished are not given to the writer at all: see [`crate::resume`]).
    pub replay: Option<&'a Replay>,
    /// For naming the holder of a conflicting anchor.
    pub tenant: &'a Tenant,
    pub cancel: CancellationToken,
    pub options: WriteOptions,
    /// Called after each row, for the progress bar.
    pub on_row: Box<dyn Fn(&Written) + Send + Sync + 'a>,
}

impl Writer<'_> {
    /// Writes every item and returns one [`Written`] per item, in any order.
    pub async fn run(&self, items: Vec<WorkItem>) -> Vec<Written> {
        let limiter = RateLimiter::direct(quota(self.options.rate));
        let backoff = Backoff::default();
        let forbidden_in_a_row = AtomicUsize::new(0);
        let started = AtomicUsize::new(0);
        let stop = self.cancel.child_token();
        stream::iter(items)
            .map(|item| {
                let limiter = &limiter;
                let backoff = &backoff;
                let forbidden_in_a_row = &forbidden_in_a_row;
                let started = &started;
                let stop = &stop;
                async move {
                    if stop.is_cancelled() || self.cancel.is_cancelled() {
                        return not_attempted(&item, "the run stopped before this row was written");
                    }
                    if self.options.max_writes.is_some_and(|max| started.fetch_add(1, Ordering::SeqCst) >= max) {
                        return not_attempted(&item, CANARY_LEFT);
                    }
                    tokio::select! {
                        () = limiter.until_ready() => {}
                        () = stop.cancelled() => return not_attempted(&item, "the run stopped before this row was written"),
                    }
                    backoff.wait().await;
                    let throttled_before = self.client.throttled();
                    let written = self.write_row(&item).await;
                    backoff.learn(self.client.throttled() > throttled_before);
                    if written.verdict.outcome == Outcome::PermissionDenied {
                        if forbidden_in_a_row.fetch_add(1, Ordering::SeqCst) + 1 >= self.options.forbidden_limit {
                            stop.cancel();
                        }
                    } else {
                        forbidden_in_a_row.store(0, Ordering::SeqCst);
                    }
                    (self.on_row)(&written);
                    written
                }
            })
            .buffer_unordered(self.options.concurrency.max(1))
            .collect()
            .await
    }

    async fn write_row(&self, item: &WorkItem) -> Written {
        match self.steps(item).await {
            Ok(meta) => {
                let detail = match (&item.new_anchor, self.options.success) {
                    (_, Outcome::Restored) => format!(
                        "put back {}",
                        item.new_anchor.as_deref().unwrap_or("(no value)")
                    ),
                    (Some(anchor), _) => format!("stamped {anchor}"),
                    (None, _) => "cleared".to_string(),
                };
                Written {
                    row: item.row,
                    verdict: Verdict::new(self.options.success, detail),
                    meta: Some(meta),
                    holder: None,
                }
            }
            Err(RowFailure::Graph(error)) => self.failure(item, error).await,
            Err(RowFailure::Unjournaled) => not_attempted(
                item,
                "not sent: the journal could not be written (see the error above), and nothing is sent that a resume could not account for",
            ),
        }
    }

    /// The row's requests, each journaled before it is sent.
    async fn steps(&self, item: &WorkItem) -> Result<Meta, RowFailure> {
        if item.action == Action::PurgeHolderThenStamp {
            if let Some(holder) = &item.holder {
                self.step(item, Step::PurgeHolder, &holder.id, None, None, || {
                    self.client.purge_deleted(&holder.id)
                })
                .await?;
            }
        }
        let hop = item.action == Action::FederatedHopThenStamp;
        if let (true, Some(stopover)) = (hop, &item.hop_upn) {
            let home = &item.target.user_principal_name;
            self.step(item, Step::UpnOut, home, Some(stopover), None, || {
                self.client.set_upn(&item.target.id, stopover)
            })
            .await?;
        }
        if self.in_doubt_and_applied(item).await {
            return Ok(Meta {
                attempts: 0,
                ..Meta::default()
            });
        }
        let previous = item.target.on_premises_immutable_id.as_deref();
        let meta = self
            .step(
                item,
                Step::Anchor,
                previous.unwrap_or(""),
                item.new_anchor.as_deref(),
                previous,
                || {
                    self.client
                        .set_anchor(&item.target.id, item.new_anchor.as_deref())
                },
            )
            .await?;
        if let (true, Some(stopover)) = (hop, &item.hop_upn) {
            let home = &item.target.user_principal_name;
            self.step(item, Step::UpnBack, stopover, Some(home), None, || {
                self.client.set_upn(&item.target.id, home)
            })
            .await?;
        }
        if self.options.verify {
            self.verify(item).await.map_err(RowFailure::Graph)?;
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
        let Ok(Some(user)) = self.client.get_user(&item.target.id).await else {
            return false;
        };
        let applied = user
            .on_premises_immutable_id
            .as_deref()
            .filter(|v| !v.is_empty())
            == item.new_anchor.as_deref();
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

    /// Journals the intent, sends, journals the result. Nothing is sent unless its intent is
    /// on disk.
    async fn step<F, Fut>(
        &self,
        item: &WorkItem,
        step: Step,
        from: &str,
        to: Option<&str>,
        previous: Option<&str>,
        send: F,
    ) -> Result<Meta, RowFailure>
    where
        F: FnOnce() -> Fut,
        Fut: std::future::Future<Output = Result<crate::graph::Answer, GraphError>>,
    {
        let previous = if step == Step::Anchor {
            previous.map(str::to_string)
        } else {
            Some(from.to_string())
        };
        let intent = Entry::Intent {
            row: item.row,
            step,
            user_id: item.target.id.clone(),
            upn: item.target.user_principal_name.clone(),
            previous,
            new: to.map(str::to_string),
            at: now(),
        };
        if !self.journal(intent).await {
            return Err(RowFailure::Unjournaled);
        }
        let result = send().await;
        let (applied, outcome, meta) = match &result {
            Ok(answer) => (true, self.options.success, Some(answer.meta.clone())),
            Err(e) => (false, outcome_of(e), e.meta().cloned()),
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
        result.map(|answer| answer.meta).map_err(RowFailure::Graph)
    }

    async fn verify(&self, item: &WorkItem) -> Result<(), GraphError> {
        let user = self.client.get_user(&item.target.id).await?;
        let now_holds = user
            .as_ref()
            .and_then(|u| u.on_premises_immutable_id.clone())
            .filter(|v| !v.is_empty());
        if now_holds == item.new_anchor {
            Ok(())
        } else {
            Err(GraphError::Other(Box::new(Meta {
                code: "VerifyMismatch".into(),
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

    async fn failure(&self, item: &WorkItem, error: GraphError) -> Written {
        let outcome = outcome_of(&error);
        let mut holder = None;
        let detail = match &error {
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
            other => format!("Graph refused: {other}"),
        };
        Written {
            row: item.row,
            verdict: Verdict::new(outcome_for(outcome, &holder), detail),
            meta: error.meta().cloned(),
            holder,
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
        let user = self.client.anchor_holder(holder_id, anchor).await.ok()??;
        Some(Holder::of(&user))
    }
}

/// Extra spacing between writes when Graph throttles below the documented quota (it does
/// when the service is loaded): doubled after a row that met a 429, halved after a row that
/// did not, so the rate backs off and recovers. The pause for Retry-After itself is the
/// client's; this keeps the next rows from running straight back into the limit.
#[derive(Default)]
struct Backoff {
    micros: std::sync::atomic::AtomicU64,
}

impl Backoff {
    const FIRST: u64 = 10_000;
    const MOST: u64 = 2_000_000;

    async fn wait(&self) {
        let micros = self.micros.load(Ordering::Relaxed);
        if micros > 0 {
            tokio::time::sleep(Duration::from_micros(micros)).await;
        }
    }

    fn learn(&self, throttled: bool) {
        let update = |micros: u64| {
            Some(if throttled {
                (micros * 2).clamp(Self::FIRST, Self::MOST)
            } else if micros / 2 < 1_000 {
                0
            } else {
                micros / 2
            })
        };
        let _ = self
            .micros
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, update);
    }
}

/// The report outcome of a failed call.
pub fn outcome_of(error: &GraphError) -> Outcome {
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

/// governor's quota for `rate` writes per second, sent evenly (a burst of one second's worth).
fn quota(rate: f64) -> Quota {
    let rate = rate.max(0.01);
    let period = Duration::from_secs_f64(1.0 / rate);
    let burst = NonZeroU32::new(rate.floor().max(1.0) as u32).expect("at least 1");
    Quota::with_period(period)
        .expect("a positive period")
        .allow_burst(burst)
}
