//! The write-rate policy: how fast hardmatch writes, and what it does when Graph says slow
//! down. One [`WriteRate`] per run owns all of it:
//!
//! - the quota: every write request (a PATCH, a DELETE, each of the federated hop's three
//!   PATCHes, every retry) takes its own token from one governor limiter at `--write-rate`,
//!   so that the rate is what Graph sees whatever the mix of rows. The default,
//!   [`DEFAULT_WRITE_RATE`], is Graph's documented write quota;
//! - throttling: Graph may throttle below its documented quota when the service is loaded.
//!   The first 429 at a given rate lowers the rate (multiplicative decrease) and closes the
//!   gate for its Retry-After, with jitter; then one probe goes alone, and only its answer
//!   reopens the gate, so that 32 writes in flight do not keep one request inside every
//!   Retry-After window. Every answer that is not a 429 raises the rate again (additive
//!   increase) up to `--write-rate`. Each request knows its own answers, so one row's 429 is
//!   never credited to another;
//! - retries: how often, after how long, and the read-back that keeps a write whose answer
//!   was lost from being applied twice;
//! - stale reads ([`StaleRead`]): Graph gives no read-after-write guarantee, so an answer
//!   that may only show the state before a write this run just made (a conflict with the
//!   holder it just purged, a read-back that differs, resume's "was it applied?" read) is
//!   asked again, a few times over a few seconds, before it becomes an outcome.
//!
//! Time is tokio's, so that the writer's unit tests run it paused.

use std::num::NonZeroU32;
use std::sync::Mutex;
use std::time::Duration;

use governor::middleware::NoOpMiddleware;
use governor::state::{InMemoryState, NotKeyed};
use governor::{Quota, RateLimiter};
use rand::Rng;
use tokio::sync::Notify;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::directory::{Attempt, Directory, Write};
use super::{Answer, GraphError, Meta, RetryPolicy};

/// Writes per second when `--write-rate` is not given: Graph's write quota, 3,000 writes per
/// 150 s per app and tenant (docs/graph.md, "Throttling").
pub(crate) const DEFAULT_WRITE_RATE: f64 = 20.0;

/// After a 429, the rate falls to this share of what it was. Not a half, as in TCP Reno: the
/// rate swings between this share and Graph's limit, and with a small bucket on Graph's side
/// a half would leave up to a quarter of what Graph allows unused.
const DECREASE: f64 = 0.7;

/// Each second without a 429, the rate rises by this share of `--write-rate`.
const RISE_PER_SECOND: f64 = 0.05;

/// The rate never falls below this share of `--write-rate`.
const LOWEST: f64 = 0.01;

/// The waits before asking again an answer that may be a stale read: the first, doubled at
/// each retry while their sum stays within [`STALE_READ_BUDGET`].
const STALE_READ_FIRST_WAIT: Duration = Duration::from_millis(250);

/// How long, in all, hardmatch waits for Graph to catch up with its own writes: a few seconds
/// (docs/graph.md, "No read-after-write guarantee"), short enough that a true mismatch or
/// conflict is not held up for long.
const STALE_READ_BUDGET: Duration = Duration::from_secs(4);

/// Asks again, with backoff, an answer that may only be stale. One policy for every such
/// answer, so that they wait alike and log alike (at `-v`).
#[derive(Clone, Copy, Debug)]
pub(crate) struct StaleRead {
    first_wait: Duration,
    budget: Duration,
}

impl Default for StaleRead {
    fn default() -> Self {
        StaleRead {
            first_wait: STALE_READ_FIRST_WAIT,
            budget: STALE_READ_BUDGET,
        }
    }
}

impl StaleRead {
    /// The waits between attempts, in order.
    fn waits(&self) -> impl Iterator<Item = Duration> {
        let budget = self.budget;
        std::iter::successors(Some(self.first_wait), |w| Some(*w * 2)).scan(
            Duration::ZERO,
            move |spent, wait| {
                *spent += wait;
                (*spent <= budget).then_some(wait)
            },
        )
    }

    /// Takes `first`, the answer already had; while `stale` says it may be stale, waits and
    /// asks `again`. Returns the first answer that is not stale, or the last one when the
    /// budget is spent. `what` names the answer in the log.
    pub(crate) async fn settle<T, F, Fut>(
        &self,
        what: &str,
        first: T,
        mut again: F,
        stale: impl Fn(&T) -> bool,
    ) -> T
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = T>,
    {
        let mut answer = first;
        for (retry, wait) in self.waits().enumerate() {
            if !stale(&answer) {
                break;
            }
            tracing::info!(
                "{what}: perhaps a stale read (Graph has no read-after-write guarantee); asking again in {:.2} s (retry {})",
                wait.as_secs_f64(),
                retry + 1
            );
            tokio::time::sleep(wait).await;
            answer = again().await;
        }
        answer
    }
}

/// Why a write was not done.
#[derive(Debug)]
pub(crate) enum Unsent {
    /// Graph's final answer, or the last one when the retries ran out.
    Refused(GraphError),
    /// The run stopped (Ctrl-C, a run-wide failure) before Graph took the write: nothing was
    /// applied.
    Stopped,
}

impl Unsent {
    /// As an error, for a caller that never stops.
    pub(crate) fn into_error(self) -> GraphError {
        match self {
            Unsent::Refused(error) => error,
            Unsent::Stopped => GraphError::Other(Box::new(Meta {
                message: "the run stopped before the write was sent".into(),
                ..Meta::default()
            })),
        }
    }
}

/// The write-rate policy of one run. Shared by every row's writes.
pub(crate) struct WriteRate {
    ceiling: f64,
    clock: TokioClock,
    quota: RateLimiter<NotKeyed, InMemoryState, TokioClock, NoOpMiddleware<Duration>>,
    throttle: Mutex<Throttle>,
    /// Wakes the writes waiting for a probe's answer.
    changed: Notify,
    retry: RetryPolicy,
}

/// What Graph has shown it allows now.
#[derive(Debug)]
struct Throttle {
    /// Writes per second, at most `--write-rate`.
    rate: f64,
    gate: Gate,
    /// Bumped at each decrease: a 429 to a request sent at an older rate says nothing new.
    generation: u64,
    /// Below `--write-rate`, the earliest moment the next write may go.
    next_slot: Instant,
}

#[derive(Clone, Copy, Debug, PartialEq)]
enum Gate {
    Open,
    /// Closed until then; the first write to come after it is the probe.
    Paused(Instant),
    /// The probe is out; everyone else waits for its answer.
    Probing,
}

/// Leave to send one write request. Report its answer with [`WriteRate::answered`] or
/// [`WriteRate::throttled`]; a probe dropped unanswered (its row stopped) hands the probe on.
pub(crate) struct Permit<'a> {
    rate: &'a WriteRate,
    generation: u64,
    probe: bool,
}

impl Drop for Permit<'_> {
    fn drop(&mut self) {
        if self.probe {
            self.rate.reopen_for_another_probe();
        }
    }
}

impl Default for WriteRate {
    fn default() -> Self {
        WriteRate::new(DEFAULT_WRITE_RATE)
    }
}

impl WriteRate {
    /// A policy writing at most `rate` requests per second.
    pub(crate) fn new(rate: f64) -> WriteRate {
        let ceiling = if rate.is_finite() {
            rate.max(0.01)
        } else {
            DEFAULT_WRITE_RATE
        };
        let clock = TokioClock(Instant::now());
        WriteRate {
            ceiling,
            quota: RateLimiter::direct_with_clock(quota(ceiling), clock.clone()),
            clock,
            throttle: Mutex::new(Throttle {
                rate: ceiling,
                gate: Gate::Open,
                generation: 0,
                next_slot: Instant::now(),
            }),
            changed: Notify::new(),
            retry: RetryPolicy::default(),
        }
    }

    /// The rate the policy writes at now (lower than `--write-rate` after 429s).
    pub(crate) fn rate(&self) -> f64 {
        self.lock().rate
    }

    /// Sends `write`, retried as this policy says; `None` from [`acquire`](Self::acquire)
    /// first means the run stopped.
    pub(crate) async fn write<D: Directory>(
        &self,
        directory: &D,
        write: &Write,
        stop: &CancellationToken,
    ) -> Result<Answer, Unsent> {
        let permit = self.acquire(stop).await.ok_or(Unsent::Stopped)?;
        self.send(directory, write, permit, stop).await
    }

    /// Waits for leave to send one write request: the gate open (or this write chosen as the
    /// probe), its slot at the learned rate, and a token of the quota. `None` when `stop` is
    /// cancelled first.
    pub(crate) async fn acquire(&self, stop: &CancellationToken) -> Option<Permit<'_>> {
        loop {
            let changed = self.changed.notified();
            tokio::pin!(changed);
            changed.as_mut().enable();
            let wait = self.try_pass();
            let until = match wait {
                Pass::Go(permit) => {
                    if !self.token(stop).await {
                        return None;
                    }
                    if self.current(&permit) {
                        return Some(permit);
                    }
                    // The gate closed while this write waited for its token.
                    continue;
                }
                Pass::Until(until) => Some(until),
                Pass::ProbeOut => None,
            };
            tokio::select! {
                () = sleep_until_some(until) => {}
                () = &mut changed, if until.is_none() => {}
                () = stop.cancelled() => return None,
            }
        }
    }

    /// Sends a write with `permit`, and again with new permits while its answers say
    /// another attempt may succeed.
    pub(crate) async fn send<D: Directory>(
        &self,
        directory: &D,
        write: &Write,
        mut permit: Permit<'_>,
        stop: &CancellationToken,
    ) -> Result<Answer, Unsent> {
        let mut attempt = 0u32;
        let mut throttled = 0u32;
        loop {
            // The gate may have closed while this write was journaled: then it waits again.
            if !self.current(&permit) {
                drop(permit);
                permit = self.acquire(stop).await.ok_or(Unsent::Stopped)?;
            }
            attempt += 1;
            match directory.write(write, attempt).await {
                Attempt::Done(mut answer) => {
                    self.answered(permit);
                    answer.meta.attempts = attempt;
                    return Ok(answer);
                }
                Attempt::Refused(error) => {
                    self.answered(permit);
                    return Err(Unsent::Refused(error));
                }
                Attempt::Throttled { retry_after, error } => {
                    throttled += 1;
                    self.throttled(permit, retry_after);
                    if throttled > self.retry.max_throttled_retries {
                        return Err(Unsent::Refused(throttled_out(error)));
                    }
                }
                Attempt::Failed {
                    wait,
                    unclear,
                    error,
                } => {
                    self.answered(permit);
                    let failures = attempt - throttled;
                    if failures > self.retry.max_retries {
                        return Err(Unsent::Refused(error));
                    }
                    // Not cut short by `stop`: the write may be in Graph's hands, and is
                    // finished like any write in flight.
                    tokio::time::sleep(wait.unwrap_or_else(|| self.retry.backoff(failures))).await;
                    if unclear && directory.took_effect(write).await {
                        return Ok(lost_answer(error, attempt));
                    }
                }
            }
            permit = self.acquire(stop).await.ok_or(Unsent::Stopped)?;
        }
    }

    /// Reports an answer that was not a 429: a probe's reopens the gate, and the rate rises.
    fn answered(&self, mut permit: Permit<'_>) {
        let probe = std::mem::take(&mut permit.probe);
        let mut throttle = self.lock();
        if probe {
            throttle.gate = Gate::Open;
            self.changed.notify_waiters();
        }
        if throttle.gate == Gate::Open && throttle.rate < self.ceiling {
            let rise = RISE_PER_SECOND * self.ceiling / throttle.rate;
            throttle.rate = (throttle.rate + rise).min(self.ceiling);
        }
    }

    /// Reports a 429. The first at this rate lowers it and closes the gate for Retry-After
    /// (with jitter); one to a request sent at an older rate only keeps the gate closed as
    /// long as it asks.
    fn throttled(&self, mut permit: Permit<'_>, retry_after: Option<Duration>) {
        permit.probe = false;
        let wait = retry_after.unwrap_or_else(|| self.retry.backoff(1));
        let until = Instant::now() + wait.mul_f64(1.0 + rand::rng().random_range(0.0..0.1));
        let mut throttle = self.lock();
        if permit.generation == throttle.generation {
            throttle.generation += 1;
            throttle.rate = (throttle.rate * DECREASE).max(self.ceiling * LOWEST);
            throttle.gate = Gate::Paused(until);
            tracing::info!(
                "Graph throttled a write: {:.2} writes/s from now, one probe after {:.3} s",
                throttle.rate,
                wait.as_secs_f64()
            );
        } else if let Gate::Paused(current) = &mut throttle.gate {
            *current = (*current).max(until);
        }
        self.changed.notify_waiters();
    }

    /// A probe that will not answer: the next write to come is the probe.
    fn reopen_for_another_probe(&self) {
        let mut throttle = self.lock();
        if throttle.gate == Gate::Probing {
            throttle.gate = Gate::Paused(Instant::now());
            self.changed.notify_waiters();
        }
    }

    fn try_pass(&self) -> Pass<'_> {
        let now = Instant::now();
        let mut throttle = self.lock();
        let probe = match throttle.gate {
            Gate::Open => false,
            Gate::Paused(until) if until <= now => {
                throttle.gate = Gate::Probing;
                true
            }
            Gate::Paused(until) => return Pass::Until(until),
            Gate::Probing => return Pass::ProbeOut,
        };
        if throttle.rate < self.ceiling && !probe {
            let slot = throttle.next_slot.max(now);
            if slot > now {
                return Pass::Until(slot);
            }
            throttle.next_slot = slot + Duration::from_secs_f64(1.0 / throttle.rate);
        }
        Pass::Go(Permit {
            rate: self,
            generation: throttle.generation,
            probe,
        })
    }

    /// Whether `permit` still lets its write go: it is the probe, or the gate has stayed open
    /// since it was given.
    fn current(&self, permit: &Permit<'_>) -> bool {
        let throttle = self.lock();
        permit.probe || (throttle.gate == Gate::Open && throttle.generation == permit.generation)
    }

    /// Waits for a token of the quota; false when `stop` came first.
    async fn token(&self, stop: &CancellationToken) -> bool {
        loop {
            let wait = match self.quota.check() {
                Ok(()) => return true,
                Err(not_until) => {
                    not_until.wait_time_from(governor::clock::Clock::now(&self.clock))
                }
            };
            tokio::select! {
                () = tokio::time::sleep(wait) => {}
                () = stop.cancelled() => return false,
            }
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Throttle> {
        self.throttle.lock().expect("write-rate lock")
    }
}

enum Pass<'a> {
    Go(Permit<'a>),
    Until(Instant),
    ProbeOut,
}

async fn sleep_until_some(until: Option<Instant>) {
    match until {
        Some(until) => tokio::time::sleep_until(until).await,
        None => std::future::pending().await,
    }
}

/// governor's quota for `rate` writes per second, sent evenly (a burst of one second's worth).
fn quota(rate: f64) -> Quota {
    let period = Duration::from_secs_f64(1.0 / rate);
    let burst = NonZeroU32::new(rate.floor().max(1.0) as u32).expect("at least 1");
    Quota::with_period(period)
        .expect("a positive period")
        .allow_burst(burst)
}

/// governor on tokio's clock, so that paused time pauses the quota too.
#[derive(Clone, Debug)]
struct TokioClock(Instant);

impl governor::clock::Clock for TokioClock {
    type Instant = Duration;

    fn now(&self) -> Duration {
        self.0.elapsed()
    }
}

/// The last 429, once the retries for throttling ran out.
fn throttled_out(error: GraphError) -> GraphError {
    match error {
        GraphError::Other(meta) => GraphError::Throttled(meta),
        other => other,
    }
}

/// A write whose answer was lost but which a read shows took effect.
fn lost_answer(error: GraphError, attempt: u32) -> Answer {
    let client_request_id = error
        .meta()
        .map(|m| m.client_request_id.clone())
        .unwrap_or_default();
    Answer {
        body: serde_json::Value::Null,
        meta: Meta {
            message:
                "the answer was lost, but a read showed the write had taken effect; not sent again"
                    .into(),
            client_request_id,
            attempts: attempt,
            ..Meta::default()
        },
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicU32, Ordering};

    use super::*;

    #[tokio::test(start_paused = true)]
    async fn a_stale_answer_is_asked_again_until_it_is_fresh() {
        let (start, calls) = (Instant::now(), AtomicU32::new(0));
        let fresh_after = Duration::from_millis(1500);
        let read = || async {
            calls.fetch_add(1, Ordering::SeqCst);
            start.elapsed() >= fresh_after
        };
        let first = read().await;
        let fresh = StaleRead::default()
            .settle("test", first, read, |fresh| !fresh)
            .await;
        assert!(fresh);
        // 0.25 + 0.5 + 1 s: the third retry is the first after 1.5 s.
        assert_eq!(start.elapsed(), Duration::from_millis(1750));
        assert_eq!(calls.load(Ordering::SeqCst), 4);
    }

    #[tokio::test(start_paused = true)]
    async fn an_answer_that_stays_stale_is_given_up_within_the_budget() {
        let (start, calls) = (Instant::now(), AtomicU32::new(0));
        let read = || async {
            calls.fetch_add(1, Ordering::SeqCst);
            "mismatch"
        };
        let last = StaleRead::default()
            .settle("test", "mismatch", read, |a| *a == "mismatch")
            .await;
        assert_eq!(last, "mismatch");
        // 0.25 + 0.5 + 1 + 2 s; the next wait (4 s) would go beyond the 4 s budget.
        assert_eq!(start.elapsed(), Duration::from_millis(3750));
        assert!(start.elapsed() <= STALE_READ_BUDGET);
        assert_eq!(calls.load(Ordering::SeqCst), 4);
    }

    #[tokio::test(start_paused = true)]
    async fn a_fresh_answer_is_not_asked_again() {
        let start = Instant::now();
        let again = || async { unreachable!("a fresh answer is final") };
        let answer = StaleRead::default()
            .settle("test", 7, again, |_| false)
            .await;
        assert_eq!(answer, 7);
        assert_eq!(start.elapsed(), Duration::ZERO);
    }

    #[tokio::test(start_paused = true)]
    async fn one_throttle_lowers_the_rate_once_whoever_else_was_in_flight() {
        let rate = WriteRate::new(20.0);
        let stop = CancellationToken::new();
        let mut in_flight = Vec::new();
        for _ in 0..3 {
            in_flight.push(rate.acquire(&stop).await.unwrap());
        }
        let start = Instant::now();
        let (third, second, first) = (in_flight.pop(), in_flight.pop(), in_flight.pop());
        // Two 429s for requests sent at the same rate are one signal; a third request's
        // success at that rate is not a throttle, whatever the others met.
        rate.throttled(first.unwrap(), Some(Duration::from_secs(1)));
        rate.throttled(second.unwrap(), Some(Duration::from_secs(1)));
        rate.answered(third.unwrap());
        assert_eq!(rate.rate(), 20.0 * DECREASE);

        let probe = rate.acquire(&stop).await.unwrap();
        assert!(probe.probe);
        assert!(
            start.elapsed() >= Duration::from_secs(1),
            "after Retry-After"
        );
        assert!(
            start.elapsed() <= Duration::from_millis(1100),
            "jitter is at most 10%"
        );
        let others = tokio::time::timeout(Duration::from_secs(10), rate.acquire(&stop)).await;
        assert!(
            others.is_err(),
            "no other write goes while the probe is out"
        );
        rate.answered(probe);
        let next = rate.acquire(&stop).await.unwrap();
        assert!(!next.probe, "the probe's answer reopened the gate");
        assert!(rate.rate() > 20.0 * DECREASE, "and the rate rises again");
    }

    #[tokio::test(start_paused = true)]
    async fn a_probe_that_never_answers_hands_the_probe_on() {
        let rate = WriteRate::new(20.0);
        let stop = CancellationToken::new();
        let first = rate.acquire(&stop).await.unwrap();
        rate.throttled(first, Some(Duration::from_secs(2)));
        let probe = rate.acquire(&stop).await.unwrap();
        drop(probe);
        let next = tokio::time::timeout(Duration::from_secs(1), rate.acquire(&stop)).await;
        assert!(next.unwrap().unwrap().probe);
    }

    #[tokio::test(start_paused = true)]
    async fn a_stop_ends_the_wait_for_the_gate() {
        let rate = WriteRate::new(20.0);
        let stop = CancellationToken::new();
        let first = rate.acquire(&stop).await.unwrap();
        rate.throttled(first, Some(Duration::from_secs(120)));
        let start = Instant::now();
        let waiting = rate.acquire(&stop);
        stop.cancel();
        assert!(waiting.await.is_none());
        assert_eq!(
            start.elapsed(),
            Duration::ZERO,
            "not a whole Retry-After later"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn below_the_ceiling_writes_are_spaced_at_the_learned_rate() {
        let rate = WriteRate::new(20.0);
        let stop = CancellationToken::new();
        let first = rate.acquire(&stop).await.unwrap();
        rate.throttled(first, Some(Duration::from_millis(100)));
        let probe = rate.acquire(&stop).await.unwrap();
        rate.answered(probe);
        let learned = rate.rate();
        let start = Instant::now();
        for _ in 0..10 {
            rate.acquire(&stop).await.unwrap();
        }
        let spacing = start.elapsed().as_secs_f64() / 9.0;
        assert!(
            (spacing - 1.0 / learned).abs() < 0.005,
            "{spacing} s apart at {learned}/s"
        );
    }
}
