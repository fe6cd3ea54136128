//! The beneficiary's bank: a 4-digit bank code and the account number (personal data).

use super::invalid::{Invalid, all_digits, invalid};
use super::pii::Pii;

/// Bank code: exactly 4 digits. Only the shape is checked: no public Japan list exists
/// (`docs/vexora-api.md` §6).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BankCode(String);

impl BankCode {
    pub fn parse(s: &str) -> Result<Self, Invalid> {
        if s.len() != 4 || !all_digits(s) {
            return invalid("must be exactly 4 digits");
        }
        Ok(Self(s.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Account number: 1–20 digits, personal data.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BankNumber(Pii<String>);

impl BankNumber {
    pub fn parse(s: &str) -> Result<Self, Invalid> {
        if s.is_empty() || s.len() > 20 || !all_digits(s) {
            return invalid("must be 1 to 20 digits");
        }
        Ok(Self(Pii(s.to_owned())))
    }

    pub fn expose(&self) -> &str {
        self.0.expose()
    }

    /// `****` followed by the last 4 digits: the only form ever stored, shown or logged. A number
    /// shorter than 7 digits (Japanese accounts have 7) shows no digit, so a mask never reveals
    /// most of a number.
    pub fn masked(&self) -> String {
        let s = self.0.expose();
        if s.len() >= 7 {
            format!("****{}", &s[s.len() - 4..])
        } else {
            "****".to_owned()
        }
    }
}
