//! The outcome codes: the report's `outcome` column, stable across releases.
//!
//! Every input row ends with exactly one outcome. The codes, their groups and their meaning
//! live here and nowhere else; the stages pick one and add a human `detail`.

use std::fmt;

use serde::{Deserialize, Serialize};
#[cfg(test)]
use strum::VariantArray;

/// What happened (or would happen) to one input row. Adding an outcome is adding its variant
/// here: its code, its place in [`Outcome::ALL`] and its parsing are derived, and the compiler
/// asks for its [`Group`].
#[derive(
    Clone,
    Copy,
    Debug,
    PartialEq,
    Eq,
    Hash,
    PartialOrd,
    Ord,
    Serialize,
    Deserialize,
    strum::VariantArray,
    strum::IntoStaticStr,
    strum::EnumString,
)]
#[serde(rename_all = "kebab-case")]
#[strum(serialize_all = "kebab-case")]
pub enum Outcome {
    // Success.
    Stamped,
    WouldStamp,
    AlreadyMatched,
    Cleared,
    WouldClear,
    /// `clear` found no ImmutableId on the target: nothing was, or would be, sent.
    NothingToClear,
    Restored,
    /// The offline `ids` command computed the ImmutableId; nothing was planned.
    Computed,
    // Input.
    InvalidAnchor,
    MissingField,
    NotAUser,
    DuplicateAnchorInInput,
    DuplicateTargetInInput,
    // Target.
    TargetNotFound,
    TargetAmbiguous,
    TargetDeleted,
    TargetSynced,
    TargetHasOtherAnchor,
    FederatedDomain,
    TargetChangedSincePlan,
    /// Holds or is eligible for a privileged role: sync refuses to hard-match it.
    TargetPrivileged,
    /// onPremisesObjectIdentifier names another on-premises object: sync refuses the match.
    TargetLinkedElsewhere,
    /// A guest or an external member.
    TargetGuest,
    // Anchor conflicts.
    AnchorHeldByUser,
    AnchorHeldByDeletedUser,
    // Service.
    PermissionDenied,
    ThrottledOut,
    GraphError,
    NotAttempted,
    /// `apply PLAN`: the change board did not approve the row (`approved` is `no` or empty);
    /// it was not written.
    NotApproved,
    // Verify: what the sync cycle did with a row (`hardmatch verify`).
    /// The stamped user is synced now: same object, the anchor as stamped.
    Matched,
    /// Still cloud-only with the stamped anchor and no sync error: no cycle has run yet, or
    /// the AD object is out of sync scope.
    AwaitingSync,
    /// The stamped user carries a sync error (the 2026 hard-match hardening among others).
    MatchBlocked,
    /// Another user, synced, holds the row's anchor: sync created or matched another object.
    DuplicateCreated,
    /// The stamped user now holds another anchor, or none.
    AnchorChanged,
    /// The stamped user is deleted or gone.
    TargetGone,
    /// The row was not stamped and nothing holds its anchor yet.
    NotStamped,
}

/// The groups the outcomes fall into (README, "Outcomes").
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Group {
    Success,
    Input,
    Target,
    AnchorConflict,
    Service,
    Verify,
}

impl Outcome {
    /// Every outcome, in the order reports list them (the order of declaration: derived,
    /// so that a new outcome is listed by adding its variant).
    #[cfg(test)]
    pub(crate) const ALL: &'static [Outcome] = <Outcome as VariantArray>::VARIANTS;

    /// The stable code written in reports: the variant's name in kebab-case, derived (and
    /// the same as serde's, which a test checks).
    pub(crate) fn code(self) -> &'static str {
        self.into()
    }

    pub(crate) fn group(self) -> Group {
        use Outcome::*;
        match self {
            Stamped | WouldStamp | AlreadyMatched | Cleared | WouldClear | NothingToClear
            | Restored | Computed => Group::Success,
            InvalidAnchor
            | MissingField
            | NotAUser
            | DuplicateAnchorInInput
            | DuplicateTargetInInput => Group::Input,
            TargetNotFound
            | TargetAmbiguous
            | TargetDeleted
            | TargetSynced
            | TargetHasOtherAnchor
            | FederatedDomain
            | TargetChangedSincePlan
            | TargetPrivileged
            | TargetLinkedElsewhere
            | TargetGuest => Group::Target,
            AnchorHeldByUser | AnchorHeldByDeletedUser => Group::AnchorConflict,
            PermissionDenied | ThrottledOut | GraphError | NotAttempted | NotApproved => {
                Group::Service
            }
            Matched | AwaitingSync | MatchBlocked | DuplicateCreated | AnchorChanged
            | TargetGone | NotStamped => Group::Verify,
        }
    }

    /// True when the row needs nothing more from the admin. After the sync cycle that is a
    /// match, or a row that was never meant to be stamped.
    pub(crate) fn is_success(self) -> bool {
        self.group() == Group::Success || matches!(self, Outcome::Matched | Outcome::NotStamped)
    }

    #[cfg(test)]
    pub(crate) fn from_code(code: &str) -> Option<Outcome> {
        code.parse().ok()
    }
}

impl fmt::Display for Outcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.code())
    }
}

/// Something a row that can still be stamped should make the admin look at: the report's
/// `warnings` column, codes joined by `;`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub(crate) enum Warning {
    /// Sync will give the user another UPN.
    UpnWillChange,
    /// Sync will drop cloud-only SMTP addresses the export does not have.
    AliasesWillBeLost,
    /// mS-DS-ConsistencyGuid and objectGUID differ and nothing showed which one sync uses.
    AnchorSourceDiffers,
    /// onPremisesObjectIdentifier is the row's own objectGUID (INFERRED not to block).
    ObjectIdentifierSame,
    /// Role data could not be read: the target may be privileged.
    RolesUnknown,
    /// onPremisesObjectIdentifier could not be read: the target may be linked elsewhere.
    ObjectIdentifierUnknown,
}

impl Warning {
    pub(crate) const ALL: [Warning; 6] = [
        Warning::UpnWillChange,
        Warning::AliasesWillBeLost,
        Warning::AnchorSourceDiffers,
        Warning::ObjectIdentifierSame,
        Warning::RolesUnknown,
        Warning::ObjectIdentifierUnknown,
    ];

    pub(crate) fn code(self) -> &'static str {
        match self {
            Warning::UpnWillChange => "upn-will-change",
            Warning::AliasesWillBeLost => "aliases-will-be-lost",
            Warning::AnchorSourceDiffers => "anchor-source-differs",
            Warning::ObjectIdentifierSame => "object-identifier-same",
            Warning::RolesUnknown => "roles-unknown",
            Warning::ObjectIdentifierUnknown => "object-identifier-unknown",
        }
    }

    pub(crate) fn from_code(code: &str) -> Option<Warning> {
        Warning::ALL.into_iter().find(|w| w.code() == code.trim())
    }
}

/// A row's warnings, in [`Warning::ALL`] order, each once; written as one cell, codes joined
/// by `;` (in JSON too, so every report format reads the same).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct Warnings(Vec<Warning>);

impl Warnings {
    pub(crate) fn add(&mut self, warning: Warning) {
        if let Err(at) = self.0.binary_search(&warning) {
            self.0.insert(at, warning);
        }
    }

    pub(crate) fn iter(&self) -> impl Iterator<Item = Warning> + '_ {
        self.0.iter().copied()
    }

    pub(crate) fn contains(&self, warning: Warning) -> bool {
        self.0.contains(&warning)
    }
}

impl fmt::Display for Warnings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let codes: Vec<&str> = self.0.iter().map(|w| w.code()).collect();
        f.write_str(&codes.join(";"))
    }
}

impl Serialize for Warnings {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Warnings {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = Option::<String>::deserialize(deserializer)?.unwrap_or_default();
        let mut warnings = Warnings::default();
        for code in text.split(';').filter(|c| !c.trim().is_empty()) {
            let warning = Warning::from_code(code)
                .ok_or_else(|| serde::de::Error::custom(format!("unknown warning {code:?}")))?;
            warnings.add(warning);
        }
        Ok(warnings)
    }
}

/// An outcome with the human explanation that goes in the report's `detail` column.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Verdict {
    pub(crate) outcome: Outcome,
    pub detail: String,
}

impl Verdict {
    pub(crate) fn new(outcome: Outcome, detail: impl Into<String>) -> Self {
        Verdict {
            outcome,
            detail: detail.into(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_round_trip_and_match_serde() {
        for &outcome in Outcome::ALL {
            assert_eq!(Outcome::from_code(outcome.code()), Some(outcome));
            let json = serde_json::to_string(&outcome).unwrap();
            assert_eq!(json, format!("\"{}\"", outcome.code()));
        }
    }

    #[test]
    fn warnings_are_one_cell_in_a_fixed_order() {
        let mut warnings = Warnings::default();
        for w in [
            Warning::RolesUnknown,
            Warning::UpnWillChange,
            Warning::RolesUnknown,
        ] {
            warnings.add(w);
        }
        assert_eq!(warnings.to_string(), "upn-will-change;roles-unknown");
        let json = serde_json::to_string(&warnings).unwrap();
        assert_eq!(json, "\"upn-will-change;roles-unknown\"");
        assert_eq!(serde_json::from_str::<Warnings>(&json).unwrap(), warnings);
        for w in Warning::ALL {
            assert_eq!(Warning::from_code(w.code()), Some(w));
            assert_eq!(
                serde_json::to_string(&w).unwrap(),
                format!("\"{}\"", w.code())
            );
        }
    }
}
