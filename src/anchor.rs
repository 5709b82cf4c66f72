//! The ImmutableId (Graph's `onPremisesImmutableId`, Entra Connect's `sourceAnchor`) and every
//! form an anchor arrives in or is shown in.
//!
//! [`parse`] accepts what admins paste and exports contain and says which [`AnchorForm`] it
//! saw; [`ImmutableId`] converts to every output form. An objectGUID becomes an ImmutableId as
//! base64 of its bytes in .NET `Guid.ToByteArray()` order (`Uuid::to_bytes_le`); AD tools show
//! those same bytes as hex "in AD byte order" (docs/graph.md).
//!
//! One ambiguity is settled by rule: 32 bare hex digits are read as hex in AD byte order (what
//! ldp, ADSI Edit and csvde show), not as .NET "N" GUID text; braces or dashes make GUID text.
//! `hardmatch convert` prints the other reading when a value could be both.

use std::fmt;

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;
use uuid::Uuid;

/// An `onPremisesImmutableId` value, exactly as Graph stores it.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ImmutableId(String);

/// Graph's rule for the value: fewer characters than this (graph user resource).
pub const MAX_LEN: usize = 60;

impl ImmutableId {
    /// The ImmutableId of an objectGUID: base64 of its bytes in .NET order.
    pub fn from_guid(guid: Uuid) -> ImmutableId {
        ImmutableId::from_ad_bytes(guid.to_bytes_le())
    }

    /// The ImmutableId of 16 bytes in AD byte order (as ldifde and csvde export them).
    pub(crate) fn from_ad_bytes(bytes: [u8; 16]) -> ImmutableId {
        ImmutableId(BASE64.encode(bytes))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The 16 bytes behind a GUID-based ImmutableId; `None` for a custom string anchor.
    pub fn ad_bytes(&self) -> Option<[u8; 16]> {
        if self.0.len() != 24 {
            return None;
        }
        // Into a buffer of base64's worst-case estimate, not a Vec: `ids` calls this per row.
        let mut bytes = [0u8; 18];
        let len = BASE64.decode_slice(&self.0, &mut bytes).ok()?;
        bytes[..len].try_into().ok()
    }

    /// The objectGUID behind a GUID-based ImmutableId.
    pub fn guid(&self) -> Option<Uuid> {
        self.ad_bytes().map(Uuid::from_bytes_le)
    }

    /// Lowercase hex of the bytes in AD byte order, e.g. `32c34a8c5f97...`.
    pub fn hex(&self) -> Option<String> {
        self.ad_bytes().map(hex::encode)
    }

    /// The LDAP filter form, e.g. `\32\c3\4a...`, for `(objectGUID=...)` searches.
    pub fn ldap_filter(&self) -> Option<String> {
        self.ad_bytes()
            .map(|b| b.iter().map(|x| format!("\\{x:02x}")).collect())
    }

    /// The connector-space DN form: `CN={<uppercase hex of the ImmutableId's ASCII text>}`.
    pub fn connector_dn(&self) -> String {
        format!("CN={{{}}}", hex::encode_upper(&self.0))
    }
}

impl fmt::Display for ImmutableId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Whether a value is a well-formed GUID-based ImmutableId (base64 of 16 bytes, as Graph
/// stores it) or GUID text. Reports write such a value exactly, even when it starts with `+`:
/// neither form has room for a formula (no parentheses, no `!`, no spaces), and a script that
/// reads a report back must get the anchor, not an escaped copy of it.
pub fn is_well_formed(value: &str) -> bool {
    let mut bytes = [0u8; 18];
    let is_base64_of_16 = value.len() == 24
        && BASE64
            .decode_slice(value, &mut bytes)
            .is_ok_and(|n| n == 16);
    is_base64_of_16 || Uuid::try_parse(value).is_ok()
}

/// Whether anchors are GUIDs (objectGUID, mS-DS-ConsistencyGuid) or a custom string.
#[derive(
    Clone,
    Copy,
    Debug,
    Default,
    PartialEq,
    Eq,
    clap::ValueEnum,
    serde::Serialize,
    serde::Deserialize,
)]
#[serde(rename_all = "kebab-case")]
pub enum AnchorKind {
    #[default]
    Guid,
    /// A custom string anchor such as employeeID, used as-is (not base64-encoded).
    String,
}

/// The form an anchor value was written in.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum AnchorForm {
    /// `f7cc07d7-7c15-447d-876d-c01b0e5a9e38`, with or without braces.
    GuidText,
    /// `1wfM9xV8fUSHbcAbDlqeOA==` (Get-MgUser, ldifde `objectGUID::`).
    Base64,
    /// 32 hex digits in AD byte order, bare or with byte separators.
    Hex,
    /// `\d7\07\cc...`, the LDAP filter escape form.
    LdapFilter,
    /// csvde's `X'd707cc...'`.
    Csvde,
    /// `215 7 204 ...`: 16 decimal bytes, as PowerShell prints a byte[] inside a string.
    DecimalBytes,
    /// `CN={...}`, the connector-space DN form.
    ConnectorDn,
    /// A custom string anchor (`--anchor-kind string`).
    CustomString,
}

impl AnchorForm {
    pub(crate) fn name(self) -> &'static str {
        match self {
            AnchorForm::GuidText => "guid",
            AnchorForm::Base64 => "base64",
            AnchorForm::Hex => "hex",
            AnchorForm::LdapFilter => "ldap-filter",
            AnchorForm::Csvde => "csvde",
            AnchorForm::DecimalBytes => "decimal-bytes",
            AnchorForm::ConnectorDn => "dn",
            AnchorForm::CustomString => "string",
        }
    }
}

/// A parsed anchor: the ImmutableId and the form it was written in.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Parsed {
    pub id: ImmutableId,
    pub form: AnchorForm,
}

/// Why a value is not a usable anchor. Each message says what to do about it.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum AnchorError {
    #[error("the value is empty")]
    Empty,
    #[error(
        "the export lost the value: it reads {0:?}, which is how Windows PowerShell's Export-Csv writes a byte[]; \
         re-export with a calculated property such as @{{n='mS-DS-ConsistencyGuid';e={{[guid]$_.'mS-DS-ConsistencyGuid'}}}}, or with ldifde or csvde"
    )]
    ByteArrayLost(String),
    #[error(
        "the export lost the value: it reads {0:?}, which is how Export-Csv writes a multi-valued property; \
         re-export the property with a calculated property that joins or picks its value"
    )]
    CollectionLost(String),
    #[error(
        "{value} is base64 of the GUID's text, not of its bytes (the Get-AADIntImmutableID mistake); \
         the ImmutableId of {guid} is {correct}"
    )]
    GuidTextEncoded {
        value: String,
        guid: Uuid,
        correct: ImmutableId,
    },
    #[error("{value:?} contains {ch:?}, which Graph does not allow in an ImmutableId")]
    ForbiddenChar { value: String, ch: char },
    #[error("{len} characters: an ImmutableId must be shorter than {MAX_LEN}")]
    TooLong { len: usize },
    #[error(
        "{0:?} is not an anchor: expected a GUID (with or without braces or dashes), a base64 ImmutableId, \
         32 hex digits in AD byte order (bare, 0x-prefixed, separated, \\xx LDAP form or csvde X'..'), 16 decimal bytes, \
         or CN={{...}}; for a custom anchor such as employeeID pass --anchor-kind string"
    )]
    Malformed(String),
}

/// Parses an anchor of the given kind, in any form it may arrive in.
pub fn parse(text: &str, kind: AnchorKind) -> Result<Parsed, AnchorError> {
    let value = text.trim();
    if value.is_empty() {
        return Err(AnchorError::Empty);
    }
    reject_lost_export(value)?;
    match kind {
        AnchorKind::String => {
            check_graph_rules(value)?;
            Ok(Parsed {
                id: ImmutableId(value.to_string()),
                form: AnchorForm::CustomString,
            })
        }
        AnchorKind::Guid => parse_guid_anchor(value),
    }
}

fn parse_guid_anchor(value: &str) -> Result<Parsed, AnchorError> {
    let parsed = |id, form| Ok(Parsed { id, form });
    if let Some(hex) = strip_connector_dn(value) {
        let text = hex::decode(hex)
            .ok()
            .and_then(|bytes| String::from_utf8(bytes).ok())
            .ok_or_else(|| AnchorError::Malformed(value.to_string()))?;
        // The DN wraps any ImmutableId: GUID-based in any form, else a custom string. Both
        // readings go through `parse`, which trims, as `connector_dn` wrote the trimmed value.
        let inner = parse(&text, AnchorKind::Guid).or_else(|_| parse(&text, AnchorKind::String))?;
        return parsed(inner.id, AnchorForm::ConnectorDn);
    }
    if let Some(bytes) = strip_csvde(value).and_then(decode_16) {
        return parsed(ImmutableId::from_ad_bytes(bytes), AnchorForm::Csvde);
    }
    if let Some(bytes) = parse_ldap_filter(value) {
        return parsed(ImmutableId::from_ad_bytes(bytes), AnchorForm::LdapFilter);
    }
    if is_bare_hex32(value) {
        let bytes = decode_16(value).expect("32 hex digits");
        return parsed(ImmutableId::from_ad_bytes(bytes), AnchorForm::Hex);
    }
    // `0x` and 32 hex digits: a binary column as SQL Server shows it (the sync databases).
    if let Some(hex) = strip_0x(value).filter(|hex| is_bare_hex32(hex)) {
        let bytes = decode_16(hex).expect("32 hex digits");
        return parsed(ImmutableId::from_ad_bytes(bytes), AnchorForm::Hex);
    }
    if let Ok(guid) = Uuid::try_parse(value) {
        return parsed(ImmutableId::from_guid(guid), AnchorForm::GuidText);
    }
    if let Some((bytes, form)) = parse_separated_bytes(value) {
        return parsed(ImmutableId::from_ad_bytes(bytes), form);
    }
    if let Some(parsed_b64) = parse_base64(value)? {
        return Ok(parsed_b64);
    }
    check_graph_rules(value)?;
    Err(AnchorError::Malformed(value.to_string()))
}

/// Export-Csv's placeholders for values it could not write.
fn reject_lost_export(value: &str) -> Result<(), AnchorError> {
    if value.eq_ignore_ascii_case("System.Byte[]") {
        return Err(AnchorError::ByteArrayLost(value.to_string()));
    }
    if value.ends_with("ADPropertyValueCollection") || value == "System.Object[]" {
        return Err(AnchorError::CollectionLost(value.to_string()));
    }
    Ok(())
}

/// Graph's rules for any ImmutableId: no `$` or `_`, fewer than 60 characters.
fn check_graph_rules(value: &str) -> Result<(), AnchorError> {
    if let Some(ch) = value.chars().find(|c| matches!(c, '$' | '_')) {
        return Err(AnchorError::ForbiddenChar {
            value: value.to_string(),
            ch,
        });
    }
    let len = value.chars().count();
    if len >= MAX_LEN {
        return Err(AnchorError::TooLong { len });
    }
    Ok(())
}

fn strip_connector_dn(value: &str) -> Option<&str> {
    let prefixed = value.get(..3).filter(|p| p.eq_ignore_ascii_case("CN="));
    let rest = prefixed.map_or(value, |_| &value[3..]);
    // With `CN=` any hex is this form: a custom anchor of up to 16 characters makes 32 digits
    // or fewer (found by fuzzing: `connector_dn` wrote what this did not read back). Without
    // it, only more digits than a braced GUID's 32, which a GUID never takes.
    rest.strip_prefix('{')?.strip_suffix('}').filter(|hex| {
        !hex.is_empty()
            && (prefixed.is_some() || hex.len() > 32)
            && hex.bytes().all(|b| b.is_ascii_hexdigit())
    })
}

fn strip_csvde(value: &str) -> Option<&str> {
    value
        .strip_prefix("X'")
        .or_else(|| value.strip_prefix("x'"))?
        .strip_suffix('\'')
}

fn parse_ldap_filter(value: &str) -> Option<[u8; 16]> {
    let hex: String = value.strip_prefix('\\')?.split('\\').collect();
    (value.matches('\\').count() == 16).then_some(())?;
    decode_16(&hex)
}

fn strip_0x(value: &str) -> Option<&str> {
    value
        .strip_prefix("0x")
        .or_else(|| value.strip_prefix("0X"))
}

fn is_bare_hex32(value: &str) -> bool {
    value.len() == 32 && value.bytes().all(|b| b.is_ascii_hexdigit())
}

/// 16 bytes separated by spaces, commas or dashes: two-digit groups are hex (the attribute
/// editor's `D7 07 CC F7 ...`), and so is every group written `0xD7` (ADSI Edit's octet
/// strings); groups of one or three digits are decimal (PowerShell's `215 7 204`).
fn parse_separated_bytes(value: &str) -> Option<([u8; 16], AnchorForm)> {
    let mut groups: Vec<&str> = value
        .split([' ', ',', '-', ';'])
        .filter(|g| !g.is_empty())
        .collect();
    if groups.len() != 16 {
        return None;
    }
    let prefixed: Option<Vec<&str>> = groups.iter().map(|g| strip_0x(g)).collect();
    let is_hex = |g: &&str, max_len| {
        (1..=max_len).contains(&g.len()) && g.bytes().all(|b| b.is_ascii_hexdigit())
    };
    let all_hex_pairs = match prefixed {
        Some(stripped) => {
            groups = stripped;
            groups.iter().all(|g| is_hex(g, 2))
        }
        None => groups.iter().all(|g| g.len() == 2 && is_hex(g, 2)),
    };
    let (radix, form) = if all_hex_pairs {
        (16, AnchorForm::Hex)
    } else if groups
        .iter()
        .all(|g| g.len() <= 3 && g.bytes().all(|b| b.is_ascii_digit()))
    {
        (10, AnchorForm::DecimalBytes)
    } else {
        return None;
    };
    let mut bytes = [0u8; 16];
    for (byte, group) in bytes.iter_mut().zip(&groups) {
        *byte = u8::from_str_radix(group, radix).ok()?;
    }
    Some((bytes, form))
}

/// A base64 ImmutableId of 16 bytes; base64 of a GUID's text is the known mistake.
fn parse_base64(value: &str) -> Result<Option<Parsed>, AnchorError> {
    let Ok(bytes) = BASE64.decode(value) else {
        return Ok(None);
    };
    if let Ok(bytes16) = <[u8; 16]>::try_from(bytes.as_slice()) {
        return Ok(Some(Parsed {
            id: ImmutableId::from_ad_bytes(bytes16),
            form: AnchorForm::Base64,
        }));
    }
    // The GUID's text as UTF-8 (Get-AADIntImmutableID) or as UTF-16LE (the same mistake made
    // with [Text.Encoding]::Unicode, .NET's name for UTF-16LE).
    let utf16 = (bytes.len() % 2 == 0)
        .then(|| {
            let units = bytes
                .chunks_exact(2)
                .map(|c| u16::from_le_bytes([c[0], c[1]]));
            char::decode_utf16(units)
                .collect::<Result<String, _>>()
                .ok()
        })
        .flatten();
    let guid_text = [std::str::from_utf8(&bytes).ok(), utf16.as_deref()]
        .into_iter()
        .flatten()
        .find_map(|t| Uuid::try_parse(t.trim_start_matches('\u{feff}').trim()).ok());
    match guid_text {
        Some(guid) => Err(AnchorError::GuidTextEncoded {
            value: value.to_string(),
            guid,
            correct: ImmutableId::from_guid(guid),
        }),
        None => Ok(None),
    }
}

/// Hex digits only (no sign, which `from_str_radix` would take: X'+a+a...' was read as bytes,
/// found by fuzzing).
fn decode_16(digits: &str) -> Option<[u8; 16]> {
    let mut bytes = [0; 16];
    hex::decode_to_slice(digits, &mut bytes).ok()?;
    Some(bytes)
}

/// The other reading of an ambiguous value: 32 bare hex digits read as .NET "N" GUID text.
pub fn alternative_reading(text: &str) -> Option<ImmutableId> {
    let value = text.trim();
    is_bare_hex32(value)
        .then(|| Uuid::try_parse(value).ok())
        .flatten()
        .map(ImmutableId::from_guid)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// Published vectors (docs/graph.md): GUID text and its ImmutableId.
    const VECTORS: [(&str, &str); 4] = [
        (
            "f7cc07d7-7c15-447d-876d-c01b0e5a9e38",
            "1wfM9xV8fUSHbcAbDlqeOA==",
        ),
        (
            "3ab39606-c642-489b-84b6-58c038d3ef39",
            "BpazOkLGm0iEtljAONPvOQ==",
        ),
        (
            "8c4ac332-975f-4717-ad7b-ba4a4e968fff",
            "MsNKjF+XF0ete7pKTpaP/w==",
        ),
        (
            "a1d2c3d4-b5f6-4f90-abcd-ef1234567890",
            "1MPSofa1kE+rze8SNFZ4kA==",
        ),
    ];

    fn id(text: &str) -> Parsed {
        parse(text, AnchorKind::Guid).unwrap_or_else(|e| panic!("{text}: {e}"))
    }

    #[test]
    fn published_vectors() {
        for (guid, expected) in VECTORS {
            let parsed = id(guid);
            assert_eq!(
                (parsed.id.as_str(), parsed.form),
                (expected, AnchorForm::GuidText)
            );
            assert_eq!(id(expected).id.guid().unwrap().to_string(), guid);
            assert_eq!(
                id(&format!("{{{}}}", guid.to_uppercase())).id.as_str(),
                expected
            );
            assert_eq!(
                id(&guid.replace('-', "").to_uppercase()).form,
                AnchorForm::Hex
            );
        }
        assert_eq!(
            id("8c4ac332-975f-4717-ad7b-ba4a4e968fff").id.hex().unwrap(),
            "32c34a8c5f971747ad7bba4a4e968fff"
        );
        let dotnet = id("35918bc9-196d-40ea-9779-889d79b753f0")
            .id
            .ad_bytes()
            .unwrap();
        assert_eq!(
            dotnet,
            [
                0xC9, 0x8B, 0x91, 0x35, 0x6D, 0x19, 0xEA, 0x40, 0x97, 0x79, 0x88, 0x9D, 0x79, 0xB7,
                0x53, 0xF0
            ]
        );
    }

    #[test]
    fn connector_dn_vector() {
        let dn = "CN={514635484D4B376E38307176645973555049486139513D3D}";
        let parsed = id(dn);
        assert_eq!(
            (parsed.id.as_str(), parsed.form),
            ("QF5HMK7n80qvdYsUPIHa9Q==", AnchorForm::ConnectorDn)
        );
        assert_eq!(parsed.id.connector_dn(), dn);
    }

    /// Found by fuzzing (fuzz target `anchor`): the DN form of a custom anchor of 16
    /// characters or fewer did not parse back, nor did one whose text had outer spaces.
    #[test]
    fn connector_dn_of_a_short_custom_anchor_parses_back() {
        let parsed = id("CN={200440612D4B355049486139513D39513D}");
        assert_eq!(parsed.id.as_str(), "\u{4}@a-K5PIHa9Q=9Q=");
        assert_eq!(id(&parsed.id.connector_dn()).id, parsed.id);
        let custom = parse("E12345", AnchorKind::String).unwrap().id;
        assert_eq!(custom.connector_dn(), "CN={453132333435}");
        assert_eq!(id(&custom.connector_dn()).id, custom);
        // Outer spaces around GUID text inside the DN: still the GUID, not a custom string.
        let spaced = ImmutableId(" f7cc07d7-7c15-447d-876d-c01b0e5a9e38".into()).connector_dn();
        assert_eq!(id(&spaced).id.as_str(), "1wfM9xV8fUSHbcAbDlqeOA==");
        // Without `CN=`, 32 digits in braces stay a GUID's.
        assert_eq!(
            id("{f7cc07d7-7c15-447d-876d-c01b0e5a9e38}").form,
            AnchorForm::GuidText
        );
    }

    #[test]
    fn every_byte_form() {
        let expected = "MsNKjF+XF0ete7pKTpaP/w==";
        let cases = [
            ("32c34a8c5f971747ad7bba4a4e968fff", AnchorForm::Hex),
            (
                "32 C3 4A 8C 5F 97 17 47 AD 7B BA 4A 4E 96 8F FF",
                AnchorForm::Hex,
            ),
            (
                "32-c3-4a-8c-5f-97-17-47-ad-7b-ba-4a-4e-96-8f-ff",
                AnchorForm::Hex,
            ),
            (
                "32,c3,4a,8c,5f,97,17,47,ad,7b,ba,4a,4e,96,8f,ff",
                AnchorForm::Hex,
            ),
            (
                "\\32\\c3\\4a\\8c\\5f\\97\\17\\47\\ad\\7b\\ba\\4a\\4e\\96\\8f\\ff",
                AnchorForm::LdapFilter,
            ),
            ("X'32c34a8c5f971747ad7bba4a4e968fff'", AnchorForm::Csvde),
            (
                "50 195 74 140 95 151 23 71 173 123 186 74 78 150 143 255",
                AnchorForm::DecimalBytes,
            ),
        ];
        for (text, form) in cases {
            let parsed = id(text);
            assert_eq!(
                (parsed.id.as_str(), parsed.form),
                (expected, form),
                "{text}"
            );
        }
    }

    /// Found by fuzzing (fuzz target `anchor`): a `+` passed for a hex digit.
    #[test]
    fn signs_are_not_hex_digits() {
        let plus = format!("X'{}'", "+a".repeat(16));
        assert!(matches!(
            parse(&plus, AnchorKind::Guid),
            Err(AnchorError::Malformed(_))
        ));
        let ldap = "\\+a".repeat(16);
        assert!(parse(&ldap, AnchorKind::Guid).is_err());
    }

    #[test]
    fn adsi_edit_sql_and_comma_separated_bytes() {
        let expected = "1wfM9xV8fUSHbcAbDlqeOA==";
        let cases = [
            "0xD7 0x07 0xCC 0xF7 0x15 0x7C 0x7D 0x44 0x87 0x6D 0xC0 0x1B 0x0E 0x5A 0x9E 0x38",
            "0xd7,0x7,0xcc,0xf7,0x15,0x7c,0x7d,0x44,0x87,0x6d,0xc0,0x1b,0xe,0x5a,0x9e,0x38",
            "0xD707CCF7157C7D44876DC01B0E5A9E38",
            "215,7,204,247,21,124,125,68,135,109,192,27,14,90,158,56",
            "215, 7, 204, 247, 21, 124, 125, 68, 135, 109, 192, 27, 14, 90, 158, 56",
        ];
        for text in cases {
            assert_eq!(id(text).id.as_str(), expected, "{text}");
        }
        // Prefixed and bare groups mixed, or a prefixed group of three digits: not bytes.
        assert!(parse(
            "0xD7 07 CC F7 15 7C 7D 44 87 6D C0 1B 0E 5A 9E 38",
            AnchorKind::Guid
        )
        .is_err());
        assert!(parse(
            "0x0D7 0x07 0xCC 0xF7 0x15 0x7C 0x7D 0x44 0x87 0x6D 0xC0 0x1B 0x0E 0x5A 0x9E 0x38",
            AnchorKind::Guid
        )
        .is_err());
    }

    #[test]
    fn rejections_say_why() {
        let err = |t: &str| parse(t, AnchorKind::Guid).unwrap_err();
        assert!(matches!(
            err("System.Byte[]"),
            AnchorError::ByteArrayLost(_)
        ));
        assert!(matches!(
            err("Microsoft.ActiveDirectory.Management.ADPropertyValueCollection"),
            AnchorError::CollectionLost(_)
        ));
        // Get-AADIntImmutableID's mistake: base64 of the GUID's UTF-8 text.
        let wrong = BASE64.encode("f7cc07d7-7c15-447d-876d-c01b0e5a9e38");
        let message = err(&wrong).to_string();
        assert!(message.contains("1wfM9xV8fUSHbcAbDlqeOA=="), "{message}");
        // The same mistake through [Text.Encoding]::Unicode (UTF-16LE), upper case.
        let utf16: Vec<u8> = "F7CC07D7-7C15-447D-876D-C01B0E5A9E38"
            .encode_utf16()
            .flat_map(u16::to_le_bytes)
            .collect();
        assert!(matches!(
            err(&BASE64.encode(utf16)),
            AnchorError::GuidTextEncoded { correct, .. } if correct.as_str() == "1wfM9xV8fUSHbcAbDlqeOA=="
        ));
        assert!(matches!(
            err("abc$def"),
            AnchorError::ForbiddenChar { ch: '$', .. }
        ));
        assert!(matches!(err(""), AnchorError::Empty));
        assert!(matches!(err("not-a-guid"), AnchorError::Malformed(_)));
        let string = |t: &str| parse(t, AnchorKind::String);
        assert_eq!(string("E12345").unwrap().id.as_str(), "E12345");
        assert!(matches!(
            string("emp_1"),
            Err(AnchorError::ForbiddenChar { ch: '_', .. })
        ));
        assert!(matches!(
            string(&"x".repeat(60)),
            Err(AnchorError::TooLong { len: 60 })
        ));
        assert!(string(&"x".repeat(59)).is_ok());
    }

    #[test]
    fn well_formed_anchors_and_guids() {
        for value in [
            "+UCRosYTSUiYkAaHBy3s6A==",
            "1wfM9xV8fUSHbcAbDlqeOA==",
            "/w8AAAAAAAAAAAAAAAAAAA==",
            "a29140f9-13c6-4849-9890-0687072dece8",
            "{A29140F9-13C6-4849-9890-0687072DECE8}",
        ] {
            assert!(is_well_formed(value), "{value}");
        }
        for value in [
            "",
            "+UCRosYTSUiYkAaHBy3s6A=",
            "+UCRosYTSUiYkAaHBy3s6A===",
            "=UCRosYTSUiYkAaHBy3s6A==",
            "+UCRosYTSUiYkAaHBy3s6B==",
            "=HYPERLINK(\"http://x\")",
            "-E12345",
            " 1wfM9xV8fUSHbcAbDlqeOA==",
        ] {
            assert!(!is_well_formed(value), "{value}");
        }
    }

    #[test]
    fn ambiguous_hex_has_an_alternative_reading() {
        let alt = alternative_reading("f7cc07d77c15447d876dc01b0e5a9e38").unwrap();
        assert_eq!(alt.as_str(), "1wfM9xV8fUSHbcAbDlqeOA==");
        assert!(alternative_reading("f7cc07d7-7c15-447d-876d-c01b0e5a9e38").is_none());
    }

    proptest! {
        #[test]
        fn every_output_form_parses_back(bytes in any::<[u8; 16]>()) {
            let original = ImmutableId::from_ad_bytes(bytes);
            let guid = original.guid().unwrap();
            let forms = [
                guid.to_string(),
                guid.braced().to_string(),
                original.to_string(),
                original.hex().unwrap(),
                original.ldap_filter().unwrap(),
                format!("X'{}'", original.hex().unwrap()),
                bytes.iter().map(|b| b.to_string()).collect::<Vec<_>>().join(" "),
                original.connector_dn(),
            ];
            for form in forms {
                prop_assert_eq!(&parse(&form, AnchorKind::Guid).unwrap().id, &original, "{}", form);
            }
        }
    }
}
