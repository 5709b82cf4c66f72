//! What can go wrong talking to Graph, classified the way the report needs it.

use std::fmt;

/// The facts of a failed call that an audit row keeps.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Meta {
    pub(crate) status: Option<u16>,
    pub(crate) code: String,
    pub(crate) message: String,
    pub(crate) request_id: Option<String>,
    pub(crate) client_request_id: String,
    pub(crate) attempts: u32,
}

/// A Graph call that did not succeed. Never holds a token or a secret. The audit facts are
/// boxed: errors are per row and rare, and a small `Result` keeps the happy path lean.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum GraphError {
    #[error("not found: {}", .0.message)]
    NotFound(Box<Meta>),
    /// Another object holds the value (`ObjectConflict`); the holder's id from `ConflictingObjects`.
    #[error("uniqueness violation on {property}: {}", .meta.message)]
    Conflict {
        property: String,
        holder_id: Option<String>,
        meta: Box<Meta>,
    },
    /// The target is mastered on-premises (or by an external service).
    #[error("synced object: {}", .0.message)]
    Synced(Box<Meta>),
    #[error("federated domain: {}", .0.message)]
    Federated(Box<Meta>),
    #[error("permission denied: {}", .0.message)]
    Forbidden(Box<Meta>),
    /// The retry budget ran out while Graph kept answering 429 (or 503/504).
    #[error("throttled out after {} attempts: {}", .0.attempts, .0.message)]
    Throttled(Box<Meta>),
    /// Sign-in failed, or Graph refused every token.
    #[error("sign-in failed: {0}")]
    Auth(String),
    /// The connection settings cannot be used: a refused `--graph-url` or `--login-url`, an
    /// unreadable `--ca-cert`. Nothing was sent.
    #[error("{0}")]
    Setup(String),
    /// No HTTP answer at all after every retry, or at once when retrying cannot help.
    #[error("{}", transport_text(.0))]
    Transport(Box<Meta>),
    #[error("Graph answered {}: {} {}", .0.status.map_or("-".to_string(), |s| s.to_string()), .0.code, .0.message)]
    Other(Box<Meta>),
}

impl GraphError {
    pub(crate) fn meta(&self) -> Option<&Meta> {
        match self {
            GraphError::NotFound(m)
            | GraphError::Synced(m)
            | GraphError::Federated(m)
            | GraphError::Forbidden(m)
            | GraphError::Throttled(m)
            | GraphError::Transport(m)
            | GraphError::Other(m) => Some(m.as_ref()),
            GraphError::Conflict { meta, .. } => Some(meta.as_ref()),
            GraphError::Auth(_) | GraphError::Setup(_) => None,
        }
    }

    /// Classifies an error answer from its status and Graph's error body.
    pub(crate) fn classify(meta: Meta, body: &serde_json::Value) -> GraphError {
        let meta = Box::new(meta);
        let details = body["error"]["details"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        let conflict = details.iter().find(|d| d["code"] == "ObjectConflict");
        let message = meta.message.to_ascii_lowercase();
        match meta.status {
            Some(404) => GraphError::NotFound(meta),
            Some(403) => GraphError::Forbidden(meta),
            Some(401) => GraphError::Auth(format!(
                "Graph refused the token: {} {}",
                meta.code, meta.message
            )),
            Some(400)
                if conflict.is_some()
                    || message.starts_with("another object with the same value") =>
            {
                let property = conflict
                    .and_then(|c| c["target"].as_str())
                    .unwrap_or("onPremisesImmutableId")
                    .to_string();
                let holder_id = details
                    .iter()
                    .find(|d| d["code"] == "ConflictingObjects")
                    .and_then(|d| d["target"].as_str())
                    .map(|t| t.split_once('_').map_or(t, |(_, id)| id).to_string());
                GraphError::Conflict {
                    property,
                    holder_id,
                    meta,
                }
            }
            Some(400)
                if message.contains("on-premises mastered")
                    || message.contains("originated within an external service") =>
            {
                GraphError::Synced(meta)
            }
            Some(400) if message.contains("federated") => GraphError::Federated(meta),
            _ => GraphError::Other(meta),
        }
    }
}

fn transport_text(meta: &Meta) -> String {
    match meta.attempts {
        0 | 1 => format!("connection failed: {}", meta.message),
        n => format!("connection failed after {n} attempts: {}", meta.message),
    }
}

impl fmt::Display for Meta {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.code, self.message)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn meta(status: u16, message: &str) -> Meta {
        Meta {
            status: Some(status),
            code: "Request_BadRequest".into(),
            message: message.into(),
            ..Meta::default()
        }
    }

    #[test]
    fn graph_facts_bodies_are_classified() {
        let body = json!({"error": {"code": "Request_BadRequest", "message": "Another object with the same value for property onPremisesImmutableId already exists.",
            "details": [{"code": "ObjectConflict", "target": "onPremisesImmutableId"}, {"code": "ConflictingObjects", "target": "User_1234-abcd"}]}});
        let error = GraphError::classify(meta(400, "Another object with the same value for property onPremisesImmutableId already exists."), &body);
        assert!(
            matches!(&error, GraphError::Conflict { holder_id: Some(id), property, .. } if id == "1234-abcd" && property == "onPremisesImmutableId"),
            "{error:?}"
        );
        let synced = meta(400, "Unable to update the specified properties for on-premises mastered Directory Sync objects or objects currently undergoing migration.");
        assert!(matches!(
            GraphError::classify(synced, &json!({})),
            GraphError::Synced(_)
        ));
        let exchange = meta(400, "Unable to update the specified properties for objects that have originated within an external service.");
        assert!(matches!(
            GraphError::classify(exchange, &json!({})),
            GraphError::Synced(_)
        ));
        assert!(matches!(
            GraphError::classify(meta(403, "Insufficient privileges"), &json!({})),
            GraphError::Forbidden(_)
        ));
        assert!(matches!(
            GraphError::classify(meta(404, "Resource 'x' does not exist"), &json!({})),
            GraphError::NotFound(_)
        ));
    }
}
