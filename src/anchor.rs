//! The ImmutableId and every anchor form it converts from and to. (Being built: issue 2.)

use std::fmt;

/// An `onPremisesImmutableId` value, exactly as Graph stores it.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ImmutableId(String);

impl ImmutableId {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for ImmutableId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}
