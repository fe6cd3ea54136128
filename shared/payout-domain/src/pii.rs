//! Personal data, masked whenever printed.

use std::fmt;

/// Wraps personal data so that `Debug` and `Display` print a mask; reading the value is explicit.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct Pii<T>(pub(super) T);

impl<T> Pii<T> {
    pub fn expose(&self) -> &T {
        &self.0
    }
}

impl<T> fmt::Debug for Pii<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Pii(***)")
    }
}

impl<T> fmt::Display for Pii<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}
