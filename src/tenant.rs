//! The tenant file: Graph-shaped users, deleted users and domains, as `hardmatch snapshot`
//! writes it, `hardmatch plan --snapshot` reads it and `hardmatch emulator --tenant` serves it.
//!
//! Field names are Graph's own (camelCase), so a user object in the file is the same JSON a
//! `GET /v1.0/users?$select=...` returns for it (plus beta's `onPremisesObjectIdentifier`).
//!
//! It also holds what decides whether the next sync cycle may hard-match a user
//! (docs/graph.md, "What the next sync cycle does with a stamp"): privileged role
//! definitions, role assignments, role eligibilities and the members of the groups that hold
//! them. [`Privileges`] is the one rule for "is this user privileged", for the planner and
//! the emulator alike. A role list that is absent (`None`) was not read: privilege is unknown.

use std::path::Path;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::error::Error;

/// A whole tenant, as far as hardmatch cares.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Tenant {
    pub tenant_id: String,
    /// When `hardmatch snapshot` read the tenant: an offline plan states its data's age.
    /// Absent in files written by hand or by hardmatch before 0.2.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub taken_at: Option<chrono::DateTime<chrono::Utc>>,
    #[serde(default)]
    pub domains: Vec<Domain>,
    #[serde(default)]
    pub users: Vec<User>,
    #[serde(default)]
    pub deleted_users: Vec<User>,
    /// `blockCloudObjectTakeoverThroughHardMatchEnabled`, when it could be read.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub block_cloud_object_takeover_through_hard_match_enabled: Option<bool>,
    /// `blockSoftMatchEnabled`, when it could be read: sync then matches by anchor only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub block_soft_match_enabled: Option<bool>,
    /// Role definitions with beta's `isPrivileged` (a snapshot keeps the privileged ones).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role_definitions: Option<Vec<RoleDefinition>>,
    /// `roleManagement/directory/roleAssignments`: who holds a role.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role_assignments: Option<Vec<RoleAssignment>>,
    /// `roleManagement/directory/roleEligibilitySchedules`: who may activate a role (PIM).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role_eligibility_schedules: Option<Vec<RoleAssignment>>,
    /// Role-assignable groups (every one, and any other principal of a privileged role) with
    /// their members and owners.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub groups: Vec<Group>,
    /// Whether every role-assignable group was listed into `groups`: false when the listing
    /// was refused and in files from before it was read, which leaves unknown who is a member
    /// or owner of one, and so whose sensitive attributes Graph guards.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub role_assignable_groups_listed: bool,
    /// Why beta's onPremisesObjectIdentifier could not be read, when a read failed: the
    /// users' values are then unknown, not empty.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub object_identifiers_unread: Option<String>,
}

/// A directory role definition.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RoleDefinition {
    pub(crate) id: String,
    #[serde(default)]
    pub(crate) display_name: Option<String>,
    /// Beta only: whether the role can change credentials, policies or other roles.
    #[serde(default)]
    pub(crate) is_privileged: Option<bool>,
}

/// A role assignment or eligibility schedule: the same fields on both.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RoleAssignment {
    #[serde(default)]
    pub(crate) id: String,
    pub(crate) principal_id: String,
    pub(crate) role_definition_id: String,
    #[serde(default)]
    pub(crate) directory_scope_id: Option<String>,
}

/// A group that may hold a role, with its members (transitive: nested groups' members too)
/// and owners.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Group {
    pub(crate) id: String,
    #[serde(default)]
    pub(crate) display_name: Option<String>,
    #[serde(default)]
    pub(crate) is_assignable_to_role: Option<bool>,
    /// Member object ids; `None` when they could not be read.
    #[serde(default)]
    pub(crate) members: Option<Vec<String>>,
    /// Owner object ids; `None` when they could not be read (or the file predates them).
    #[serde(default)]
    pub(crate) owners: Option<Vec<String>>,
}

/// How old a tenant file is, in words for the summary, and whether it is too old (or its age
/// unknown) for a plan to be trusted without a warning.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct AgeNote {
    pub(crate) text: String,
    pub(crate) stale: bool,
}

/// A verified domain of the tenant.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Domain {
    pub id: String,
    #[serde(default)]
    pub authentication_type: AuthenticationType,
    #[serde(default)]
    pub is_default: bool,
    #[serde(default)]
    pub is_initial: bool,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub enum AuthenticationType {
    #[default]
    Managed,
    Federated,
}

/// Graph writes `Managed` and `Federated`; any case is read, and anything else (or nothing)
/// is managed, since only a federated domain changes what hardmatch does.
impl<'de> Deserialize<'de> for AuthenticationType {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = Option::<String>::deserialize(deserializer)?;
        Ok(match text {
            Some(t) if t.eq_ignore_ascii_case("federated") => AuthenticationType::Federated,
            _ => AuthenticationType::Managed,
        })
    }
}

/// A list Graph may send as `null` instead of `[]`.
fn null_as_empty<'de, D: serde::Deserializer<'de>, T: Deserialize<'de>>(
    deserializer: D,
) -> Result<Vec<T>, D::Error> {
    Ok(Option::<Vec<T>>::deserialize(deserializer)?.unwrap_or_default())
}

/// A user (or a deleted user, which also has `deletedDateTime`).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct User {
    pub id: String,
    pub user_principal_name: String,
    #[serde(default)]
    pub display_name: Option<String>,
    #[serde(default)]
    pub mail: Option<String>,
    #[serde(default, deserialize_with = "null_as_empty")]
    pub proxy_addresses: Vec<String>,
    #[serde(default)]
    pub on_premises_immutable_id: Option<String>,
    #[serde(default)]
    pub on_premises_sync_enabled: Option<bool>,
    #[serde(default)]
    pub account_enabled: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deleted_date_time: Option<String>,
    /// `Member` or `Guest`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_type: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created_date_time: Option<String>,
    /// The on-premises object sync linked this user to (beta only): set, it blocks a hard
    /// match onto this user since July 2026 (docs/graph.md).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub on_premises_object_identifier: Option<String>,
    /// When sync last wrote this user (set once a sync cycle has matched or created it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub on_premises_last_sync_date_time: Option<String>,
    /// The errors sync met on this user, e.g. a hard match blocked by the 2026 hardening
    /// (docs/graph.md, "What the next sync cycle does with a stamp").
    #[serde(
        default,
        deserialize_with = "null_as_empty",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub on_premises_provisioning_errors: Vec<ProvisioningError>,
}

/// One entry of a user's `onPremisesProvisioningErrors`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ProvisioningError {
    #[serde(default)]
    pub category: Option<String>,
    #[serde(default)]
    pub occurred_date_time: Option<String>,
    #[serde(default)]
    pub property_causing_error: Option<String>,
    #[serde(default)]
    pub value: Option<String>,
}

impl ProvisioningError {
    /// The error in one line, for a report's `detail`.
    pub(crate) fn describe(&self) -> String {
        let field = |v: &Option<String>| v.as_deref().unwrap_or("?").to_string();
        format!(
            "{} on {} ({}): {}",
            field(&self.category),
            field(&self.property_causing_error),
            field(&self.occurred_date_time),
            field(&self.value)
        )
    }
}

impl User {
    /// A guest, or an external member (a B2B user made a member keeps `#EXT#` in its UPN):
    /// Entra does not match either to an on-premises user (docs/graph.md, "Guests").
    pub(crate) fn is_external(&self) -> bool {
        self.user_type
            .as_deref()
            .is_some_and(|t| t.eq_ignore_ascii_case("guest"))
            || self
                .user_principal_name
                .to_ascii_uppercase()
                .contains("#EXT#")
    }

    /// The on-premises object this user is linked to, when it is set.
    pub(crate) fn object_identifier(&self) -> Option<&str> {
        self.on_premises_object_identifier
            .as_deref()
            .map(str::trim)
            .filter(|v| !v.is_empty())
    }
}

/// One way a user holds a privileged role.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct RoleHolding {
    /// The role's display name (its id when it has none).
    pub(crate) role: String,
    /// Eligible (PIM) rather than assigned.
    pub(crate) eligible: bool,
    /// The role-assignable group it comes through, by name (its id when it has none).
    pub(crate) via_group: Option<String>,
    /// `directoryScopeId`, when not the whole directory (`/`).
    pub(crate) scope: Option<String>,
}

impl std::fmt::Display for RoleHolding {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let how = if self.eligible {
            "eligible for"
        } else {
            "assigned"
        };
        write!(f, "{how} {}", self.role)?;
        match &self.via_group {
            Some(group) => write!(f, " through the role-assignable group {group}")?,
            None => f.write_str(" directly")?,
        }
        if let Some(scope) = &self.scope {
            write!(f, " (scope {scope})")?;
        }
        Ok(())
    }
}

/// Role data that could not be read, and so leaves privilege unknown.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum UnknownRoles {
    Definitions,
    Assignments,
    Eligibilities,
    /// The members of this group (by name) could not be read.
    GroupMembers(String),
    /// The role-assignable groups were not listed: whose sensitive attributes Graph guards
    /// for being a member or owner of one is unknown.
    RoleAssignableGroups,
    /// The owners of this role-assignable group (by name) could not be read.
    GroupOwners(String),
}

impl UnknownRoles {
    /// What could not be read, and the permission (or licence) that would let it be read.
    pub(crate) fn explain(&self) -> String {
        match self {
            UnknownRoles::Definitions => "privileged role definitions (beta roleDefinitions): grant RoleManagement.Read.Directory".into(),
            UnknownRoles::Assignments => "role assignments: grant RoleManagement.Read.Directory".into(),
            UnknownRoles::Eligibilities => "role eligibilities (PIM): grant RoleEligibilitySchedule.Read.Directory (the tenant needs Entra ID P2 for PIM)".into(),
            UnknownRoles::GroupMembers(group) => format!("members of the role-assignable group {group}: grant GroupMember.Read.All"),
            UnknownRoles::RoleAssignableGroups => "the role-assignable groups, whose members and owners Graph guards like admins (a refused read, or a tenant file from before hardmatch read them): grant GroupMember.Read.All".into(),
            UnknownRoles::GroupOwners(group) => format!("owners of the role-assignable group {group}: grant GroupMember.Read.All"),
        }
    }
}

/// Graph's rule for sensitive attributes, for a row's detail (docs/graph.md).
pub(crate) const SENSITIVE_ATTRIBUTES_RULE: &str = "onPremisesImmutableId and userPrincipalName are sensitive attributes, which on a user who holds a privileged role, or is a member or owner of a role-assignable group, only an app holding Privileged Authentication Administrator or Global Administrator may change";

/// How a user belongs to a role-assignable group, which makes Graph guard its sensitive
/// attributes whether or not the group holds a role.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct GroupTie {
    /// The group's display name (its id when it has none).
    pub(crate) group: String,
    /// An owner of the group rather than a member.
    pub(crate) owner: bool,
}

impl std::fmt::Display for GroupTie {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let how = if self.owner { "an owner" } else { "a member" };
        write!(f, "{how} of the role-assignable group {}", self.group)
    }
}

/// Why Graph lets only a privileged caller change a user's onPremisesImmutableId and
/// userPrincipalName (docs/graph.md, "Sensitive attributes").
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Guarded<'p> {
    /// The user holds or is eligible for a privileged role.
    Privileged(&'p [RoleHolding]),
    /// The user holds no privileged role but is a member or owner of a role-assignable group.
    InGroups(&'p [GroupTie]),
}

impl std::fmt::Display for Guarded<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let reasons: Vec<String> = match self {
            Guarded::Privileged(roles) => roles.iter().map(ToString::to_string).collect(),
            Guarded::InGroups(ties) => ties.iter().map(ToString::to_string).collect(),
        };
        write!(f, "is {}", reasons.join(", "))
    }
}

/// Who holds or is eligible for a privileged role, directly or through a role-assignable
/// group: the rule by which sync refuses a hard match (docs/graph.md, (b) and (c)); and who
/// is, besides, a member or owner of a role-assignable group: with the privileged, whose
/// sensitive attributes Graph guards. Built once per tenant; [`Privileges::of`] and
/// [`Privileges::guarded`] per user.
#[derive(Debug, Default)]
pub(crate) struct Privileges {
    by_user: std::collections::HashMap<String, Vec<RoleHolding>>,
    ties: std::collections::HashMap<String, Vec<GroupTie>>,
    unknown: Vec<UnknownRoles>,
}

impl Privileges {
    pub(crate) fn new(tenant: &Tenant) -> Privileges {
        let mut privileges = Privileges::default();
        privileges.tie_group_members_and_owners(tenant);
        privileges.add_role_holders(tenant);
        privileges.unknown.sort();
        privileges.unknown.dedup();
        privileges
    }

    /// The members and owners of every role-assignable group, whether it holds a role or not.
    /// A group the file does not mark as not role-assignable is one: only those hold roles.
    fn tie_group_members_and_owners(&mut self, tenant: &Tenant) {
        if !tenant.role_assignable_groups_listed {
            self.unknown.push(UnknownRoles::RoleAssignableGroups);
        }
        let groups = groups_by_id(tenant);
        for group in tenant
            .groups
            .iter()
            .filter(|g| g.is_assignable_to_role != Some(false))
        {
            let name = group.name();
            match transitive_members(group, &groups) {
                Some(members) => {
                    for member in members {
                        self.tie(member, name.clone(), false);
                    }
                }
                None => self.unknown.push(UnknownRoles::GroupMembers(name.clone())),
            }
            match &group.owners {
                Some(owners) => {
                    for owner in owners {
                        self.tie(owner.to_ascii_lowercase(), name.clone(), true);
                    }
                }
                None => self.unknown.push(UnknownRoles::GroupOwners(name)),
            }
        }
    }

    fn tie(&mut self, user_id: String, group: String, owner: bool) {
        let tie = GroupTie { group, owner };
        let ties = self.ties.entry(user_id).or_default();
        if !ties.contains(&tie) {
            ties.push(tie);
        }
    }

    /// Who holds or is eligible for a privileged role, directly or through a group.
    fn add_role_holders(&mut self, tenant: &Tenant) {
        let Some(definitions) = &tenant.role_definitions else {
            self.unknown.push(UnknownRoles::Definitions);
            return;
        };
        let privileged: std::collections::HashMap<String, &RoleDefinition> = definitions
            .iter()
            .filter(|d| d.is_privileged == Some(true))
            .map(|d| (d.id.to_ascii_lowercase(), d))
            .collect();
        let groups = groups_by_id(tenant);
        for (list, eligible, unknown) in [
            (&tenant.role_assignments, false, UnknownRoles::Assignments),
            (
                &tenant.role_eligibility_schedules,
                true,
                UnknownRoles::Eligibilities,
            ),
        ] {
            let Some(list) = list else {
                self.unknown.push(unknown);
                continue;
            };
            for grant in list {
                let Some(definition) =
                    privileged.get(&grant.role_definition_id.to_ascii_lowercase())
                else {
                    continue;
                };
                let holding = |via_group: Option<String>| RoleHolding {
                    role: definition
                        .display_name
                        .clone()
                        .unwrap_or_else(|| definition.id.clone()),
                    eligible,
                    via_group,
                    scope: grant
                        .directory_scope_id
                        .clone()
                        .filter(|s| s != "/" && !s.is_empty()),
                };
                let principal = grant.principal_id.to_ascii_lowercase();
                match groups.get(&principal) {
                    None => self.add(principal, holding(None)),
                    Some(group) => {
                        let name = group.name();
                        match transitive_members(group, &groups) {
                            Some(members) => {
                                for member in members {
                                    self.add(member, holding(Some(name.clone())));
                                }
                            }
                            None => self.unknown.push(UnknownRoles::GroupMembers(name)),
                        }
                    }
                }
            }
        }
    }

    fn add(&mut self, user_id: String, holding: RoleHolding) {
        let holdings = self.by_user.entry(user_id).or_default();
        if !holdings.contains(&holding) {
            holdings.push(holding);
        }
    }

    /// The privileged roles a user holds or is eligible for, as far as they are known.
    pub(crate) fn of(&self, user_id: &str) -> &[RoleHolding] {
        self.by_user
            .get(&user_id.to_ascii_lowercase())
            .map_or(&[], Vec::as_slice)
    }

    /// Why Graph guards `user_id`'s sensitive attributes, if it does as far as is known: a
    /// privileged role comes first, since it also blocks the hard match.
    pub(crate) fn guarded(&self, user_id: &str) -> Option<Guarded<'_>> {
        let roles = self.of(user_id);
        if !roles.is_empty() {
            return Some(Guarded::Privileged(roles));
        }
        self.ties
            .get(&user_id.to_ascii_lowercase())
            .map(|ties| Guarded::InGroups(ties))
    }

    /// What could not be read: when not empty, a user with no known role may still hold one,
    /// or be guarded for a role-assignable group.
    pub(crate) fn unknown(&self) -> &[UnknownRoles] {
        &self.unknown
    }
}

/// The tenant's groups by lowercased id.
fn groups_by_id(tenant: &Tenant) -> std::collections::HashMap<String, &Group> {
    tenant
        .groups
        .iter()
        .map(|g| (g.id.to_ascii_lowercase(), g))
        .collect()
}

impl Group {
    /// The group's display name, its id when it has none.
    pub(crate) fn name(&self) -> String {
        self.display_name.clone().unwrap_or_else(|| self.id.clone())
    }
}

/// A group's members, with nested groups' members (each group visited once); `None` when
/// any group's members on the way are unknown.
fn transitive_members(
    group: &Group,
    groups: &std::collections::HashMap<String, &Group>,
) -> Option<Vec<String>> {
    let mut members = Vec::new();
    let mut seen = std::collections::HashSet::new();
    let mut queue = vec![group];
    while let Some(group) = queue.pop() {
        if !seen.insert(group.id.to_ascii_lowercase()) {
            continue;
        }
        for member in group.members.as_ref()? {
            let member = member.to_ascii_lowercase();
            match groups.get(&member) {
                Some(nested) => queue.push(nested),
                None => members.push(member),
            }
        }
    }
    Some(members)
}

/// The form in which two UPNs or mail addresses are compared: letters without regard to
/// case, and nothing else folded. A character folds only to a lowercase letter whose
/// uppercase is that character again, and a character outside ASCII never folds into ASCII:
/// the Kelvin sign `K` is not `k`, a Cyrillic `а` is not a Latin `a`, a fullwidth `＠` is not
/// `@`, so that a look-alike can never find another user. (How Graph folds letters outside
/// ASCII is not documented; folding less than Graph can only miss a user, never find the
/// wrong one.)
pub(crate) fn caseless(text: &str) -> String {
    if text.is_ascii() {
        return text.to_ascii_lowercase();
    }
    text.chars().map(fold).collect()
}

/// One character of [`caseless`].
pub(crate) fn fold(c: char) -> char {
    if c.is_ascii() {
        return c.to_ascii_lowercase();
    }
    let mut lower = c.to_lowercase();
    match (lower.next(), lower.next()) {
        (Some(l), None) if l != c && !l.is_ascii() && l.to_uppercase().eq([c]) => l,
        _ => c,
    }
}

impl Tenant {
    /// The tenant's initial `*.onmicrosoft.com` domain, the federated hop's stopover.
    pub(crate) fn initial_domain(&self) -> Option<&str> {
        self.domains
            .iter()
            .find(|d| d.is_initial)
            .map(|d| d.id.as_str())
    }

    /// Reads a tenant file, naming the file and the JSON position on error.
    pub fn load(path: &Path) -> crate::Result<Tenant> {
        let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
        serde_json::from_slice(&bytes).map_err(|e| Error::Tenant {
            path: path.to_owned(),
            message: format!("not a tenant file: {e}"),
        })
    }

    /// When the tenant blocks hard-match takeover of cloud users, a stamp is written but the
    /// next sync cycle refuses to match: the admin must hear it before stamping, not after.
    pub(crate) fn takeover_warning(&self) -> Option<String> {
        (self.block_cloud_object_takeover_through_hard_match_enabled == Some(true)).then(|| {
            "this tenant blocks hard-match takeover (onPremisesSynchronization feature blockCloudObjectTakeoverThroughHardMatchEnabled is on): stamped cloud users will not be matched by sync until it is turned off (Update-MgDirectoryOnPremiseSynchronization); turn it back on after the first sync cycle".to_string()
        })
    }

    /// The report summary's line on the takeover setting: a warning when it blocks, and a
    /// reminder to check it when it could not be read (Graph serves it to delegated sign-in
    /// only, so an app signing in as itself never sees it).
    pub(crate) fn takeover_note(&self) -> (String, String) {
        match (
            self.block_cloud_object_takeover_through_hard_match_enabled,
            self.takeover_warning(),
        ) {
            (_, Some(warning)) => ("WARNING".into(), warning),
            (Some(_), None) => ("hard-match takeover".into(), "allowed by the tenant".into()),
            (None, None) => (
                "hard-match takeover".into(),
                "the tenant setting could not be read (Graph shows it to delegated sign-in only); check blockCloudObjectTakeoverThroughHardMatchEnabled is off before the sync cycle".into(),
            ),
        }
    }

    /// The report summary's line on how old an offline tenant file is, and whether that is
    /// older than `max_age` (or unknown): a board must not approve a plan made from a tenant
    /// that has moved on since.
    pub(crate) fn age_note(
        &self,
        now: chrono::DateTime<chrono::Utc>,
        max_age: Duration,
    ) -> AgeNote {
        let Some(taken_at) = self.taken_at else {
            return AgeNote {
                text: "unknown: the tenant file does not say when it was read (written by hand or by an older hardmatch); take a new one with `hardmatch snapshot`".into(),
                stale: true,
            };
        };
        let age = (now - taken_at).to_std().unwrap_or_default();
        let rounded = Duration::from_secs(age.as_secs() / 60 * 60);
        let shown = if rounded.is_zero() {
            "under a minute".to_string()
        } else {
            humantime::format_duration(rounded).to_string()
        };
        let stale = age > max_age;
        let mut text = format!(
            "read {} ({shown} ago)",
            taken_at.format("%Y-%m-%d %H:%M:%S UTC")
        );
        if stale {
            text.push_str(&format!(
                ", older than --max-snapshot-age {}: take a new one with `hardmatch snapshot` before a board approves this plan",
                humantime::format_duration(max_age)
            ));
        }
        AgeNote { text, stale }
    }

    /// The enabled, cloud-only member users that `covered` (caseless ids and UPNs) does not
    /// name: the accounts a wave forgot, which no sync cycle will match (`--uncovered`).
    pub(crate) fn uncovered(&self, covered: &std::collections::HashSet<String>) -> Vec<&User> {
        self.users
            .iter()
            .filter(|u| u.account_enabled != Some(false))
            .filter(|u| u.on_premises_sync_enabled != Some(true))
            .filter(|u| !u.is_external())
            .filter(|u| {
                !covered.contains(&caseless(&u.id))
                    && !covered.contains(&caseless(&u.user_principal_name))
            })
            .collect()
    }

    /// The privileged roles `user_id` holds or is eligible for, directly or through a group
    /// ([`Privileges`]; build that once for many users).
    #[cfg(test)]
    pub(crate) fn privileged_roles(&self, user_id: &str) -> Vec<RoleHolding> {
        Privileges::new(self).of(user_id).to_vec()
    }

    /// The summary's lines on what the next sync cycle's match was checked against: the
    /// privileged roles (or which permission would let them be read), and
    /// onPremisesObjectIdentifier when it could not be read.
    pub(crate) fn sync_check_notes(&self) -> Vec<(String, String)> {
        let privileges = Privileges::new(self);
        let mut notes = vec![if privileges.unknown().is_empty() {
            (
                "privileged roles".to_string(),
                format!(
                    "checked: {} privileged role definitions, {} assignments, {} eligibilities, {} role-assignable groups",
                    self.role_definitions.as_ref().map_or(0, Vec::len),
                    self.role_assignments.as_ref().map_or(0, Vec::len),
                    self.role_eligibility_schedules.as_ref().map_or(0, Vec::len),
                    self.groups.len()
                ),
            )
        } else {
            let unread: Vec<String> = privileges
                .unknown()
                .iter()
                .map(UnknownRoles::explain)
                .collect();
            (
                "WARNING roles-unknown".to_string(),
                format!(
                    "sync refuses to match privileged users, and Graph guards them and the members and owners of role-assignable groups, but these could not be read: {}; rows that would be stamped carry roles-unknown",
                    unread.join("; ")
                ),
            )
        }];
        if let Some(why) = &self.object_identifiers_unread {
            notes.push((
                "WARNING object-identifier-unknown".to_string(),
                format!("onPremisesObjectIdentifier (beta, User.Read.All) could not be read ({why}); rows that would be stamped carry object-identifier-unknown"),
            ));
        }
        notes
    }

    /// The summary's line on the targets to be stamped (`stamped`, by object id) that Graph
    /// guards only for being members or owners of role-assignable groups: the hard-match
    /// hardening lets them match, but only a privileged app may write them.
    pub(crate) fn guarded_targets_note<'a>(
        &self,
        stamped: impl Iterator<Item = &'a str>,
    ) -> Option<(String, String)> {
        let privileges = Privileges::new(self);
        let users = self.users_by_id();
        let guarded: Vec<&str> = stamped
            .filter(|id| matches!(privileges.guarded(id), Some(Guarded::InGroups(_))))
            .map(|id| users.get(id).map_or(id, |u| u.user_principal_name.as_str()))
            .collect();
        let (first, more) = guarded.split_at(guarded.len().min(5));
        let more = match more.len() {
            0 => String::new(),
            n => format!(" and {n} more"),
        };
        (!guarded.is_empty()).then(|| {
            (
                "WARNING sensitive attributes".to_string(),
                format!(
                    "{} rows to stamp are members or owners of role-assignable groups ({}{more}): {SENSITIVE_ATTRIBUTES_RULE}; without such an app they will be permission-denied (the run goes on)",
                    guarded.len(),
                    first.join(", ")
                ),
            )
        })
    }

    /// Users by object id, for the many lookups by id a run makes.
    pub(crate) fn users_by_id(&self) -> std::collections::HashMap<&str, &User> {
        self.users.iter().map(|u| (u.id.as_str(), u)).collect()
    }

    /// Writes the tenant file (pretty JSON, so a change board can diff it), readable by its
    /// owner only: it lists every user of the tenant.
    pub fn save(&self, path: &Path) -> crate::Result<()> {
        let json = serde_json::to_vec_pretty(self).expect("tenant serializes");
        crate::private::create(path)
            .and_then(|mut file| std::io::Write::write_all(&mut file, &json))
            .map_err(|e| Error::io(path, e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_tenant_file_says_how_old_it_is_and_warns_past_the_limit_or_without_a_time() {
        let now: chrono::DateTime<chrono::Utc> = "2026-12-03T12:00:00Z".parse().unwrap();
        let day = Duration::from_secs(86_400);
        let at = |taken: &str| Tenant {
            taken_at: Some(taken.parse().unwrap()),
            ..Tenant::default()
        };

        let fresh = at("2026-12-03T09:30:00Z").age_note(now, day);
        assert_eq!(fresh.text, "read 2026-12-03 09:30:00 UTC (2h 30m ago)");
        assert!(!fresh.stale);

        let old = at("2026-11-30T12:00:00Z").age_note(now, day);
        assert!(old.stale);
        assert!(
            old.text.starts_with(
                "read 2026-11-30 12:00:00 UTC (3days ago), older than --max-snapshot-age 1day"
            ),
            "{}",
            old.text
        );

        assert!(at("2026-11-30T12:00:00Z")
            .age_note(now, day * 7)
            .text
            .ends_with("(3days ago)"));
        assert!(at("2026-12-03T11:59:30Z")
            .age_note(now, day)
            .text
            .ends_with("(under a minute ago)"));

        let unknown = Tenant::default().age_note(now, day);
        assert!(unknown.stale);
        assert!(unknown.text.starts_with("unknown"), "{}", unknown.text);
    }

    #[test]
    fn case_folds_but_look_alikes_do_not() {
        assert_eq!(
            caseless("Kate.O'Brien@Contoso.COM"),
            "kate.o'brien@contoso.com"
        );
        assert_eq!(caseless("ÉLODIE.ÅSTRÖM@x.com"), "élodie.åström@x.com");
        assert_eq!(caseless("АЛИСА@x.com"), "алиса@x.com");
        for (look_alike, plain) in [
            ("\u{212a}ate@x.com", "kate@x.com"),
            ("\u{430}lice@x.com", "alice@x.com"),
            ("bob\u{ff20}x.com", "bob@x.com"),
            ("\u{130}van@x.com", "ivan@x.com"),
            ("\u{17f}am@x.com", "sam@x.com"),
            ("\u{131}van@x.com", "ivan@x.com"),
            ("\u{2126}mega@x.com", "\u{3c9}mega@x.com"),
            ("\u{212b}ke@x.com", "\u{e5}ke@x.com"),
        ] {
            assert_ne!(caseless(look_alike), caseless(plain), "{look_alike}");
        }
    }

    #[test]
    fn privilege_comes_directly_eligibly_or_through_nested_groups_and_unread_is_unknown() {
        let grant = |principal: &str, role: &str| RoleAssignment {
            principal_id: principal.into(),
            role_definition_id: role.into(),
            ..RoleAssignment::default()
        };
        let group = |id: &str, members: Option<&[&str]>| Group {
            id: id.into(),
            display_name: Some(format!("group {id}")),
            members: members.map(|m| m.iter().map(|s| s.to_string()).collect()),
            owners: Some(Vec::new()),
            ..Group::default()
        };
        let mut tenant = Tenant {
            role_definitions: Some(vec![
                RoleDefinition {
                    id: "GA".into(),
                    display_name: Some("Global Administrator".into()),
                    is_privileged: Some(true),
                },
                RoleDefinition {
                    id: "reader".into(),
                    is_privileged: Some(false),
                    ..RoleDefinition::default()
                },
            ]),
            role_assignments: Some(vec![
                grant("U1", "ga"),
                grant("u2", "reader"),
                grant("outer", "GA"),
            ]),
            role_eligibility_schedules: Some(vec![grant("u4", "GA")]),
            groups: vec![
                group("outer", Some(&["inner", "u5"])),
                group("inner", Some(&["u6", "outer"])),
            ],
            role_assignable_groups_listed: true,
            ..Tenant::default()
        };
        let privileges = Privileges::new(&tenant);
        assert!(privileges.unknown().is_empty());
        assert_eq!(
            privileges.of("u1")[0].to_string(),
            "assigned Global Administrator directly"
        );
        assert!(
            privileges.of("u2").is_empty(),
            "a role that is not privileged"
        );
        assert_eq!(
            privileges.of("u4")[0].to_string(),
            "eligible for Global Administrator directly"
        );
        assert_eq!(
            privileges.of("U6")[0].to_string(),
            "assigned Global Administrator through the role-assignable group group outer"
        );
        assert_eq!(privileges.of("u5").len(), 1);
        assert_eq!(tenant.privileged_roles("u6").len(), 1);

        tenant.groups[1].members = None;
        tenant.role_eligibility_schedules = None;
        let privileges = Privileges::new(&tenant);
        assert_eq!(
            privileges.unknown(),
            [
                UnknownRoles::Eligibilities,
                UnknownRoles::GroupMembers("group inner".into()),
                UnknownRoles::GroupMembers("group outer".into())
            ]
        );
        tenant.role_definitions = None;
        assert_eq!(
            Privileges::new(&tenant).unknown(),
            [
                UnknownRoles::Definitions,
                UnknownRoles::GroupMembers("group inner".into()),
                UnknownRoles::GroupMembers("group outer".into())
            ],
            "members unread leave the guard unknown, even with no role data"
        );
    }

    #[test]
    fn members_and_owners_of_role_assignable_groups_are_guarded_with_or_without_a_role() {
        let group = |id: &str, members: Option<&[&str]>, owners: Option<&[&str]>| Group {
            id: id.into(),
            display_name: Some(format!("group {id}")),
            is_assignable_to_role: Some(true),
            members: members.map(|m| m.iter().map(|s| s.to_string()).collect()),
            owners: owners.map(|m| m.iter().map(|s| s.to_string()).collect()),
        };
        let mut tenant = Tenant {
            role_definitions: Some(vec![RoleDefinition {
                id: "GA".into(),
                display_name: Some("Global Administrator".into()),
                is_privileged: Some(true),
            }]),
            role_assignments: Some(vec![RoleAssignment {
                principal_id: "admins".into(),
                role_definition_id: "GA".into(),
                ..RoleAssignment::default()
            }]),
            role_eligibility_schedules: Some(Vec::new()),
            groups: vec![
                group("admins", Some(&["u1"]), Some(&["u2"])),
                group("helpdesk", Some(&["U3"]), Some(&["u4", "u1"])),
            ],
            role_assignable_groups_listed: true,
            ..Tenant::default()
        };
        let privileges = Privileges::new(&tenant);
        assert!(
            privileges.unknown().is_empty(),
            "{:?}",
            privileges.unknown()
        );
        let why = |user: &str| privileges.guarded(user).map(|g| g.to_string());
        assert_eq!(
            why("u1").as_deref(),
            Some("is assigned Global Administrator through the role-assignable group group admins"),
            "a role comes first"
        );
        assert_eq!(
            why("u2").as_deref(),
            Some("is an owner of the role-assignable group group admins"),
            "owners do not hold the group's role, but are guarded"
        );
        assert!(privileges.of("u2").is_empty());
        assert_eq!(
            why("u3").as_deref(),
            Some("is a member of the role-assignable group group helpdesk")
        );
        assert!(matches!(
            privileges.guarded("u4"),
            Some(Guarded::InGroups(_))
        ));
        assert_eq!(why("u5"), None);

        tenant.groups[1].owners = None;
        tenant.role_assignable_groups_listed = false;
        assert_eq!(
            Privileges::new(&tenant).unknown(),
            [
                UnknownRoles::RoleAssignableGroups,
                UnknownRoles::GroupOwners("group helpdesk".into())
            ]
        );
        let old_file: Tenant = serde_json::from_str(
            r#"{"tenantId":"t","roleDefinitions":[],"roleAssignments":[],"roleEligibilitySchedules":[],"groups":[{"id":"g","members":["u1"]}]}"#,
        )
        .unwrap();
        assert_eq!(
            Privileges::new(&old_file).unknown(),
            [
                UnknownRoles::RoleAssignableGroups,
                UnknownRoles::GroupOwners("g".into())
            ],
            "a file from before the groups were listed leaves the guard unknown"
        );
    }

    #[test]
    fn graph_shapes_a_stand_in_may_send_are_read() {
        let user: User = serde_json::from_str(
            r#"{"id":"1","userPrincipalName":"a@b.com","proxyAddresses":null,"extra":1}"#,
        )
        .unwrap();
        assert!(user.proxy_addresses.is_empty());
        let domains: Vec<Domain> = serde_json::from_str(
            r#"[{"id":"a.com","authenticationType":"federated"},{"id":"b.com"},{"id":"c.com","authenticationType":null}]"#,
        )
        .unwrap();
        let kinds: Vec<_> = domains.iter().map(|d| d.authentication_type).collect();
        assert_eq!(
            kinds,
            [
                AuthenticationType::Federated,
                AuthenticationType::Managed,
                AuthenticationType::Managed
            ]
        );
    }
}
