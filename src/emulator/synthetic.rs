//! Generated migrations for rehearsals, benchmarks and tests: `n` cloud-only users in a
//! one-domain tenant, and the Get-ADUser export that matches them row for row. User `i` is
//! `user{i}@contoso.com`; its on-premises objectGUID is [`guid`]`(i)`.

use crate::anchor::ImmutableId;
use crate::tenant::{
    AuthenticationType, Domain, Group, RoleAssignment, RoleDefinition, Tenant, User,
};

/// The on-premises objectGUID of user `i`.
pub fn guid(i: usize) -> uuid::Uuid {
    uuid::Uuid::from_u128(0x1234_0000_0000_4000_8000_0000_0000_0000 + i as u128)
}

/// The cloud object id of user `i`.
pub fn cloud_id(i: usize) -> String {
    uuid::Uuid::from_u128(0xAAAA_0000_0000_4000_8000_0000_0000_0000 + i as u128).to_string()
}

/// A tenant of `n` cloud-only users with no anchor yet.
pub fn tenant(n: usize) -> Tenant {
    Tenant {
        tenant_id: "generated".into(),
        taken_at: None,
        domains: vec![Domain {
            id: "contoso.com".into(),
            ..Domain::default()
        }],
        users: (0..n)
            .map(|i| User {
                id: cloud_id(i),
                user_principal_name: format!("user{i}@contoso.com"),
                mail: Some(format!("user{i}@contoso.com")),
                proxy_addresses: vec![format!("SMTP:user{i}@contoso.com")],
                ..User::default()
            })
            .collect(),
        ..Tenant::default()
    }
}

/// Gives a generated tenant the role data of a large organisation: a privileged and a
/// non-privileged role, `assigned` users holding the privileged one (users 0, 7, 14, ...),
/// `eligible` users eligible for it (users 3, 10, 17, ...), and `groups` role-assignable
/// groups of ten members each (users from 5, every 11th) holding it. The users named are
/// spread over the tenant, so a migration of its first rows meets a few of them.
pub fn add_roles(tenant: &mut Tenant, assigned: usize, eligible: usize, groups: usize) {
    let privileged = "62e90394-69f5-4237-9190-012177145e10";
    let helpdesk = "729827e3-9c14-49f7-bb1b-9608f156bbb8";
    let n = tenant.users.len().max(1);
    let grant = |principal: String, role: &str| RoleAssignment {
        id: uuid::Uuid::new_v4().to_string(),
        principal_id: principal,
        role_definition_id: role.into(),
        directory_scope_id: Some("/".into()),
    };
    tenant.role_definitions = Some(vec![
        RoleDefinition {
            id: privileged.into(),
            display_name: Some("Global Administrator".into()),
            is_privileged: Some(true),
        },
        RoleDefinition {
            id: helpdesk.into(),
            display_name: Some("Helpdesk Administrator".into()),
            is_privileged: Some(false),
        },
    ]);
    let groups: Vec<Group> = (0..groups)
        .map(|g| Group {
            id: uuid::Uuid::from_u128(0x6666_0000_0000_4000_8000_0000_0000_0000 + g as u128)
                .to_string(),
            display_name: Some(format!("Tier 0 group {g}")),
            is_assignable_to_role: Some(true),
            members: Some(
                (0..10)
                    .map(|m| cloud_id((5 + 11 * (g * 10 + m)) % n))
                    .collect(),
            ),
            owners: Some(Vec::new()),
        })
        .collect();
    let mut assignments: Vec<RoleAssignment> = (0..assigned)
        .map(|i| grant(cloud_id((7 * i) % n), privileged))
        .chain((0..assigned).map(|i| grant(cloud_id((7 * i + 1) % n), helpdesk)))
        .collect();
    assignments.extend(groups.iter().map(|g| grant(g.id.clone(), privileged)));
    tenant.role_assignments = Some(assignments);
    tenant.role_eligibility_schedules = Some(
        (0..eligible)
            .map(|i| grant(cloud_id((3 + 7 * i) % n), privileged))
            .collect(),
    );
    tenant.groups = groups;
}

/// Adds a role-assignable group that holds no role, with generated users `members` and
/// `owners`: Graph guards their sensitive attributes all the same (docs/graph.md).
pub fn add_role_assignable_group(
    tenant: &mut Tenant,
    name: &str,
    members: &[usize],
    owners: &[usize],
) {
    let ids = |users: &[usize]| Some(users.iter().map(|&i| cloud_id(i)).collect());
    tenant.groups.push(Group {
        id: uuid::Uuid::from_u128(
            0x7777_0000_0000_4000_8000_0000_0000_0000 + tenant.groups.len() as u128,
        )
        .to_string(),
        display_name: Some(name.into()),
        is_assignable_to_role: Some(true),
        members: ids(members),
        owners: ids(owners),
    });
}

/// The same tenant with contoso.com federated: every row needs the federated hop (three
/// writes), through the initial domain contoso.onmicrosoft.com.
pub fn federated(n: usize) -> Tenant {
    let mut tenant = tenant(n);
    tenant.domains[0].authentication_type = AuthenticationType::Federated;
    tenant.domains.push(Domain {
        id: "contoso.onmicrosoft.com".into(),
        is_initial: true,
        ..Domain::default()
    });
    tenant
}

/// The same tenant with each user's anchor held by a user in the recycle bin: every row needs
/// a purge and a stamp (two writes).
pub fn deleted_holders(n: usize) -> Tenant {
    let mut tenant = tenant(n);
    tenant.deleted_users = (0..n)
        .map(|i| User {
            id: uuid::Uuid::from_u128(0xDDDD_0000_0000_4000_8000_0000_0000_0000 + i as u128)
                .to_string(),
            user_principal_name: format!("old{i}@contoso.com"),
            on_premises_immutable_id: Some(ImmutableId::from_guid(guid(i)).to_string()),
            deleted_date_time: Some("2026-11-01T00:00:00Z".into()),
            ..User::default()
        })
        .collect();
    tenant
}

/// The Windows PowerShell Export-Csv of those users (every field quoted, CRLF).
pub fn export_csv(n: usize) -> String {
    let mut csv = String::from("\"UserPrincipalName\",\"ObjectGUID\"\r\n");
    for i in 0..n {
        csv.push_str(&format!("\"user{i}@contoso.com\",\"{}\"\r\n", guid(i)));
    }
    csv
}
