//! Sign-in: which credential, which cloud, which Graph. Tokens come from Microsoft's
//! azure_identity crate (Azure CLI, client secret, client certificate through its client
//! assertion credential, with the assertion signed in `graph/certificate.rs`, managed
//! identity), or from the environment variable HARDMATCH_ACCESS_TOKEN for a token obtained
//! elsewhere; never from argv, which other users can read in the process list.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use azure_core::credentials::{Secret, TokenCredential};
use azure_core::http::{ClientOptions, Transport};
use tokio::sync::Mutex;

use super::certificate::CertificateAssertion;
use super::GraphError;

/// The environment variable that carries a bearer token obtained elsewhere.
pub(crate) const TOKEN_ENV: &str = "HARDMATCH_ACCESS_TOKEN";

/// National clouds: the sign-in host and the Graph host (docs/graph.md).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum Cloud {
    #[default]
    Global,
    Usgov,
    UsgovDod,
    China,
}

impl Cloud {
    pub(crate) fn login_host(self) -> &'static str {
        match self {
            Cloud::Global => "https://login.microsoftonline.com",
            Cloud::Usgov | Cloud::UsgovDod => "https://login.microsoftonline.us",
            Cloud::China => "https://login.chinacloudapi.cn",
        }
    }

    pub(crate) fn graph_host(self) -> &'static str {
        match self {
            Cloud::Global => "https://graph.microsoft.com",
            Cloud::Usgov => "https://graph.microsoft.us",
            Cloud::UsgovDod => "https://dod-graph.microsoft.us",
            Cloud::China => "https://microsoftgraph.chinacloudapi.cn",
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum AuthKind {
    /// The Azure CLI's signed-in account (`az login`).
    Cli,
    /// Client secret from AZURE_TENANT_ID, AZURE_CLIENT_ID, AZURE_CLIENT_SECRET.
    Secret,
    /// Client certificate from AZURE_TENANT_ID, AZURE_CLIENT_ID, AZURE_CLIENT_CERTIFICATE_PATH
    /// (PEM with the certificate and its RSA key, or PKCS#12; AZURE_CLIENT_CERTIFICATE_PASSWORD
    /// when the key is encrypted).
    Certificate,
    /// The managed identity of the machine (optionally AZURE_CLIENT_ID for a user-assigned one).
    ManagedIdentity,
    /// A bearer token from HARDMATCH_ACCESS_TOKEN.
    Token,
}

/// How to reach Graph, shared by every command that does.
#[derive(Clone, Debug, Default, clap::Args)]
pub struct AuthArgs {
    /// Which credential to use. Default: a token in HARDMATCH_ACCESS_TOKEN if set, else a client
    /// secret if AZURE_CLIENT_SECRET is set, else a client certificate if
    /// AZURE_CLIENT_CERTIFICATE_PATH is set, else the Azure CLI.
    #[arg(long, value_enum)]
    pub(crate) auth: Option<AuthKind>,

    /// The national cloud: picks the sign-in and Graph hosts.
    #[arg(long, value_enum, default_value = "global")]
    pub(crate) cloud: Cloud,

    /// Graph's root URL instead of the cloud's (an emulator); hardmatch adds /v1.0. Plain http is
    /// refused except on loopback.
    #[arg(long, value_name = "URL")]
    pub(crate) graph_url: Option<String>,

    /// The sign-in host instead of the cloud's (an emulator's, which must be https).
    #[arg(long, value_name = "URL", hide = true)]
    pub(crate) login_url: Option<String>,

    /// Trust one more root certificate (PEM): a TLS-inspecting proxy, the emulator's --tls.
    #[arg(long, value_name = "FILE")]
    pub(crate) ca_cert: Option<PathBuf>,

    /// The tenant id or domain (default: AZURE_TENANT_ID).
    #[arg(long, value_name = "TENANT")]
    pub(crate) tenant: Option<String>,
}

/// Where bearer tokens come from.
pub enum TokenSource {
    /// A fixed token from the environment. It cannot be refreshed.
    Fixed(Secret),
    /// An azure_identity credential; a new one is made to force a refresh after a 401.
    Credential {
        kind: AuthKind,
        make: Box<dyn Fn() -> azure_core::Result<Arc<dyn TokenCredential>> + Send + Sync>,
        current: Mutex<(TokenGeneration, Arc<dyn TokenCredential>)>,
        scope: String,
    },
}

/// Which credential a token came from, counted from the first sign-in: a 401 on a token of
/// an older generation than the current one needs no new sign-in, someone else did it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TokenGeneration(u64);

impl TokenGeneration {
    fn next(self) -> TokenGeneration {
        TokenGeneration(self.0 + 1)
    }
}

impl std::fmt::Debug for TokenSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            TokenSource::Fixed(_) => f.write_str("TokenSource::Fixed(<redacted>)"),
            TokenSource::Credential { kind, .. } => write!(f, "TokenSource::Credential({kind:?})"),
        }
    }
}

impl TokenSource {
    /// Adds the bearer token to a request, and says which generation it is for
    /// [`refresh`](Self::refresh). The token never leaves this function: callers (and their
    /// log lines) only ever see the request builder.
    pub(crate) async fn authorize(
        &self,
        request: reqwest::RequestBuilder,
    ) -> Result<(reqwest::RequestBuilder, TokenGeneration), GraphError> {
        let (token, generation) = self.token(None).await?;
        Ok((request.bearer_auth(token.secret()), generation))
    }

    /// After a 401 on a token of generation `refused`: signs in again, unless another request
    /// already has since (when every token expires at once, every write in flight meets a 401,
    /// and one new sign-in serves them all).
    pub(crate) async fn refresh(&self, refused: TokenGeneration) -> Result<(), GraphError> {
        self.token(Some(refused)).await.map(drop)
    }

    /// A bearer token and its generation, from a new credential if the current one's token
    /// was `refused`. Kept as a [`Secret`], which does not Debug-print.
    async fn token(
        &self,
        refused: Option<TokenGeneration>,
    ) -> Result<(Secret, TokenGeneration), GraphError> {
        match self {
            TokenSource::Fixed(secret) => Ok((secret.clone(), TokenGeneration::default())),
            TokenSource::Credential {
                kind,
                make,
                current,
                scope,
            } => {
                let mut current = current.lock().await;
                if refused == Some(current.0) {
                    tracing::debug!(
                        "sign-in: Graph refused the token; signing in again with the {} credential",
                        kind_name(*kind)
                    );
                    current.1 = make().map_err(|e| sign_in_failed(*kind, &e))?;
                    current.0 = current.0.next();
                }
                let token = current
                    .1
                    .get_token(&[scope.as_str()], None)
                    .await
                    .map_err(|e| sign_in_failed(*kind, &e))?;
                tracing::debug!(
                    "sign-in: {} credential gave a token for {scope}, valid until {}",
                    kind_name(*kind),
                    token.expires_on
                );
                Ok((token.token, current.0))
            }
        }
    }
}

fn sign_in_failed(kind: AuthKind, error: &azure_core::Error) -> GraphError {
    // azure_identity's messages carry the AADSTS code and text, never the secret.
    GraphError::Auth(format!("{} credential: {error}", kind_name(kind)))
}

/// The token in HARDMATCH_ACCESS_TOKEN without the whitespace a copy and paste or a shell
/// leaves around it (`$(az account get-access-token ...)` in a script ends with a newline).
/// Anything but visible ASCII inside it cannot be part of a bearer token (RFC 6750) and
/// would only fail every request later: it is refused now, by its position, never its text.
fn bearer_token(value: &str) -> Result<String, GraphError> {
    let token = value.trim();
    if token.is_empty() {
        return Err(GraphError::Auth(format!(
            "{TOKEN_ENV} holds only whitespace"
        )));
    }
    let Some((position, c)) = token
        .chars()
        .enumerate()
        .find(|(_, c)| !c.is_ascii_graphic())
    else {
        return Ok(token.to_string());
    };
    let what = match c {
        ' ' => "a space",
        '\n' | '\r' => "a line break",
        '\t' => "a tab",
        c if c.is_control() => "a control character",
        c if c.is_whitespace() => "a whitespace character",
        _ => "a character outside ASCII",
    };
    Err(GraphError::Auth(format!(
        "{TOKEN_ENV} holds {what} at character {} of the token: a bearer token has none; set the variable again with the token alone",
        position + 1
    )))
}

/// Builds a new credential whenever the current one cannot be renewed.
type MakeCredential = Box<dyn Fn() -> azure_core::Result<Arc<dyn TokenCredential>> + Send + Sync>;

/// An environment variable that is set and not empty.
fn env(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.is_empty())
}

/// The sign-in `--auth` would choose from the environment: a token, a client secret, a
/// certificate, else the Azure CLI.
fn kind_from_env() -> AuthKind {
    if env(TOKEN_ENV).is_some() {
        AuthKind::Token
    } else if env("AZURE_CLIENT_SECRET").is_some() {
        AuthKind::Secret
    } else if env("AZURE_CLIENT_CERTIFICATE_PATH").is_some() {
        AuthKind::Certificate
    } else {
        AuthKind::Cli
    }
}

/// The bearer token of `HARDMATCH_ACCESS_TOKEN`, as it is (it cannot be refreshed).
fn fixed_token() -> Result<TokenSource, GraphError> {
    let token = env(TOKEN_ENV)
        .ok_or_else(|| GraphError::Auth(format!("--auth token: {TOKEN_ENV} is not set")))?;
    let token = bearer_token(&token)?;
    tracing::debug!("sign-in: the bearer token in {TOKEN_ENV} (it cannot be refreshed)");
    Ok(TokenSource::Fixed(Secret::new(token)))
}

/// A client secret credential, from `AZURE_CLIENT_ID` and `AZURE_CLIENT_SECRET`.
fn secret_credential(
    tenant: Option<String>,
    options: ClientOptions,
) -> Result<MakeCredential, GraphError> {
    let missing =
        |name: &str| GraphError::Auth(format!("client secret credential: {name} is not set"));
    let tenant = tenant.ok_or_else(|| missing("AZURE_TENANT_ID (or --tenant)"))?;
    let client_id = env("AZURE_CLIENT_ID").ok_or_else(|| missing("AZURE_CLIENT_ID"))?;
    let secret = env("AZURE_CLIENT_SECRET").ok_or_else(|| missing("AZURE_CLIENT_SECRET"))?;
    Ok(Box::new(move || {
        let options = azure_identity::ClientSecretCredentialOptions {
            client_options: options.clone(),
        };
        let credential: Arc<dyn TokenCredential> = azure_identity::ClientSecretCredential::new(
            &tenant,
            client_id.clone(),
            Secret::new(secret.clone()),
            Some(options),
        )?;
        Ok(credential)
    }))
}

fn kind_name(kind: AuthKind) -> &'static str {
    match kind {
        AuthKind::Cli => "Azure CLI",
        AuthKind::Secret => "client secret (AZURE_CLIENT_SECRET)",
        AuthKind::Certificate => "client certificate (AZURE_CLIENT_CERTIFICATE_PATH)",
        AuthKind::ManagedIdentity => "managed identity",
        AuthKind::Token => "HARDMATCH_ACCESS_TOKEN",
    }
}

impl AuthArgs {
    /// The Graph root URL, checked: https, or http on loopback only.
    pub(crate) fn graph_root(&self) -> Result<String, GraphError> {
        match &self.graph_url {
            Some(url) => checked_root(url, "--graph-url"),
            None => Ok(self.cloud.graph_host().to_string()),
        }
    }

    /// The sign-in host's root URL, checked like Graph's: the client secret goes there.
    pub(crate) fn login_root(&self) -> Result<String, GraphError> {
        match &self.login_url {
            Some(url) => checked_root(url, "--login-url"),
            None => Ok(self.cloud.login_host().to_string()),
        }
    }

    /// The token source these arguments and the environment select.
    pub(crate) fn token_source(&self, http: &reqwest::Client) -> Result<TokenSource, GraphError> {
        let kind = self.auth.unwrap_or_else(kind_from_env);
        if kind == AuthKind::Token {
            return fixed_token();
        }
        let root = self.graph_root()?;
        let scope = format!(
            "{}/.default",
            if self.graph_url.is_some() {
                self.cloud.graph_host()
            } else {
                root.as_str()
            }
        );
        let options = self.client_options(http)?;
        let tenant = self.tenant.clone().or_else(|| env("AZURE_TENANT_ID"));
        let shown_tenant = tenant.clone();
        let make = match kind {
            AuthKind::Secret => secret_credential(tenant, options)?,
            AuthKind::Certificate => self.certificate_credential(tenant, options)?,
            AuthKind::ManagedIdentity => Box::new(move || {
                let credential: Arc<dyn TokenCredential> =
                    azure_identity::ManagedIdentityCredential::new(None)?;
                Ok(credential)
            }),
            AuthKind::Cli | AuthKind::Token => Box::new(move || {
                let options = azure_identity::AzureCliCredentialOptions {
                    tenant_id: tenant.clone(),
                    ..Default::default()
                };
                let credential: Arc<dyn TokenCredential> =
                    azure_identity::AzureCliCredential::new(Some(options))?;
                Ok(credential)
            }),
        };
        let login = self.login_root()?;
        tracing::debug!(
            "sign-in: {} credential, tenant {}, client id {}, sign-in host {login}, scope {scope}",
            kind_name(kind),
            shown_tenant.as_deref().unwrap_or("(the credential's own)"),
            env("AZURE_CLIENT_ID").as_deref().unwrap_or("(none)"),
        );
        let current = make().map_err(|e| sign_in_failed(kind, &e))?;
        Ok(TokenSource::Credential {
            kind,
            make,
            current: Mutex::new((TokenGeneration::default(), current)),
            scope,
        })
    }

    /// A certificate credential: the app signs a client assertion with the certificate file
    /// of `AZURE_CLIENT_CERTIFICATE_PATH` for each token.
    fn certificate_credential(
        &self,
        tenant: Option<String>,
        options: ClientOptions,
    ) -> Result<MakeCredential, GraphError> {
        let kind = AuthKind::Certificate;
        let missing = |name: &str| {
            GraphError::Auth(format!("{} credential: {name} is not set", kind_name(kind)))
        };
        let tenant = tenant.ok_or_else(|| missing("AZURE_TENANT_ID (or --tenant)"))?;
        let client_id = env("AZURE_CLIENT_ID").ok_or_else(|| missing("AZURE_CLIENT_ID"))?;
        let path = env("AZURE_CLIENT_CERTIFICATE_PATH")
            .ok_or_else(|| missing("AZURE_CLIENT_CERTIFICATE_PATH"))?;
        let password = env("AZURE_CLIENT_CERTIFICATE_PASSWORD");
        let token_url = token_url(&self.login_root()?, &tenant)?;
        let assertion = CertificateAssertion::from_file(
            Path::new(&path),
            password.as_deref(),
            client_id.clone(),
            token_url,
        )
        .map_err(|e| GraphError::Auth(format!("{} credential: {path}: {e}", kind_name(kind))))?;
        Ok(Box::new(move || {
            let options = azure_identity::ClientAssertionCredentialOptions {
                client_options: options.clone(),
            };
            let credential: Arc<dyn TokenCredential> =
                azure_identity::ClientAssertionCredential::new(
                    tenant.clone(),
                    client_id.clone(),
                    assertion.clone(),
                    Some(options),
                )?;
            Ok(credential)
        }))
    }

    /// azure_core options: our reqwest client (so --ca-cert applies to sign-in too) and the
    /// cloud's authority host, or --login-url.
    fn client_options(&self, http: &reqwest::Client) -> Result<ClientOptions, GraphError> {
        let mut cloud = azure_core::cloud::CustomConfiguration::default();
        cloud.authority_host = self.login_root()?;
        Ok(ClientOptions {
            transport: Some(Transport::new(Arc::new(http.clone()))),
            cloud: Some(Arc::new(cloud.into())),
            ..ClientOptions::default()
        })
    }

    /// The HTTP client every call uses: rustls, the extra root if any, a sane timeout.
    /// HTTPS goes through the system's proxy (HTTPS_PROXY) as usual, inside its tunnel; plain
    /// http (only ever to loopback) never goes through a proxy, where the token would travel
    /// in clear text.
    pub(crate) fn http_client(&self) -> Result<reqwest::Client, GraphError> {
        let mut builder = reqwest::Client::builder()
            .timeout(std::time::Duration::from_secs(100))
            .connect_timeout(std::time::Duration::from_secs(15))
            .pool_max_idle_per_host(64);
        if self.graph_root()?.starts_with("http:") {
            builder = builder.no_proxy();
        }
        if let Some(path) = &self.ca_cert {
            let pem = std::fs::read(path)
                .map_err(|e| GraphError::Setup(format!("--ca-cert {}: {e}", path.display())))?;
            let cert = reqwest::Certificate::from_pem(&pem).map_err(|e| {
                GraphError::Setup(format!(
                    "--ca-cert {}: not a PEM certificate: {e}",
                    path.display()
                ))
            })?;
            builder = builder.add_root_certificate(cert);
        }
        builder
            .build()
            .map_err(|e| GraphError::Setup(format!("cannot build the HTTP client: {e}")))
    }
}

/// The token endpoint for `tenant` at the sign-in host `login`, as azure_identity's
/// credentials build it: a certificate's assertion names it as its audience.
fn token_url(login: &str, tenant: &str) -> Result<String, GraphError> {
    url::Url::parse(login)
        .and_then(|root| root.join(&format!("/{tenant}/oauth2/v2.0/token")))
        .map(String::from)
        .map_err(|e| {
            GraphError::Auth(format!(
                "--tenant {tenant}: no token endpoint at {login}: {e}"
            ))
        })
}

/// `url` checked by [`check_url`], as the root the checks saw: `HTTP://0x7f.1/` becomes
/// `http://127.0.0.1`, so that what was checked is exactly what is connected to.
fn checked_root(url: &str, option: &str) -> Result<String, GraphError> {
    let parsed = check_url(url).map_err(|e| match e {
        GraphError::Setup(why) => GraphError::Setup(format!("{option} {why}")),
        other => other,
    })?;
    Ok(parsed.as_str().trim_end_matches('/').to_string())
}

/// Graph and sign-in over HTTPS only, except loopback (ARCHITECTURE.md, "Contracts"), and never a
/// URL with a user name or password in it (reqwest would send them, and a log would show
/// them). Hosts are judged after WHATWG parsing, as the connection will see them:
/// `127.0.0.1.evil.com` and `localhost.evil.com` are names, not loopback; `[::1]`,
/// `127.0.0.2`, `0x7f.1` and `2130706433` are loopback addresses.
pub(crate) fn check_url(url: &str) -> Result<url::Url, GraphError> {
    let parsed = url::Url::parse(url)
        .map_err(|e| GraphError::Setup(format!("{}: not a URL: {e}", without_user_info(url))))?;
    let shown = without_user_info(url);
    if !parsed.username().is_empty() || parsed.password().is_some() {
        return Err(GraphError::Setup(format!(
            "{shown}: refusing a URL with a user name or password in it"
        )));
    }
    match parsed.scheme() {
        "https" if parsed.host().is_some() => Ok(parsed),
        "http" if is_loopback(&parsed) => Ok(parsed),
        scheme => Err(GraphError::Setup(format!(
            "{shown}: refusing {scheme}:// to a host that is not loopback; Graph and sign-in are reached over https only"
        ))),
    }
}

/// Whether a (parsed) URL points at this machine.
pub(crate) fn is_loopback(url: &url::Url) -> bool {
    match url.host() {
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        Some(url::Host::Domain(d)) => d.eq_ignore_ascii_case("localhost"),
        None => false,
    }
}

/// A URL as an error message may show it: whatever stands before an `@` in the authority
/// (a user name and password) is left out.
pub(crate) fn without_user_info(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_string();
    };
    let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    match rest[..end].rfind('@') {
        Some(at) => format!("{scheme}://<user info left out>@{}", &rest[at + 1..]),
        None => url.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bearer_token_is_trimmed_and_one_with_a_break_inside_refused_unseen() {
        assert_eq!(
            bearer_token(" eyJ0.eyJ1.c2ln\r\n").unwrap(),
            "eyJ0.eyJ1.c2ln"
        );
        for (value, what) in [
            ("eyJ0.ey J1", "a space at character 8"),
            ("eyJ0\neyJ1", "a line break at character 5"),
            ("eyJ0\u{7}", "a control character at character 5"),
            ("eyJ0\u{a0}x", "a whitespace character at character 5"),
            ("eyJé", "a character outside ASCII at character 4"),
            (" \n", "only whitespace"),
        ] {
            let why = bearer_token(value).unwrap_err().to_string();
            assert!(why.contains(what), "{value:?}: {why}");
            assert!(!why.contains("eyJ"), "{why}");
        }
    }

    #[test]
    fn plain_http_only_on_loopback() {
        for allowed in [
            "http://127.0.0.1:8080",
            "http://localhost:1",
            "http://LOCALHOST:1",
            "http://[::1]:1",
            "HTTP://127.0.0.1:1",
            "http://127.0.0.2",
            "http://0x7f.1",
            "http://2130706433",
            "http://127.1",
            "https://graph.microsoft.com",
            "HTTPS://graph.microsoft.com",
        ] {
            let url = check_url(allowed).unwrap_or_else(|e| panic!("{allowed}: {e}"));
            assert!(
                url.scheme() == "https"
                    || url.host_str().is_some_and(|h| h == "127.0.0.1"
                        || h == "127.0.0.2"
                        || h == "[::1]"
                        || h == "localhost"),
                "{allowed} -> {url}"
            );
        }
        for refused in [
            "http://graph.example.com",
            "http://10.0.0.1",
            "http://127.0.0.1.evil.com",
            "http://localhost.evil.com",
            "http://localhost.",
            "http://[::ffff:127.0.0.1]",
            "http://0.0.0.0",
            "HTTP://graph.example.com",
            "ftp://127.0.0.1",
            "file:///etc/passwd",
        ] {
            let refused_why = check_url(refused).unwrap_err().to_string();
            assert!(refused_why.contains("refusing"), "{refused}: {refused_why}");
        }
    }

    #[test]
    fn user_info_is_refused_and_never_echoed() {
        for url in [
            "http://127.0.0.1@evil.com",
            "https://admin:hunter2@graph.microsoft.com",
            "http://user:hunter2@127.0.0.1:1",
        ] {
            let why = check_url(url).unwrap_err().to_string();
            assert!(why.contains("refusing"), "{url}: {why}");
            assert!(!why.contains("hunter2"), "{why}");
        }
        assert_eq!(
            without_user_info("https://a:b@c.com/x@y"),
            "https://<user info left out>@c.com/x@y"
        );
    }

    #[test]
    fn roots_are_the_parsed_form() {
        let args = AuthArgs {
            graph_url: Some("HTTP://0x7f.1:8080/".into()),
            login_url: Some("http://login.example.com".into()),
            ..AuthArgs::default()
        };
        assert_eq!(args.graph_root().unwrap(), "http://127.0.0.1:8080");
        let refused = args.login_root().unwrap_err().to_string();
        assert!(
            refused.contains("--login-url") && refused.contains("refusing http://"),
            "{refused}"
        );
    }
}
