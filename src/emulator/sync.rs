//! One Entra Connect / Cloud Sync cycle, run against the emulated tenant from an AD export
//! (`hardmatch emulator --directory EXPORT`, `POST /_emulator/sync`), the way docs/graph.md
//! ("What the next sync cycle does with a stamp") describes it:
//!
//! - hard match: a cloud user holding the AD object's anchor is taken over, unless the 2026
//!   hard-match protections block it (its `onPremisesObjectIdentifier` points at another
//!   on-premises object, or it holds or is eligible for a privileged role, directly or through
//!   a role-assignable group) or the tenant blocks takeover; a block leaves a provisioning
//!   error on the cloud user;
//! - soft match: otherwise a cloud-only member without an anchor whose UPN, or an SMTP proxy
//!   address, is the AD object's is taken over and given the anchor, unless the same
//!   protections refuse it (then a provisioning error) or the tenant blocks soft match
//!   (`blockSoftMatchEnabled`); guests are never soft-matched;
//! - otherwise a new synced user is created, its UPN moved to the initial domain when the
//!   suffix is not a verified domain, with digits when that UPN is taken.
//!
//! A matched user becomes synced: it gets the on-premises UPN (or its initial-domain form),
//! the AD object's mail and addresses (cloud-only aliases are lost), its objectGUID in
//! `onPremisesObjectIdentifier`, and a last-sync time.

use std::collections::HashMap;
use std::path::Path;

use serde::Serialize;

use super::state::State;
use crate::compute::ComputeOptions;
use crate::source::{ReadOptions, Role};
use crate::tenant::{caseless, Privileges, ProvisioningError, User};

/// The sync error Entra writes when the hard-match protections refuse a match.
pub(crate) const HARDENING_ERROR: &str =
    "Hard match operation blocked due to security hardening. Review OnPremisesObjectIdentifier mapping.";

/// The sync error for a refused soft match (Entra's wording for it is not documented).
pub(crate) const SOFT_MATCH_ERROR: &str =
    "Soft match blocked: the cloud user holds a privileged role or is linked to another on-premises object (InvalidSoftMatch).";

/// An AD user as the sync engine sees it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct OnPremisesUser {
    /// The sourceAnchor: base64 of mS-DS-ConsistencyGuid or objectGUID, as the export gives it.
    pub(crate) anchor: String,
    /// The objectGUID, which sync writes to the cloud user's `onPremisesObjectIdentifier`.
    pub(crate) object_guid: Option<String>,
    pub(crate) upn: String,
    pub(crate) mail: Option<String>,
    pub(crate) display_name: Option<String>,
}

/// The AD side of a rehearsal: every user of an export that has an anchor and a UPN.
#[derive(Clone, Debug, Default)]
pub struct Directory {
    pub(crate) users: Vec<OnPremisesUser>,
}

impl Directory {
    /// Reads an export the way `hardmatch ids` does; rows with an input problem are not
    /// users sync would export.
    pub fn from_export(path: &Path) -> crate::Result<Directory> {
        let source = crate::source::open(path, &ReadOptions::default())?;
        let prepared = crate::run::stages::prepare(&source, &ComputeOptions::default())?;
        let users = prepared
            .input
            .rows
            .iter()
            .zip(&prepared.candidates)
            .filter(|(_, candidate)| candidate.verdict.is_none())
            .filter_map(|(row, candidate)| {
                Some(OnPremisesUser {
                    anchor: candidate.immutable_id.as_ref()?.to_string(),
                    object_guid: candidate.guid.map(|g| g.to_string()),
                    upn: row.value(Role::Upn)?.to_string(),
                    mail: row.value(Role::Mail).map(str::to_string),
                    display_name: row.value(Role::DisplayName).map(str::to_string),
                })
            })
            .collect();
        Ok(Directory { users })
    }
}

/// What one cycle did, by AD object.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Cycle {
    pub(crate) hard_matched: usize,
    pub(crate) soft_matched: usize,
    pub(crate) created: usize,
    pub(crate) blocked: usize,
    pub(crate) already_synced: usize,
}

impl std::fmt::Display for Cycle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} hard-matched, {} soft-matched, {} created, {} blocked, {} already synced",
            self.hard_matched, self.soft_matched, self.created, self.blocked, self.already_synced
        )
    }
}

/// Runs one cycle over every AD user, at time `now` (RFC 3339).
pub(crate) fn run(state: &mut State, directory: &Directory, now: &str) -> Cycle {
    let privileges = Privileges::new(&state.tenant);
    let addresses = addresses(state);
    let mut cycle = Cycle::default();
    for ad in &directory.users {
        sync_one(state, (&privileges, &addresses), ad, now, &mut cycle);
    }
    cycle
}

fn sync_one(
    state: &mut State,
    (privileges, addresses): (&Privileges, &Addresses),
    ad: &OnPremisesUser,
    now: &str,
    cycle: &mut Cycle,
) {
    if let Some(i) = state.anchor_index(&ad.anchor) {
        if state.tenant.users[i].on_premises_sync_enabled == Some(true) {
            cycle.already_synced += 1;
            state.update_user(i, |user| take_over(user, ad, None, now));
            return;
        }
        match hard_match_block(state, privileges, &state.tenant.users[i], ad) {
            Some(reason) => {
                cycle.blocked += 1;
                state.update_user(i, |user| block(user, reason, now));
            }
            None => {
                cycle.hard_matched += 1;
                let upn = synced_upn(state, ad, Some(i));
                state.update_user(i, |user| take_over(user, ad, Some(upn), now));
            }
        }
        return;
    }
    let soft_match_allowed = state.tenant.block_soft_match_enabled != Some(true);
    if let Some(i) = soft_match(state, addresses, ad).filter(|_| soft_match_allowed) {
        if let Some(reason) = soft_match_block(privileges, &state.tenant.users[i]) {
            cycle.blocked += 1;
            state.update_user(i, |user| block(user, reason, now));
            return;
        }
        cycle.soft_matched += 1;
        let upn = synced_upn(state, ad, Some(i));
        state.update_user(i, |user| {
            user.on_premises_immutable_id = Some(ad.anchor.clone());
            take_over(user, ad, Some(upn), now);
        });
        return;
    }
    cycle.created += 1;
    let upn = synced_upn(state, ad, None);
    let mut user = User {
        id: uuid::Uuid::new_v4().to_string(),
        on_premises_immutable_id: Some(ad.anchor.clone()),
        account_enabled: Some(true),
        ..User::default()
    };
    take_over(&mut user, ad, Some(upn), now);
    state.add_user(user);
}

/// Why sync refuses to hard-match this cloud user, if it does.
fn hard_match_block(
    state: &State,
    privileges: &Privileges,
    cloud: &User,
    ad: &OnPremisesUser,
) -> Option<&'static str> {
    if state
        .tenant
        .block_cloud_object_takeover_through_hard_match_enabled
        == Some(true)
    {
        return Some("Hard match blocked: the tenant blocks cloud object takeover through hard match (blockCloudObjectTakeoverThroughHardMatchEnabled).");
    }
    // docs/graph.md: the same object coming back (its own objectGUID) is INFERRED allowed.
    let linked_elsewhere = cloud
        .on_premises_object_identifier
        .as_deref()
        .is_some_and(|linked| {
            !ad.object_guid
                .as_deref()
                .is_some_and(|own| own.eq_ignore_ascii_case(linked))
        });
    let privileged = !privileges.of(&cloud.id).is_empty();
    (linked_elsewhere || privileged).then_some(HARDENING_ERROR)
}

/// Why sync refuses to soft-match this cloud user: it holds (or may hold) a privileged role,
/// or is linked to another on-premises object; the same protections as for a hard match.
fn soft_match_block(privileges: &Privileges, cloud: &User) -> Option<&'static str> {
    let blocked = !privileges.of(&cloud.id).is_empty() || cloud.object_identifier().is_some();
    blocked.then_some(SOFT_MATCH_ERROR)
}

/// A cloud-only member without an anchor whose UPN or an SMTP address is the AD object's.
/// Guests and external members are never soft-matched (docs/graph.md, "Guests").
fn soft_match(state: &State, addresses: &Addresses, ad: &OnPremisesUser) -> Option<usize> {
    let candidate = |i: &usize| {
        let user = &state.tenant.users[*i];
        user.on_premises_immutable_id.is_none()
            && user.on_premises_sync_enabled != Some(true)
            && !user.is_external()
    };
    let by_upn = state.find_user(&ad.upn).filter(candidate);
    by_upn.or_else(|| {
        let smtp = caseless(&format!("smtp:{}", ad.mail.as_deref()?));
        // The index is the cycle's start; a user taken over since has AD's addresses.
        addresses.get(&smtp)?.iter().copied().find(|i| {
            candidate(i)
                && state.tenant.users[*i]
                    .proxy_addresses
                    .iter()
                    .any(|p| caseless(p) == smtp)
        })
    })
}

/// Users by caseless proxy address, built once a cycle: a soft match by mail is a lookup,
/// not a scan of the tenant for every AD user.
type Addresses = HashMap<String, Vec<usize>>;

fn addresses(state: &State) -> Addresses {
    let mut addresses = Addresses::new();
    for (i, user) in state.tenant.users.iter().enumerate() {
        for address in &user.proxy_addresses {
            addresses.entry(caseless(address)).or_default().push(i);
        }
    }
    addresses
}

/// The UPN sync gives the user: the on-premises UPN, moved to the initial domain when its
/// suffix is not a verified domain, with four digits when another user has it already.
fn synced_upn(state: &State, ad: &OnPremisesUser, this: Option<usize>) -> String {
    let (prefix, suffix) = ad.upn.rsplit_once('@').unwrap_or((&ad.upn, ""));
    let initial = state
        .tenant
        .domains
        .iter()
        .find(|d| d.is_initial)
        .map_or("onmicrosoft.com", |d| d.id.as_str());
    let upn = if state.domain_of(&ad.upn).is_some() && !suffix.is_empty() {
        ad.upn.clone()
    } else {
        format!("{prefix}@{initial}")
    };
    let taken = |candidate: &str| state.find_user(candidate).is_some_and(|i| Some(i) != this);
    if !taken(&upn) {
        return upn;
    }
    (1000..)
        .map(|n| format!("{prefix}{n}@{initial}"))
        .find(|candidate| !taken(candidate))
        .expect("a free number")
}

/// Sync takes the user over: every attribute with a value in AD overwrites the cloud's.
fn take_over(user: &mut User, ad: &OnPremisesUser, upn: Option<String>, now: &str) {
    if let Some(upn) = upn {
        user.user_principal_name = upn;
    }
    user.on_premises_sync_enabled = Some(true);
    user.on_premises_last_sync_date_time = Some(now.to_string());
    user.on_premises_provisioning_errors.clear();
    user.on_premises_object_identifier = ad.object_guid.clone();
    if let Some(name) = &ad.display_name {
        user.display_name = Some(name.clone());
    }
    // AD's addresses replace the cloud's: aliases only the cloud had are lost.
    user.mail = ad.mail.clone();
    user.proxy_addresses = ad.mail.iter().map(|m| format!("SMTP:{m}")).collect();
}

fn block(user: &mut User, reason: &str, now: &str) {
    user.on_premises_provisioning_errors = vec![ProvisioningError {
        category: Some("PropertyConflict".into()),
        occurred_date_time: Some(now.to_string()),
        property_causing_error: Some("SourceAnchor".into()),
        value: Some(reason.to_string()),
    }];
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tenant::{Domain, Tenant};

    const ANCHOR: &str = "1wfM9xV8fUSHbcAbDlqeOA==";
    const GUID: &str = "f7cc07d7-7c15-447d-876d-c01b0e5a9e38";
    const NOW: &str = "2026-12-03T10:00:00Z";

    fn ad(upn: &str) -> OnPremisesUser {
        OnPremisesUser {
            anchor: ANCHOR.into(),
            object_guid: Some(GUID.into()),
            upn: upn.into(),
            mail: Some(upn.into()),
            display_name: None,
        }
    }

    fn cloud(id: &str, upn: &str, anchor: Option<&str>) -> User {
        User {
            id: id.into(),
            user_principal_name: upn.into(),
            on_premises_immutable_id: anchor.map(str::to_string),
            proxy_addresses: vec![format!("SMTP:{upn}"), "smtp:alias@contoso.com".into()],
            ..User::default()
        }
    }

    fn state(users: Vec<User>) -> State {
        State::new(Tenant {
            domains: vec![
                Domain {
                    id: "contoso.com".into(),
                    ..Domain::default()
                },
                Domain {
                    id: "contoso.onmicrosoft.com".into(),
                    is_initial: true,
                    ..Domain::default()
                },
            ],
            users,
            ..Tenant::default()
        })
    }

    fn cycle(state: &mut State, ad: OnPremisesUser) -> Cycle {
        run(state, &Directory { users: vec![ad] }, NOW)
    }

    #[test]
    fn a_stamped_cloud_user_is_hard_matched_and_rewritten_by_ad() {
        let mut state = state(vec![cloud("1", "alice@contoso.com", Some(ANCHOR))]);
        let done = cycle(&mut state, ad("alice@contoso.com"));
        assert_eq!(done.hard_matched, 1);
        let alice = &state.tenant.users[0];
        assert_eq!(alice.on_premises_sync_enabled, Some(true));
        assert_eq!(alice.on_premises_object_identifier.as_deref(), Some(GUID));
        assert_eq!(alice.on_premises_last_sync_date_time.as_deref(), Some(NOW));
        assert_eq!(
            alice.proxy_addresses,
            ["SMTP:alice@contoso.com"],
            "the cloud alias is lost"
        );
        assert_eq!(cycle(&mut state, ad("alice@contoso.com")).already_synced, 1);
    }

    #[test]
    fn a_cloud_user_linked_to_another_object_is_blocked_with_the_hardening_error() {
        let mut linked = cloud("1", "alice@contoso.com", Some(ANCHOR));
        linked.on_premises_object_identifier = Some("0b0b0b0b-0000-4000-8000-000000000000".into());
        let mut state = state(vec![linked]);
        assert_eq!(cycle(&mut state, ad("alice@contoso.com")).blocked, 1);
        let alice = &state.tenant.users[0];
        assert_eq!(alice.on_premises_sync_enabled, None);
        assert_eq!(
            alice.on_premises_provisioning_errors[0].value.as_deref(),
            Some(HARDENING_ERROR)
        );

        let mut same = cloud("1", "alice@contoso.com", Some(ANCHOR));
        same.on_premises_object_identifier = Some(GUID.to_uppercase());
        let mut state = super::tests::state(vec![same]);
        assert_eq!(
            cycle(&mut state, ad("alice@contoso.com")).hard_matched,
            1,
            "its own object"
        );
    }

    #[test]
    fn without_an_anchor_a_user_is_soft_matched_by_upn_or_address() {
        let mut state = state(vec![cloud("1", "alice@contoso.com", None)]);
        assert_eq!(cycle(&mut state, ad("alice@contoso.com")).soft_matched, 1);
        assert_eq!(
            state.tenant.users[0].on_premises_immutable_id.as_deref(),
            Some(ANCHOR)
        );

        let mut state = super::tests::state(vec![cloud("1", "a.smith@contoso.com", None)]);
        let mut by_mail = ad("asmith@corp.local");
        by_mail.mail = Some("alias@contoso.com".into());
        assert_eq!(cycle(&mut state, by_mail).soft_matched, 1);
        assert_eq!(
            state.tenant.users[0].user_principal_name, "asmith@contoso.onmicrosoft.com",
            "an unverified suffix becomes the initial domain's"
        );
    }

    #[test]
    fn a_tenant_that_blocks_soft_match_gets_a_new_user_instead() {
        let mut state = state(vec![cloud("1", "alice@contoso.com", None)]);
        state.tenant.block_soft_match_enabled = Some(true);
        let done = cycle(&mut state, ad("alice@contoso.com"));
        assert_eq!((done.soft_matched, done.created), (0, 1));
        assert_eq!(state.tenant.users[0].on_premises_immutable_id, None);
        assert_eq!(
            state.tenant.users[1].user_principal_name,
            "alice1000@contoso.onmicrosoft.com"
        );
    }

    #[test]
    fn no_match_creates_a_user_whose_taken_upn_gets_digits() {
        let taken = cloud("1", "alice@contoso.com", Some("BpazOkLGm0iEtljAONPvOQ=="));
        let mut state = state(vec![taken]);
        assert_eq!(cycle(&mut state, ad("alice@contoso.com")).created, 1);
        let created = &state.tenant.users[1];
        assert_eq!(
            created.user_principal_name,
            "alice1000@contoso.onmicrosoft.com"
        );
        assert_eq!(created.on_premises_immutable_id.as_deref(), Some(ANCHOR));
        assert_eq!(created.on_premises_sync_enabled, Some(true));
        assert_eq!(state.find_user(&created.id.clone()), Some(1), "indexed");
    }
}
