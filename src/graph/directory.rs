//! The seam between the writer and Graph: [`Directory`] sends one write request once and
//! reads users back; [`GraphClient`] implements it over HTTP, and the writer's unit tests
//! implement it in memory under paused tokio time.
//!
//! What is retried, when, and how fast is not decided here but by the write-rate policy
//! ([`super::pace`]): one attempt here is one request Graph sees.

use std::future::Future;
use std::time::Duration;

use serde_json::{json, Value};

use super::{encode, user_path, Answer, GraphClient, GraphError};
use crate::tenant::User;

/// One write request of a row.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Write {
    /// PATCH onPremisesImmutableId; `None` sends JSON null (clears).
    Anchor {
        user_id: String,
        value: Option<String>,
    },
    /// PATCH userPrincipalName (the federated hop).
    Upn { user_id: String, upn: String },
    /// DELETE a user from the recycle bin, for good.
    Purge { id: String },
    /// PATCH onPremisesObjectIdentifier, a beta-only property; `None` sends JSON null.
    ObjectIdentifier {
        user_id: String,
        value: Option<String>,
    },
}

/// What one attempt of a write came to.
#[derive(Debug)]
pub(crate) enum Attempt {
    Done(Answer),
    /// 429: Graph did not take the request; come back after `retry_after`.
    Throttled {
        retry_after: Option<Duration>,
        error: GraphError,
    },
    /// A 5xx or a broken connection. `unclear` when the write may have been applied all the
    /// same (500, 502, 504, a connection lost mid-way): read it back before sending it again.
    Failed {
        wait: Option<Duration>,
        unclear: bool,
        error: GraphError,
    },
    /// A final answer: sending it again would get the same (403, 404, a conflict, a 401 that a
    /// new token did not cure).
    Refused(GraphError),
}

/// What the writer needs of Graph.
pub(crate) trait Directory: Sync {
    /// Sends `write` once; `attempt` (1-based) is for the log.
    fn write(&self, write: &Write, attempt: u32) -> impl Future<Output = Attempt> + Send;

    /// Whether `write` has taken effect, read back from Graph (after an unclear failure, so
    /// that no write is applied twice). A failed read says no.
    fn took_effect(&self, write: &Write) -> impl Future<Output = bool> + Send;

    /// A user by id (or UPN), `None` when there is none.
    fn get_user(&self, id: &str) -> impl Future<Output = Result<Option<User>, GraphError>> + Send;

    /// The user, active or deleted, that holds `anchor` (see [`GraphClient::anchor_holder`]).
    fn anchor_holder(
        &self,
        holder_id: Option<&str>,
        anchor: &str,
    ) -> impl Future<Output = Result<Option<User>, GraphError>> + Send;
}

impl Write {
    /// The value the write sets, for the journal: `None` clears (or purges).
    pub(crate) fn value(&self) -> Option<&str> {
        match self {
            Write::Anchor { value, .. } | Write::ObjectIdentifier { value, .. } => value.as_deref(),
            Write::Upn { upn, .. } => Some(upn),
            Write::Purge { .. } => None,
        }
    }

    fn method(&self) -> reqwest::Method {
        match self {
            Write::Anchor { .. } | Write::Upn { .. } | Write::ObjectIdentifier { .. } => {
                reqwest::Method::PATCH
            }
            Write::Purge { .. } => reqwest::Method::DELETE,
        }
    }

    /// The path under `/v1.0`, or under `/beta` for what only beta has.
    fn path(&self) -> String {
        match self {
            Write::Anchor { user_id, .. }
            | Write::Upn { user_id, .. }
            | Write::ObjectIdentifier { user_id, .. } => user_path(user_id),
            Write::Purge { id } => format!("/directory/deletedItems/{}", encode(id)),
        }
    }

    fn on_beta(&self) -> bool {
        matches!(self, Write::ObjectIdentifier { .. })
    }

    /// The full URL of the write on `client`'s Graph.
    fn url(&self, client: &GraphClient) -> String {
        if self.on_beta() {
            client.beta_url(&self.path())
        } else {
            client.v1_url(&self.path())
        }
    }

    /// Sends JSON null to clear, not "" (docs/graph.md).
    fn body(&self) -> Option<Value> {
        match self {
            Write::Anchor { value, .. } => Some(json!({ "onPremisesImmutableId": value })),
            Write::Upn { upn, .. } => Some(json!({ "userPrincipalName": upn })),
            Write::ObjectIdentifier { value, .. } => {
                Some(json!({ "onPremisesObjectIdentifier": value }))
            }
            Write::Purge { .. } => None,
        }
    }
}

impl Directory for GraphClient {
    async fn write(&self, write: &Write, attempt: u32) -> Attempt {
        self.write_once(
            write.method(),
            &write.url(self),
            write.body().as_ref(),
            attempt,
        )
        .await
    }

    async fn took_effect(&self, write: &Write) -> bool {
        match write {
            Write::Anchor { user_id, value } => matches!(
                self.get_user(user_id).await,
                Ok(Some(user)) if user.on_premises_immutable_id.as_deref().filter(|v| !v.is_empty()) == value.as_deref()
            ),
            Write::Upn { user_id, upn } => matches!(
                self.get_user(user_id).await,
                Ok(Some(user)) if user.user_principal_name.eq_ignore_ascii_case(upn)
            ),
            Write::Purge { .. } => matches!(
                self.send(reqwest::Method::GET, &write.path(), None, false)
                    .await,
                Err(GraphError::NotFound(_))
            ),
            Write::ObjectIdentifier { value, .. } => {
                let select = format!("{}?$select=id,onPremisesObjectIdentifier", write.url(self));
                matches!(
                    self.send(reqwest::Method::GET, &select, None, false).await,
                    Ok(answer) if answer.body["onPremisesObjectIdentifier"].as_str() == value.as_deref()
                )
            }
        }
    }

    async fn get_user(&self, id: &str) -> Result<Option<User>, GraphError> {
        GraphClient::get_user(self, id).await
    }

    async fn anchor_holder(
        &self,
        holder_id: Option<&str>,
        anchor: &str,
    ) -> Result<Option<User>, GraphError> {
        GraphClient::anchor_holder(self, holder_id, anchor).await
    }
}
