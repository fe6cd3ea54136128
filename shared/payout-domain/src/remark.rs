//! The free-text remark Vexora echoes back.

use super::invalid::{Invalid, invalid};

/// Free text echoed by Vexora: at most 128 characters, no control characters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Remark(String);

impl Remark {
    pub const MAX_CHARS: usize = 128;

    pub fn parse(s: &str) -> Result<Self, Invalid> {
        if s.chars().count() > Self::MAX_CHARS {
            return invalid("must be at most 128 characters");
        }
        if s.chars().any(char::is_control) {
            return invalid("must not contain control characters");
        }
        Ok(Self(s.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}
