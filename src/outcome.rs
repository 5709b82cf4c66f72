//! The outcome codes: the report's `outcome` column, stable across releases.
//!
//! Every input row ends with exactly one outcome. The codes, their groups and their meaning
//! live here and nowhere else; the stages pick one and add a human `detail`.

use std::fmt;

use serde::{Deserialize, Serialize};
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
    // Anchor conflicts.
    AnchorHeldByUser,
    AnchorHeldByDeletedUser,
    // Service.
    PermissionDenied,
    ThrottledOut,
    GraphError,
    NotAttempted,
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

/// The groups design.md sorts the outcomes into.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Group {
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
    pub const ALL: &'static [Outcome] = <Outcome as VariantArray>::VARIANTS;

    /// The stable code written in reports: the variant's name in kebab-case, derived (and
    /// the same as serde's, which a test checks).
    pub fn code(self) -> &'static str {
        self.into()
    }

    pub fn group(self) -> Group {
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
            | TargetChangedSincePlan => Group::Target,
            AnchorHeldByUser | AnchorHeldByDeletedUser => Group::AnchorConflict,
            PermissionDenied | ThrottledOut | GraphError | NotAttempted => Group::Service,
            Matched | AwaitingSync | MatchBlocked | DuplicateCreated | AnchorChanged
            | TargetGone | NotStamped => Group::Verify,
        }
    }

    /// True when the row needs nothing more from the admin. After the sync cycle that is a
    /// match, or a row that was never meant to be stamped.
    pub fn is_success(self) -> bool {
        self.group() == Group::Success || matches!(self, Outcome::Matched | Outcome::NotStamped)
    }

    pub fn from_code(code: &str) -> Option<Outcome> {
        code.parse().ok()
    }
}

impl fmt::Display for Outcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.code())
    }
}

/// An outcome with the human explanation that goes in the report's `detail` column.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Verdict {
    pub outcome: Outcome,
    pub detail: String,
}

impl Verdict {
    pub fn new(outcome: Outcome, detail: impl Into<String>) -> Self {
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
}
