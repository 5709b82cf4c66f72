//! Which column means what: header aliases, matched case-insensitively and ignoring spaces,
//! dashes, dots and underscores, and `--column role=Header`, which wins over them. Also the
//! file-level verdict ([`require_usable`]): a file without a way to find each cloud user, or
//! without an anchor, stops before anything else is done, with the `--column` that fixes it.

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
pub(crate) fn normalise(header: &str) -> String {
    header
        .trim()
        .trim_matches('"')
        .chars()
        .filter(|c| !matches!(c, ' ' | '-' | '_' | '.'))
        .flat_map(char::to_lowercase)
        .collect()
}

/// The role of a header by alias alone (LDIF attributes, which `--column` also maps).
pub(crate) fn role_of(header: &str, overrides: &[(Role, String)]) -> Option<Role> {
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
pub(crate) struct ColumnMap {
    pub(crate) columns: Vec<(Role, usize, Arc<str>)>,
}

impl ColumnMap {
    /// Maps a header row. `--column` mappings must name an existing header.
    pub(crate) fn new(
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

    pub(crate) fn has(&self, role: Role) -> bool {
        self.columns.iter().any(|(r, _, _)| *r == role)
    }

    pub(crate) fn roles(&self) -> Vec<Role> {
        self.columns.iter().map(|(r, _, _)| *r).collect()
    }

    /// The roles found and their headers, as [`Input::columns`](super::Input) keeps them.
    pub(crate) fn found(&self) -> Vec<(Role, Arc<str>)> {
        self.columns
            .iter()
            .map(|(r, _, h)| (*r, h.clone()))
            .collect()
    }
}

/// The roles that find each row's cloud user.
const FINDS_USER: [Role; 4] = [Role::Upn, Role::TargetUpn, Role::Mail, Role::CloudObjectId];

/// The roles that give each row's anchor.
const GIVES_ANCHOR: [Role; 3] = [Role::ObjectGuid, Role::ConsistencyGuid, Role::ImmutableId];

/// Whether a header row names any column hardmatch uses: how a workbook's header row is told
/// from a title above it.
pub(crate) fn names_a_known_column(roles: &[Role]) -> bool {
    roles
        .iter()
        .any(|r| FINDS_USER.contains(r) || GIVES_ANCHOR.contains(r))
}

/// Fails unless the file has a way to find each cloud user (a UPN, TargetUPN, mail or
/// CloudObjectId column) and, unless `anchor_optional` (`clear`), an anchor column. Without
/// one every row would fail alike after the tenant was read; this says so at once, lists the
/// headers found and suggests the `--column` that maps the closest unmapped header.
/// `found` is each mapped role with the header it came from.
pub(crate) fn require_usable(
    file: &str,
    found: &[(Role, Arc<str>)],
    headers: &[String],
    anchor_optional: bool,
) -> crate::Result<()> {
    let has = |roles: &[Role]| found.iter().any(|(r, _)| roles.contains(r));
    let (finds_user, gives_anchor) = (has(&FINDS_USER), has(&GIVES_ANCHOR));
    let (missing, kind) = match (finds_user, gives_anchor || anchor_optional) {
        (true, true) => return Ok(()),
        (false, false) => ("no anchor or UPN column", Missing::Upn),
        (false, true) => (
            "no UPN column (nothing to find each cloud user by: UserPrincipalName, TargetUPN, mail or CloudObjectId)",
            Missing::Upn,
        ),
        (true, false) => (
            "no anchor column (objectGUID, mS-DS-ConsistencyGuid or ImmutableId)",
            Missing::Anchor,
        ),
    };
    let unmapped: Vec<&str> = headers
        .iter()
        .map(|h| h.trim())
        .filter(|h| !h.is_empty() && !found.iter().any(|(_, f)| f.eq_ignore_ascii_case(h)))
        .collect();
    let hint = match kind.closest(&unmapped) {
        Some((role, header)) => format!(
            "If {header} holds the {}, run again with --column {}={header}",
            kind.what(),
            role.name()
        ),
        None => format!(
            "Map the column that holds the {} with --column ROLE=HEADER",
            kind.what()
        ),
    };
    Err(Error::Input(format!(
        "{file}: {missing}. Headers found: {}. {hint}. Known headers: {}",
        if headers.is_empty() {
            "(none)".to_string()
        } else {
            headers.join(", ")
        },
        known_aliases()
    )))
}

/// What a file lacks, and how to find the header most likely to hold it.
#[derive(Clone, Copy)]
enum Missing {
    Upn,
    Anchor,
}

impl Missing {
    fn what(self) -> &'static str {
        match self {
            Missing::Upn => "UPN",
            Missing::Anchor => "objectGUID or ImmutableId",
        }
    }

    /// Words a header holding this tends to contain, normalised (see [`normalise`]). Not
    /// `account`: sAMAccountName is no UPN, and a hint must not send the admin there.
    fn words(self) -> &'static [&'static str] {
        match self {
            Missing::Upn => &[
                "userprincipalname",
                "principal",
                "upn",
                "login",
                "logon",
                "signin",
                "username",
                "email",
                "mail",
                "user",
            ],
            Missing::Anchor => &[
                "objectguid",
                "guid",
                "uuid",
                "immutableid",
                "immutable",
                "sourceanchor",
                "anchor",
                "consistency",
                "objectid",
            ],
        }
    }

    /// The unmapped header closest to what is missing, with the role to map it to; `None`
    /// when no header is even close (then a guess would mislead).
    fn closest<'h>(self, headers: &[&'h str]) -> Option<(Role, &'h str)> {
        const CLOSE_ENOUGH: f64 = 0.8;
        let score = |header: &str| {
            let name = normalise(header);
            self.words()
                .iter()
                .map(|word| {
                    if name.contains(word) {
                        1.0
                    } else {
                        strsim::jaro_winkler(&name, word)
                    }
                })
                .fold(0.0, f64::max)
        };
        let (header, best) = headers.iter().map(|h| (*h, score(h))).fold(
            None,
            |best: Option<(&str, f64)>, (h, s)| match best {
                Some((_, b)) if b >= s => best,
                _ => Some((h, s)),
            },
        )?;
        (best >= CLOSE_ENOUGH).then(|| (self.role_for(header), header))
    }

    fn role_for(self, header: &str) -> Role {
        let name = normalise(header);
        match self {
            Missing::Upn if name.contains("mail") => Role::Mail,
            Missing::Upn => Role::Upn,
            Missing::Anchor if name.contains("immutable") || name.contains("anchor") => {
                Role::ImmutableId
            }
            Missing::Anchor if name.contains("consistency") => Role::ConsistencyGuid,
            Missing::Anchor => Role::ObjectGuid,
        }
    }
}

/// `upn (UserPrincipalName, UPN, ...), object-guid (...)`, for messages.
pub(crate) fn known_aliases() -> String {
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

    fn check(names: &[&str], anchor_optional: bool) -> Result<(), String> {
        let h = headers(names);
        let map = ColumnMap::new("f.csv", &h, &[]).unwrap();
        require_usable("f.csv", &map.found(), &h, anchor_optional).map_err(|e| e.to_string())
    }

    #[test]
    fn unusable_files_list_headers_and_aliases() {
        let message = check(&["Name", "Title"], false).unwrap_err();
        assert!(
            message.starts_with("f.csv: no anchor or UPN column. Headers found: Name, Title."),
            "{message}"
        );
        assert!(message.contains("UserPrincipalName"), "{message}");
        assert!(message.contains("--column ROLE=HEADER"), "{message}");
    }

    #[test]
    fn a_missing_column_suggests_the_closest_header() {
        let message = check(&["Login", "ObjectGUID", "Name"], false).unwrap_err();
        assert!(
            message.starts_with("f.csv: no UPN column (nothing to find each cloud user by"),
            "{message}"
        );
        assert!(
            message.contains(
                "Headers found: Login, ObjectGUID, Name. If Login holds the UPN, run again with --column upn=Login."
            ),
            "{message}"
        );
        let message = check(&["UserPrincipalName", "AD Guid", "Title"], false).unwrap_err();
        assert!(
            message.contains("no anchor column")
                && message.contains("--column object-guid=AD Guid"),
            "{message}"
        );
        let message = check(&["UserPrincipalName", "Immutable", "Title"], false).unwrap_err();
        assert!(
            message.contains("--column immutable-id=Immutable"),
            "{message}"
        );
        // Nothing close: no guess (and sAMAccountName is no UPN).
        let message = check(&["SamAccountName", "Department"], true).unwrap_err();
        assert!(
            message.contains("Map the column that holds the UPN with --column ROLE=HEADER"),
            "{message}"
        );
        // `clear` needs no anchor.
        assert!(check(&["UserPrincipalName"], true).is_ok());
        assert!(check(&["UserPrincipalName"], false).is_err());
        assert!(check(&["mail", "ImmutableId"], false).is_ok());
    }
}
