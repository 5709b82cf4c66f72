//! Reading the tenant the cheapest way for the job at hand.
//!
//! A plan needs, for each row, its cloud user and any user that already holds its anchor.
//! There are two ways to get them, and which is cheaper depends on the sizes:
//! - bulk: page through every user, 999 to a request: `ceil(users / 999)` requests, whatever
//!   the input;
//! - lookup: ask only for the users the rows name, fifteen values to a `$filter=... in (...)`
//!   (Graph's limit for `in`) and twenty filters to a `$batch`: `ceil(filters / 20)` requests,
//!   whatever the size of the tenant.
//!
//! `auto` counts the users first (one request) and takes the cheaper. Both ways read the
//! recycle bin, the domains and the takeover setting in full, and, for a stamping plan, what
//! the next sync cycle's match depends on ([`super::sync`]); the planner then decides from
//! the same [`Tenant`] either way, so the two can never plan differently.

use std::collections::{BTreeMap, BTreeSet, HashSet};

use futures::stream::{self, StreamExt};

use super::sync::Targets;
use super::{odata_literal, parse_user, query, BatchRequest, GraphClient, GraphError, USER_SELECT};
use crate::tenant::{caseless, Tenant, User};

/// Values in one `in (...)` filter: Graph limits `in` to 15 expressions.
pub(crate) const IN_LIMIT: usize = 15;
/// Users in one page of a list.
const PAGE: usize = 999;
/// `$batch` requests in flight at once while looking users up.
const BATCHES_IN_FLIGHT: usize = 4;

/// How `plan`, `apply`, `clear` and `rollback` read the tenant.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum ReadStrategy {
    /// Count the users, then take whichever of bulk and lookup needs fewer requests.
    #[default]
    Auto,
    /// Page through every user of the tenant.
    Bulk,
    /// Look up only the users the rows name, in batched filters.
    Lookup,
}

/// What a run's rows find cloud users by. Each value is asked for once, as the row spelled
/// it: a folded form sent to Graph could find a user the row never named.
#[derive(Clone, Debug, Default)]
pub(crate) struct Wanted {
    /// By [`caseless`] form, the first spelling seen.
    upns: BTreeMap<String, String>,
    mails: BTreeMap<String, String>,
    ids: BTreeSet<String>,
    /// Case-sensitive, like the ImmutableId itself.
    anchors: BTreeSet<String>,
    /// Also read what the next sync cycle's match depends on (a stamping plan).
    sync_facts: bool,
    /// Also read the privileged roles and role-assignable groups alone (`clear`): a 403 on a
    /// user they guard is not the app lacking the permission.
    roles: bool,
    /// Every user is wanted (a snapshot).
    everyone: bool,
}

impl Wanted {
    /// Every user, with everything hardmatch reads: what `snapshot` saves.
    pub(crate) fn everyone() -> Wanted {
        Wanted {
            sync_facts: true,
            everyone: true,
            ..Wanted::default()
        }
    }

    /// Also read the targets' onPremisesObjectIdentifier and the tenant's privileged roles.
    pub(crate) fn with_sync_facts(&mut self) {
        self.sync_facts = true;
    }

    /// Also read the tenant's privileged roles and role-assignable groups.
    pub(crate) fn with_roles(&mut self) {
        self.roles = true;
    }

    /// Whether a user is one the rows name (by UPN, mail or proxy address, or id).
    fn names(&self, user: &User) -> bool {
        self.upns.contains_key(&caseless(&user.user_principal_name))
            || self.ids.contains(&user.id.to_ascii_lowercase())
            || (!self.mails.is_empty()
                && user
                    .mail
                    .iter()
                    .chain(&user.proxy_addresses)
                    .map(|a| a.split_once(':').map_or(a.as_str(), |(_, address)| address))
                    .any(|a| self.mails.contains_key(&caseless(a))))
    }

    /// Whose onPremisesObjectIdentifier the plan needs, among the users read.
    fn targets(&self, tenant: &Tenant, bulk: bool) -> Targets {
        if self.everyone {
            return Targets::Everyone;
        }
        let ids = tenant
            .users
            .iter()
            .filter(|u| !bulk || self.names(u))
            .map(|u| u.id.clone())
            .collect();
        Targets::Ids {
            ids,
            tenant_users: bulk.then_some(tenant.users.len()),
        }
    }

    pub(crate) fn upn(&mut self, upn: &str) {
        self.upns
            .entry(caseless(upn))
            .or_insert_with(|| upn.to_string());
    }

    /// A mail address, found in `mail` or in an SMTP proxy address.
    pub(crate) fn mail(&mut self, mail: &str) {
        self.mails
            .entry(caseless(mail))
            .or_insert_with(|| mail.to_string());
    }

    pub(crate) fn id(&mut self, id: &str) {
        self.ids.insert(id.to_ascii_lowercase());
    }

    /// An anchor whose holder, if any, the plan must know.
    pub fn anchor(&mut self, anchor: &str) {
        self.anchors.insert(anchor.to_string());
    }

    /// One `$filter` per lookup, each asking for up to fifteen values.
    pub(crate) fn filters(&self) -> Vec<String> {
        let mut filters = Vec::new();
        for (property, values) in [
            ("userPrincipalName", self.upns.values().collect::<Vec<_>>()),
            ("id", self.ids.iter().collect()),
            ("onPremisesImmutableId", self.anchors.iter().collect()),
            ("mail", self.mails.values().collect()),
        ] {
            filters.extend(
                values
                    .chunks(IN_LIMIT)
                    .map(|chunk| in_filter(property, chunk)),
            );
        }
        // A proxy address cannot be asked for with `in`: one filter per address, in the
        // primary form docs/graph.md shows (`SMTP:`; Graph compares it in any case).
        filters.extend(self.mails.values().map(|m| {
            format!(
                "proxyAddresses/any(x:x eq {})",
                odata_literal(&format!("SMTP:{m}"))
            )
        }));
        filters
    }

    /// Requests a lookup costs (its filters in batches of twenty).
    pub(crate) fn lookup_requests(&self) -> usize {
        self.filters().len().div_ceil(super::BATCH_LIMIT)
    }
}

fn in_filter(property: &str, values: &[&String]) -> String {
    let literals: Vec<String> = values.iter().map(|v| odata_literal(v)).collect();
    format!("{property} in ({})", literals.join(","))
}

/// The tenant as read, and how, for the report's summary.
#[derive(Debug)]
pub(crate) struct TenantRead {
    pub(crate) tenant: Tenant,
    pub(crate) how: String,
    /// Lines for the report's summary on what the plan checked against the tenant read
    /// (the source anchor, the privileged roles); filled in by the planning command.
    pub(crate) notes: Vec<(String, String)>,
}

impl GraphClient {
    /// Reads what the plan needs of the tenant, the cheapest way `strategy` allows.
    pub(crate) async fn read_tenant(
        &self,
        wanted: &Wanted,
        strategy: ReadStrategy,
        mut progress: impl FnMut(&str, usize),
    ) -> Result<TenantRead, GraphError> {
        let before = self.requests();
        let chosen_by_auto = strategy == ReadStrategy::Auto;
        let (strategy, why) = match strategy {
            ReadStrategy::Auto => self.choose(wanted).await,
            chosen => (chosen, "as asked".to_string()),
        };
        let (mut tenant, what, bulk) = match strategy {
            ReadStrategy::Lookup => {
                let filters = wanted.filters();
                match self.look_up(&filters, &mut progress).await {
                    Ok(users) => {
                        let what = format!(
                            "per-row lookups ({} filters in $batch), {} users found",
                            filters.len(),
                            users.len()
                        );
                        (self.tenant_around(users, &mut progress).await?, what, false)
                    }
                    // A Graph (or a proxy in front of it) that refuses a filter or `$batch`
                    // costs `auto` a few requests, never the run.
                    Err(error) if chosen_by_auto => {
                        let tenant = self.snapshot(&mut progress).await?;
                        let what = format!(
                            "bulk snapshot of {} users after the lookups failed ({error})",
                            tenant.users.len()
                        );
                        (tenant, what, true)
                    }
                    Err(error) => return Err(error),
                }
            }
            ReadStrategy::Bulk | ReadStrategy::Auto => {
                let tenant = self.snapshot(&mut progress).await?;
                let what = format!("bulk snapshot of {} users", tenant.users.len());
                (tenant, what, true)
            }
        };
        let sync = if wanted.sync_facts {
            progress("sync-cycle facts", 0);
            let targets = wanted.targets(&tenant, bulk);
            let read = self.read_sync_facts(&mut tenant, targets).await;
            format!(", {read}")
        } else if wanted.roles {
            progress("privileged roles and role-assignable groups", 0);
            format!(", {}", self.read_roles(&mut tenant).await)
        } else {
            String::new()
        };
        let how = format!(
            "{what} and {} deleted users{sync}, {why}: {} Graph requests",
            tenant.deleted_users.len(),
            self.requests() - before
        );
        Ok(TenantRead {
            tenant,
            how,
            notes: Vec::new(),
        })
    }

    /// Bulk or lookup, whichever needs fewer requests, and why.
    async fn choose(&self, wanted: &Wanted) -> (ReadStrategy, String) {
        let lookups = wanted.lookup_requests();
        if lookups == 0 {
            return (ReadStrategy::Lookup, "no rows to look up".into());
        }
        match self.count_users().await {
            Ok(users) => {
                let pages = (users as usize).div_ceil(PAGE).max(1);
                let strategy = if lookups < pages {
                    ReadStrategy::Lookup
                } else {
                    ReadStrategy::Bulk
                };
                let why = format!(
                    "chosen over {} (the tenant has {users} users: {pages} pages in bulk, {lookups} batched lookups)",
                    match strategy {
                        ReadStrategy::Lookup => "bulk",
                        _ => "lookups",
                    }
                );
                (strategy, why)
            }
            Err(e) => (
                ReadStrategy::Bulk,
                format!("chosen because the users could not be counted ({e})"),
            ),
        }
    }

    /// `GET /users/$count` (an advanced query: needs `ConsistencyLevel: eventual`).
    pub(crate) async fn count_users(&self) -> Result<u64, GraphError> {
        let answer = self
            .send(reqwest::Method::GET, "/users/$count", None, true)
            .await?;
        let count = match &answer.body {
            serde_json::Value::Number(n) => n.as_u64(),
            // Graph answers text/plain, at times behind a UTF-8 byte order mark.
            serde_json::Value::String(s) => s.trim().trim_start_matches('\u{feff}').parse().ok(),
            _ => None,
        };
        count.ok_or_else(|| {
            GraphError::Other(Box::new(super::Meta {
                message: format!("/users/$count answered {}", answer.body),
                ..answer.meta
            }))
        })
    }

    /// The users matching any of `filters`, each filter one request inside a `$batch`, each
    /// user once.
    async fn look_up(
        &self,
        filters: &[String],
        progress: &mut impl FnMut(&str, usize),
    ) -> Result<Vec<User>, GraphError> {
        let requests: Vec<BatchRequest> = filters
            .iter()
            .map(|filter| BatchRequest {
                method: reqwest::Method::GET,
                url: format!(
                    "/users?{}",
                    query(&[
                        ("$filter", filter),
                        ("$select", USER_SELECT),
                        ("$top", "999")
                    ])
                ),
                body: None,
            })
            .collect();
        let mut answers = stream::iter(requests.chunks(super::BATCH_LIMIT))
            .map(|twenty| self.batch(twenty))
            .buffer_unordered(BATCHES_IN_FLIGHT);
        let mut seen = HashSet::new();
        let mut users = Vec::new();
        let mut done = 0;
        while let Some(results) = answers.next().await {
            for result in results {
                let answer = result?;
                let mut values = answer.body["value"].as_array().cloned().unwrap_or_default();
                if let Some(next) = answer.body["@odata.nextLink"].as_str() {
                    values.extend(self.list_all(next, |_| {}).await?);
                }
                for value in values {
                    let user = parse_user(value)?;
                    if seen.insert(user.id.to_ascii_lowercase()) {
                        users.push(user);
                    }
                }
                done += 1;
                progress("lookups", done);
            }
        }
        Ok(users)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filters_ask_fifteen_values_each_and_escape_them() {
        let mut wanted = Wanted::default();
        for i in 0..31 {
            wanted.upn(&format!("User{i}@Contoso.com"));
            wanted.upn(&format!("user{i}@contoso.com"));
        }
        wanted.anchor("o'brien+/=");
        let filters = wanted.filters();
        assert_eq!(filters.len(), 4, "{filters:?}");
        assert!(filters[..3]
            .iter()
            .all(|f| f.starts_with("userPrincipalName in (")));
        assert_eq!(filters[0].matches(',').count(), IN_LIMIT - 1);
        assert_eq!(filters[3], "onPremisesImmutableId in ('o''brien+/=')");
        assert_eq!(wanted.lookup_requests(), 1);
    }

    #[test]
    fn mail_is_asked_in_mail_and_in_proxy_addresses() {
        let mut wanted = Wanted::default();
        wanted.mail("Kate.O'Brien@contoso.com");
        assert_eq!(
            wanted.filters(),
            [
                "mail in ('Kate.O''Brien@contoso.com')",
                "proxyAddresses/any(x:x eq 'SMTP:Kate.O''Brien@contoso.com')"
            ]
        );
    }
}
