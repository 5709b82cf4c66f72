//! The planner: each row's subject against a tenant snapshot gives a [`Decision`]: the
//! outcome Graph would give a write (or why no write should be sent), the target's state the
//! decision rested on, and who holds a conflicting anchor.
//!
//! It plans for the next sync cycle, not only for Graph's answer (docs/graph.md, "What the
//! next sync cycle does with a stamp"): a target sync would refuse to hard-match (a guest, a
//! user linked to another on-premises object, a privileged user) is refused here, and a row
//! that can be stamped carries [`Warning`]s for what sync will change or what could not be
//! checked.
//!
//! Pure and offline: the snapshot comes from `hardmatch snapshot`, from a live read, or from
//! the emulator's state. The writer re-checks a decision's [`TargetState`] before writing so
//! that drift since the plan is caught (`target-changed-since-plan`).

use std::collections::HashMap;

use serde::{Deserialize, Serialize};

use crate::anchor::{AnchorKind, ImmutableId};
use crate::outcome::{Outcome, Verdict, Warning, Warnings};
use crate::tenant::{
    caseless, AuthenticationType, Guarded, Privileges, Tenant, User, SENSITIVE_ATTRIBUTES_RULE,
};

/// How the cloud user of a row is found when the row has no CloudObjectId.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum, Serialize, Deserialize)]
pub(crate) enum MatchBy {
    /// userPrincipalName (after `--upn-suffix` mapping), or the TargetUPN column.
    #[default]
    Upn,
    /// mail or an SMTP proxyAddress.
    Mail,
}

/// What the run intends to do to each matched user.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub(crate) enum Mode {
    #[default]
    Stamp,
    Clear,
}

/// The destructive steps the admin allowed, each with its own flag (ARCHITECTURE.md, "Contracts").
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Permissions {
    pub(crate) overwrite: bool,
    pub(crate) purge_deleted_holders: bool,
    pub(crate) federated_hop: bool,
    /// Plan a guest or external member as if it were a member (`--allow-guests`).
    #[serde(default)]
    pub(crate) allow_guests: bool,
    /// Clear the onPremisesObjectIdentifier of a target linked to another on-premises object,
    /// then stamp (`--clear-object-identifier`).
    #[serde(default)]
    pub(crate) clear_object_identifier: bool,
}

#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct PlanOptions {
    pub(crate) match_by: MatchBy,
    pub(crate) mode: Mode,
    pub(crate) allow: Permissions,
}

/// What the planner needs to know about one row.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct Subject<'a> {
    pub(crate) anchor: Option<&'a ImmutableId>,
    /// The UPN to look for: TargetUPN, or the on-premises UPN after suffix mapping.
    pub(crate) upn: Option<&'a str>,
    pub(crate) mail: Option<&'a str>,
    pub(crate) cloud_object_id: Option<&'a str>,
    /// The row's own objectGUID, to compare with onPremisesObjectIdentifier.
    pub(crate) object_guid: Option<uuid::Uuid>,
    /// The on-premises UPN as exported (before `--upn-suffix`): what sync will set.
    pub(crate) on_premises_upn: Option<&'a str>,
    /// The export's proxyAddresses cell, when the export has that column and the row a value.
    pub(crate) proxy_addresses: Option<&'a str>,
}

/// The write a decision calls for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub(crate) enum Action {
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
    /// Move the UPN to the initial domain, clear (or, in a rollback, put back no value), move
    /// it back.
    FederatedHopThenClear,
    /// PATCH /beta onPremisesObjectIdentifier to null (the target is linked to another
    /// on-premises object), then stamp.
    ClearObjectIdentifierThenStamp,
    /// Rollback of the above: PATCH /beta onPremisesObjectIdentifier back to what it was, then
    /// put back the previous ImmutableId (a value, or null).
    PutBackObjectIdentifier,
}

impl Action {
    pub(crate) const ALL: [Action; 8] = [
        Action::None,
        Action::Stamp,
        Action::PurgeHolderThenStamp,
        Action::FederatedHopThenStamp,
        Action::Clear,
        Action::FederatedHopThenClear,
        Action::ClearObjectIdentifierThenStamp,
        Action::PutBackObjectIdentifier,
    ];

    pub(crate) fn from_code(code: &str) -> Option<Action> {
        Action::ALL.into_iter().find(|a| a.code() == code)
    }

    pub(crate) fn code(self) -> &'static str {
        match self {
            Action::None => "none",
            Action::Stamp => "stamp",
            Action::PurgeHolderThenStamp => "purge-holder-then-stamp",
            Action::FederatedHopThenStamp => "federated-hop-then-stamp",
            Action::Clear => "clear",
            Action::FederatedHopThenClear => "federated-hop-then-clear",
            Action::ClearObjectIdentifierThenStamp => "clear-object-identifier-then-stamp",
            Action::PutBackObjectIdentifier => "put-back-object-identifier",
        }
    }

    /// Whether the write goes through the federated hop (UPN out, write, UPN back).
    pub(crate) fn hops(self) -> bool {
        matches!(
            self,
            Action::FederatedHopThenStamp | Action::FederatedHopThenClear
        )
    }

    /// The same write through the federated hop.
    fn through_hop(self) -> Action {
        match self {
            Action::Stamp => Action::FederatedHopThenStamp,
            Action::Clear => Action::FederatedHopThenClear,
            other => other,
        }
    }
}

/// The target's state a decision rested on; `apply PLAN.json` compares it with the tenant now.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct TargetState {
    pub(crate) id: String,
    pub(crate) user_principal_name: String,
    pub(crate) on_premises_immutable_id: Option<String>,
    pub(crate) on_premises_sync_enabled: bool,
    /// The onPremisesObjectIdentifier (beta) when it was read and set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) on_premises_object_identifier: Option<String>,
}

/// Another object that holds the row's anchor.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Holder {
    pub(crate) id: String,
    pub(crate) user_principal_name: String,
    pub(crate) deleted_date_time: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Decision {
    pub(crate) verdict: Verdict,
    pub(crate) action: Action,
    pub(crate) target: Option<TargetState>,
    pub(crate) holder: Option<Holder>,
    /// For a row that can be stamped: what the admin should look at (the detail says why).
    #[serde(default)]
    pub(crate) warnings: Warnings,
}

impl Decision {
    fn refuse(outcome: Outcome, detail: String, target: Option<&User>) -> Decision {
        Decision {
            verdict: Verdict::new(outcome, detail),
            action: Action::None,
            target: target.map(TargetState::of),
            holder: None,
            warnings: Warnings::default(),
        }
    }
}

impl TargetState {
    pub(crate) fn of(user: &User) -> TargetState {
        TargetState {
            id: user.id.clone(),
            user_principal_name: user.user_principal_name.clone(),
            on_premises_immutable_id: user.on_premises_immutable_id.clone(),
            on_premises_sync_enabled: user.on_premises_sync_enabled.unwrap_or(false),
            on_premises_object_identifier: user.object_identifier().map(str::to_string),
        }
    }
}

/// A tenant snapshot indexed for the lookups a plan makes.
pub(crate) struct TenantIndex<'t> {
    tenant: &'t Tenant,
    by_id: HashMap<String, usize>,
    by_upn: HashMap<String, usize>,
    by_address: HashMap<String, Vec<usize>>,
    by_anchor: HashMap<&'t str, usize>,
    deleted_by_anchor: HashMap<&'t str, usize>,
    deleted_by_upn: HashMap<String, usize>,
    federated: Vec<String>,
    /// Verified domains, lowercased: an on-premises UPN outside them is renamed by sync.
    verified: Vec<String>,
    privileges: Privileges,
}

impl<'t> TenantIndex<'t> {
    pub(crate) fn new(tenant: &'t Tenant) -> TenantIndex<'t> {
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
            verified: tenant
                .domains
                .iter()
                .map(|d| d.id.to_ascii_lowercase())
                .collect(),
            privileges: Privileges::new(tenant),
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
    pub(crate) fn decide(&self, subject: &Subject<'_>, options: &PlanOptions) -> Decision {
        let user = match self.find_target(subject, options.match_by) {
            Ok(user) => user,
            Err(decision) => return *decision,
        };
        match options.mode {
            Mode::Stamp => self.decide_stamp(user, subject, options.allow),
            Mode::Clear => {
                let decision = decide_clear(user, subject.anchor, options.allow);
                match self.federated_route(decision.action, user, options.allow.federated_hop) {
                    Ok(action) => Decision { action, ..decision },
                    Err(verdict) => Decision {
                        verdict,
                        action: Action::None,
                        ..decision
                    },
                }
            }
        }
    }

    /// The action that carries out a plain write (`action`) to `user`: in a federated domain,
    /// where Graph refuses it in place, the same write through the hop when `hop` allows it,
    /// else the `federated-domain` refusal. `clear` and `rollback` share it (a stamp decides
    /// this among its other steps).
    pub(crate) fn federated_route(
        &self,
        action: Action,
        user: &User,
        hop: bool,
    ) -> Result<Action, Verdict> {
        let plain = matches!(action, Action::Stamp | Action::Clear);
        if !plain || !self.is_federated(&user.user_principal_name) {
            return Ok(action);
        }
        if hop {
            return Ok(action.through_hop());
        }
        Err(Verdict::new(
            Outcome::FederatedDomain,
            format!(
                "{} is in a federated domain, where the ImmutableId cannot be changed in place; pass --federated-hop to move the UPN to the initial domain, write, and move it back",
                user.user_principal_name
            ),
        ))
    }

    /// The cloud user a row names, if exactly one.
    pub(crate) fn target_of(&self, subject: &Subject<'_>, match_by: MatchBy) -> Option<&'t User> {
        self.find_target(subject, match_by).ok()
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
                    warnings: Warnings::default(),
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
        if let Some(refused) = self.refuse_target(user, subject, anchor, allow) {
            return refused;
        }
        let purged_holder = match self.holder_to_purge(user, anchor, allow) {
            Ok(holder) => holder,
            Err(refused) => return *refused,
        };
        match self.stamp_action(user, subject, purged_holder.is_some(), allow) {
            Ok(action) => self.would_stamp(user, subject, anchor, action, purged_holder),
            Err(refused) => *refused,
        }
    }

    /// Why this target takes no stamp at all, if it does not: it holds the anchor already, is
    /// synced, the sync cycle would refuse it, it holds another anchor (without
    /// `--overwrite`), or another live user holds the anchor.
    fn refuse_target(
        &self,
        user: &'t User,
        subject: &Subject<'_>,
        anchor: &ImmutableId,
        allow: Permissions,
    ) -> Option<Decision> {
        let current = current_anchor(user);
        if current == Some(anchor.as_str()) {
            return Some(Decision::refuse(
                Outcome::AlreadyMatched,
                format!(
                    "{} already holds {anchor}; nothing to do",
                    user.user_principal_name
                ),
                Some(user),
            ));
        }
        if user.on_premises_sync_enabled == Some(true) {
            return Some(Decision::refuse(
                Outcome::TargetSynced,
                format!(
                    "{} is synced from on-premises and Graph refuses to change it; move it out of sync scope and wait for it to become cloud-only first",
                    user.user_principal_name
                ),
                Some(user),
            ));
        }
        if let Some(refused) = self.sync_would_refuse(user, subject, allow) {
            return Some(refused);
        }
        if let (Some(other), false) = (current, allow.overwrite) {
            return Some(Decision::refuse(
                Outcome::TargetHasOtherAnchor,
                format!(
                    "{} already holds another ImmutableId ({other}); pass --overwrite to replace it (the old value is recorded for rollback)",
                    user.user_principal_name
                ),
                Some(user),
            ));
        }
        let holder = &self.tenant.users[*self.by_anchor.get(anchor.as_str())?];
        (holder.id != user.id).then(|| Decision {
            verdict: Verdict::new(Outcome::AnchorHeldByUser, held_by(holder, anchor)),
            action: Action::None,
            target: Some(TargetState::of(user)),
            holder: Some(Holder::of(holder)),
            warnings: Warnings::default(),
        })
    }

    /// The deleted user that holds the anchor and must be purged first (with
    /// `--purge-deleted-holders`; refused without it), or none.
    fn holder_to_purge(
        &self,
        user: &User,
        anchor: &ImmutableId,
        allow: Permissions,
    ) -> Result<Option<Holder>, Box<Decision>> {
        let Some(&i) = self.deleted_by_anchor.get(anchor.as_str()) else {
            return Ok(None);
        };
        let holder = &self.tenant.deleted_users[i];
        if allow.purge_deleted_holders {
            return Ok(Some(Holder::of(holder)));
        }
        Err(Box::new(Decision {
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
            warnings: Warnings::default(),
        }))
    }

    /// How the stamp is sent: plainly, after a purge, through the federated hop, or after
    /// clearing onPremisesObjectIdentifier. One extra step per row: a row that needs two is
    /// refused with what to do first, rather than half done (a purge is for good, and a plain
    /// write to a federated user is refused).
    fn stamp_action(
        &self,
        user: &User,
        subject: &Subject<'_>,
        purge: bool,
        allow: Permissions,
    ) -> Result<Action, Box<Decision>> {
        let mut action = if purge {
            Action::PurgeHolderThenStamp
        } else {
            Action::Stamp
        };
        if self.is_federated(&user.user_principal_name) {
            if !allow.federated_hop {
                return Err(Box::new(Decision::refuse(
                    Outcome::FederatedDomain,
                    format!(
                        "{} is in a federated domain, where the ImmutableId cannot be changed in place; pass --federated-hop to move the UPN to the initial domain, stamp, and move it back",
                        user.user_principal_name
                    ),
                    Some(user),
                )));
            }
            if purge {
                return Err(Box::new(Decision::refuse(
                    Outcome::FederatedDomain,
                    format!(
                        "{} is in a federated domain and a deleted user holds its anchor: hardmatch does not purge and hop in one row; purge the holder first (apply --purge-deleted-holders on a managed-domain UPN, or remove it from the recycle bin), then plan again",
                        user.user_principal_name
                    ),
                    Some(user),
                )));
            }
            action = Action::FederatedHopThenStamp;
        }
        let Some(linked) = linked_elsewhere(user, subject) else {
            return Ok(action);
        };
        if action != Action::Stamp {
            return Err(Box::new(Decision::refuse(
                Outcome::TargetLinkedElsewhere,
                format!(
                    "{} has onPremisesObjectIdentifier {linked}, another on-premises object, and its stamp also needs {}: --clear-object-identifier clears it only before a plain stamp; clear it first (PATCH /beta/users/{} {{\"onPremisesObjectIdentifier\": null}}), then plan again",
                    user.user_principal_name,
                    action.code(),
                    user.id
                ),
                Some(user),
            )));
        }
        Ok(Action::ClearObjectIdentifierThenStamp)
    }

    /// The `would-stamp` decision, its detail saying what will be written and what first,
    /// with the warnings the sync cycle gives reason for.
    fn would_stamp(
        &self,
        user: &User,
        subject: &Subject<'_>,
        anchor: &ImmutableId,
        action: Action,
        purged_holder: Option<Holder>,
    ) -> Decision {
        let mut detail = match current_anchor(user) {
            Some(other) => format!("will replace {other} with {anchor} (--overwrite)"),
            None => format!("will stamp {anchor}"),
        };
        if let Some(h) = &purged_holder {
            detail.push_str(&format!(
                " after purging the deleted holder {} (id {})",
                h.user_principal_name, h.id
            ));
        }
        if action == Action::ClearObjectIdentifierThenStamp {
            if let Some(linked) = linked_elsewhere(user, subject) {
                detail.push_str(&format!(
                    " after clearing onPremisesObjectIdentifier {linked}, which links it to another on-premises object (--clear-object-identifier)"
                ));
            }
        }
        let (warnings, notes) = self.warnings(user, subject);
        for (warning, note) in notes {
            detail.push_str(&format!("; {}: {note}", warning.code()));
        }
        if let Some(guarded @ Guarded::InGroups(_)) = self.privileges.guarded(&user.id) {
            detail.push_str(&format!("; sensitive attributes: {} {guarded}: {SENSITIVE_ATTRIBUTES_RULE}; without such an app this row will be permission-denied (the run goes on)", user.user_principal_name));
        }
        Decision {
            verdict: Verdict::new(Outcome::WouldStamp, detail),
            action,
            target: Some(TargetState::of(user)),
            holder: purged_holder,
            warnings,
        }
    }

    /// The refusal of a target the next sync cycle would not hard-match onto, though Graph
    /// would take the stamp (docs/graph.md, "What the next sync cycle does with a stamp").
    fn sync_would_refuse(
        &self,
        user: &User,
        subject: &Subject<'_>,
        allow: Permissions,
    ) -> Option<Decision> {
        let upn = &user.user_principal_name;
        if user.is_external() && !allow.allow_guests {
            let what = if user
                .user_type
                .as_deref()
                .is_some_and(|t| t.eq_ignore_ascii_case("guest"))
            {
                "a guest (userType Guest)"
            } else {
                "an external member (#EXT# in its UPN)"
            };
            return Some(Decision::refuse(
                Outcome::TargetGuest,
                format!(
                    "{upn} is {what}: Entra does not match external users to on-premises users; convert it to an internal member first (POST /users/{}/convertExternalToInternalMemberUser, or Convert-MgUserExternalToInternalMemberUser), or pass --allow-guests to plan it as a member",
                    user.id
                ),
                Some(user),
            ));
        }
        let refused_link =
            linked_elsewhere(user, subject).filter(|_| !allow.clear_object_identifier);
        if let Some(linked) = refused_link {
            let own = subject.object_guid.map_or_else(
                || "the export has no objectGUID for it".to_string(),
                |g| format!("this row's objectGUID is {g}"),
            );
            return Some(Decision::refuse(
                Outcome::TargetLinkedElsewhere,
                format!(
                    "{upn} has onPremisesObjectIdentifier {linked}, another on-premises object ({own}): sync blocks a hard match onto it (\"Hard match operation blocked due to security hardening\"); pass --clear-object-identifier to clear it before the stamp (PATCH /beta/users/{} {{\"onPremisesObjectIdentifier\": null}}, journaled; it needs User-OnPremisesSyncBehavior.ReadWrite.All and a Global or Hybrid Identity Administrator, see SECURITY.md)",
                    user.id
                ),
                Some(user),
            ));
        }
        let roles = self.privileges.of(&user.id);
        if !roles.is_empty() {
            let held: Vec<String> = roles.iter().map(ToString::to_string).collect();
            return Some(Decision::refuse(
                Outcome::TargetPrivileged,
                format!(
                    "{upn} is {}: sync refuses to hard-match a user who holds or is eligible for a privileged role; remove the assignment or eligibility (or the group membership), let the sync cycle match, then restore it",
                    held.join(", ")
                ),
                Some(user),
            ));
        }
        None
    }

    /// What a row that can be stamped should make the admin look at, each with its note.
    fn warnings(&self, user: &User, subject: &Subject<'_>) -> (Warnings, Vec<(Warning, String)>) {
        let mut notes = Vec::new();
        if let Some(note) = self.upn_change(user, subject.on_premises_upn) {
            notes.push((Warning::UpnWillChange, note));
        }
        if let Some(lost) = lost_aliases(user, subject) {
            notes.push((Warning::AliasesWillBeLost, format!("sync will replace the cloud addresses with the exported ones and drop {}; add them to the AD user's proxyAddresses first to keep them", lost.join(", "))));
        }
        let own = user
            .object_identifier()
            .filter(|linked| is_own_object(linked, subject.object_guid));
        if let Some(linked) = own {
            notes.push((Warning::ObjectIdentifierSame, format!("onPremisesObjectIdentifier {linked} is this row's own objectGUID: the same on-premises object coming back (whether sync lets it match is not documented)")));
        }
        if !self.privileges.unknown().is_empty() {
            let unread: Vec<String> = self
                .privileges
                .unknown()
                .iter()
                .map(|u| u.explain())
                .collect();
            notes.push((
                Warning::RolesUnknown,
                format!(
                    "could not check for privileged roles (which sync refuses to match) or role-assignable groups (whose members and owners Graph guards): {}",
                    unread.join("; ")
                ),
            ));
        }
        if let Some(why) = &self.tenant.object_identifiers_unread {
            notes.push((Warning::ObjectIdentifierUnknown, format!("could not read onPremisesObjectIdentifier ({why}), which blocks the match when set")));
        }
        let mut warnings = Warnings::default();
        for (warning, _) in &notes {
            warnings.add(*warning);
        }
        (warnings, notes)
    }

    /// What sync will rename the user to, if anything: the on-premises UPN, or under the
    /// initial domain when its suffix is not a verified domain (docs/graph.md).
    fn upn_change(&self, user: &User, on_premises: Option<&str>) -> Option<String> {
        let on_premises = on_premises?;
        let (prefix, suffix) = on_premises.rsplit_once('@')?;
        let cloud = &user.user_principal_name;
        let verified =
            self.verified.is_empty() || self.verified.contains(&suffix.to_ascii_lowercase());
        if !verified {
            let initial = self
                .tenant
                .initial_domain()
                .unwrap_or("<initial>.onmicrosoft.com");
            return Some(format!("the on-premises UPN {on_premises} is not in a verified domain of the tenant, so sync will rename {cloud} to {prefix}@{initial}; verify {suffix} or change the AD UPN first"));
        }
        (caseless(on_premises) != caseless(cloud))
            .then(|| format!("sync will rename {cloud} to the on-premises UPN {on_premises}"))
    }

    fn is_federated(&self, upn: &str) -> bool {
        let domain = upn.rsplit_once('@').map(|(_, d)| d.to_ascii_lowercase());
        domain.is_some_and(|d| self.federated.contains(&d))
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
            warnings: Warnings::default(),
        },
    }
}

/// What to do about an active user that holds the row's anchor. A synced holder is the
/// duplicate an earlier sync cycle created: Graph refuses to clear a synced user's anchor, so
/// the way out goes through on-premises and the recycle bin.
fn held_by(holder: &User, anchor: &ImmutableId) -> String {
    let who = format!("{} (id {})", holder.user_principal_name, holder.id);
    if holder.on_premises_sync_enabled == Some(true) {
        return format!(
            "{who} already holds {anchor} and is synced from on-premises (the duplicate an earlier sync cycle created): free it by taking its on-premises object out of sync scope (or deleting it on-premises), letting the sync cycle delete the cloud copy, then purging that from the recycle bin (or --purge-deleted-holders on the next run); hardmatch clear cannot clear a synced user"
        );
    }
    format!("{who} already holds {anchor}; clear it there first (hardmatch clear) if it is the wrong account")
}

/// The ImmutableId a user holds, if any (an empty one is none).
fn current_anchor(user: &User) -> Option<&str> {
    user.on_premises_immutable_id
        .as_deref()
        .filter(|v| !v.is_empty())
}

/// The target's onPremisesObjectIdentifier when it names another on-premises object than the
/// row's own: sync blocks the hard match onto it.
fn linked_elsewhere<'u>(user: &'u User, subject: &Subject<'_>) -> Option<&'u str> {
    user.object_identifier()
        .filter(|linked| !is_own_object(linked, subject.object_guid))
}

/// Whether onPremisesObjectIdentifier names the row's own on-premises object. Graph's form
/// for the value is not documented: any GUID form hardmatch reads is compared.
fn is_own_object(linked: &str, own: Option<uuid::Uuid>) -> bool {
    let Some(own) = own else { return false };
    crate::anchor::parse(linked, AnchorKind::Guid)
        .ok()
        .and_then(|parsed| parsed.id.guid())
        == Some(own)
}

/// The cloud user's SMTP addresses the export's proxyAddresses (and mail) lack, when the
/// export has a proxyAddresses value for the row: sync writes that value over the cloud's.
fn lost_aliases(user: &User, subject: &Subject<'_>) -> Option<Vec<String>> {
    let exported = subject.proxy_addresses?;
    let kept: Vec<String> = exported
        .split([';', ',', '\n'])
        .map(str::trim)
        .filter(|a| !a.is_empty())
        .filter_map(|a| match a.split_once(':') {
            Some((scheme, address)) if scheme.eq_ignore_ascii_case("smtp") => {
                Some(caseless(address))
            }
            Some(_) => None,
            None => Some(caseless(a)),
        })
        .chain(subject.mail.map(caseless))
        .collect();
    let lost: Vec<String> = user
        .proxy_addresses
        .iter()
        .filter_map(|p| {
            let (scheme, address) = p.split_once(':')?;
            (scheme.eq_ignore_ascii_case("smtp") && !kept.contains(&caseless(address)))
                .then(|| address.to_string())
        })
        .collect();
    (!lost.is_empty()).then_some(lost)
}

impl Holder {
    pub(crate) fn of(user: &User) -> Holder {
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

    /// A user once linked to another on-premises object.
    fn linked_elsewhere_user(id: &str, upn: &str) -> User {
        User {
            on_premises_object_identifier: Some("0b0b0b0b-0000-4000-8000-000000000001".into()),
            ..user(id, upn, None, false)
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
                user("u7", "jo@fed.contoso.com", Some("JO"), false),
                linked_elsewhere_user("u8", "kim@contoso.com"),
                linked_elsewhere_user("u9", "lou@fed.contoso.com"),
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
                ..Subject::default()
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
    fn a_federated_target_whose_holder_is_deleted_is_not_purged_to_fail_its_stamp() {
        let o = PlanOptions {
            allow: Permissions {
                purge_deleted_holders: true,
                federated_hop: true,
                ..Permissions::default()
            },
            ..PlanOptions::default()
        };
        // The purge is for good, and the stamp after it could not go in place: refused whole.
        let both = decide("ivan@fed.contoso.com", "HELD-DELETED", o);
        assert_eq!(
            (both.verdict.outcome, both.action),
            (Outcome::FederatedDomain, Action::None)
        );
        assert!(both.verdict.detail.contains("purge the holder first"));
        assert_eq!(
            decide("alice@contoso.com", "HELD-DELETED", o).action,
            Action::PurgeHolderThenStamp
        );
        assert_eq!(
            decide("ivan@fed.contoso.com", "NEW", o).action,
            Action::FederatedHopThenStamp
        );
    }

    #[test]
    fn a_federated_clear_goes_through_the_hop_only_with_its_flag() {
        let mut o = PlanOptions {
            mode: Mode::Clear,
            ..PlanOptions::default()
        };
        let plain = decide("jo@fed.contoso.com", "", o);
        assert_eq!(
            (plain.verdict.outcome, plain.action),
            (Outcome::FederatedDomain, Action::None)
        );
        assert!(plain.verdict.detail.contains("--federated-hop"));
        o.allow.federated_hop = true;
        let hop = decide("jo@fed.contoso.com", "", o);
        assert_eq!(
            (hop.verdict.outcome, hop.action),
            (Outcome::WouldClear, Action::FederatedHopThenClear)
        );
        assert_eq!(
            decide("bob@contoso.com", "", o).action,
            Action::Clear,
            "a managed domain needs no hop"
        );
    }

    #[test]
    fn clear_object_identifier_plans_the_clear_before_a_plain_stamp_only() {
        let mut o = PlanOptions::default();
        let refused = decide("kim@contoso.com", "NEW", o);
        assert_eq!(refused.verdict.outcome, Outcome::TargetLinkedElsewhere);
        assert!(refused.verdict.detail.contains("--clear-object-identifier"));
        o.allow.clear_object_identifier = true;
        let cleared = decide("kim@contoso.com", "NEW", o);
        assert_eq!(
            (cleared.verdict.outcome, cleared.action),
            (Outcome::WouldStamp, Action::ClearObjectIdentifierThenStamp)
        );
        assert_eq!(
            cleared
                .target
                .unwrap()
                .on_premises_object_identifier
                .as_deref(),
            Some("0b0b0b0b-0000-4000-8000-000000000001")
        );
        assert!(!cleared.warnings.contains(Warning::ObjectIdentifierSame));
        o.allow.federated_hop = true;
        let both = decide("lou@fed.contoso.com", "NEW", o);
        assert_eq!(
            (both.verdict.outcome, both.action),
            (Outcome::TargetLinkedElsewhere, Action::None)
        );
        assert!(
            both.verdict.detail.contains("federated-hop-then-stamp"),
            "{}",
            both.verdict.detail
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
