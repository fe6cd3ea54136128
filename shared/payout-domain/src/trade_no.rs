//! The merchant's order number: idempotency key, and generated in Tokyo time when absent.

use std::fmt;

use chrono::{DateTime, FixedOffset, Utc};
use rand::Rng;

use super::invalid::{Invalid, invalid};

/// Merchant order number and idempotency key: `[A-Za-z0-9_-]{1,32}`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TradeNo(String);

/// Japan Standard Time, UTC+9 (the one definition: order numbers, the operator tool's dates).
/// Japan has observed no daylight saving since 1951, so a fixed offset is exact. Evaluated at
/// compile time: nothing can fail at run time.
pub const JAPAN_TIME: FixedOffset = match FixedOffset::east_opt(9 * 3600) {
    Some(offset) => offset,
    None => panic!("UTC+9 is a valid offset"),
};

impl TradeNo {
    pub const MAX_LEN: usize = 32;

    /// Whether `b` may appear in an order number (the one character set: merchant input, and
    /// the order numbers a notification names).
    pub fn allows(b: u8) -> bool {
        b.is_ascii_alphanumeric() || b == b'_' || b == b'-'
    }

    pub fn parse(s: &str) -> Result<Self, Invalid> {
        if s.is_empty() || s.len() > Self::MAX_LEN {
            return invalid("must be 1 to 32 characters");
        }
        if !s.bytes().all(Self::allows) {
            return invalid("may contain only letters A-Z a-z, digits, '_' and '-'");
        }
        Ok(Self(s.to_owned()))
    }

    /// `yyyyMMddHHmmss` in Asia/Tokyo followed by 6 random digits (Vexora's suggested form).
    pub fn generate(now: DateTime<Utc>, rng: &mut impl Rng) -> Self {
        let local = now.with_timezone(&JAPAN_TIME);
        let suffix: u32 = rng.random_range(0..1_000_000);
        Self(format!("{}{suffix:06}", local.format("%Y%m%d%H%M%S")))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for TradeNo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}
