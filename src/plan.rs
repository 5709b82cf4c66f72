//! The planner: each row's subject against a tenant snapshot gives a [`Decision`]: the
//! outcome Graph would give a write (or why no write should be sent), the target's state the
//! decision rested on, and who holds a conflicting anchor.
//!
//! Pure and offline: the snapshot comes from `hardmatch snapshot`, from a live read, or from
//! the emulator's state. The writer re-checks a decision's [`TargetState`] before writing so
//! that drift since the plan is caught (`target-changed-since-plan`).

use std::collections::HashMap;

use serde::{Deserialize, Serialize};

use crate::anchor::ImmutableId;
use crate::outcome::{Outcome, Verdict};
use crate::tenant::{caseless, AuthenticationType, Tenant, User};

/// How the cloud user of a row is found when the row has no CloudObjectId.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum, Serialize, Deserialize)]
pub enum MatchBy {
    /// userPrincipalName (after `--upn-suffix` mapping), or the TargetUPN column.
    #[default]
    Upn,
    /// mail or an SMTP proxyAddress.
    Mail,
}

/// What the run intends to do to each matched user.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Mode {
    #[default]
    Stamp,
    Clear,
}

/// The destructive steps the admin allowed, each with its own flag (design.md's contracts).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Permissions {
    pub overwrite: bool,
    pub purge_deleted_holders: bool,
    pub federated_hop: bool,
}

#[derive(Clone, Copy, Debug, Default)]
pub struct PlanOptions {
    pub match_by: MatchBy,
    pub mode: Mode,
    pub allow: Permissions,
}

/// What the planner needs to know about one row.
#[derive(Clone, Copy, Debug, Default)]
pub struct Subject<'a> {
    pub anchor: Option<&'a ImmutableId>,
    /// The UPN to look for: TargetUPN, or the on-premises UPN after suffix mapping.
    pub upn: Option<&'a str>,
    pub mail: Option<&'a str>,
    pub cloud_object_id: Option<&'a str>,
}

/// The write a decision calls for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Action {
    /// Nothing to send.
    None,
    /// PATCH onPremisesImmutableId to the row's anchor.
    Stamp,
    /// Purge the deleted user that holds the anchor, then stamp.
    PurgeHolderThenStamp,
    /// Move the UPN to the initial domain, stamp, move it back.
    FederatedHopThenStamp,
    /// PATCH onPremisesImmutableId to null.
    Clear,
}

impl Action {
    pub const ALL: [Action; 5] = [
        Action::None,
        Action::Stamp,
        Action::PurgeHolderThenStamp,
        Action::FederatedHopThenStamp,
        Action::Clear,
    ];

    pub fn from_code(code: &str) -> Option<Action> {
        Action::ALL.into_iter().find(|a| a.code() == code)
    }

    pub fn code(self) -> &'static str {
        match self {
            Action::None => "none",
            Action::Stamp => "stamp",
            Action::PurgeHolderThenStamp => "purge-holder-then-stamp",
            Action::FederatedHopThenStamp => "federated-hop-then-stamp",
            Action::Clear => "clear",
        }
    }
}

/// The target's state a decision rested on; `apply PLAN.json` compares it with the tenant now.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TargetState {
    pub id: String,
    pub user_principal_name: String,
    pub on_premises_immutable_id: Option<String>,
    pub on_premises_sync_enabled: bool,
}

/// Another object that holds the row's anchor.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Holder {
    pub id: String,
    pub user_principal_name: String,
    pub deleted_date_time: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Decision {
    pub verdict: Verdict,
    pub action: Action,
    pub target: Option<TargetState>,
    pub holder: Option<Holder>,
}

impl Decision {
    fn refuse(outcome: Outcome, detail: String, target: Option<&User>) -> Decision {
        Decision {
            verdict: Verdict::new(outcome, detail),
            action: Action::None,
            target: target.map(TargetState::of),
            holder: None,
        }
    }
}

impl TargetState {
    pub fn of(user: &User) -> TargetState {
        TargetState {
            id: user.id.clone(),
            user_principal_name: user.user_principal_name.clone(),
            on_premises_immutable_id: user.on_premises_immutable_id.clone(),
            on_premises_sync_enabled: user.on_premises_sync_enabled.unwrap_or(false),
        }
    }
}

/// A tenant snapshot indexed for the lookups a plan makes.
pub struct TenantIndex<'t> {
    tenant: &'t Tenant,
    by_id: HashMap<String, usize>,
    by_upn: HashMap<String, usize>,
    by_address: HashMap<String, Vec<usize>>,
    by_anchor: HashMap<&'t str, usize>,
    deleted_by_anchor: HashMap<&'t str, usize>,
    deleted_by_upn: HashMap<String, usize>,
    federated: Vec<String>,
}

impl<'t> TenantIndex<'t> {
    pub fn new(tenant: &'t Tenant) -> TenantIndex<'t> {
        let mut index = TenantIndex {
            tenant,
            by_id: HashMap::with_capacity(tenant.users.len()),
            by_upn: HashMap::with_capacity(tenant.users.len()),
            by_address: HashMap::new(),
            by_anchor: HashMap::new(),
            deleted_by_anchor: HashMap::new(),
            deleted_by_upn: HashMap::new(),
            federated: tenant
                .domains
                .iter()
                .filter(|d| d.authentication_type == AuthenticationType::Federated)
                .map(|d| d.id.to_ascii_lowercase())
                .collect(),
        };
        for (i, user) in tenant.users.iter().enumerate() {
            index.by_id.insert(user.id.to_ascii_lowercase(), i);
            index.by_upn.insert(caseless(&user.user_principal_name), i);
            for address in addresses(user) {
                let users = index.by_address.entry(address).or_default();
                if !users.contains(&i) {
                    users.push(i);
                }
            }
            if let Some(anchor) = user.on_premises_immutable_id.as_deref() {
                index.by_anchor.insert(anchor, i);
            }
        }
        for (i, user) in tenant.deleted_users.iter().enumerate() {
            if let Some(anchor) = user.on_premises_immutable_id.as_deref() {
                index.deleted_by_anchor.insert(anchor, i);
            }
            index.deleted_by_upn.insert(deleted_upn(user), i);
        }
        index
    }

    /// Decides what happens to one row.
    pub fn decide(&self, subject: &Subject<'_>, options: &PlanOptions) -> Decision {
        let user = match self.find_target(subject, options.match_by) {
            Ok(user) => user,
            Err(decision) => return *decision,
        };
        match options.mode {
            Mode::Stamp => self.decide_stamp(user, subject, options.allow),
            Mode::Clear => decide_clear(user, subject.anchor, options.allow),
        }
    }

    fn find_target(
        &self,
        subject: &Subject<'_>,
        match_by: MatchBy,
    ) -> Result<&'t User, Box<Decision>> {
        let not_found =
            |what: String| Box::new(Decision::refuse(Outcome::TargetNotFound, what, None));
        if let Some(id) = subject.cloud_object_id {
            return self
                .by_id
                .get(&id.to_ascii_lowercase())
                .map(|&i| &self.tenant.users[i])
                .ok_or_else(|| {
                    not_found(format!(
                        "no cloud user has object id {id}; check the CloudObjectId column"
                    ))
                });
        }
        let key = match match_by {
            MatchBy::Upn => subject.upn,
            MatchBy::Mail => subject.mail.or(subject.upn),
        };
        let Some(key) = key else {
            return Err(not_found(
                "the row has nothing to find its cloud user by".into(),
            ));
        };
        let lowered = caseless(key);
        let found = match match_by {
            MatchBy::Upn => self
                .by_upn
                .get(&lowered)
                .map(|&i| vec![i])
                .unwrap_or_default(),
            MatchBy::Mail => self.by_address.get(&lowered).cloned().unwrap_or_default(),
        };
        match found.as_slice() {
            [i] => Ok(&self.tenant.users[*i]),
            [] => Err(self.missing_target(key)),
            many => Err(Box::new(Decision::refuse(
                Outcome::TargetAmbiguous,
                format!(
                    "{} cloud users have the address {key}: {}; add a TargetUPN or CloudObjectId column to choose",
                    many.len(),
                    many.iter()
                        .map(|&i| self.tenant.users[i].user_principal_name.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
                None,
            ))),
        }
    }

    fn missing_target(&self, key: &str) -> Box<Decision> {
        let detail = match self.deleted_by_upn.get(&caseless(key)) {
            Some(&i) => {
                let user = &self.tenant.deleted_users[i];
                return Box::new(Decision {
                    verdict: Verdict::new(
                        Outcome::TargetDeleted,
                        format!(
                            "the cloud user {key} is in the recycle bin (deleted {}, id {}); restore it first, then run again",
                            user.deleted_date_time.as_deref().unwrap_or("at an unknown time"),
                            user.id
                        ),
                    ),
                    action: Action::None,
                    target: None,
                    holder: None,
                });
            }
            None => format!("no cloud user has {key}; check the UPN, or map the domain with --upn-suffix old=new"),
        };
        Box::new(Decision::refuse(Outcome::TargetNotFound, detail, None))
    }

    fn decide_stamp(&self, user: &'t User, subject: &Subject<'_>, allow: Permissions) -> Decision {
        let Some(anchor) = subject.anchor else {
            return Decision::refuse(
                Outcome::MissingField,
                "the row has no anchor to stamp".into(),
                Some(user),
            );
        };
        let current = user
            .on_premises_immutable_id
            .as_deref()
            .filter(|v| !v.is_empty());
        if current == Some(anchor.as_str()) {
            return Decision::refuse(
                Outcome::AlreadyMatched,
                format!(
                    "{} already holds {anchor}; nothing to do",
                    user.user_principal_name
                ),
                Some(user),
            );
        }
        if user.on_premises_sync_enabled == Some(true) {
            return Decision::refuse(
                Outcome::TargetSynced,
                format!(
                    "{} is synced from on-premises and Graph refuses to change it; move it out of sync scope and wait for it to become cloud-only first",
                    user.user_principal_name
                ),
                Some(user),
            );
        }
        if let (Some(other), false) = (current, allow.overwrite) {
            return Decision::refuse(
                Outcome::TargetHasOtherAnchor,
                format!(
                    "{} already holds another ImmutableId ({other}); pass --overwrite to replace it (the old value is recorded for rollback)",
                    user.user_principal_name
                ),
                Some(user),
            );
        }
        if let Some(&i) = self.by_anchor.get(anchor.as_str()) {
            let holder = &self.tenant.users[i];
            if holder.id != user.id {
                return Decision {
                    verdict: Verdict::new(
                        Outcome::AnchorHeldByUser,
                        format!(
                            "{} (id {}) already holds {anchor}; clear it there first (hardmatch clear) if it is the wrong account",
                            holder.user_principal_name, holder.id
                        ),
                    ),
                    action: Action::None,
                    target: Some(TargetState::of(user)),
                    holder: Some(Holder::of(holder)),
                };
            }
        }
        let mut action = Action::Stamp;
        let mut purged_holder = None;
        if let Some(&i) = self.deleted_by_anchor.get(anchor.as_str()) {
            let holder = &self.tenant.deleted_users[i];
            if !allow.purge_deleted_holders {
                return Decision {
                    verdict: Verdict::new(
                        Outcome::AnchorHeldByDeletedUser,
                        format!(
                            "the deleted user {} (id {}, deleted {}) still holds {anchor}; pass --purge-deleted-holders to remove it from the recycle bin for good, then stamp",
                            holder.user_principal_name,
                            holder.id,
                            holder.deleted_date_time.as_deref().unwrap_or("at an unknown time")
                        ),
                    ),
                    action: Action::None,
                    target: Some(TargetState::of(user)),
                    holder: Some(Holder::of(holder)),
                };
            }
            action = Action::PurgeHolderThenStamp;
            purged_holder = Some(Holder::of(holder));
        }
        if self.is_federated(&user.user_principal_name) {
            if !allow.federated_hop {
                return Decision::refuse(
                    Outcome::FederatedDomain,
                    format!(
                        "{} is in a federated domain, where the ImmutableId cannot be changed in place; pass --federated-hop to move the UPN to the initial domain, stamp, and move it back",
                        user.user_principal_name
                    ),
                    Some(user),
                );
            }
            if action == Action::Stamp {
                action = Action::FederatedHopThenStamp;
            }
        }
        let (outcome, detail) = match current {
            Some(other) => (
                Outcome::WouldStamp,
                format!("will replace {other} with {anchor} (--overwrite)"),
            ),
            None => (Outcome::WouldStamp, format!("will stamp {anchor}")),
        };
        let detail = match &purged_holder {
            Some(h) => format!(
                "{detail} after purging the deleted holder {} (id {})",
                h.user_principal_name, h.id
            ),
            None => detail,
        };
        Decision {
            verdict: Verdict::new(outcome, detail),
            action,
            target: Some(TargetState::of(user)),
            holder: purged_holder,
        }
    }

    fn is_federated(&self, upn: &str) -> bool {
        let domain = upn.rsplit_once('@').map(|(_, d)| d.to_ascii_lowercase());
        domain.is_some_and(|d| self.federated.contains(&d))
    }

    /// The tenant's initial `*.onmicrosoft.com` domain, the federated hop's stopover.
    pub fn initial_domain(&self) -> Option<&'t str> {
        self.tenant
            .domains
            .iter()
            .find(|d| d.is_initial)
            .map(|d| d.id.as_str())
    }
}

/// Clears the target's ImmutableId, unless it holds none, is synced, or holds another anchor
/// than the one the row computes (that needs `--overwrite`: the list may name the wrong
/// user). A row without an anchor names its user alone, and clears whatever it holds.
fn decide_clear(user: &User, anchor: Option<&ImmutableId>, allow: Permissions) -> Decision {
    if user.on_premises_sync_enabled == Some(true) {
        return Decision::refuse(
            Outcome::TargetSynced,
            format!(
                "{} is synced from on-premises; its ImmutableId can only be cleared after it leaves sync scope and is restored as a cloud-only user",
                user.user_principal_name
            ),
            Some(user),
        );
    }
    match user
        .on_premises_immutable_id
        .as_deref()
        .filter(|v| !v.is_empty())
    {
        None => Decision::refuse(
            Outcome::NothingToClear,
            format!(
                "{} has no ImmutableId; nothing to clear",
                user.user_principal_name
            ),
            Some(user),
        ),
        Some(current) if !allow.overwrite && anchor.is_some_and(|a| a.as_str() != current) => {
            Decision::refuse(
                Outcome::TargetHasOtherAnchor,
                format!(
                    "{} holds {current}, not {} as the export computes; check that the row names the right user, or pass --overwrite to clear it anyway",
                    user.user_principal_name,
                    anchor.map(ImmutableId::as_str).unwrap_or_default()
                ),
                Some(user),
            )
        }
        Some(current) => Decision {
            verdict: Verdict::new(Outcome::WouldClear, format!("will clear {current}")),
            action: Action::Clear,
            target: Some(TargetState::of(user)),
            holder: None,
        },
    }
}

impl Holder {
    pub fn of(user: &User) -> Holder {
        Holder {
            id: user.id.clone(),
            user_principal_name: user.user_principal_name.clone(),
            deleted_date_time: user.deleted_date_time.clone(),
        }
    }
}

/// The addresses `--match mail` finds a user by: mail and every SMTP proxy address, caseless.
fn addresses(user: &User) -> impl Iterator<Item = String> + '_ {
    let proxies = user.proxy_addresses.iter().filter_map(|p| {
        let (scheme, address) = p.split_once(':')?;
        scheme
            .eq_ignore_ascii_case("smtp")
            .then(|| caseless(address))
    });
    user.mail.iter().map(|m| caseless(m)).chain(proxies)
}

/// A deleted user's UPN as it was: Entra prefixes it with the object id (without dashes)
/// when it is deleted, so both forms are looked up.
fn deleted_upn(user: &User) -> String {
    let upn = caseless(&user.user_principal_name);
    let prefix = user.id.replace('-', "").to_ascii_lowercase();
    upn.strip_prefix(&prefix).map(str::to_owned).unwrap_or(upn)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tenant::Domain;

    fn user(id: &str, upn: &str, anchor: Option<&str>, synced: bool) -> User {
        User {
            id: id.into(),
            user_principal_name: upn.into(),
            mail: Some(upn.into()),
            on_premises_immutable_id: anchor.map(Into::into),
            on_premises_sync_enabled: synced.then_some(true),
            ..User::default()
        }
    }

    fn tenant() -> Tenant {
        let mut gone = user("d1", "d1gina.old@contoso.com", Some("HELD-DELETED"), false);
        gone.deleted_date_time = Some("2026-11-01T10:00:00Z".into());
        let mut lena = user("d2", "lena@contoso.com", None, false);
        lena.deleted_date_time = Some("2026-11-02T10:00:00Z".into());
        let mut twin_a = user("t1", "twin.a@contoso.com", None, false);
        twin_a.mail = Some("twins@contoso.com".into());
        let mut twin_b = user("t2", "twin.b@contoso.com", None, false);
        twin_b.proxy_addresses = vec!["SMTP:Twins@contoso.com".into(), "x500:/o=x".into()];
        Tenant {
            tenant_id: "t".into(),
            taken_at: None,
            domains: vec![
                Domain {
                    id: "contoso.com".into(),
                    ..Domain::default()
                },
                Domain {
                    id: "fed.contoso.com".into(),
                    authentication_type: AuthenticationType::Federated,
                    ..Domain::default()
                },
            ],
            users: vec![
                user("u1", "Alice@contoso.com", None, false),
                user("u2", "bob@contoso.com", Some("BOB"), false),
                user("u3", "carol@contoso.com", None, true),
                user("u4", "dave@contoso.com", Some("OTHER"), false),
                user("u5", "frank.old@contoso.com", Some("HELD"), false),
                user("u6", "ivan@fed.contoso.com", None, false),
                twin_a,
                twin_b,
            ],
            deleted_users: vec![gone, lena],
            ..Tenant::default()
        }
    }

    fn decide(upn: &str, anchor: &str, options: PlanOptions) -> Decision {
        let tenant = tenant();
        let index = TenantIndex::new(&tenant);
        let anchor = (!anchor.is_empty()).then(|| {
            crate::anchor::parse(anchor, crate::anchor::AnchorKind::String)
                .unwrap()
                .id
        });
        index.decide(
            &Subject {
                anchor: anchor.as_ref(),
                upn: Some(upn),
                mail: Some(upn),
                cloud_object_id: None,
            },
            &options,
        )
    }

    #[test]
    fn every_plannable_outcome() {
        let o = PlanOptions::default();
        let cases = [
            ("alice@CONTOSO.com", "NEW", Outcome::WouldStamp),
            ("bob@contoso.com", "BOB", Outcome::AlreadyMatched),
            ("carol@contoso.com", "NEW", Outcome::TargetSynced),
            ("dave@contoso.com", "NEW", Outcome::TargetHasOtherAnchor),
            ("alice@contoso.com", "HELD", Outcome::AnchorHeldByUser),
            (
                "alice@contoso.com",
                "HELD-DELETED",
                Outcome::AnchorHeldByDeletedUser,
            ),
            ("ivan@fed.contoso.com", "NEW", Outcome::FederatedDomain),
            ("hank@contoso.com", "NEW", Outcome::TargetNotFound),
            ("lena@contoso.com", "NEW", Outcome::TargetDeleted),
        ];
        for (upn, anchor, expected) in cases {
            let decision = decide(upn, anchor, o);
            assert_eq!(
                decision.verdict.outcome, expected,
                "{upn}: {}",
                decision.verdict.detail
            );
        }
    }

    #[test]
    fn holders_are_named() {
        let decision = decide("alice@contoso.com", "HELD-DELETED", PlanOptions::default());
        let holder = decision.holder.expect("holder");
        assert_eq!(holder.id, "d1");
        assert_eq!(
            holder.deleted_date_time.as_deref(),
            Some("2026-11-01T10:00:00Z")
        );
        assert!(decision.verdict.detail.contains("--purge-deleted-holders"));
    }

    #[test]
    fn destructive_steps_need_their_flags() {
        let allow = |allow| PlanOptions {
            allow,
            ..PlanOptions::default()
        };
        let overwrite = decide(
            "dave@contoso.com",
            "NEW",
            allow(Permissions {
                overwrite: true,
                ..Default::default()
            }),
        );
        assert_eq!(
            (overwrite.verdict.outcome, overwrite.action),
            (Outcome::WouldStamp, Action::Stamp)
        );
        assert_eq!(
            overwrite
                .target
                .unwrap()
                .on_premises_immutable_id
                .as_deref(),
            Some("OTHER")
        );
        let purge = decide(
            "alice@contoso.com",
            "HELD-DELETED",
            allow(Permissions {
                purge_deleted_holders: true,
                ..Default::default()
            }),
        );
        assert_eq!(purge.action, Action::PurgeHolderThenStamp);
        let hop = decide(
            "ivan@fed.contoso.com",
            "NEW",
            allow(Permissions {
                federated_hop: true,
                ..Default::default()
            }),
        );
        assert_eq!(hop.action, Action::FederatedHopThenStamp);
    }

    #[test]
    fn mail_matching_finds_proxy_addresses_and_ambiguity() {
        let o = PlanOptions {
            match_by: MatchBy::Mail,
            ..PlanOptions::default()
        };
        let decision = decide("twins@contoso.com", "NEW", o);
        assert_eq!(decision.verdict.outcome, Outcome::TargetAmbiguous);
        assert!(decision.verdict.detail.contains("twin.a@contoso.com"));
    }

    #[test]
    fn clear_refuses_synced_and_skips_empty() {
        let o = PlanOptions {
            mode: Mode::Clear,
            ..PlanOptions::default()
        };
        assert_eq!(decide("bob@contoso.com", "", o).action, Action::Clear);
        assert_eq!(
            decide("carol@contoso.com", "", o).verdict.outcome,
            Outcome::TargetSynced
        );
        assert_eq!(
            decide("alice@contoso.com", "", o).verdict.outcome,
            Outcome::NothingToClear
        );
    }

    #[test]
    fn clear_refuses_another_anchor_without_overwrite() {
        let o = PlanOptions {
            mode: Mode::Clear,
            ..PlanOptions::default()
        };
        assert_eq!(decide("bob@contoso.com", "BOB", o).action, Action::Clear);
        let other = decide("bob@contoso.com", "NOT-BOB", o);
        assert_eq!(
            (other.verdict.outcome, other.action),
            (Outcome::TargetHasOtherAnchor, Action::None)
        );
        assert!(other.verdict.detail.contains("--overwrite"));
        let overwrite = PlanOptions {
            allow: Permissions {
                overwrite: true,
                ..Permissions::default()
            },
            ..o
        };
        assert_eq!(
            decide("bob@contoso.com", "NOT-BOB", overwrite).action,
            Action::Clear
        );
    }
}
