//! `-v` and `-vv`: what hardmatch is doing, on stderr, printed between progress-bar redraws.
//!
//! - `-v`: each phase, and each Graph request: method, path and query, status, request-id,
//!   attempt, and every wait before a retry.
//! - `-vv`: also each sign-in step and the response headers that explain throttling
//!   ([`LOGGED_HEADERS`]).
//!
//! Redaction is structural, not a filter over text that might miss a case:
//! - only hardmatch's own events are printed (target `hardmatch`): whatever azure_core,
//!   azure_identity, reqwest or hyper would log about headers, forms or bodies never shows;
//! - a request is logged as a [`RequestLine`], made from the method and the URL before any
//!   token exists; it keeps the path and query and drops the scheme, host and user info;
//! - tokens live only inside `TokenSource::authorize` (src/graph/auth.rs) as azure_core
//!   `Secret`s, which do not Debug-print their value; no function that logs has one in scope;
//! - response headers are logged from a fixed list of names, never by walking the headers.

use std::fmt;
use std::io::Write;

use tracing_subscriber::filter::Targets;
use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;

use crate::progress;

/// The response headers `-vv` shows: the request id and Graph's throttling figures.
pub(crate) const LOGGED_HEADERS: [&str; 6] = [
    "retry-after",
    "x-ms-resource-unit",
    "x-ms-throttle-limit-percentage",
    "x-ms-throttle-scope",
    "x-ms-throttle-information",
    "x-ms-ags-diagnostic",
];

/// Starts logging at `verbosity` (0: nothing, 1: `-v`, 2 or more: `-vv`). Call once, first.
pub(crate) fn init(verbosity: u8) {
    let level = match verbosity {
        0 => return,
        1 => tracing::Level::INFO,
        _ => tracing::Level::DEBUG,
    };
    let format = tracing_subscriber::fmt::layer()
        .with_writer(Stderr)
        .with_target(false)
        .with_ansi(false)
        .with_timer(tracing_subscriber::fmt::time::Uptime::default());
    // Ignore a second init (tests call commands in-process): the first subscriber stays.
    let _ = tracing_subscriber::registry()
        .with(format)
        .with(Targets::new().with_target("hardmatch", level))
        .try_init();
}

/// stderr, written between progress-bar redraws.
struct Stderr;

impl<'a> MakeWriter<'a> for Stderr {
    type Writer = Stderr;

    fn make_writer(&'a self) -> Stderr {
        Stderr
    }
}

impl Write for Stderr {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        progress::suspend(|| std::io::stderr().lock().write_all(buf))?;
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        std::io::stderr().flush()
    }
}

/// A request as a log line shows it: `GET /v1.0/users?$filter=...`. Made from the method and
/// URL only, so it cannot hold a header; the scheme, host and any user info are left out.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct RequestLine(String);

impl RequestLine {
    pub(crate) fn new(method: &str, url: &str) -> RequestLine {
        let target = match url::Url::parse(url) {
            Ok(parsed) => {
                let mut target = parsed.path().to_string();
                if let Some(query) = parsed.query() {
                    target.push('?');
                    target.push_str(query);
                }
                target
            }
            // A relative `$batch` URL: it is a path and query already.
            Err(_) => url.to_string(),
        };
        RequestLine(format!("{method} {}", readable(&target)))
    }
}

impl fmt::Display for RequestLine {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Decodes the percent-escapes a reader needs decoded to follow a query (`%20`, `%27`,
/// `%40`...), and keeps every escape that carries meaning or could fool a terminal: `%`, `&`,
/// `#`, `+`, `=`, control characters and everything outside ASCII (a Cyrillic `а` stays
/// `%D0%B0`, never passing for a Latin `a`). OData's own escaping (`''`) stays visible.
fn readable(target: &str) -> String {
    let bytes = target.as_bytes();
    let mut out = String::with_capacity(target.len());
    let mut i = 0;
    while i < bytes.len() {
        let decoded = (bytes[i] == b'%')
            .then(|| target.get(i + 1..i + 3))
            .flatten()
            .and_then(|digits| {
                let mut byte = [0];
                hex::decode_to_slice(digits, &mut byte).ok()?;
                Some(byte[0])
            })
            .filter(|b| (0x20..0x7f).contains(b) && !b"%&#+=".contains(b));
        match decoded {
            Some(b) => {
                out.push(b as char);
                i += 3;
            }
            None => {
                let c = target[i..].chars().next().expect("in bounds");
                if c.is_ascii_graphic() {
                    out.push(c);
                } else {
                    let mut buf = [0; 4];
                    for b in c.encode_utf8(&mut buf).bytes() {
                        out.push_str(&format!("%{b:02X}"));
                    }
                }
                i += c.len_utf8();
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_request_line_has_no_host_or_user_info_and_keeps_escaping_visible() {
        let line = RequestLine::new(
            "GET",
            "https://user:pass@graph.example.com/v1.0/users?$filter=userPrincipalName%20in%20(%27o%27%27brien%40x.com%27,%27a%26b%2Bc%25d%23e%40x.com%27)&$top=999",
        );
        assert_eq!(
            line.to_string(),
            "GET /v1.0/users?$filter=userPrincipalName in ('o''brien@x.com','a%26b%2Bc%25d%23e@x.com')&$top=999"
        );
        let relative = RequestLine::new("PATCH", "/users/%D0%B0lice%40x.com%0A%1B[31m");
        assert_eq!(
            relative.to_string(),
            "PATCH /users/%D0%B0lice@x.com%0A%1B[31m"
        );
        let raw = RequestLine::new("GET", "/users/\u{202e}x\ny");
        assert_eq!(raw.to_string(), "GET /users/%E2%80%AEx%0Ay");
    }
}
