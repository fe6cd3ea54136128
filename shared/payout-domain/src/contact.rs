//! Who is paid: the merchant's beneficiary id, a mobile number and an e-mail address.

use super::invalid::{Invalid, all_digits, invalid};
use super::pii::Pii;

/// Merchant-side beneficiary id: 1–64 visible ASCII characters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserId(String);

impl UserId {
    pub fn parse(s: &str) -> Result<Self, Invalid> {
        if s.is_empty() || s.len() > 64 || !s.bytes().all(|b| b.is_ascii_graphic()) {
            return invalid("must be 1 to 64 visible ASCII characters (no spaces)");
        }
        Ok(Self(s.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Japanese mobile number: 11 digits starting with 0, no country code.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mobile(Pii<String>);

impl Mobile {
    pub fn parse(s: &str) -> Result<Self, Invalid> {
        if s.starts_with('+') {
            return invalid(
                "must be a domestic number: 11 digits starting with 0, without the +81 country code",
            );
        }
        if s.len() != 11 || !all_digits(s) || !s.starts_with('0') {
            return invalid("must be 11 digits starting with 0");
        }
        Ok(Self(Pii(s.to_owned())))
    }

    pub fn expose(&self) -> &str {
        self.0.expose()
    }
}

/// A plausible e-mail address, at most 254 characters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Email(Pii<String>);

impl Email {
    pub fn parse(s: &str) -> Result<Self, Invalid> {
        const SHAPE: &str = "must be an e-mail address like name@example.jp";
        if s.len() > 254 {
            return invalid("must be at most 254 characters");
        }
        let Some((local, domain)) = s.split_once('@') else {
            return invalid(SHAPE);
        };
        let local_ok = !local.is_empty()
            && local.len() <= 64
            && local.bytes().all(|b| b.is_ascii_graphic() && b != b'@');
        let labels_ok = domain.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-')
        });
        if !local_ok || !labels_ok || !domain.contains('.') {
            return invalid(SHAPE);
        }
        Ok(Self(Pii(s.to_owned())))
    }

    pub fn expose(&self) -> &str {
        self.0.expose()
    }
}
