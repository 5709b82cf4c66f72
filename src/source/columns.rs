//! Which column means what: header aliases, matched case-insensitively and ignoring spaces,
//! dashes, dots and underscores, and `--column role=Header`, which wins over them.

use std::sync::Arc;

use super::Role;
use crate::error::Error;

/// Known header names per role, best first. Normalised (see [`normalise`]).
const ALIASES: [(Role, &[&str]); Role::COUNT] = [
    (
        Role::Upn,
        &[
            "userprincipalname",
            "upn",
            "onpremisesuserprincipalname",
            "sourceupn",
        ],
    ),
    (Role::ObjectGuid, &["objectguid", "guid", "adobjectguid"]),
    (
        Role::ConsistencyGuid,
        &["msdsconsistencyguid", "consistencyguid"],
    ),
    (
        Role::ImmutableId,
        &["immutableid", "sourceanchor", "onpremisesimmutableid"],
    ),
    (
        Role::Mail,
        &[
            "mail",
            "emailaddress",
            "email",
            "primarysmtpaddress",
            "windowsemailaddress",
        ],
    ),
    (
        Role::TargetUpn,
        &[
            "targetupn",
            "clouduserprincipalname",
            "cloudupn",
            "newupn",
            "targetuserprincipalname",
        ],
    ),
    (
        Role::CloudObjectId,
        &[
            "cloudobjectid",
            "entraobjectid",
            "azureobjectid",
            "azureadobjectid",
            "externaldirectoryobjectid",
            "objectid",
        ],
    ),
    (Role::DisplayName, &["displayname", "name", "cn"]),
    (Role::ObjectClass, &["objectclass"]),
    (Role::DistinguishedName, &["distinguishedname", "dn"]),
    (Role::ProxyAddresses, &["proxyaddresses", "proxyaddress"]),
];

/// Lowercase, without spaces, dashes, dots and underscores: `mS-DS-ConsistencyGuid` and
/// `msDS-ConsistencyGuid` both become `msdsconsistencyguid`.
pub fn normalise(header: &str) -> String {
    header
        .trim()
        .trim_matches('"')
        .chars()
        .filter(|c| !matches!(c, ' ' | '-' | '_' | '.'))
        .flat_map(char::to_lowercase)
        .collect()
}

/// The role of a header by alias alone (LDIF attributes, which `--column` also maps).
pub fn role_of(header: &str, overrides: &[(Role, String)]) -> Option<Role> {
    if let Some((role, _)) = overrides
        .iter()
        .find(|(_, h)| h.eq_ignore_ascii_case(header.trim()))
    {
        return Some(*role);
    }
    let name = normalise(header);
    ALIASES
        .iter()
        .find(|(role, aliases)| {
            aliases.contains(&name.as_str()) && !overrides.iter().any(|(r, _)| r == role)
        })
        .map(|(role, _)| *role)
}

/// A header row mapped to roles: for each role, the column index and the header as written.
#[derive(Clone, Debug, Default)]
pub struct ColumnMap {
    pub columns: Vec<(Role, usize, Arc<str>)>,
}

impl ColumnMap {
    /// Maps a header row. `--column` mappings must name an existing header.
    pub fn new(
        file: &str,
        headers: &[String],
        overrides: &[(Role, String)],
    ) -> crate::Result<ColumnMap> {
        let mut map = ColumnMap::default();
        for (role, wanted) in overrides {
            let index = headers
                .iter()
                .position(|h| h.trim().eq_ignore_ascii_case(wanted))
                .ok_or_else(|| {
                    Error::Input(format!(
                        "{file}: --column {}={wanted}: no such header; the headers are: {}",
                        role.name(),
                        headers.join(", ")
                    ))
                })?;
            map.columns
                .push((*role, index, Arc::from(headers[index].trim())));
        }
        let normalised: Vec<String> = headers.iter().map(|h| normalise(h)).collect();
        for (role, aliases) in ALIASES {
            if map.has(role) {
                continue;
            }
            let found = aliases
                .iter()
                .find_map(|alias| normalised.iter().position(|h| h == alias));
            if let Some(index) = found.filter(|i| !map.columns.iter().any(|(_, c, _)| c == i)) {
                map.columns
                    .push((role, index, Arc::from(headers[index].trim())));
            }
        }
        Ok(map)
    }

    pub fn has(&self, role: Role) -> bool {
        self.columns.iter().any(|(r, _, _)| *r == role)
    }

    pub fn roles(&self) -> Vec<Role> {
        self.columns.iter().map(|(r, _, _)| *r).collect()
    }

    /// The roles found and their headers, as [`Input::columns`](super::Input) keeps them.
    pub fn found(&self) -> Vec<(Role, Arc<str>)> {
        self.columns
            .iter()
            .map(|(r, _, h)| (*r, h.clone()))
            .collect()
    }
}

/// Fails unless the mapped roles can identify a user: an anchor column or a way to find the
/// cloud user. Lists the headers found and the aliases known, so the fix is one `--column`.
pub fn require_usable(file: &str, roles: &[Role], headers: &[String]) -> crate::Result<()> {
    let usable = [
        Role::ObjectGuid,
        Role::ConsistencyGuid,
        Role::ImmutableId,
        Role::Upn,
        Role::TargetUpn,
        Role::Mail,
        Role::CloudObjectId,
    ];
    if roles.iter().any(|r| usable.contains(r)) {
        return Ok(());
    }
    Err(Error::Input(format!(
        "{file}: no anchor or UPN column. Headers found: {}. Known headers: {}. Map one by hand with --column ROLE=HEADER",
        if headers.is_empty() { "(none)".to_string() } else { headers.join(", ") },
        known_aliases()
    )))
}

/// `upn (UserPrincipalName, UPN, ...), object-guid (...)`, for messages.
pub fn known_aliases() -> String {
    const SHOWN: [(Role, &str); 7] = [
        (Role::Upn, "UserPrincipalName, UPN"),
        (Role::ObjectGuid, "ObjectGUID, GUID"),
        (
            Role::ConsistencyGuid,
            "mS-DS-ConsistencyGuid, ConsistencyGuid",
        ),
        (
            Role::ImmutableId,
            "ImmutableId, sourceAnchor, onPremisesImmutableId",
        ),
        (Role::Mail, "mail, EmailAddress, PrimarySmtpAddress"),
        (Role::TargetUpn, "TargetUPN, CloudUPN, NewUPN"),
        (
            Role::CloudObjectId,
            "CloudObjectId, ObjectId, EntraObjectId",
        ),
    ];
    SHOWN
        .iter()
        .map(|(role, names)| format!("{} ({names})", role.name()))
        .collect::<Vec<_>>()
        .join("; ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(names: &[&str]) -> Vec<String> {
        names.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn aliases_and_overrides() {
        let h = headers(&[
            "Name",
            "DisplayName",
            "msDS-ConsistencyGuid",
            "Login",
            "ObjectGUID",
        ]);
        let map = ColumnMap::new("f.csv", &h, &[(Role::Upn, "login".into())]).unwrap();
        let index = |role| {
            map.columns
                .iter()
                .find(|(r, _, _)| *r == role)
                .map(|(_, i, _)| *i)
        };
        assert_eq!(index(Role::Upn), Some(3));
        assert_eq!(index(Role::DisplayName), Some(1), "displayName beats Name");
        assert_eq!(index(Role::ConsistencyGuid), Some(2));
        assert_eq!(index(Role::ObjectGuid), Some(4));
        let err = ColumnMap::new("f.csv", &h, &[(Role::Upn, "nope".into())]).unwrap_err();
        assert!(
            err.to_string()
                .contains("--column upn=nope: no such header"),
            "{err}"
        );
    }

    #[test]
    fn unusable_files_list_headers_and_aliases() {
        let err = require_usable("f.csv", &[Role::DisplayName], &headers(&["Name", "Title"]))
            .unwrap_err();
        let message = err.to_string();
        assert!(
            message.starts_with("f.csv: no anchor or UPN column. Headers found: Name, Title."),
            "{message}"
        );
        assert!(message.contains("UserPrincipalName"), "{message}");
    }
}
