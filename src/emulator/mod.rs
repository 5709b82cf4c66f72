//! A local Microsoft Graph emulator, for rehearsals and for hardmatch's own tests: users,
//! deleted users, domains, `$batch`, client-credential sign-in, the identity throttling model,
//! latency and faults, all as docs/graph.md documents them.
//!
//! [`run`] takes its listener and its shutdown future (mini-redis's pattern): tests bind
//! `127.0.0.1:0` and spawn it, or call [`spawn`]. [`service`] is the API itself, independent
//! of HTTP; [`throttle`] the quotas; [`odata`] the `$filter` language; [`state`] the tenant;
//! [`lag`] what reads still see of recent writes.

pub(crate) mod assertion;
pub(crate) mod faults;
pub(crate) mod lag;
pub mod odata;
pub(crate) mod service;
pub mod state;
pub mod sync;
pub mod synthetic;
pub mod throttle;
mod tls;

use std::collections::HashMap;
use std::future::Future;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use axum::body::{Body as HttpBody, Bytes};
use axum::extract::State as AxumState;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri};
use axum::response::Response;
use serde_json::{json, Value};
use tokio::net::TcpListener;

use self::faults::{Fault, Faults};
use self::lag::Lag;
use self::service::{graph_error, Body, Reply, Request};
use self::state::{State, Stats};
use self::throttle::{Clock, Decision, Quotas, Throttle};
use crate::tenant::Tenant;

/// Every switch of the emulator. The defaults behave like Graph. Not `Debug`: it holds client
/// secrets and a bearer token, which no log of it should print.
#[derive(Clone)]
pub struct Config {
    pub quotas: Quotas,
    /// The clock runs this many times faster than the wall clock.
    pub time_scale: f64,
    /// Per-request latency in emulated milliseconds, drawn evenly from this range.
    pub latency_ms: (u64, u64),
    pub faults: Faults,
    /// INFERRED (docs/graph.md): a soft-deleted user still reserves its ImmutableId.
    pub deleted_users_reserve_anchors: bool,
    /// INFERRED: the ImmutableId of a user in a federated domain cannot be changed in place.
    pub refuse_federated_anchor_change: bool,
    /// Answer every write with 403, as for an app without User.ReadWrite.All.
    pub forbid_writes: bool,
    /// Answer role definitions, assignments and eligibilities with 403, as for an app
    /// without RoleManagement.Read.Directory.
    pub forbid_role_reads: bool,
    /// Answer the group listing, group members and owners with 403, as for an app without
    /// GroupMember.Read.All (or Directory.Read.All).
    pub forbid_group_reads: bool,
    /// Refuse role eligibility schedules (403), as a tenant without Entra ID P2 may
    /// (docs/graph.md: it has none, or refuses).
    pub refuse_role_eligibility: bool,
    /// Answer writes to these users (ids or UPNs) with 403, as Graph does for a user whose
    /// sensitive attributes the app may not change (docs/graph.md, "Sensitive attributes").
    pub forbid_writes_to: Vec<String>,
    /// The signed-in app holds a privileged role (Privileged Authentication Administrator or
    /// Global Administrator), so it may change sensitive attributes of privileged users, and
    /// of members and owners of role-assignable groups, too.
    /// Without it, such writes are answered 403 (docs/graph.md, "Sensitive attributes").
    pub app_privileged: bool,
    /// For this many emulated milliseconds after a write or a purge, reads see the state
    /// before it, and a purged holder still holds its anchor (docs/graph.md, "No
    /// read-after-write guarantee"). 0: every read sees the latest state.
    pub read_lag_ms: u64,
    /// Answer writes of onPremisesObjectIdentifier with 403, as for an app without
    /// User-OnPremisesSyncBehavior.ReadWrite.All or the Hybrid Identity Administrator role.
    pub forbid_object_identifier_writes: bool,
    /// Apps that may sign in with client credentials: (client id, secret).
    pub clients: Vec<(String, String)>,
    /// Apps that may sign in with a certificate: (client id, certificate PEM).
    pub client_certificates: Vec<(String, Vec<u8>)>,
    /// A bearer token that is always accepted, for tests that skip sign-in.
    pub access_token: Option<String>,
    /// Lifetime of issued tokens, in emulated seconds.
    pub token_lifetime_secs: f64,
    /// Serve HTTPS with a self-signed certificate written to this file.
    pub tls_cert_out: Option<PathBuf>,
    /// The AD side, for `POST /_emulator/sync` to run sync cycles against.
    pub directory: Option<Arc<sync::Directory>>,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            quotas: Quotas::default(),
            time_scale: 1.0,
            latency_ms: (30, 250),
            faults: Faults::default(),
            deleted_users_reserve_anchors: true,
            refuse_federated_anchor_change: true,
            forbid_writes: false,
            forbid_role_reads: false,
            forbid_group_reads: false,
            refuse_role_eligibility: false,
            forbid_writes_to: Vec::new(),
            app_privileged: false,
            read_lag_ms: 0,
            forbid_object_identifier_writes: false,
            clients: Vec::new(),
            client_certificates: Vec::new(),
            access_token: None,
            token_lifetime_secs: 3599.0,
            tls_cert_out: None,
            directory: None,
        }
    }
}

/// The emulator's shared state. Behind `std::sync::Mutex`es: every critical section is short
/// and never awaits, so a blocking lock is cheaper than an async one.
pub struct Emulator {
    config: Config,
    clock: Clock,
    state: Mutex<State>,
    throttle: Mutex<Throttle>,
    tokens: Mutex<HashMap<String, IssuedToken>>,
    faults: Mutex<faults::Dice>,
    next_request: AtomicU64,
    /// Until when (emulated seconds) every Graph request is answered 429: a throttling storm.
    storm_until: Mutex<f64>,
}

#[derive(Clone, Debug)]
struct IssuedToken {
    app: String,
    expires_at: f64,
}

impl Emulator {
    pub(crate) fn new(tenant: Tenant, config: Config) -> Emulator {
        let throttle = Throttle::new(config.quotas.clone(), &tenant.tenant_id, tenant.users.len());
        let mut state = State::new(tenant);
        state.lag = Lag::new(config.read_lag_ms);
        Emulator {
            clock: Clock::new(config.time_scale),
            faults: Mutex::new(config.faults.dice()),
            state: Mutex::new(state),
            throttle: Mutex::new(throttle),
            tokens: Mutex::new(HashMap::new()),
            next_request: AtomicU64::new(1),
            storm_until: Mutex::new(f64::NEG_INFINITY),
            config,
        }
    }

    /// Changes the tenant behind every client's back, as an admin in the portal (or another
    /// tool) would: for rehearsals and tests that set up what happens between two commands.
    pub fn edit_tenant(&self, change: impl FnOnce(&mut Tenant)) {
        self.with_state(|s| {
            let mut tenant = s.tenant.clone();
            change(&mut tenant);
            let stats = std::mem::take(&mut s.stats);
            let lag = std::mem::take(&mut s.lag);
            *s = State::new(tenant);
            s.stats = stats;
            s.lag = lag;
        });
    }

    /// Runs one sync cycle from the configured directory (`None` without one).
    pub(crate) fn sync(&self) -> Option<sync::Cycle> {
        let directory = self.config.directory.as_ref()?;
        let now = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
        let cycle = self.with_state(|s| sync::run(s, directory, &now));
        tracing::info!("sync cycle: {cycle:?}");
        Some(cycle)
    }

    /// The tenant as it is now.
    pub fn tenant(&self) -> Tenant {
        self.with_state(|s| s.tenant.clone())
    }

    pub fn stats(&self) -> Stats {
        self.with_state(|s| s.stats.clone())
    }

    fn with_state<T>(&self, f: impl FnOnce(&mut State) -> T) -> T {
        f(&mut self.state.lock().expect("emulator state lock"))
    }

    fn count(&self, key: String) {
        self.with_state(|s| *s.stats.requests.entry(key).or_insert(0) += 1);
    }

    fn charge(&self, app: &str, cost: u32, write: bool) -> Decision {
        let now = self.clock.now();
        self.throttle
            .lock()
            .expect("throttle lock")
            .charge(now, app, cost, write)
    }

    /// Serves any request: sign-in, the emulator's own endpoints, or Graph.
    pub(crate) fn handle(&self, request: &Request) -> Reply {
        if request.method == "POST" && request.path.ends_with("/oauth2/v2.0/token") {
            return self.token(request);
        }
        match request.path.as_str() {
            "/_emulator/stats" => {
                return Reply {
                    status: 200,
                    headers: vec![],
                    body: Body::Json(json!(self.stats())),
                }
            }
            "/_emulator/state" => {
                return Reply {
                    status: 200,
                    headers: vec![],
                    body: Body::Json(json!(self.tenant())),
                }
            }
            "/_emulator/sync" if request.method == "POST" => {
                return match self.sync() {
                    Some(cycle) => Reply::json(200, json!(cycle)),
                    None => graph_error(
                        400,
                        "BadRequest",
                        "no directory to sync from: start the emulator with --directory EXPORT",
                    ),
                };
            }
            "/_emulator/expire-tokens" if request.method == "POST" => {
                self.expire_tokens();
                return Reply::json(200, json!({"expired": true}));
            }
            "/_emulator/storm" if request.method == "POST" => {
                let seconds = url::form_urlencoded::parse(request.query.as_bytes())
                    .find(|(k, _)| k == "seconds")
                    .and_then(|(_, v)| v.parse::<f64>().ok());
                return match seconds {
                    Some(seconds) if seconds >= 0.0 => {
                        self.storm(seconds);
                        Reply::json(200, json!({"storm_seconds": seconds}))
                    }
                    _ => graph_error(
                        400,
                        "BadRequest",
                        "POST /_emulator/storm?seconds=N (emulated seconds)",
                    ),
                };
            }
            _ => {}
        }
        match self.authenticate(request) {
            Ok(app) => self.serve_graph(request, &app),
            Err(reply) => reply,
        }
    }

    /// The bearer token's app, or Graph's 401.
    fn authenticate(&self, request: &Request) -> Result<String, Reply> {
        let unauthorized = |message: &str| graph_error(401, "InvalidAuthenticationToken", message);
        let token = request
            .authorization
            .as_deref()
            .and_then(|h| {
                h.strip_prefix("Bearer ")
                    .or_else(|| h.strip_prefix("bearer "))
            })
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .ok_or_else(|| unauthorized("Access token is empty."))?;
        if self.config.access_token.as_deref() == Some(token) {
            return Ok("fixed-token-app".to_string());
        }
        let issued = self.tokens.lock().expect("tokens lock").get(token).cloned();
        match issued {
            Some(t) if t.expires_at > self.clock.now() => Ok(t.app),
            Some(_) => Err(unauthorized(
                "Lifetime validation failed, the token is expired.",
            )),
            None => Err(unauthorized("IDX14100: JWT is not well formed.")),
        }
    }

    /// A throttling storm: for the next `emulated_secs`, every Graph request (inside `$batch`
    /// too) is answered 429 with a Retry-After that runs to the storm's end, as Graph does
    /// when the service is loaded, whatever the caller's quota.
    pub fn storm(&self, emulated_secs: f64) {
        *self.storm_until.lock().expect("storm lock") = self.clock.now() + emulated_secs;
    }

    /// Emulated seconds left in a storm, if one is blowing.
    fn storm_left(&self) -> Option<f64> {
        let left = *self.storm_until.lock().expect("storm lock") - self.clock.now();
        (left > 0.0).then_some(left)
    }

    /// The bearer tokens the token endpoint has issued, so that tests can look for them in
    /// what a client printed. Emulator tokens only; never served over HTTP.
    pub fn issued_tokens(&self) -> Vec<String> {
        self.tokens
            .lock()
            .expect("tokens lock")
            .keys()
            .cloned()
            .collect()
    }

    /// Forgets every issued token: the next call with one gets 401, as after an expiry.
    pub fn expire_tokens(&self) {
        let now = self.clock.now();
        for token in self.tokens.lock().expect("tokens lock").values_mut() {
            token.expires_at = now;
        }
    }

    /// `POST /{tenant}/oauth2/v2.0/token`, client credentials with a secret or a certificate.
    fn token(&self, request: &Request) -> Reply {
        let form: HashMap<String, String> = url::form_urlencoded::parse(&request.body)
            .into_owned()
            .collect();
        match self.sign_in(request, &form) {
            Ok(client_id) => self.issue_token(client_id),
            Err(refused) => refused,
        }
    }

    /// The app a token request signs in as, or Entra's refusal: an unknown tenant or app, a
    /// request that is not client credentials, a wrong secret or assertion.
    fn sign_in(&self, request: &Request, form: &HashMap<String, String>) -> Result<String, Reply> {
        let tenant = request
            .path
            .trim_start_matches('/')
            .split('/')
            .next()
            .unwrap_or("");
        if !self.knows_tenant(tenant) {
            return Err(aad_error(400, "invalid_request", 90002, format!("Tenant '{tenant}' not found. Check to make sure you have the correct tenant ID and are signing into the correct cloud.")));
        }
        if form.get("grant_type").map(String::as_str) != Some("client_credentials")
            || !form.get("scope").is_some_and(|s| s.ends_with("/.default"))
        {
            return Err(aad_error(400, "invalid_request", 900144, "The request body must contain grant_type=client_credentials and a scope ending in /.default.".into()));
        }
        let client_id = form.get("client_id").cloned().unwrap_or_default();
        let secret = self
            .config
            .clients
            .iter()
            .find(|(id, _)| *id == client_id)
            .map(|(_, secret)| secret);
        let certificates: Vec<&[u8]> = self
            .config
            .client_certificates
            .iter()
            .filter(|(id, _)| *id == client_id)
            .map(|(_, pem)| pem.as_slice())
            .collect();
        if secret.is_none() && certificates.is_empty() {
            return Err(aad_error(400, "unauthorized_client", 700016, format!("Application with identifier '{client_id}' was not found in the directory '{tenant}'.")));
        }
        let token_url = format!("{}{}", request.base_url, request.path);
        check_credential(form, &client_id, secret, &certificates, &token_url)?;
        Ok(client_id)
    }

    /// Whether `tenant` (in a token URL) is this tenant, by id or by one of its domains.
    fn knows_tenant(&self, tenant: &str) -> bool {
        self.with_state(|s| {
            tenant.eq_ignore_ascii_case(&s.tenant.tenant_id)
                || s.tenant
                    .domains
                    .iter()
                    .any(|d| d.id.eq_ignore_ascii_case(tenant))
        })
    }

    /// A new access token for `app`, valid for the configured lifetime.
    fn issue_token(&self, app: String) -> Reply {
        let token = format!("emu.{}", uuid::Uuid::new_v4().simple());
        let expires_at = self.clock.now() + self.config.token_lifetime_secs;
        self.tokens
            .lock()
            .expect("tokens lock")
            .insert(token.clone(), IssuedToken { app, expires_at });
        self.with_state(|s| s.stats.tokens_issued += 1);
        let expires_in = self.clock.to_real(self.config.token_lifetime_secs).floor() as u64;
        Reply {
            status: 200,
            headers: vec![],
            body: Body::Json(
                json!({"token_type": "Bearer", "expires_in": expires_in, "ext_expires_in": expires_in, "access_token": token}),
            ),
        }
    }

    /// Gives an inner `$batch` reply its own request ids, as Graph does.
    fn inner_request_ids(&self, reply: &mut Reply, outer: &Request) {
        let id = self.request_id();
        add_request_ids(reply, &id, outer.client_request_id.as_deref());
    }

    fn request_id(&self) -> String {
        let n = self.next_request.fetch_add(1, Ordering::Relaxed);
        format!("00000000-0000-4000-8000-{n:012x}")
    }
}

/// Adds `request-id`/`client-request-id` headers, and `innerError` to an error body.
fn add_request_ids(reply: &mut Reply, request_id: &str, client_request_id: Option<&str>) {
    reply.headers.push(("request-id".into(), request_id.into()));
    if let Some(client) = client_request_id {
        reply
            .headers
            .push(("client-request-id".into(), client.into()));
    }
    if let Body::Json(Value::Object(body)) = &mut reply.body {
        if let Some(Value::Object(error)) = body.get_mut("error") {
            let mut inner = json!({"date": chrono::Utc::now().format("%Y-%m-%dT%H:%M:%S").to_string(), "request-id": request_id});
            if let Some(client) = client_request_id {
                inner["client-request-id"] = json!(client);
            }
            error.insert("innerError".into(), inner);
        }
    }
}

/// Keeps an emulator's tenant in a file across processes (`--state`): written when this is
/// dropped, so a command that fails half-way still leaves the tenant as its writes made it.
pub(crate) struct StateFile {
    path: PathBuf,
    emulator: Arc<Emulator>,
}

impl StateFile {
    pub(crate) fn new(path: PathBuf, emulator: Arc<Emulator>) -> StateFile {
        StateFile { path, emulator }
    }
}

impl Drop for StateFile {
    fn drop(&mut self) {
        match self.emulator.tenant().save(&self.path) {
            Ok(()) => tracing::info!("rehearsal tenant saved to {}", self.path.display()),
            Err(e) => eprintln!("hardmatch: could not save the rehearsal tenant: {e}"),
        }
    }
}

/// A running emulator: its URL, its state, and how to stop it.
pub struct Running {
    pub url: String,
    pub emulator: Arc<Emulator>,
    /// The certificate to trust, when serving HTTPS.
    pub(crate) cert_path: Option<PathBuf>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<std::io::Result<()>>,
}

impl Running {
    /// Stops accepting connections and waits for the server task to end.
    pub async fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        let _ = (&mut self.task).await;
    }
}

/// Starts an emulator on `127.0.0.1:0` in the current runtime.
pub async fn spawn(tenant: Tenant, config: Config) -> std::io::Result<Running> {
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    spawn_on(listener, tenant, config).await
}

/// Starts an emulator on a listener the caller bound.
pub(crate) async fn spawn_on(
    listener: TcpListener,
    tenant: Tenant,
    config: Config,
) -> std::io::Result<Running> {
    let addr = listener.local_addr()?;
    let tls = match &config.tls_cert_out {
        Some(path) => Some(tls::acceptor(path)?),
        None => None,
    };
    let url = format!("{}://{addr}", if tls.is_some() { "https" } else { "http" });
    let emulator = Arc::new(Emulator::new(tenant, config.clone()));
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(run(listener, Arc::clone(&emulator), tls, async {
        let _ = stopped.await;
    }));
    Ok(Running {
        url,
        emulator,
        cert_path: config.tls_cert_out,
        stop: Some(stop),
        task,
    })
}

/// Serves until `shutdown` completes.
pub(crate) async fn run(
    listener: TcpListener,
    emulator: Arc<Emulator>,
    tls: Option<tokio_rustls::TlsAcceptor>,
    shutdown: impl Future<Output = ()>,
) -> std::io::Result<()> {
    let scheme = if tls.is_some() { "https" } else { "http" };
    let app = axum::Router::new()
        .fallback(http_handler)
        .with_state((Arc::clone(&emulator), scheme));
    let service = hyper_util::service::TowerToHyperService::new(app);
    tokio::pin!(shutdown);
    loop {
        let (stream, _) = tokio::select! {
            accepted = listener.accept() => accepted?,
            () = &mut shutdown => return Ok(()),
        };
        let service = service.clone();
        let tls = tls.clone();
        tokio::spawn(async move {
            let builder =
                hyper_util::server::conn::auto::Builder::new(hyper_util::rt::TokioExecutor::new());
            let result = match tls {
                Some(acceptor) => match acceptor.accept(stream).await {
                    Ok(tls_stream) => {
                        builder
                            .serve_connection(hyper_util::rt::TokioIo::new(tls_stream), service)
                            .await
                    }
                    Err(_) => return,
                },
                None => {
                    builder
                        .serve_connection(hyper_util::rt::TokioIo::new(stream), service)
                        .await
                }
            };
            // A client that hangs up mid-response is ordinary here (and a fault we inject).
            drop(result);
        });
    }
}

type HandlerState = (Arc<Emulator>, &'static str);

async fn http_handler(
    AxumState((emulator, scheme)): AxumState<HandlerState>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let header = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
    };
    let request = Request {
        method: method.as_str().to_string(),
        path: uri.path().to_string(),
        query: uri.query().unwrap_or("").to_string(),
        authorization: header("authorization"),
        client_request_id: header("client-request-id"),
        consistency_eventual: header("consistencylevel")
            .is_some_and(|v| v.eq_ignore_ascii_case("eventual")),
        body: body.to_vec(),
        base_url: format!(
            "{scheme}://{}",
            header("host").unwrap_or_else(|| "127.0.0.1".into())
        ),
    };
    let is_graph = request.path.starts_with("/v1.0") || request.path.starts_with("/beta");
    let fault = if is_graph {
        emulator.faults.lock().expect("faults lock").roll()
    } else {
        None
    };
    emulator.sleep_latency(is_graph, fault.as_ref()).await;
    let reply = match &fault {
        Some(Fault::Status(status)) => {
            emulator.with_state(|s| s.stats.faults += 1);
            emulator.count_faulted(&request);
            graph_error(
                *status,
                "ServiceUnavailable",
                "The service is temporarily unavailable. Please retry.",
            )
        }
        Some(Fault::Throttle) => {
            emulator.with_state(|s| s.stats.faults += 1);
            emulator.count_faulted(&request);
            emulator.too_many_requests(
                2.0 * emulator.clock.scale().min(1.0),
                "Tenant_Application/ResourceUnit/any/tenant",
                "ResourceUnitLimitExceeded",
            )
        }
        Some(Fault::ExpireToken) => {
            emulator.with_state(|s| s.stats.faults += 1);
            emulator.expire_tokens();
            emulator.handle(&request)
        }
        _ => emulator.handle(&request),
    };
    let mut reply = reply;
    add_request_ids(
        &mut reply,
        &emulator.request_id(),
        request.client_request_id.as_deref(),
    );
    let reset = matches!(fault, Some(Fault::Reset));
    if reset {
        emulator.with_state(|s| s.stats.faults += 1);
    }
    into_response(reply, reset)
}

impl Emulator {
    async fn sleep_latency(&self, is_graph: bool, fault: Option<&Fault>) {
        if !is_graph {
            return;
        }
        let (low, high) = self.config.latency_ms;
        let mut ms = if high > low {
            self.faults.lock().expect("faults lock").between(low, high)
        } else {
            low
        };
        if let Some(Fault::Slow(extra)) = fault {
            ms += extra;
        }
        if ms > 0 {
            let real = self.clock.to_real(ms as f64 / 1000.0);
            tokio::time::sleep(std::time::Duration::from_secs_f64(real)).await;
        }
    }
}

fn into_response(mut reply: Reply, reset: bool) -> Response {
    if reset && reply.body == Body::Empty {
        // A 204 has no body to break off mid-way, and hyper sends none: answer with a body
        // that breaks, so the client sees what a reset after the write looks like (the write
        // applied, its answer lost).
        reply.status = 200;
        reply.body = Body::Json(json!({}));
    }
    let (bytes, content_type) = match reply.body {
        Body::Empty => (Vec::new(), None),
        Body::Json(v) => (
            serde_json::to_vec(&v).expect("json"),
            Some("application/json"),
        ),
        Body::Text(t) => (t.into_bytes(), Some("text/plain")),
    };
    let body = if reset {
        // Half the body, then an error: hyper drops the connection mid-response.
        let half = Bytes::from(bytes[..bytes.len() / 2].to_vec());
        let chunks: Vec<Result<Bytes, std::io::Error>> = vec![
            Ok(half),
            Err(std::io::Error::new(
                std::io::ErrorKind::ConnectionReset,
                "injected reset",
            )),
        ];
        HttpBody::from_stream(futures::stream::iter(chunks))
    } else {
        HttpBody::from(bytes)
    };
    let mut response = Response::new(body);
    *response.status_mut() =
        StatusCode::from_u16(reply.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    if let Some(ct) = content_type {
        response
            .headers_mut()
            .insert("content-type", HeaderValue::from_static(ct));
    }
    for (name, value) in reply.headers {
        if let (Ok(name), Ok(value)) = (
            axum::http::HeaderName::try_from(name),
            HeaderValue::try_from(value),
        ) {
            response.headers_mut().insert(name, value);
        }
    }
    response
}

/// The client's proof of identity: a signed assertion for one of its certificates, or its
/// secret, as Entra checks them.
fn check_credential(
    form: &HashMap<String, String>,
    client_id: &str,
    secret: Option<&String>,
    certificates: &[&[u8]],
    token_url: &str,
) -> Result<(), Reply> {
    match (form.get("client_assertion"), form.get("client_secret")) {
        (Some(jwt), _) => {
            if form.get("client_assertion_type").map(String::as_str) != Some(assertion::JWT_BEARER) {
                return Err(aad_error(400, "invalid_request", 50027, "JWT token is invalid or malformed: client_assertion_type must be urn:ietf:params:oauth:client-assertion-type:jwt-bearer.".into()));
            }
            let now = chrono::Utc::now().timestamp();
            assertion::check(jwt, client_id, certificates, token_url, now)
                .map_err(|refused| aad_error(401, "invalid_client", refused.code, refused.text))
        }
        (None, Some(sent)) if Some(sent) == secret => Ok(()),
        (None, Some(_)) => Err(aad_error(401, "invalid_client", 7000215, "Invalid client secret provided. Ensure the secret being sent in the request is the client secret value, not the client secret ID.".into())),
        (None, None) => Err(aad_error(401, "invalid_client", 7000218, "The request body must contain the following parameter: 'client_assertion' or 'client_secret'.".into())),
    }
}

/// Entra's error answer to a token request (`AADSTS` code and text).
fn aad_error(status: u16, error: &str, code: u32, text: String) -> Reply {
    Reply {
        status,
        headers: vec![],
        body: Body::Json(json!({
            "error": error,
            "error_description": format!("AADSTS{code}: {text}"),
            "error_codes": [code],
            "timestamp": chrono::Utc::now().format("%Y-%m-%d %H:%M:%SZ").to_string(),
            "trace_id": uuid::Uuid::new_v4().to_string(),
            "correlation_id": uuid::Uuid::new_v4().to_string(),
        })),
    }
}
