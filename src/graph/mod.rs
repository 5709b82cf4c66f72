//! The Microsoft Graph client: typed calls for what hardmatch reads and writes, with OData
//! literals always escaped, paging, retries that honour Retry-After, a fresh token after a
//! 401, and every answer's request ids kept for the audit report.
//!
//! [`auth`] picks the credential and the hosts; [`error`] classifies failures.

pub mod auth;
mod certificate;
pub mod error;
pub mod read;

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use futures::future::BoxFuture;
use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};
use rand::Rng;
use serde_json::{json, Value};

pub use self::auth::{AuthArgs, TokenSource};
pub use self::error::{GraphError, Meta};
use crate::logging::{RequestLine, LOGGED_HEADERS};
use crate::tenant::{Domain, Tenant, User};

/// The properties hardmatch reads on users (some are returned only when selected).
pub const USER_SELECT: &str =
    "id,userPrincipalName,displayName,mail,proxyAddresses,onPremisesImmutableId,onPremisesSyncEnabled,accountEnabled";

/// How hard to retry. Graph's SDKs retry 429, 503 and 504 and honour Retry-After; otherwise
/// they back off exponentially. A bulk job keeps going longer than an SDK default.
#[derive(Clone, Copy, Debug)]
pub struct RetryPolicy {
    /// Retries of 5xx answers and connection failures.
    pub max_retries: u32,
    /// Retries of 429s. Graph says when to come back, so a bulk job keeps coming back far
    /// longer than after a failure; only a throttle that never lifts ends in `throttled-out`.
    pub max_throttled_retries: u32,
    pub base_backoff: Duration,
    pub max_backoff: Duration,
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
    pub fn backoff(&self, attempt: u32) -> Duration {
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
    pub status: u16,
    pub body: Value,
    pub meta: Meta,
}

/// Parses Retry-After: seconds (possibly fractional, e.g. `2.128`) or an HTTP date.
pub fn parse_retry_after(value: &str) -> Option<Duration> {
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
pub fn user_path(key: &str) -> String {
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
    /// The only origin requests go to: an `@odata.nextLink` elsewhere is refused, so that no
    /// answer can send the bearer token to another host (or over plain http).
    origin: url::Origin,
    tokens: TokenSource,
    pub retry: RetryPolicy,
    requests: AtomicU64,
    /// Writes are sent at low throttle priority: this is a bulk job (graph-facts.md).
    low_priority: bool,
    /// After a 429, no request of this client goes out before this moment: Graph throttles the
    /// app, not the request, and an early retry is throttled again.
    paused_until: std::sync::Mutex<Option<tokio::time::Instant>>,
    throttled: AtomicU64,
    /// Resource units Graph says the answers cost (`x-ms-resource-unit`).
    resource_units: AtomicU64,
    /// The highest `x-ms-throttle-limit-percentage` seen, in tenths of a percent of the
    /// limit (Graph sends it above 80% use).
    peak_limit_use: AtomicU64,
}

/// Asks Graph whether a write whose answer was unclear took effect.
type AppliedCheck<'a> = &'a (dyn Fn() -> BoxFuture<'a, bool> + Send + Sync);

/// The most requests one `$batch` may carry.
pub const BATCH_LIMIT: usize = 20;

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
            origin,
            tokens,
            retry: RetryPolicy::default(),
            requests: AtomicU64::new(0),
            low_priority: true,
            paused_until: std::sync::Mutex::new(None),
            throttled: AtomicU64::new(0),
            resource_units: AtomicU64::new(0),
            peak_limit_use: AtomicU64::new(0),
        })
    }

    /// Builds a client from the shared command-line arguments.
    pub fn from_args(args: &AuthArgs) -> Result<GraphClient, GraphError> {
        let http = args.http_client()?;
        let tokens = args.token_source(&http)?;
        GraphClient::new(http, &args.graph_root()?, tokens)
    }

    /// HTTP requests sent so far (each retry counts).
    pub fn requests(&self) -> u64 {
        self.requests.load(Ordering::Relaxed)
    }

    /// 429 answers received so far.
    pub fn throttled(&self) -> u64 {
        self.throttled.load(Ordering::Relaxed)
    }

    /// What this client's requests cost so far, for a report's summary: requests, 429s, and
    /// the resource units and peak share of the limit that Graph reported in its headers.
    pub fn usage_notes(&self) -> Vec<(String, String)> {
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

    async fn wait_for_pause(&self) {
        let until = *self.paused_until.lock().expect("pause lock");
        if let Some(until) = until {
            tokio::time::sleep_until(until).await;
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
    /// absolute `@odata.nextLink`.
    pub async fn send(
        &self,
        method: reqwest::Method,
        target: &str,
        body: Option<&Value>,
        eventual: bool,
    ) -> Result<Answer, GraphError> {
        self.send_write(method, target, body, eventual, None).await
    }

    /// [`send`](Self::send) for a write: after an unclear failure (the connection broke, or a
    /// 500, 502 or 504, any of which can come after Graph applied the write) `applied` is
    /// asked whether the write already took effect before it is sent again, so that no write
    /// is applied twice. A 429 or 503 is clear: Graph did not take the request.
    async fn send_write(
        &self,
        method: reqwest::Method,
        target: &str,
        body: Option<&Value>,
        eventual: bool,
        applied: Option<AppliedCheck<'_>>,
    ) -> Result<Answer, GraphError> {
        let url = if target.starts_with("http") {
            self.check_link(target)?;
            target.to_string()
        } else {
            format!("{}{target}", self.base)
        };
        let line = RequestLine::new(method.as_str(), &url);
        let client_request_id = uuid::Uuid::new_v4().to_string();
        let mut refreshed = false;
        let mut attempt = 0u32;
        let mut throttled = 0u32;
        loop {
            attempt += 1;
            self.wait_for_pause().await;
            let mut request = self
                .http
                .request(method.clone(), &url)
                .header("client-request-id", &client_request_id);
            if self.low_priority {
                request = request.header("x-ms-throttle-priority", "low");
            }
            if eventual {
                request = request.header("ConsistencyLevel", "eventual");
            }
            if let Some(body) = body {
                request = request.json(body);
            }
            let (request, token_generation) = self.tokens.authorize(request).await?;
            self.requests.fetch_add(1, Ordering::Relaxed);
            let sent = std::time::Instant::now();
            let outcome = match request.send().await {
                Ok(response) => {
                    self.read(response, &client_request_id, attempt, &line)
                        .await
                }
                Err(e) => match tls_failure(&e) {
                    // Not transient: retrying an untrusted certificate only hides the reason.
                    Some(why) => {
                        tracing::info!("{line} -> TLS failed: {why}");
                        return Err(GraphError::Transport(Box::new(Meta {
                            message: format!(
                                "TLS: {why} (behind a TLS-inspecting proxy? trust its root with --ca-cert)"
                            ),
                            client_request_id,
                            attempts: attempt,
                            ..Meta::default()
                        })));
                    }
                    None => Err(Failure::Transport(transport_failure(&e))),
                },
            };
            log_attempt(&line, attempt, sent.elapsed(), &outcome);
            let (wait, unclear) = match outcome {
                Ok(answer) => return Ok(answer),
                Err(Failure::Final(error)) => return Err(*error),
                Err(Failure::Unauthorized(error)) => {
                    if refreshed || matches!(self.tokens, TokenSource::Fixed(_)) {
                        return Err(*error);
                    }
                    refreshed = true;
                    tracing::info!("{line}: the token was refused; signing in again");
                    self.tokens.refresh(token_generation).await?;
                    continue;
                }
                Err(Failure::Retry { wait, error }) => {
                    let unclear = error
                        .meta()
                        .is_some_and(|m| matches!(m.status, Some(500 | 502 | 504)));
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
                    (wait, unclear)
                }
                Err(Failure::Transport(message)) => {
                    if attempt > self.retry.max_retries {
                        let meta = Meta {
                            message,
                            client_request_id,
                            attempts: attempt,
                            ..Meta::default()
                        };
                        tracing::info!("{line}: giving up after {attempt} attempts");
                        return Err(GraphError::Transport(Box::new(meta)));
                    }
                    let wait = self.retry.backoff(attempt);
                    tracing::info!("{line}: retrying in {:.3} s (backoff)", wait.as_secs_f64());
                    // The request may have reached Graph before the connection broke.
                    (wait, true)
                }
            };
            tokio::time::sleep(wait).await;
            if let (true, Some(applied)) = (unclear, applied) {
                if applied().await {
                    return Ok(Answer {
                        status: 204,
                        body: Value::Null,
                        meta: Meta {
                            message: "the answer was lost, but a read showed the write had taken effect; not sent again".into(),
                            client_request_id,
                            attempts: attempt,
                            ..Meta::default()
                        },
                    });
                }
            }
        }
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

    async fn read(
        &self,
        response: reqwest::Response,
        client_request_id: &str,
        attempt: u32,
        line: &RequestLine,
    ) -> Result<Answer, Failure> {
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
        let mut results = Vec::with_capacity(requests.len());
        for twenty in requests.chunks(BATCH_LIMIT) {
            results.extend(self.batch_of_twenty(twenty).await);
        }
        results
    }

    async fn batch_of_twenty(&self, requests: &[BatchRequest]) -> Vec<Result<Answer, GraphError>> {
        let mut results: Vec<Option<Result<Answer, GraphError>>> = vec![None; requests.len()];
        let mut attempts = vec![0u32; requests.len()];
        let mut throttled = vec![0u32; requests.len()];
        let mut pending: Vec<usize> = (0..requests.len()).collect();
        while !pending.is_empty() {
            let payload = batch_payload(requests, &pending);
            let answer = match self
                .send(reqwest::Method::POST, "/$batch", Some(&payload), false)
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
                let line = RequestLine::new(requests[i].method.as_str(), &requests[i].url);
                let judged = self.judge_inner(inner, &answer.meta, attempts[i], &line);
                log_attempt(&line, attempts[i], std::time::Duration::ZERO, &judged);
                match judged {
                    Ok(ok) => results[i] = Some(Ok(ok)),
                    Err(Failure::Retry {
                        wait: inner_wait,
                        error,
                    }) => {
                        if self.note_throttle(&error, inner_wait) {
                            throttled[i] += 1;
                        }
                        match self.out_of_retries(*error, attempts[i], throttled[i]) {
                            Some(error) => results[i] = Some(Err(error)),
                            None => {
                                again.push(i);
                                let this =
                                    inner_wait.unwrap_or_else(|| self.retry.backoff(attempts[i]));
                                wait = Some(wait.map_or(this, |w| w.max(this)));
                            }
                        }
                    }
                    Err(Failure::Final(error)) | Err(Failure::Unauthorized(error)) => {
                        results[i] = Some(Err(*error))
                    }
                    Err(Failure::Transport(message)) => {
                        results[i] = Some(Err(GraphError::Transport(Box::new(Meta {
                            message,
                            ..answer.meta.clone()
                        }))))
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
    pub async fn anchor_holder(
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
        let body = json!({ "onPremisesImmutableId": value });
        self.patch_user(user_id, body, |user| {
            user.on_premises_immutable_id
                .as_deref()
                .filter(|v| !v.is_empty())
                == value
        })
        .await
    }

    pub async fn set_upn(&self, user_id: &str, upn: &str) -> Result<Answer, GraphError> {
        let body = json!({ "userPrincipalName": upn });
        self.patch_user(user_id, body, |user| {
            user.user_principal_name.eq_ignore_ascii_case(upn)
        })
        .await
    }

    /// PATCHes a user; `took_effect` tells from the user as read back whether an unclear
    /// attempt was applied.
    async fn patch_user(
        &self,
        user_id: &str,
        body: Value,
        took_effect: impl Fn(&User) -> bool + Send + Sync,
    ) -> Result<Answer, GraphError> {
        let applied = || -> BoxFuture<'_, bool> {
            Box::pin(async {
                matches!(self.get_user(user_id).await, Ok(Some(user)) if took_effect(&user))
            })
        };
        self.send_write(
            reqwest::Method::PATCH,
            &user_path(user_id),
            Some(&body),
            false,
            Some(&applied),
        )
        .await
    }

    /// Removes a deleted user from the recycle bin for good.
    pub async fn purge_deleted(&self, id: &str) -> Result<Answer, GraphError> {
        let target = format!("/directory/deletedItems/{}", encode(id));
        let gone = || -> BoxFuture<'_, bool> {
            Box::pin(async {
                matches!(
                    self.send(reqwest::Method::GET, &target, None, false).await,
                    Err(GraphError::NotFound(_))
                )
            })
        };
        self.send_write(reqwest::Method::DELETE, &target, None, false, Some(&gone))
            .await
    }

    /// Reads the tenant: users, deleted users, domains, and the hard-match takeover setting
    /// when it can be read. `progress` sees (what, items so far).
    pub async fn snapshot(
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
    pub async fn tenant_around(
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
        let takeover = match self
            .send(
                reqwest::Method::GET,
                "/directory/onPremisesSynchronization",
                None,
                false,
            )
            .await
        {
            Ok(answer) => answer.body["value"][0]["features"]
                ["blockCloudObjectTakeoverThroughHardMatchEnabled"]
                .as_bool(),
            Err(_) => None,
        };
        let tenant_id = self.tenant_id_hint(&domains);
        Ok(Tenant {
            tenant_id,
            domains: domains
                .into_iter()
                .map(parse)
                .collect::<Result<Vec<Domain>, _>>()?,
            users,
            deleted_users: deleted
                .into_iter()
                .map(parse_user)
                .collect::<Result<_, _>>()?,
            block_cloud_object_takeover_through_hard_match_enabled: takeover,
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
        200..=299 => Ok(Answer { status, body, meta }),
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
    let mut cause = std::error::Error::source(error);
    while let Some(deeper) = cause.and_then(|e| e.source()) {
        cause = Some(deeper);
    }
    if let Some(cause) = cause {
        message.push_str(&format!(": {cause}"));
    }
    message
}

/// The TLS error (an untrusted or invalid certificate, a failed handshake) behind a failed
/// request, if that is what failed. An io::Error hides the error it wraps from `source()`,
/// so each one is opened.
fn tls_failure(error: &reqwest::Error) -> Option<String> {
    let mut next: Option<&(dyn std::error::Error + 'static)> = Some(error);
    while let Some(e) = next {
        if let Some(tls) = e.downcast_ref::<tokio_rustls::rustls::Error>() {
            return Some(tls.to_string());
        }
        next = match e
            .downcast_ref::<std::io::Error>()
            .and_then(|io| io.get_ref())
        {
            Some(inner) => Some(inner as &(dyn std::error::Error + 'static)),
            None => e.source(),
        };
    }
    None
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

fn parse<T: serde::de::DeserializeOwned>(value: Value) -> Result<T, GraphError> {
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
