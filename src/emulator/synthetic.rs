//! Generated migrations for rehearsals, benchmarks and tests: `n` cloud-only users in a
//! one-domain tenant, and the Get-ADUser export that matches them row for row. User `i` is
//! `user{i}@contoso.com`; its on-premises objectGUID is [`guid`]`(i)`.

use crate::anchor::ImmutableId;
use crate::tenant::{AuthenticationType, Domain, Tenant, User};

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
