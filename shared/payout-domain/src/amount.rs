//! Money: whole yen, read exactly from the text it arrived as, never through a float.

use std::fmt;

use super::invalid::{Invalid, all_digits, invalid};

/// A plain decimal number's text, read exactly: digits, then optionally `.` and digits
/// (`1500`, `1500.00`, `1500.50`); no sign, exponent, blank or empty part. The one reading of
/// an amount's text, for a merchant's payout and for what Vexora reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PlainDecimal<'a> {
    /// The digits before the point.
    pub whole: &'a str,
    /// Whether every digit after the point (if any) is zero.
    pub is_whole: bool,
}

impl<'a> PlainDecimal<'a> {
    pub fn parse(text: &'a str) -> Option<Self> {
        let (whole, fraction) = match text.split_once('.') {
            Some((whole, fraction)) => (whole, Some(fraction)),
            None => (text, None),
        };
        if !all_digits(whole) || fraction.is_some_and(|f| !all_digits(f)) {
            return None;
        }
        Some(Self {
            whole,
            is_whole: fraction.is_none_or(|f| f.bytes().all(|b| b == b'0')),
        })
    }
}

/// Whole yen, at least 100 and at most [`Amount::MAX_YEN`]. Money is never a float: a JSON
/// number is accepted only when it is a whole number (`1500` or `1500.0`, which JSON Schema also
/// calls an integer), within the range where every whole number is exact.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Amount(u64);

impl Amount {
    pub const MIN_YEN: u64 = 100;
    /// 15 digits: far above any payout, and below 2^53, so a JSON number is exact.
    pub const MAX_YEN: u64 = 999_999_999_999_999;

    pub fn new(yen: u64) -> Result<Self, Invalid> {
        if yen < Self::MIN_YEN {
            return invalid("must be at least 100 yen");
        }
        if yen > Self::MAX_YEN {
            return invalid("is too large (at most 999999999999999 yen)");
        }
        Ok(Self(yen))
    }

    /// From the raw JSON text of the `amount` member: a number or a string of digits, read
    /// exactly from the text. A number may carry a fraction of zeros (`1500.0`, which JSON Schema
    /// also calls an integer); a sign, an exponent or any non-zero fraction is refused, so
    /// `1e2`, `100.00000000000001` and `1500.9999999999999999` are errors, never 100 or 1501.
    pub fn from_json_text(raw: &str) -> Result<Self, Invalid> {
        const SHAPE: &str = "must be a whole number of yen (a JSON integer or a string of digits, no sign, exponent or decimals)";
        match raw.as_bytes().first() {
            Some(b'"') => match serde_json::from_str::<String>(raw) {
                Ok(text) => Self::parse_digits(&text),
                Err(_) => invalid(SHAPE),
            },
            Some(b'-') => invalid("must not be negative"),
            Some(b'0'..=b'9') => match PlainDecimal::parse(raw) {
                Some(number) if number.is_whole => Self::parse_digits(number.whole),
                _ => invalid(SHAPE),
            },
            _ => invalid(SHAPE),
        }
    }

    /// From the text of a string value: digits only.
    pub fn parse_digits(s: &str) -> Result<Self, Invalid> {
        if !all_digits(s) {
            return invalid(
                "must be a whole number of yen (a JSON integer or a string of digits, no sign or decimals)",
            );
        }
        match s.parse::<u64>() {
            Ok(yen) => Self::new(yen),
            Err(_) => invalid("is too large"),
        }
    }

    pub fn yen(self) -> u64 {
        self.0
    }
}

impl fmt::Display for Amount {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

#[cfg(test)]
mod plain_decimal_tests {
    use super::PlainDecimal;

    #[test]
    fn a_plain_decimal_is_digits_and_at_most_one_point_between_digits() {
        let read = |t| PlainDecimal::parse(t).map(|d| (d.whole, d.is_whole));
        assert_eq!(read("1500"), Some(("1500", true)));
        assert_eq!(read("1500.00"), Some(("1500", true)));
        assert_eq!(read("1500.50"), Some(("1500", false)));
        assert_eq!(read("0.0000000000000001"), Some(("0", false)));
        for refused in [
            "",
            ".",
            "1500.",
            ".5",
            "-1500",
            "+1500",
            "1e3",
            "1E3",
            "15 00",
            "1500.0.0",
            "１５００",
            "1_500",
            "0x10",
            " 1500",
        ] {
            assert_eq!(read(refused), None, "{refused:?}");
        }
    }
}
