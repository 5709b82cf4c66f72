//! The Microsoft Graph client: typed calls for what hardmatch reads and writes, with OData
//! literals always escaped, paging, retries that honour Retry-After, a fresh token after a
//! 401, and every answer's request ids kept for the audit report.
//!
//! [`auth`] picks the credential and the hosts; [`error`] classifies failures.

pub mod auth;
pub mod error;

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};
use rand::Rng;
use serde_json::{json, Value};

pub use self::auth::{AuthArgs, TokenSource};
pub use self::error::{GraphError, Meta};
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

fn encode(value: &str) -> String {
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
    tokens: TokenSource,
    pub retry: RetryPolicy,
    requests: AtomicU64,
    /// Writes are sent at low throttle priority: this is a bulk job (graph-facts.md).
    low_priority: bool,
    /// After a 429, no request of this client goes out before this moment: Graph throttles the
    /// app, not the request, and an early retry is throttled again.
    paused_until: std::sync::Mutex<Option<tokio::time::Instant>>,
    throttled: AtomicU64,
}

impl GraphClient {
    pub fn new(
        http: reqwest::Client,
        root: &str,
        tokens: TokenSource,
    ) -> Result<GraphClient, GraphError> {
        auth::check_url(root)?;
        Ok(GraphClient {
            http,
            base: format!("{}/v1.0", root.trim_end_matches('/')),
            tokens,
            retry: RetryPolicy::default(),
            requests: AtomicU64::new(0),
            low_priority: true,
            paused_until: std::sync::Mutex::new(None),
            throttled: AtomicU64::new(0),
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
        let url = if target.starts_with("http") {
            target.to_string()
        } else {
            format!("{}{target}", self.base)
        };
        let client_request_id = uuid::Uuid::new_v4().to_string();
        let mut refreshed = false;
        let mut attempt = 0u32;
        let mut throttled = 0u32;
        loop {
            attempt += 1;
            self.wait_for_pause().await;
            let token = self.tokens.token(false).await?;
            let mut request = self
                .http
                .request(method.clone(), &url)
                .bearer_auth(&token)
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
            self.requests.fetch_add(1, Ordering::Relaxed);
            let outcome = match request.send().await {
                Ok(response) => self.read(response, &client_request_id, attempt).await,
                Err(e) => Err(Failure::Transport(e.without_url().to_string())),
            };
            let wait = match outcome {
                Ok(answer) => return Ok(answer),
                Err(Failure::Final(error)) => return Err(*error),
                Err(Failure::Unauthorized(error)) => {
                    if refreshed || matches!(self.tokens, TokenSource::Fixed(_)) {
                        return Err(*error);
                    }
                    refreshed = true;
                    self.tokens.token(true).await?;
                    continue;
                }
                Err(Failure::Retry { wait, error }) => {
                    let is_429 = error.meta().is_some_and(|m| m.status == Some(429));
                    if is_429 {
                        throttled += 1;
                        self.throttled.fetch_add(1, Ordering::Relaxed);
                        if let Some(wait) = wait {
                            self.pause_for(wait);
                        }
                    }
                    let failures = attempt - throttled;
                    if throttled > self.retry.max_throttled_retries
                        || failures > self.retry.max_retries
                    {
                        return Err(match *error {
                            GraphError::Other(meta) if meta.status == Some(429) => {
                                GraphError::Throttled(meta)
                            }
                            other => other,
                        });
                    }
                    wait.unwrap_or_else(|| self.retry.backoff(attempt))
                }
                Err(Failure::Transport(message)) => {
                    if attempt > self.retry.max_retries {
                        let meta = Meta {
                            message,
                            client_request_id,
                            attempts: attempt,
                            ..Meta::default()
                        };
                        return Err(GraphError::Transport(Box::new(meta)));
                    }
                    self.retry.backoff(attempt)
                }
            };
            tokio::time::sleep(wait).await;
        }
    }

    async fn read(
        &self,
        response: reqwest::Response,
        client_request_id: &str,
        attempt: u32,
    ) -> Result<Answer, Failure> {
        let status = response.status().as_u16();
        let header = |name: &str| {
            response
                .headers()
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::to_string)
        };
        let request_id = header("request-id");
        let retry_after = header("retry-after").and_then(|v| parse_retry_after(&v));
        // A body cut short (a connection reset mid-response) is a transport failure: retry.
        let bytes = response
            .bytes()
            .await
            .map_err(|e| Failure::Transport(e.without_url().to_string()))?;
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
        match status {
            200..=299 => Ok(Answer { status, body, meta }),
            401 => Err(Failure::Unauthorized(Box::new(GraphError::classify(
                meta, &body,
            )))),
            // Decide by status, not by code: older directory answers say Request_ThrottledTemporarily.
            429 | 503 | 504 => Err(Failure::Retry {
                wait: retry_after,
                error: Box::new(GraphError::Other(Box::new(meta))),
            }),
            500 | 502 => Err(Failure::Retry {
                wait: retry_after,
                error: Box::new(GraphError::Other(Box::new(meta))),
            }),
            _ => Err(Failure::Final(Box::new(GraphError::classify(meta, &body)))),
        }
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

    /// Sets (or with `None` clears) onPremisesImmutableId. Sends JSON null to clear, not "".
    pub async fn set_anchor(
        &self,
        user_id: &str,
        value: Option<&str>,
    ) -> Result<Answer, GraphError> {
        self.patch_user(user_id, json!({ "onPremisesImmutableId": value }))
            .await
    }

    pub async fn set_upn(&self, user_id: &str, upn: &str) -> Result<Answer, GraphError> {
        self.patch_user(user_id, json!({ "userPrincipalName": upn }))
            .await
    }

    async fn patch_user(&self, user_id: &str, body: Value) -> Result<Answer, GraphError> {
        self.send(
            reqwest::Method::PATCH,
            &user_path(user_id),
            Some(&body),
            false,
        )
        .await
    }

    /// Removes a deleted user from the recycle bin for good.
    pub async fn purge_deleted(&self, id: &str) -> Result<Answer, GraphError> {
        self.send(
            reqwest::Method::DELETE,
            &format!("/directory/deletedItems/{}", encode(id)),
            None,
            false,
        )
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
            .await?;
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
            users: users
                .into_iter()
                .map(parse_user)
                .collect::<Result<_, _>>()?,
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
        domains
            .iter()
            .find(|d| d["isInitial"] == true)
            .and_then(|d| d["id"].as_str())
            .unwrap_or("")
            .to_string()
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

fn parse_user(value: Value) -> Result<User, GraphError> {
    parse(value)
}

#[cfg(test)]
mod tests {
    use super::*;

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
