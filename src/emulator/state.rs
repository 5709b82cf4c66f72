//! The emulated tenant: users, deleted users and domains, indexed for the lookups Graph does,
//! who is privileged, what reads still see of recent writes ([`Lag`]), and the record of what
//! clients did to it (`/_emulator/stats`).

use std::collections::{BTreeMap, HashMap, VecDeque};

use serde::Serialize;

use serde_json::{json, Value};

use super::lag::Lag;
use crate::tenant::{caseless, AuthenticationType, Group, Privileges, Tenant, User};

/// The tenant as the emulator holds it. Users are never removed from `tenant.users` (Graph
/// users can be deleted, but hardmatch never does that), so indexes are positions.
#[derive(Debug)]
pub(crate) struct State {
    pub(crate) tenant: Tenant,
    pub(crate) stats: Stats,
    /// Who holds or may hold a privileged role: whose sensitive attributes only a privileged
    /// app may change. The tenant's roles change only through [`State::new`].
    pub(crate) privileges: Privileges,
    pub(crate) lag: Lag,
    by_key: HashMap<String, usize>,
    by_anchor: HashMap<String, usize>,
}

/// What clients did, for tests to check exactly.
#[derive(Clone, Debug, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Stats {
    /// Requests by `METHOD /path/template`, those answered by an injected fault included.
    pub requests: BTreeMap<String, u64>,
    /// 429 responses served (top-level and inside $batch).
    pub throttled: u64,
    /// Faults injected by `--faults`.
    pub faults: u64,
    /// onPremisesImmutableId writes applied, per user id: a test sees any write sent twice.
    pub writes_applied: BTreeMap<String, u64>,
    /// Every write that reached the tenant, of any kind.
    pub writes_total: u64,
    pub tokens_issued: u64,
    /// The latest Graph requests as received, `METHOD /v1.0/path?query` with the path and
    /// query still percent-encoded, inner `$batch` requests included (never a header or a
    /// body): tests check what a query really asked for.
    pub request_log: VecDeque<String>,
}

impl Stats {
    /// How many requests [`Stats::request_log`] keeps.
    pub(crate) const REQUEST_LOG_LEN: usize = 10_000;

    pub(crate) fn log_request(&mut self, method: &str, path: &str, query: &str) {
        if self.request_log.len() == Self::REQUEST_LOG_LEN {
            self.request_log.pop_front();
        }
        let separator = if query.is_empty() { "" } else { "?" };
        self.request_log
            .push_back(format!("{method} {path}{separator}{query}"));
    }
}

impl State {
    pub(crate) fn new(tenant: Tenant) -> State {
        let mut state = State {
            privileges: Privileges::new(&tenant),
            tenant,
            stats: Stats::default(),
            lag: Lag::default(),
            by_key: HashMap::new(),
            by_anchor: HashMap::new(),
        };
        for i in 0..state.tenant.users.len() {
            state.index(i);
        }
        state
    }

    fn index(&mut self, i: usize) {
        let user = &self.tenant.users[i];
        self.by_key.insert(caseless(&user.id), i);
        self.by_key.insert(caseless(&user.user_principal_name), i);
        if let Some(anchor) = &user.on_premises_immutable_id {
            self.by_anchor.insert(anchor.clone(), i);
        }
    }

    fn unindex(&mut self, i: usize) {
        let user = &self.tenant.users[i];
        self.by_key.remove(&caseless(&user.user_principal_name));
        if let Some(anchor) = &user.on_premises_immutable_id {
            self.by_anchor.remove(anchor);
        }
    }

    /// A user by object id or UPN (case-insensitive), as `/users/{id | userPrincipalName}`.
    pub(crate) fn find_user(&self, key: &str) -> Option<usize> {
        self.by_key.get(&caseless(key)).copied()
    }

    pub(crate) fn find_deleted(&self, id: &str) -> Option<usize> {
        self.tenant
            .deleted_users
            .iter()
            .position(|u| u.id.eq_ignore_ascii_case(id))
    }

    /// A deleted user by id as a read at `now` sees it: one purged within the lag too.
    pub(crate) fn deleted_as_seen(&self, id: &str, now: f64) -> Option<&User> {
        self.tenant
            .deleted_users
            .iter()
            .chain(self.lag.recently_purged(now))
            .find(|u| u.id.eq_ignore_ascii_case(id))
    }

    /// Changes a user through `change`, keeping the indexes right.
    pub(crate) fn update_user(&mut self, i: usize, change: impl FnOnce(&mut User)) {
        self.unindex(i);
        change(&mut self.tenant.users[i]);
        self.index(i);
    }

    /// The active user holding `anchor`.
    pub(crate) fn anchor_index(&self, anchor: &str) -> Option<usize> {
        self.by_anchor.get(anchor).copied()
    }

    /// Adds a user (sync creating one).
    pub(crate) fn add_user(&mut self, user: User) {
        self.tenant.users.push(user);
        self.index(self.tenant.users.len() - 1);
    }

    /// Moves a deleted user back among the users.
    pub(crate) fn restore(&mut self, deleted: usize) -> &User {
        let mut user = self.tenant.deleted_users.remove(deleted);
        user.deleted_date_time = None;
        self.tenant.users.push(user);
        let i = self.tenant.users.len() - 1;
        self.index(i);
        &self.tenant.users[i]
    }

    /// The other object that holds `anchor` at `now`: an active user, or (when deleted users
    /// reserve anchors) a deleted one, or one purged so recently that Graph still sees it.
    pub(crate) fn anchor_holder(
        &self,
        anchor: &str,
        except: usize,
        include_deleted: bool,
        now: f64,
    ) -> Option<&User> {
        let active = self
            .by_anchor
            .get(anchor)
            .filter(|&&i| i != except)
            .map(|&i| &self.tenant.users[i]);
        active.or_else(|| {
            include_deleted
                .then(|| {
                    self.tenant
                        .deleted_users
                        .iter()
                        .chain(self.lag.recently_purged(now))
                        .find(|u| u.on_premises_immutable_id.as_deref() == Some(anchor))
                })
                .flatten()
        })
    }

    pub(crate) fn find_group(&self, id: &str) -> Option<&Group> {
        self.tenant
            .groups
            .iter()
            .find(|g| g.id.eq_ignore_ascii_case(id))
    }

    /// A member or owner by id as a group's links list it: a group when the tenant has one
    /// of that id, a user otherwise.
    pub(crate) fn directory_object(&self, id: &str) -> Value {
        let kind = match self.find_group(id) {
            Some(_) => "#microsoft.graph.group",
            None => "#microsoft.graph.user",
        };
        json!({"@odata.type": kind, "id": id})
    }

    /// `/groups/{id}/transitiveMembers`: the members, and the members of member groups
    /// (each group once), as `{"@odata.type", "id"}`; `None` when there is no such group.
    pub(crate) fn transitive_members(&self, id: &str) -> Option<Vec<Value>> {
        let group = self.find_group(id)?;
        let mut seen = vec![group.id.to_ascii_lowercase()];
        let mut queue = vec![group];
        let mut members = Vec::new();
        while let Some(group) = queue.pop() {
            for member in group.members.iter().flatten() {
                match self.find_group(member) {
                    Some(nested) if !seen.contains(&nested.id.to_ascii_lowercase()) => {
                        seen.push(nested.id.to_ascii_lowercase());
                        members.push(
                            json!({"@odata.type": "#microsoft.graph.group", "id": nested.id}),
                        );
                        queue.push(nested);
                    }
                    Some(_) => {}
                    None => {
                        members.push(json!({"@odata.type": "#microsoft.graph.user", "id": member}))
                    }
                }
            }
        }
        Some(members)
    }

    pub(crate) fn is_federated(&self, upn: &str) -> bool {
        self.domain_of(upn)
            .is_some_and(|d| d == AuthenticationType::Federated)
    }

    pub(crate) fn domain_of(&self, upn: &str) -> Option<AuthenticationType> {
        let domain = upn.rsplit_once('@').map_or("", |(_, d)| d);
        self.tenant
            .domains
            .iter()
            .find(|d| d.id.eq_ignore_ascii_case(domain))
            .map(|d| d.authentication_type)
    }
}
