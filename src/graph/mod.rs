//! The Microsoft Graph client: typed calls for what hardmatch reads and writes, with OData
//! literals always escaped, paging, retries that honour Retry-After, a fresh token after a
//! 401, and every answer's request ids kept for the audit report.
//!
//! [`auth`] picks the credential and the hosts; [`error`] classifies failures; [`directory`]
//! is the seam the writer talks to (one attempt of a write); [`pace`] is the write-rate
//! policy: the quota, throttling and the retries of writes.

pub(crate) mod auth;
mod certificate;
pub(crate) mod directory;
pub(crate) mod error;
pub(crate) mod pace;
pub mod read;
pub(crate) mod sync;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};
use rand::Rng;
use serde_json::{json, Value};

pub use self::auth::{AuthArgs, TokenSource};
pub(crate) use self::directory::{Attempt, Directory, Write};
pub(crate) use self::error::{GraphError, Meta};
use crate::logging::{RequestLine, LOGGED_HEADERS};
use crate::tenant::{Domain, Tenant, User};

/// The properties hardmatch reads on users (some are returned only when selected).
pub const USER_SELECT: &str =
    "id,userPrincipalName,displayName,mail,proxyAddresses,onPremisesImmutableId,onPremisesSyncEnabled,accountEnabled,userType,onPremisesLastSyncDateTime,onPremisesProvisioningErrors,createdDateTime";

/// How hard to retry. Graph's SDKs retry 429, 503 and 504 and honour Retry-After; otherwise
/// they back off exponentially. A bulk job keeps going longer than an SDK default.
#[derive(Clone, Copy, Debug)]
pub(crate) struct RetryPolicy {
    /// Retries of 5xx answers and connection failures.
    pub(crate) max_retries: u32,
    /// Retries of 429s. Graph says when to come back, so a bulk job keeps coming back far
    /// longer than after a failure; only a throttle that never lifts ends in `throttled-out`.
    pub(crate) max_throttled_retries: u32,
    pub(crate) base_backoff: Duration,
    pub(crate) max_backoff: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            max_retries: 8,
            max_throttled_retries: 60,
            base_backoff: Duration::from_millis(500),
            max_backoff: Duration::from_secs(30),
        }
    }
}

impl RetryPolicy {
    /// Exponential backoff with full jitter for attempt `n` (1-based).
    pub(crate) fn backoff(&self, attempt: u32) -> Duration {
        let ceiling = self
            .base_backoff
            .saturating_mul(1 << attempt.min(16))
            .min(self.max_backoff);
        ceiling.mul_f64(rand::rng().random_range(0.5..=1.0))
    }
}

/// A successful answer.
#[derive(Clone, Debug)]
pub struct Answer {
    pub body: Value,
    pub(crate) meta: Meta,
}

/// Parses Retry-After: seconds (possibly fractional, e.g. `2.128`) or an HTTP date.
pub(crate) fn parse_retry_after(value: &str) -> Option<Duration> {
    let value = value.trim();
    if let Ok(seconds) = value.parse::<f64>() {
        return (seconds.is_finite() && seconds >= 0.0).then(|| Duration::from_secs_f64(seconds));
    }
    let when = httpdate::parse_http_date(value).ok()?;
    Some(
        when.duration_since(std::time::SystemTime::now())
            .unwrap_or(Duration::ZERO),
    )
}

/// An OData string literal: quoted, with single quotes doubled, so that no value can end the
/// literal and change the query.
pub fn odata_literal(value: &str) -> String {
    format!("'{}'", value.replace('\'', "''"))
}

/// Characters left alone in a path segment or query value: RFC 3986's unreserved set.
const ENCODE: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

pub(crate) fn encode(value: &str) -> String {
    utf8_percent_encode(value, ENCODE).to_string()
}

/// The path of a user by id or UPN. A UPN that starts with `$` needs the `users('...')` form;
/// `#` (guest UPNs) and everything else unsafe is percent-encoded.
pub(crate) fn user_path(key: &str) -> String {
    if key.starts_with('$') {
        format!("/users({})", encode(&odata_literal(key)))
    } else {
        format!("/users/{}", encode(key))
    }
}

/// A query string from (name, value) pairs, each value percent-encoded.
pub fn query(pairs: &[(&str, &str)]) -> String {
    pairs
        .iter()
        .map(|(k, v)| format!("{k}={}", encode(v)))
        .collect::<Vec<_>>()
        .join("&")
}

/// The Graph client. Cheap to share behind an `Arc`.
#[derive(Debug)]
pub struct GraphClient {
    http: reqwest::Client,
    /// `https://graph.microsoft.com/v1.0`
    base: String,
    /// `https://graph.microsoft.com/beta`, for what only beta serves.
    beta: String,
    /// The only origin requests go to: an `@odata.nextLink` elsewhere is refused, so that no
    /// answer can send the bearer token to another host (or over plain http).
    origin: url::Origin,
    tokens: TokenSource,
    pub(crate) retry: RetryPolicy,
    requests: AtomicU64,
    /// Graph has answered at least once (any status): from then on, a failed connection is a
    /// network blip worth retrying, not a wrong URL.
    answered: AtomicBool,
    /// Writes are sent at low throttle priority: this is a bulk job (docs/graph.md).
    low_priority: bool,
    /// After a 429 to a read, no request of this client goes out before this moment: Graph
    /// throttles the app, not the request, and an early retry is throttled again. (A write's
    /// 429 is the write-rate policy's: [`pace`].)
    paused_until: std::sync::Mutex<Option<tokio::time::Instant>>,
    /// Cancelled on a second Ctrl-C: no request waits out a throttling pause any more.
    abandoned: tokio_util::sync::CancellationToken,
    throttled: AtomicU64,
    /// Resource units Graph says the answers cost (`x-ms-resource-unit`).
    resource_units: AtomicU64,
    /// The highest `x-ms-throttle-limit-percentage` seen, in tenths of a percent of the
    /// limit (Graph sends it above 80% use).
    peak_limit_use: AtomicU64,
}

/// A request that stopped waiting for Graph after a second Ctrl-C; Graph did not take it.
fn abandoned(client_request_id: String, attempts: u32) -> GraphError {
    GraphError::Throttled(Box::new(Meta {
        message: "stopped waiting for Graph: the run was interrupted twice".into(),
        client_request_id,
        attempts,
        ..Meta::default()
    }))
}

/// The most requests one `$batch` may carry.
pub(crate) const BATCH_LIMIT: usize = 20;

/// One request inside a `$batch`: `url` is relative to `/v1.0`, with its query.
#[derive(Clone, Debug)]
pub struct BatchRequest {
    pub method: reqwest::Method,
    pub url: String,
    pub body: Option<Value>,
}

impl GraphClient {
    pub fn new(
        http: reqwest::Client,
        root: &str,
        tokens: TokenSource,
    ) -> Result<GraphClient, GraphError> {
        let origin = auth::check_url(root)?.origin();
        Ok(GraphClient {
            http,
            base: format!("{}/v1.0", root.trim_end_matches('/')),
            beta: format!("{}/beta", root.trim_end_matches('/')),
            origin,
            tokens,
            retry: RetryPolicy::default(),
            requests: AtomicU64::new(0),
            answered: AtomicBool::new(false),
            low_priority: true,
            paused_until: std::sync::Mutex::new(None),
            abandoned: tokio_util::sync::CancellationToken::new(),
            throttled: AtomicU64::new(0),
            resource_units: AtomicU64::new(0),
            peak_limit_use: AtomicU64::new(0),
        })
    }

    /// Builds a client from the shared command-line arguments.
    pub(crate) fn from_args(args: &AuthArgs) -> Result<GraphClient, GraphError> {
        let http = args.http_client()?;
        let tokens = args.token_source(&http)?;
        GraphClient::new(http, &args.graph_root()?, tokens)
    }

    /// HTTP requests sent so far (each retry counts).
    pub fn requests(&self) -> u64 {
        self.requests.load(Ordering::Relaxed)
    }

    /// 429 answers received so far.
    pub(crate) fn throttled(&self) -> u64 {
        self.throttled.load(Ordering::Relaxed)
    }

    /// What this client's requests cost so far, for a report's summary: requests, 429s, and
    /// the resource units and peak share of the limit that Graph reported in its headers.
    pub(crate) fn usage_notes(&self) -> Vec<(String, String)> {
        let mut notes = vec![
            ("Graph requests".to_string(), self.requests().to_string()),
            ("429 answers".to_string(), self.throttled().to_string()),
        ];
        let units = self.resource_units.load(Ordering::Relaxed);
        if units > 0 {
            notes.push((
                "resource units (x-ms-resource-unit)".into(),
                units.to_string(),
            ));
        }
        let peak = self.peak_limit_use.load(Ordering::Relaxed);
        if peak > 0 {
            notes.push((
                "peak use of the throttle limit (x-ms-throttle-limit-percentage)".into(),
                format!("{}%", peak / 10),
            ));
        }
        notes
    }

    /// Waits out the client's throttling pause; says whether it may send (not abandoned).
    async fn wait_for_pause(&self) -> bool {
        let until = *self.paused_until.lock().expect("pause lock");
        match until {
            Some(until) => self.unless_abandoned(tokio::time::sleep_until(until)).await,
            None => true,
        }
    }

    /// Stops every wait for a throttling pause or a Retry-After, now and from now on: the
    /// requests that were waiting end `throttled-out` (Graph did not take them). Waits after
    /// an unclear failure are not cut short: the write may have taken effect, and only the
    /// read that follows the wait can tell.
    pub(crate) fn abandon_waits(&self) {
        self.abandoned.cancel();
    }

    /// Runs `wait` unless the waits were abandoned; says whether it ran to its end.
    async fn unless_abandoned(&self, wait: impl std::future::Future<Output = ()>) -> bool {
        tokio::select! {
            () = wait => true,
            () = self.abandoned.cancelled() => false,
        }
    }

    fn pause_for(&self, wait: Duration) {
        let until = tokio::time::Instant::now() + wait;
        let mut paused = self.paused_until.lock().expect("pause lock");
        if paused.is_none_or(|current| current < until) {
            *paused = Some(until);
        }
    }

    /// Sends one request with retries. `target` is a path under `/v1.0` with its query, or an
    /// absolute `@odata.nextLink`. Writes go through [`pace`] instead, which decides their
    /// retries and their rate.
    pub async fn send(
        &self,
        method: reqwest::Method,
        target: &str,
        body: Option<&Value>,
        eventual: bool,
    ) -> Result<Answer, GraphError> {
        let url = if target.starts_with("http") {
            self.check_link(target)?;
            target.to_string()
        } else {
            format!("{}{target}", self.base)
        };
        let out = Outgoing::new(method, url, body, eventual);
        let line = &out.line;
        let mut refreshed = false;
        let mut attempt = 0u32;
        let mut throttled = 0u32;
        loop {
            attempt += 1;
            let (outcome, token_generation) = self.exchange(&out, attempt).await?;
            let wait = match outcome {
                Ok(answer) => return Ok(answer),
                Err(Failure::Final(error)) => return Err(*error),
                Err(Failure::Unauthorized(error)) => {
                    if !self
                        .sign_in_again(&mut refreshed, token_generation, line)
                        .await?
                    {
                        return Err(*error);
                    }
                    continue;
                }
                Err(Failure::Retry { wait, error }) => {
                    if self.note_throttle(&error, wait) {
                        throttled += 1;
                    }
                    if let Some(error) = self.out_of_retries(*error, attempt, throttled) {
                        tracing::info!("{line}: giving up after {attempt} attempts");
                        return Err(error);
                    }
                    let why = if wait.is_some() {
                        "Retry-After"
                    } else {
                        "backoff"
                    };
                    let wait = wait.unwrap_or_else(|| self.retry.backoff(attempt));
                    tracing::info!("{line}: retrying in {:.3} s ({why})", wait.as_secs_f64());
                    wait
                }
                Err(Failure::Transport(message)) => {
                    if attempt > self.retry.max_retries {
                        let meta = Meta {
                            message,
                            client_request_id: out.client_request_id.clone(),
                            attempts: attempt,
                            ..Meta::default()
                        };
                        tracing::info!("{line}: giving up after {attempt} attempts");
                        return Err(GraphError::Transport(Box::new(meta)));
                    }
                    let wait = self.retry.backoff(attempt);
                    tracing::info!("{line}: retrying in {:.3} s (backoff)", wait.as_secs_f64());
                    wait
                }
            };
            if !self.unless_abandoned(tokio::time::sleep(wait)).await {
                return Err(abandoned(out.client_request_id.clone(), attempt));
            }
        }
    }

    /// Sends a write once (twice when a refused token could be replaced) and says what came
    /// of it; the write-rate policy ([`pace`]) decides what happens next. A 429 here does not
    /// pause the client's reads: Graph's write quota is not its read quota. `url` is whole
    /// (a write may go to `/beta`).
    pub(crate) async fn write_once(
        &self,
        method: reqwest::Method,
        url: &str,
        body: Option<&Value>,
        attempt: u32,
    ) -> Attempt {
        let out = Outgoing::new(method, url.to_string(), body, false);
        let mut refreshed = false;
        loop {
            let (outcome, token_generation) = match self.exchange(&out, attempt).await {
                Ok(exchanged) => exchanged,
                Err(error) => return Attempt::Refused(error),
            };
            return match outcome {
                Ok(answer) => Attempt::Done(answer),
                Err(Failure::Final(error)) => Attempt::Refused(*error),
                Err(Failure::Unauthorized(error)) => {
                    match self
                        .sign_in_again(&mut refreshed, token_generation, &out.line)
                        .await
                    {
                        Ok(true) => continue,
                        Ok(false) => Attempt::Refused(*error),
                        Err(sign_in) => Attempt::Refused(sign_in),
                    }
                }
                Err(Failure::Retry { wait, error }) => match error.meta().and_then(|m| m.status) {
                    Some(429) => {
                        self.throttled.fetch_add(1, Ordering::Relaxed);
                        Attempt::Throttled {
                            retry_after: wait,
                            error: *error,
                        }
                    }
                    status => Attempt::Failed {
                        wait,
                        unclear: matches!(status, Some(500 | 502 | 504)),
                        error: *error,
                    },
                },
                // The request may have reached Graph before the connection broke.
                Err(Failure::Transport(message)) => Attempt::Failed {
                    wait: None,
                    unclear: true,
                    error: GraphError::Transport(Box::new(Meta {
                        message,
                        client_request_id: out.client_request_id.clone(),
                        attempts: attempt,
                        ..Meta::default()
                    })),
                },
            };
        }
    }

    /// One HTTP exchange: the request built, signed, sent and its answer judged, after any
    /// pause a 429 imposed. `Err` when nothing could be sent or retrying cannot help (no
    /// token; an untrusted certificate).
    async fn exchange(
        &self,
        out: &Outgoing<'_>,
        attempt: u32,
    ) -> Result<(Result<Answer, Failure>, auth::TokenGeneration), GraphError> {
        if !self.wait_for_pause().await {
            return Err(abandoned(out.client_request_id.clone(), attempt - 1));
        }
        let mut request = self
            .http
            .request(out.method.clone(), &out.url)
            .header("client-request-id", &out.client_request_id);
        if self.low_priority {
            request = request.header("x-ms-throttle-priority", "low");
        }
        if out.eventual {
            request = request.header("ConsistencyLevel", "eventual");
        }
        if let Some(body) = out.body {
            request = request.json(body);
        }
        let (request, token_generation) = self.tokens.authorize(request).await?;
        self.requests.fetch_add(1, Ordering::Relaxed);
        let sent = std::time::Instant::now();
        let line = &out.line;
        let outcome = match request.send().await {
            Ok(response) => {
                self.read(response, &out.client_request_id, attempt, line)
                    .await
            }
            Err(e) => match self.hopeless(&e).await {
                // Not transient: retrying only hides the reason for minutes.
                Some(why) => {
                    tracing::info!("{line} -> failed: {why}");
                    return Err(GraphError::Transport(Box::new(Meta {
                        message: why,
                        client_request_id: out.client_request_id.clone(),
                        attempts: attempt,
                        ..Meta::default()
                    })));
                }
                None => Err(Failure::Transport(transport_failure(&e))),
            },
        };
        log_attempt(line, attempt, sent.elapsed(), &outcome);
        Ok((outcome, token_generation))
    }

    /// After a 401: signs in again, once per request, unless the token was given and cannot
    /// be replaced. Says whether to send the request again.
    async fn sign_in_again(
        &self,
        refreshed: &mut bool,
        refused: auth::TokenGeneration,
        line: &RequestLine,
    ) -> Result<bool, GraphError> {
        if *refreshed || matches!(self.tokens, TokenSource::Fixed(_)) {
            return Ok(false);
        }
        *refreshed = true;
        tracing::info!("{line}: the token was refused; signing in again");
        self.tokens.refresh(refused).await?;
        Ok(true)
    }

    /// An absolute link (`@odata.nextLink`) must point where this client was pointed.
    fn check_link(&self, link: &str) -> Result<(), GraphError> {
        let origin = url::Url::parse(link).map(|u| u.origin()).ok();
        if origin.as_ref() == Some(&self.origin) {
            return Ok(());
        }
        Err(GraphError::Other(Box::new(Meta {
            message: format!(
                "refusing to follow a link to {} (Graph is {}): the token goes only to the Graph hardmatch was pointed at",
                origin.map_or_else(|| "a URL that does not parse".to_string(), |o| o.ascii_serialization()),
                self.origin.ascii_serialization()
            ),
            ..Meta::default()
        })))
    }

    /// Why a request failed in a way no retry can fix, said at once instead of after minutes
    /// of backoff: a TLS failure (an untrusted certificate), a request that cannot be built,
    /// and, before Graph has answered anything, nothing listening on a loopback Graph (a
    /// wrong port, an emulator not started) or a host name that does not resolve (a typo).
    /// Once Graph has answered, a failed connection is a network blip and is retried.
    async fn hopeless(&self, error: &reqwest::Error) -> Option<String> {
        if let Some(tls) =
            causes(error).find_map(|e| e.downcast_ref::<tokio_rustls::rustls::Error>())
        {
            return Some(format!(
                "TLS: {tls} (behind a TLS-inspecting proxy? trust its root with --ca-cert)"
            ));
        }
        if error.is_builder() {
            return Some(transport_failure(error));
        }
        if !error.is_connect() || self.answered.load(Ordering::Relaxed) {
            return None;
        }
        let graph = self.origin.ascii_serialization();
        let url = error.url()?;
        let refused = causes(error).any(|e| {
            e.downcast_ref::<std::io::Error>()
                .is_some_and(|io| io.kind() == std::io::ErrorKind::ConnectionRefused)
        });
        if refused && auth::is_loopback(url) {
            return Some(format!(
                "nothing listens at {graph} (connection refused): is the port of --graph-url right, and the emulator running?"
            ));
        }
        let (Some(url::Host::Domain(host)), Some(port)) = (url.host(), url.port_or_known_default())
        else {
            return None;
        };
        // Behind a proxy, the proxy resolves the host: a local lookup would prove nothing.
        if ["HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy"]
            .into_iter()
            .any(|name| std::env::var_os(name).is_some())
        {
            return None;
        }
        let unresolved = tokio::net::lookup_host((host, port)).await.err()?;
        Some(format!(
            "the host name of {graph} does not resolve ({unresolved}): is the host of --graph-url right, or the machine's DNS down?"
        ))
    }

    async fn read(
        &self,
        response: reqwest::Response,
        client_request_id: &str,
        attempt: u32,
        line: &RequestLine,
    ) -> Result<Answer, Failure> {
        self.answered.store(true, Ordering::Relaxed);
        let status = response.status().as_u16();
        let header = |name: &str| {
            response
                .headers()
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::to_string)
        };
        log_headers(line, header);
        let request_id = header("request-id");
        let retry_after = header("retry-after").and_then(|v| parse_retry_after(&v));
        self.note_usage(
            header("x-ms-resource-unit").as_deref(),
            header("x-ms-throttle-limit-percentage").as_deref(),
        );
        // A body cut short (a connection reset mid-response) is a transport failure: retry.
        let bytes = response
            .bytes()
            .await
            .map_err(|e| Failure::Transport(transport_failure(&e)))?;
        let body: Value = if bytes.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&bytes)
                .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into_owned()))
        };
        let meta = Meta {
            status: Some(status),
            code: body["error"]["code"].as_str().unwrap_or("").to_string(),
            message: body["error"]["message"].as_str().unwrap_or("").to_string(),
            request_id,
            client_request_id: client_request_id.to_string(),
            attempts: attempt,
        };
        judge(meta, body, retry_after)
    }

    /// Keeps the resource-unit figures Graph sends with its answers.
    fn note_usage(&self, units: Option<&str>, limit_percentage: Option<&str>) {
        if let Some(units) = units.and_then(|u| u.trim().parse::<u64>().ok()) {
            self.resource_units.fetch_add(units, Ordering::Relaxed);
        }
        if let Some(share) = limit_percentage.and_then(|p| p.trim().parse::<f64>().ok()) {
            self.peak_limit_use
                .fetch_max((share * 1000.0) as u64, Ordering::Relaxed);
        }
    }

    /// Sends requests in `$batch`es of twenty and returns one result per request, in order.
    /// Graph throttles each inner request on its own and SDKs do not retry inner 429s, so this
    /// does: the inner requests that met a 429, 503 or 504 go again in the next batch, after
    /// the longest Retry-After among them, within the same retry budget as single requests.
    pub async fn batch(&self, requests: &[BatchRequest]) -> Vec<Result<Answer, GraphError>> {
        self.batch_at("/$batch", requests).await
    }

    /// [`batch`](Self::batch) through `/beta/$batch`: each request's `url` is relative to
    /// `/beta`.
    pub(crate) async fn beta_batch(
        &self,
        requests: &[BatchRequest],
    ) -> Vec<Result<Answer, GraphError>> {
        self.batch_at(&self.beta_url("/$batch"), requests).await
    }

    /// The absolute URL of a beta path (with its query), for [`send`](Self::send) and
    /// [`list_all`](Self::list_all).
    pub(crate) fn beta_url(&self, path: &str) -> String {
        format!("{}{path}", self.beta)
    }

    /// The full URL of a `/v1.0` path.
    pub(crate) fn v1_url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    async fn batch_at(
        &self,
        endpoint: &str,
        requests: &[BatchRequest],
    ) -> Vec<Result<Answer, GraphError>> {
        let mut results = Vec::with_capacity(requests.len());
        for twenty in requests.chunks(BATCH_LIMIT) {
            results.extend(self.batch_of_twenty(endpoint, twenty).await);
        }
        results
    }

    async fn batch_of_twenty(
        &self,
        endpoint: &str,
        requests: &[BatchRequest],
    ) -> Vec<Result<Answer, GraphError>> {
        let mut results: Vec<Option<Result<Answer, GraphError>>> = vec![None; requests.len()];
        let mut attempts = vec![0u32; requests.len()];
        let mut throttled = vec![0u32; requests.len()];
        let mut pending: Vec<usize> = (0..requests.len()).collect();
        while !pending.is_empty() {
            let payload = batch_payload(requests, &pending);
            let answer = match self
                .send(reqwest::Method::POST, endpoint, Some(&payload), false)
                .await
            {
                Ok(answer) => answer,
                Err(error) => {
                    for &i in &pending {
                        results[i] = Some(Err(error.clone()));
                    }
                    break;
                }
            };
            let mut again = Vec::new();
            let mut wait: Option<Duration> = None;
            for inner in answer.body["responses"].as_array().into_iter().flatten() {
                let Some(i) = inner["id"]
                    .as_str()
                    .and_then(|id| id.parse::<usize>().ok())
                    .filter(|i| pending.contains(i))
                else {
                    continue;
                };
                attempts[i] += 1;
                let settled = self.settle_inner(
                    inner,
                    &answer.meta,
                    &requests[i],
                    attempts[i],
                    &mut throttled[i],
                );
                match settled {
                    Inner::Done(result) => results[i] = Some(result),
                    Inner::Again(this) => {
                        again.push(i);
                        wait = Some(wait.map_or(this, |w| w.max(this)));
                    }
                }
            }
            if let Some(wait) = wait {
                tokio::time::sleep(wait).await;
            }
            pending = again;
        }
        results
            .into_iter()
            .map(|result| {
                result.unwrap_or_else(|| {
                    Err(GraphError::Other(Box::new(Meta {
                        message: "the $batch answer had no response for this request".into(),
                        ..Meta::default()
                    })))
                })
            })
            .collect()
    }

    /// What becomes of one inner request of a `$batch` after its `attempts`-th answer: its
    /// result, or another try after a wait (Retry-After, or the backoff).
    fn settle_inner(
        &self,
        inner: &Value,
        meta: &Meta,
        request: &BatchRequest,
        attempts: u32,
        throttled: &mut u32,
    ) -> Inner {
        let line = RequestLine::new(request.method.as_str(), &request.url);
        let judged = self.judge_inner(inner, meta, attempts, &line);
        log_attempt(&line, attempts, std::time::Duration::ZERO, &judged);
        match judged {
            Ok(ok) => Inner::Done(Ok(ok)),
            Err(Failure::Retry { wait, error }) => {
                if self.note_throttle(&error, wait) {
                    *throttled += 1;
                }
                match self.out_of_retries(*error, attempts, *throttled) {
                    Some(error) => Inner::Done(Err(error)),
                    None => Inner::Again(wait.unwrap_or_else(|| self.retry.backoff(attempts))),
                }
            }
            Err(Failure::Final(error)) | Err(Failure::Unauthorized(error)) => {
                Inner::Done(Err(*error))
            }
            Err(Failure::Transport(message)) => {
                Inner::Done(Err(GraphError::Transport(Box::new(Meta {
                    message,
                    ..meta.clone()
                }))))
            }
        }
    }

    /// One inner answer of a `$batch`, judged like a whole response.
    fn judge_inner(
        &self,
        inner: &Value,
        outer: &Meta,
        attempt: u32,
        line: &RequestLine,
    ) -> Result<Answer, Failure> {
        let header = |name: &str| {
            inner["headers"]
                .as_object()
                .and_then(|h| h.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)))
                .and_then(|(_, v)| match v {
                    Value::String(s) => Some(s.clone()),
                    Value::Number(n) => Some(n.to_string()),
                    _ => None,
                })
        };
        log_headers(line, header);
        let body = inner["body"].clone();
        let meta = Meta {
            status: inner["status"].as_u64().map(|s| s as u16),
            code: body["error"]["code"].as_str().unwrap_or("").to_string(),
            message: body["error"]["message"].as_str().unwrap_or("").to_string(),
            request_id: header("request-id").or_else(|| outer.request_id.clone()),
            client_request_id: outer.client_request_id.clone(),
            attempts: attempt,
        };
        let retry_after = header("retry-after").and_then(|v| parse_retry_after(&v));
        judge(meta, body, retry_after)
    }

    /// Counts a retryable failure; a 429 also pauses the whole client for its Retry-After.
    /// Says whether it was a 429.
    fn note_throttle(&self, error: &GraphError, wait: Option<Duration>) -> bool {
        let is_429 = error.meta().is_some_and(|m| m.status == Some(429));
        if is_429 {
            self.throttled.fetch_add(1, Ordering::Relaxed);
            if let Some(wait) = wait {
                self.pause_for(wait);
            }
        }
        is_429
    }

    /// The error to give up with once the retry budget is spent, or `None` to try again.
    fn out_of_retries(
        &self,
        error: GraphError,
        attempt: u32,
        throttled: u32,
    ) -> Option<GraphError> {
        let failures = attempt - throttled;
        if throttled <= self.retry.max_throttled_retries && failures <= self.retry.max_retries {
            return None;
        }
        Some(match error {
            GraphError::Other(meta) if meta.status == Some(429) => GraphError::Throttled(meta),
            other => other,
        })
    }

    /// Every item of a paged list, following `@odata.nextLink`; `on_page` sees the count so far.
    pub async fn list_all(
        &self,
        target: &str,
        mut on_page: impl FnMut(usize),
    ) -> Result<Vec<Value>, GraphError> {
        let mut items = Vec::new();
        let mut next = Some(target.to_string());
        while let Some(url) = next {
            let answer = self.send(reqwest::Method::GET, &url, None, false).await?;
            if let Some(values) = answer.body["value"].as_array() {
                items.extend(values.iter().cloned());
            }
            on_page(items.len());
            next = answer.body["@odata.nextLink"].as_str().map(str::to_string);
        }
        Ok(items)
    }

    /// A user by id or UPN, with the properties hardmatch needs; `None` when there is none.
    pub async fn get_user(&self, key: &str) -> Result<Option<User>, GraphError> {
        let target = format!("{}?{}", user_path(key), query(&[("$select", USER_SELECT)]));
        match self.send(reqwest::Method::GET, &target, None, false).await {
            Ok(answer) => Ok(Some(parse_user(answer.body)?)),
            Err(GraphError::NotFound(_)) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// The user, active or in the recycle bin, that holds `anchor`: the object Graph named in
    /// a uniqueness conflict (`holder_id`), else whichever user a filter on the value finds.
    /// `None` when no user holds it (another kind of object may).
    pub(crate) async fn anchor_holder(
        &self,
        holder_id: Option<&str>,
        anchor: &str,
    ) -> Result<Option<User>, GraphError> {
        let deleted_select = format!("{USER_SELECT},deletedDateTime");
        if let Some(id) = holder_id {
            if let Some(user) = self.get_user(id).await? {
                return Ok(Some(user));
            }
            let target = format!(
                "/directory/deletedItems/{}?{}",
                encode(id),
                query(&[("$select", &deleted_select)])
            );
            match self.send(reqwest::Method::GET, &target, None, false).await {
                Ok(answer) => return Ok(Some(parse_user(answer.body)?)),
                Err(GraphError::NotFound(_)) => {}
                Err(e) => return Err(e),
            }
        }
        let filter = format!("onPremisesImmutableId eq {}", odata_literal(anchor));
        for (collection, select) in [
            ("/users", USER_SELECT),
            (
                "/directory/deletedItems/microsoft.graph.user",
                &deleted_select,
            ),
        ] {
            let target = format!(
                "{collection}?{}",
                query(&[("$filter", &filter), ("$select", select)])
            );
            let answer = self
                .send(reqwest::Method::GET, &target, None, false)
                .await?;
            if let Some(first) = answer.body["value"].as_array().and_then(|v| v.first()) {
                return Ok(Some(parse_user(first.clone())?));
            }
        }
        Ok(None)
    }

    /// Sets (or with `None` clears) onPremisesImmutableId. Sends JSON null to clear, not "".
    pub async fn set_anchor(
        &self,
        user_id: &str,
        value: Option<&str>,
    ) -> Result<Answer, GraphError> {
        self.write_alone(Write::Anchor {
            user_id: user_id.to_string(),
            value: value.map(str::to_string),
        })
        .await
    }

    pub(crate) async fn set_upn(&self, user_id: &str, upn: &str) -> Result<Answer, GraphError> {
        self.write_alone(Write::Upn {
            user_id: user_id.to_string(),
            upn: upn.to_string(),
        })
        .await
    }

    /// One write outside a run's writer (moving a user home on resume; benches): retried as
    /// the write-rate policy retries, paced by no run's limiter.
    async fn write_alone(&self, write: Write) -> Result<Answer, GraphError> {
        pace::WriteRate::default()
            .write(self, &write, &tokio_util::sync::CancellationToken::new())
            .await
            .map_err(pace::Unsent::into_error)
    }

    /// Reads the tenant: users, deleted users, domains, and the hard-match takeover setting
    /// when it can be read. `progress` sees (what, items so far).
    pub(crate) async fn snapshot(
        &self,
        mut progress: impl FnMut(&str, usize),
    ) -> Result<Tenant, GraphError> {
        let list = query(&[("$select", USER_SELECT), ("$top", "999")]);
        let users = self
            .list_all(&format!("/users?{list}"), |n| progress("users", n))
            .await?
            .into_iter()
            .map(parse_user)
            .collect::<Result<_, _>>()?;
        self.tenant_around(users, progress).await
    }

    /// A tenant of `users` and everything else hardmatch reads in full whichever way the users
    /// were found: the recycle bin (small: items stay 30 days), domains, and the takeover
    /// setting.
    pub(crate) async fn tenant_around(
        &self,
        users: Vec<User>,
        mut progress: impl FnMut(&str, usize),
    ) -> Result<Tenant, GraphError> {
        let deleted_select = format!("{USER_SELECT},deletedDateTime");
        let deleted_query = query(&[("$select", &deleted_select), ("$top", "999")]);
        let deleted = self
            .list_all(
                &format!("/directory/deletedItems/microsoft.graph.user?{deleted_query}"),
                |n| progress("deleted users", n),
            )
            .await?;
        let domains = self
            .list_all("/domains", |n| progress("domains", n))
            .await?;
        let features = self
            .send(
                reqwest::Method::GET,
                "/directory/onPremisesSynchronization",
                None,
                false,
            )
            .await
            .map(|answer| answer.body["value"][0]["features"].clone())
            .unwrap_or_default();
        let feature = |name: &str| features[name].as_bool();
        let tenant_id = self.tenant_id_hint(&domains);
        Ok(Tenant {
            tenant_id,
            taken_at: None,
            domains: domains
                .into_iter()
                .map(parse)
                .collect::<Result<Vec<Domain>, _>>()?,
            users,
            deleted_users: deleted
                .into_iter()
                .map(parse_user)
                .collect::<Result<_, _>>()?,
            block_cloud_object_takeover_through_hard_match_enabled: feature(
                "blockCloudObjectTakeoverThroughHardMatchEnabled",
            ),
            block_soft_match_enabled: feature("blockSoftMatchEnabled"),
            ..Tenant::default()
        })
    }

    /// The tenant's name for the report: its initial domain (the id is not readable without
    /// Organization.Read.All, which hardmatch does not ask for).
    fn tenant_id_hint(&self, domains: &[Value]) -> String {
        ["isInitial", "isDefault"]
            .iter()
            .find_map(|flag| domains.iter().find(|d| d[*flag] == true))
            .or(domains.first())
            .and_then(|d| d["id"].as_str())
            .unwrap_or("the tenant")
            .to_string()
    }
}

/// One request as every attempt of it is sent: the same `client-request-id` each time, so
/// that Graph's support can follow the retries.
struct Outgoing<'a> {
    method: reqwest::Method,
    url: String,
    body: Option<&'a Value>,
    eventual: bool,
    client_request_id: String,
    /// The request for the log, without what a log must not hold.
    line: RequestLine,
}

impl<'a> Outgoing<'a> {
    fn new(method: reqwest::Method, url: String, body: Option<&'a Value>, eventual: bool) -> Self {
        Outgoing {
            line: RequestLine::new(method.as_str(), &url),
            method,
            url,
            body,
            eventual,
            client_request_id: uuid::Uuid::new_v4().to_string(),
        }
    }
}

/// The `$batch` body for the `pending` requests, each with its index as its id.
fn batch_payload(requests: &[BatchRequest], pending: &[usize]) -> Value {
    let inner: Vec<Value> = pending
        .iter()
        .map(|&i| {
            let request = &requests[i];
            let mut inner = json!({
                "id": i.to_string(),
                "method": request.method.as_str(),
                "url": request.url,
            });
            if let Some(body) = &request.body {
                inner["body"] = body.clone();
                inner["headers"] = json!({"Content-Type": "application/json"});
            }
            inner
        })
        .collect();
    json!({ "requests": inner })
}

/// Turns one answer (a whole response, or one inside a `$batch`) into success or a failure
/// that says whether another attempt may succeed.
fn judge(meta: Meta, body: Value, retry_after: Option<Duration>) -> Result<Answer, Failure> {
    let status = meta.status.unwrap_or(0);
    match status {
        200..=299 => Ok(Answer { body, meta }),
        401 => Err(Failure::Unauthorized(Box::new(GraphError::classify(
            meta, &body,
        )))),
        // Decide by status, not by code: older directory answers say Request_ThrottledTemporarily.
        429 | 500 | 502 | 503 | 504 => Err(Failure::Retry {
            wait: retry_after,
            error: Box::new(GraphError::Other(Box::new(meta))),
        }),
        _ => Err(Failure::Final(Box::new(GraphError::classify(meta, &body)))),
    }
}

/// A failed request in words an admin can act on: what failed, the host it went to, and the
/// cause at the bottom of the chain ("could not connect (graph.microsoft.com): Connection
/// refused (os error 111)"). Never the path or query, which name users.
fn transport_failure(error: &reqwest::Error) -> String {
    let what = if error.is_timeout() {
        "timed out"
    } else if error.is_connect() {
        "could not connect"
    } else if error.is_body() || error.is_decode() {
        "the answer was cut short"
    } else {
        "the request failed"
    };
    let mut message = what.to_string();
    if let Some(url) = error.url() {
        match (url.host_str(), url.port()) {
            (Some(host), Some(port)) => message.push_str(&format!(" ({host}:{port})")),
            (Some(host), None) => message.push_str(&format!(" ({host})")),
            (None, _) => {}
        }
    }
    // Not the reqwest error itself, whose text holds the whole URL.
    if let Some(cause) = causes(error).skip(1).last() {
        message.push_str(&format!(": {cause}"));
    }
    message
}

/// Each error behind a failed request, outermost first. An io::Error hides the error it
/// wraps from `source()`, so each one is opened.
fn causes(error: &reqwest::Error) -> impl Iterator<Item = &(dyn std::error::Error + 'static)> {
    std::iter::successors(
        Some(error as &(dyn std::error::Error + 'static)),
        |e| match e
            .downcast_ref::<std::io::Error>()
            .and_then(|io| io.get_ref())
        {
            Some(inner) => Some(inner as &(dyn std::error::Error + 'static)),
            None => e.source(),
        },
    )
}

/// `-v`: one line per attempt: status, request-id, attempt, time (zero inside a `$batch`).
fn log_attempt(
    line: &RequestLine,
    attempt: u32,
    elapsed: Duration,
    outcome: &Result<Answer, Failure>,
) {
    if !tracing::enabled!(tracing::Level::INFO) {
        return;
    }
    let (status, request_id) = match outcome {
        Ok(answer) => (answer.meta.status, answer.meta.request_id.as_deref()),
        Err(Failure::Final(e) | Failure::Unauthorized(e) | Failure::Retry { error: e, .. }) => {
            let meta = e.meta();
            (
                meta.and_then(|m| m.status),
                meta.and_then(|m| m.request_id.as_deref()),
            )
        }
        Err(Failure::Transport(message)) => {
            tracing::info!("{line} -> no answer ({message}), attempt {attempt}");
            return;
        }
    };
    let status = status.map_or_else(|| "-".to_string(), |s| s.to_string());
    let timing = if elapsed.is_zero() {
        " (in $batch)".to_string()
    } else {
        format!(" ({} ms)", elapsed.as_millis())
    };
    tracing::info!(
        "{line} -> {status}, request-id {}, attempt {attempt}{timing}",
        request_id.unwrap_or("-")
    );
}

/// `-vv`: the answer's headers named in [`LOGGED_HEADERS`], and no others.
fn log_headers(line: &RequestLine, header: impl Fn(&str) -> Option<String>) {
    if !tracing::enabled!(tracing::Level::DEBUG) {
        return;
    }
    let shown: Vec<String> = LOGGED_HEADERS
        .iter()
        .filter_map(|name| header(name).map(|value| format!("{name}: {value}")))
        .collect();
    if !shown.is_empty() {
        tracing::debug!("{line} <- {}", shown.join(", "));
    }
}

/// Why one attempt did not succeed, and whether another may.
enum Failure {
    Final(Box<GraphError>),
    Unauthorized(Box<GraphError>),
    Retry {
        wait: Option<Duration>,
        error: Box<GraphError>,
    },
    Transport(String),
}

pub(crate) fn parse<T: serde::de::DeserializeOwned>(value: Value) -> Result<T, GraphError> {
    serde_json::from_value(value).map_err(|e| {
        GraphError::Other(Box::new(Meta {
            message: format!("unexpected Graph answer: {e}"),
            ..Meta::default()
        }))
    })
}

pub(crate) fn parse_user(value: Value) -> Result<User, GraphError> {
    parse(value)
}

/// What becomes of one inner request of a `$batch`.
enum Inner {
    Done(Result<Answer, GraphError>),
    Again(Duration),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_refused_connection_names_the_host_and_the_cause_but_not_the_query() {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let error = reqwest::Client::builder()
            .no_proxy()
            .build()
            .unwrap()
            .get(format!(
                "http://127.0.0.1:{port}/v1.0/users?$filter=x eq 'kate@contoso.com'"
            ))
            .send()
            .await
            .unwrap_err();
        let message = transport_failure(&error);
        assert!(
            message.starts_with(&format!("could not connect (127.0.0.1:{port}): ")),
            "{message}"
        );
        assert!(message.contains("refused"), "{message}");
        assert!(!message.contains("kate"), "{message}");
    }

    #[tokio::test]
    async fn a_refused_graph_fails_at_once_before_it_answered_and_is_retried_after() {
        // A Graph that answers every request with an empty page, until it is stopped (the
        // emulator depends on this client, so the client's tests do not use it).
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let empty_page = || async { axum::Json(serde_json::json!({ "value": [] })) };
        let graph = tokio::spawn(async move {
            axum::serve(listener, axum::Router::new().fallback(empty_page)).await
        });
        let client = || {
            // A new connection for every request: none left open from before the stop.
            let http = reqwest::Client::builder()
                .no_proxy()
                .pool_max_idle_per_host(0)
                .build()
                .unwrap();
            let secret = azure_core::credentials::Secret::new("t0ken");
            let mut client = GraphClient::new(http, &url, TokenSource::Fixed(secret)).unwrap();
            client.retry = RetryPolicy {
                max_retries: 2,
                base_backoff: Duration::from_millis(1),
                max_backoff: Duration::from_millis(5),
                ..RetryPolicy::default()
            };
            client
        };
        let get = reqwest::Method::GET;
        let answered = client();
        answered
            .send(get.clone(), "/users", None, false)
            .await
            .unwrap();
        graph.abort();
        let _ = graph.await;

        let blip = answered.send(get.clone(), "/users", None, false).await;
        let blip = blip.unwrap_err();
        assert_eq!(blip.meta().unwrap().attempts, 3, "{blip}");

        let error = client().send(get, "/users", None, false).await.unwrap_err();
        assert_eq!(error.meta().unwrap().attempts, 1, "{error}");
        let message = error.to_string();
        assert!(
            message.contains(&url) && message.contains("connection refused"),
            "{message}"
        );
    }

    #[test]
    fn literals_and_paths_cannot_change_a_query() {
        assert_eq!(
            odata_literal("kate.o'brien@contoso.com"),
            "'kate.o''brien@contoso.com'"
        );
        assert_eq!(
            user_path("partner_fabrikam.com#EXT#@contoso.onmicrosoft.com"),
            "/users/partner_fabrikam.com%23EXT%23%40contoso.onmicrosoft.com"
        );
        assert_eq!(
            user_path("$svc@contoso.com"),
            "/users(%27%24svc%40contoso.com%27)"
        );
        assert_eq!(user_path("a/../b?x"), "/users/a%2F..%2Fb%3Fx");
        let q = query(&[("$filter", "userPrincipalName eq 'a+b@x.com'")]);
        assert_eq!(q, "$filter=userPrincipalName%20eq%20%27a%2Bb%40x.com%27");
    }

    #[tokio::test]
    async fn a_next_link_to_another_origin_is_refused_before_anything_is_sent() {
        let client = GraphClient::new(
            reqwest::Client::new(),
            "https://graph.microsoft.com",
            TokenSource::Fixed(azure_core::credentials::Secret::new("t0ken")),
        )
        .unwrap();
        for link in [
            "https://evil.example.com/v1.0/users?$skiptoken=x",
            "http://graph.microsoft.com/v1.0/users?$skiptoken=x",
            "https://graph.microsoft.com:8443/v1.0/users",
            "https://graph.microsoft.com.evil.com/v1.0/users",
            "https://user:pw@evil.example.com/",
            "http//graph.microsoft.com",
        ] {
            let error = client
                .send(reqwest::Method::GET, link, None, false)
                .await
                .unwrap_err()
                .to_string();
            assert!(
                error.contains("refusing to follow a link"),
                "{link}: {error}"
            );
            assert!(
                !error.contains("t0ken") && !error.contains("pw@"),
                "{error}"
            );
        }
        assert_eq!(client.requests(), 0);
    }

    #[test]
    fn retry_after_forms() {
        assert_eq!(
            parse_retry_after("2.128"),
            Some(Duration::from_secs_f64(2.128))
        );
        assert_eq!(parse_retry_after("7"), Some(Duration::from_secs(7)));
        let future =
            httpdate::fmt_http_date(std::time::SystemTime::now() + Duration::from_secs(30));
        let wait = parse_retry_after(&future).unwrap();
        assert!(
            wait > Duration::from_secs(28) && wait <= Duration::from_secs(30),
            "{wait:?}"
        );
        assert_eq!(
            parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT"),
            Some(Duration::ZERO)
        );
        assert_eq!(parse_retry_after("soon"), None);
        assert_eq!(parse_retry_after("-1"), None);
    }

    #[test]
    fn backoff_grows_and_stays_bounded() {
        let policy = RetryPolicy::default();
        for attempt in 1..20 {
            let wait = policy.backoff(attempt);
            assert!(wait <= policy.max_backoff, "{attempt}: {wait:?}");
            assert!(wait >= policy.base_backoff.min(policy.max_backoff) / 2);
        }
    }
}
