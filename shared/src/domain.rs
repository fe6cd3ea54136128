//! Japan payout domain types: values that can only hold what the contract and Vexora accept,
//! and the request DTO → [`PayoutRequest`] conversion that reports every violation at once.

use std::fmt;

use chrono::{DateTime, FixedOffset, Utc};
use rand::Rng;
use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::json::{ObjectError, RawObject};

/// Wraps personal data so that `Debug` and `Display` print a mask; reading the value is explicit.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct Pii<T>(T);

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

/// A violation of one field's rule, for the 400 answer. The message never repeats the value.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct FieldError {
    pub field: String,
    pub message: String,
}

impl FieldError {
    fn new(field: &str, message: impl Into<String>) -> Self {
        Self {
            field: field.to_owned(),
            message: message.into(),
        }
    }
}

/// Every violation found in one request, in field order.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{} invalid field(s)", .0.len())]
pub struct ValidationErrors(pub Vec<FieldError>);

/// The rule of one field failed; the message says what is expected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct Invalid(pub String);

fn invalid<T>(message: impl Into<String>) -> Result<T, Invalid> {
    Err(Invalid(message.into()))
}

fn all_digits(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit())
}

/// Merchant order number and idempotency key: `[A-Za-z0-9_-]{1,32}`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TradeNo(String);

/// Japan Standard Time. Japan has observed no daylight saving since 1951, so a fixed offset is
/// exact. Evaluated at compile time: nothing can fail at run time.
const TOKYO: FixedOffset = match FixedOffset::east_opt(9 * 3600) {
    Some(offset) => offset,
    None => panic!("UTC+9 is a valid offset"),
};

impl TradeNo {
    pub const MAX_LEN: usize = 32;

    pub fn parse(s: &str) -> Result<Self, Invalid> {
        if s.is_empty() || s.len() > Self::MAX_LEN {
            return invalid("must be 1 to 32 characters");
        }
        if !s
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
        {
            return invalid("may contain only letters A-Z a-z, digits, '_' and '-'");
        }
        Ok(Self(s.to_owned()))
    }

    /// `yyyyMMddHHmmss` in Asia/Tokyo followed by 6 random digits (Vexora's suggested form).
    pub fn generate(now: DateTime<Utc>, rng: &mut impl Rng) -> Self {
        let local = now.with_timezone(&TOKYO);
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
            Some(b'0'..=b'9') => {
                if raw.contains(['e', 'E']) {
                    return invalid(SHAPE);
                }
                let (whole, fraction) = raw.split_once('.').unwrap_or((raw, ""));
                if fraction.bytes().any(|b| b != b'0') {
                    return invalid(SHAPE);
                }
                Self::parse_digits(whole)
            }
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

/// Bank code: exactly 4 digits. Only the shape is checked: no public Japan list exists (§6).
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

/// A legal name in full-width Katakana (U+30A0–U+30FF, with `ー` and `・`), parts optionally
/// separated by one full-width or ASCII space; 1–40 characters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KatakanaName(Pii<String>);

impl KatakanaName {
    pub const MAX_CHARS: usize = 40;

    pub fn parse(s: &str) -> Result<Self, Invalid> {
        let count = s.chars().count();
        if count == 0 {
            return invalid("must not be empty");
        }
        if count > Self::MAX_CHARS {
            return invalid("must be at most 40 characters");
        }
        if s.starts_with(is_name_space) || s.ends_with(is_name_space) {
            return invalid("must not start or end with a space");
        }
        for c in s.chars() {
            let found = match c {
                '\u{30A0}'..='\u{30FF}' | ' ' | '\u{3000}' => continue,
                '\u{3040}'..='\u{309F}' => "Hiragana",
                '\u{FF65}'..='\u{FF9F}' => "half-width Katakana",
                '\u{4E00}'..='\u{9FFF}' | '\u{3400}'..='\u{4DBF}' | '\u{F900}'..='\u{FAFF}' => {
                    "Kanji"
                }
                'a'..='z' | 'A'..='Z' | '\u{FF21}'..='\u{FF3A}' | '\u{FF41}'..='\u{FF5A}' => {
                    "Latin letters"
                }
                _ => "characters other than Katakana",
            };
            return invalid(format!(
                "must be written in full-width Katakana (e.g. ヤマダ); it contains {found}"
            ));
        }
        if s.contains("  ")
            || s.contains("\u{3000}\u{3000}")
            || s.contains(" \u{3000}")
            || s.contains("\u{3000} ")
        {
            return invalid("parts must be separated by a single space");
        }
        Ok(Self(Pii(s.to_owned())))
    }

    pub fn expose(&self) -> &str {
        self.0.expose()
    }
}

fn is_name_space(c: char) -> bool {
    c == ' ' || c == '\u{3000}'
}

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

/// `POST /payouts` body as received: every member kept as JSON (the amount as its raw text) so
/// each violation, including a wrong type, is reported against its own field.
#[derive(Debug, Default)]
pub struct PayoutRequestDto {
    pub trade_no: Option<Value>,
    /// The raw JSON text of `amount`, parsed exactly ([`Amount::from_json_text`]).
    pub amount: Option<String>,
    pub bank_code: Option<Value>,
    pub bank_number: Option<Value>,
    pub user_id: Option<Value>,
    pub mobile: Option<Value>,
    pub email: Option<Value>,
    pub firstname: Option<Value>,
    pub lastname: Option<Value>,
    pub remark: Option<Value>,
    /// Names of members the contract does not know.
    pub unknown: Vec<String>,
}

impl PayoutRequestDto {
    /// Sorts the members of a received object into the DTO's fields.
    pub fn from_object(object: &RawObject<'_>) -> Self {
        let mut dto = Self::default();
        for (name, raw) in object.iter() {
            // A number beyond f64's range does not read as a `Value`; it is then a wrong type.
            let value = || serde_json::from_str::<Value>(raw.get()).ok();
            match name {
                "tradeNo" => dto.trade_no = value(),
                "amount" => dto.amount = Some(raw.get().to_owned()),
                "bankCode" => dto.bank_code = value(),
                "bankNumber" => dto.bank_number = value(),
                "userId" => dto.user_id = value(),
                "mobile" => dto.mobile = value(),
                "email" => dto.email = value(),
                "firstname" => dto.firstname = value(),
                "lastname" => dto.lastname = value(),
                "remark" => dto.remark = value(),
                other => dto.unknown.push(other.to_owned()),
            }
        }
        dto
    }
}

/// A payout request that satisfies every rule of the contract.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PayoutRequest {
    /// `None` when the merchant let the service generate one.
    pub trade_no: Option<TradeNo>,
    pub amount: Amount,
    pub bank_code: BankCode,
    pub bank_number: BankNumber,
    pub user_id: UserId,
    pub mobile: Mobile,
    pub email: Email,
    pub firstname: KatakanaName,
    pub lastname: KatakanaName,
    pub remark: Option<Remark>,
}

/// Collects the violations of one request while each field is parsed.
struct Collector(Vec<FieldError>);

impl Collector {
    fn required<T>(
        &mut self,
        field: &str,
        value: Option<&Value>,
        parse: impl FnOnce(&str) -> Result<T, Invalid>,
    ) -> Option<T> {
        match value {
            None | Some(Value::Null) => {
                self.0.push(FieldError::new(field, "is required"));
                None
            }
            Some(v) => self.string(field, v, parse),
        }
    }

    fn optional<T>(
        &mut self,
        field: &str,
        value: Option<&Value>,
        parse: impl FnOnce(&str) -> Result<T, Invalid>,
    ) -> Option<Option<T>> {
        match value {
            None | Some(Value::Null) => Some(None),
            Some(v) => self.string(field, v, parse).map(Some),
        }
    }

    fn string<T>(
        &mut self,
        field: &str,
        value: &Value,
        parse: impl FnOnce(&str) -> Result<T, Invalid>,
    ) -> Option<T> {
        let Value::String(s) = value else {
            self.0.push(FieldError::new(field, "must be a string"));
            return None;
        };
        self.check(field, parse(s))
    }

    fn check<T>(&mut self, field: &str, result: Result<T, Invalid>) -> Option<T> {
        result
            .map_err(|Invalid(message)| self.0.push(FieldError::new(field, message)))
            .ok()
    }
}

impl TryFrom<PayoutRequestDto> for PayoutRequest {
    type Error = ValidationErrors;

    fn try_from(dto: PayoutRequestDto) -> Result<Self, Self::Error> {
        let mut c = Collector(Vec::new());
        let trade_no = c.optional("tradeNo", dto.trade_no.as_ref(), TradeNo::parse);
        let amount = match dto.amount.as_deref() {
            None | Some("null") => {
                c.0.push(FieldError::new("amount", "is required"));
                None
            }
            Some(raw) => c.check("amount", Amount::from_json_text(raw)),
        };
        let bank_code = c.required("bankCode", dto.bank_code.as_ref(), BankCode::parse);
        let bank_number = c.required("bankNumber", dto.bank_number.as_ref(), BankNumber::parse);
        let user_id = c.required("userId", dto.user_id.as_ref(), UserId::parse);
        let mobile = c.required("mobile", dto.mobile.as_ref(), Mobile::parse);
        let email = c.required("email", dto.email.as_ref(), Email::parse);
        let firstname = c.required("firstname", dto.firstname.as_ref(), KatakanaName::parse);
        let lastname = c.required("lastname", dto.lastname.as_ref(), KatakanaName::parse);
        // An empty remark is no remark: Vexora's signature leaves empty values out, so both are
        // the same payout (and the same fingerprint).
        let remark = match dto.remark.as_ref() {
            Some(Value::String(s)) if s.is_empty() => Some(None),
            other => c.optional("remark", other, Remark::parse),
        };
        for name in &dto.unknown {
            c.0.push(FieldError::new(name, "is not a known field"));
        }

        match (
            trade_no,
            amount,
            bank_code,
            bank_number,
            user_id,
            mobile,
            email,
            firstname,
            lastname,
            remark,
        ) {
            (
                Some(trade_no),
                Some(amount),
                Some(bank_code),
                Some(bank_number),
                Some(user_id),
                Some(mobile),
                Some(email),
                Some(firstname),
                Some(lastname),
                Some(remark),
            ) if c.0.is_empty() => Ok(Self {
                trade_no,
                amount,
                bank_code,
                bank_number,
                user_id,
                mobile,
                email,
                firstname,
                lastname,
                remark,
            }),
            _ => Err(ValidationErrors(c.0)),
        }
    }
}

impl PayoutRequest {
    /// Parses and validates a JSON body. A body that is not a JSON object is one error on `body`.
    pub fn from_json(body: &[u8]) -> Result<Self, ValidationErrors> {
        let object = RawObject::parse(body).map_err(|e| {
            ValidationErrors(vec![match e {
                ObjectError::NotAnObject => FieldError::new("body", "must be a JSON object"),
                ObjectError::Duplicate(name) => {
                    FieldError::new(&name, "appears more than once; give each field once")
                }
            }])
        })?;
        Self::try_from(PayoutRequestDto::from_object(&object))
    }

    /// SHA-256 over the validated content, independent of key order and of whether `amount`
    /// came as a number or a string. It tells a retry of the same payout from a different payout
    /// reusing a `tradeNo`. `tradeNo` itself is not part of it.
    pub fn fingerprint(&self) -> String {
        let canonical = serde_json::json!([
            self.amount.yen(),
            self.bank_code.as_str(),
            self.bank_number.expose(),
            self.user_id.as_str(),
            self.mobile.expose(),
            self.email.expose(),
            self.firstname.expose(),
            self.lastname.expose(),
            self.remark.as_ref().map(Remark::as_str),
        ]);
        hex::encode(Sha256::digest(canonical.to_string().as_bytes()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use serde_json::json;

    fn good() -> Value {
        json!({
            "tradeNo": "ORDER_2026-0001",
            "amount": 1500,
            "bankCode": "0005",
            "bankNumber": "1234567",
            "userId": "user-42",
            "mobile": "09012345678",
            "email": "taro@example.jp",
            "firstname": "タロウ",
            "lastname": "ヤマダ",
            "remark": "November payout"
        })
    }

    fn with(field: &str, value: Value) -> Value {
        let mut v = good();
        v[field] = value;
        v
    }

    fn parse(v: &Value) -> Result<PayoutRequest, ValidationErrors> {
        PayoutRequest::from_json(v.to_string().as_bytes())
    }

    #[test]
    fn a_complete_request_is_accepted() {
        let req = parse(&good()).unwrap();
        assert_eq!(req.amount.yen(), 1500);
        assert_eq!(req.trade_no.unwrap().as_str(), "ORDER_2026-0001");
        assert_eq!(req.bank_number.masked(), "****4567");
        assert_eq!(BankNumber::parse("123456").unwrap().masked(), "****");
    }

    #[test]
    fn optional_fields_may_be_absent_or_null() {
        let mut v = good();
        v.as_object_mut().unwrap().remove("tradeNo");
        v["remark"] = Value::Null;
        let req = parse(&v).unwrap();
        assert!(req.trade_no.is_none());
        assert!(req.remark.is_none());
    }

    #[test]
    fn good_forms_are_accepted() {
        let cases: &[(&str, Value, &str)] = &[
            ("amount", json!("100"), "minimum as a digit string"),
            ("amount", json!(100), "minimum as a number"),
            ("amount", json!(50_000_000), "large amount"),
            (
                "amount",
                json!(1500.0),
                "whole number written with a fraction",
            ),
            ("amount", json!(999_999_999_999_999_u64), "maximum"),
            (
                "amount",
                json!("999999999999999"),
                "maximum as a digit string",
            ),
            ("tradeNo", json!("a"), "one character"),
            ("tradeNo", json!("A".repeat(32)), "32 characters"),
            ("bankNumber", json!("1"), "one digit"),
            ("bankNumber", json!("1".repeat(20)), "20 digits"),
            ("userId", json!("u!~#".repeat(16)), "64 visible ASCII"),
            ("mobile", json!("08000000000"), "11 digits from 0"),
            (
                "email",
                json!("a.b+c@mail.example.co.jp"),
                "subdomains and plus",
            ),
            ("firstname", json!("ジョン・スミス"), "middle dot"),
            ("firstname", json!("ユーコ"), "long vowel mark"),
            (
                "lastname",
                json!("ヤマダ タロウ"),
                "ASCII space between parts",
            ),
            (
                "lastname",
                json!("ヤマダ\u{3000}タロウ"),
                "full-width space",
            ),
            ("lastname", json!("ア".repeat(40)), "40 characters"),
            ("remark", json!("ＯＫ 半角も全角も"), "any visible text"),
            ("remark", json!("x".repeat(128)), "128 characters"),
        ];
        for (field, value, reason) in cases {
            assert!(
                parse(&with(field, value.clone())).is_ok(),
                "{field} {reason}: {:?}",
                parse(&with(field, value.clone())).unwrap_err()
            );
        }
    }

    #[test]
    fn bad_forms_are_rejected_with_the_field_named() {
        let cases: &[(&str, Value, &str, &str)] = &[
            ("amount", json!(99), "below minimum", "at least 100"),
            (
                "amount",
                json!("99"),
                "below minimum as string",
                "at least 100",
            ),
            ("amount", json!(100.5), "decimal number", "whole number"),
            ("amount", json!("100.5"), "decimal string", "whole number"),
            ("amount", json!(-100), "negative number", "negative"),
            ("amount", json!("-100"), "signed string", "whole number"),
            ("amount", json!("+100"), "plus sign", "whole number"),
            ("amount", json!("1e3"), "exponent string", "whole number"),
            ("amount", json!(1000.25), "float number", "whole number"),
            ("amount", json!(-1500.0), "negative float", "negative"),
            (
                "amount",
                json!(1e15),
                "float above the maximum",
                "too large",
            ),
            (
                "amount",
                json!(1_000_000_000_000_000_u64),
                "above the maximum",
                "too large",
            ),
            (
                "amount",
                json!("1000000000000000"),
                "above the maximum as a string",
                "too large",
            ),
            ("amount", json!(""), "empty string", "whole number"),
            ("amount", json!(" 100"), "padded", "whole number"),
            (
                "amount",
                json!("99999999999999999999999"),
                "overflow",
                "too large",
            ),
            ("amount", json!(true), "boolean", "whole number"),
            ("amount", Value::Null, "null", "required"),
            ("tradeNo", json!(""), "empty", "1 to 32"),
            ("tradeNo", json!("A".repeat(33)), "33 characters", "1 to 32"),
            ("tradeNo", json!("a b"), "space", "only letters"),
            ("tradeNo", json!("注文1"), "non-ASCII", "only letters"),
            ("tradeNo", json!(123), "number", "must be a string"),
            ("bankCode", json!("005"), "3 digits", "exactly 4"),
            ("bankCode", json!("00050"), "5 digits", "exactly 4"),
            ("bankCode", json!("00a5"), "letter", "exactly 4"),
            (
                "bankCode",
                json!("０００５"),
                "full-width digits",
                "exactly 4",
            ),
            ("bankCode", json!(5), "number", "must be a string"),
            ("bankNumber", json!(""), "empty", "1 to 20"),
            ("bankNumber", json!("1".repeat(21)), "21 digits", "1 to 20"),
            ("bankNumber", json!("123-456"), "dash", "1 to 20"),
            ("userId", json!(""), "empty", "1 to 64"),
            ("userId", json!("a".repeat(65)), "65 characters", "1 to 64"),
            ("userId", json!("a b"), "space", "visible ASCII"),
            ("userId", json!("ユーザー"), "non-ASCII", "visible ASCII"),
            ("mobile", json!("+819012345678"), "country code", "+81"),
            ("mobile", json!("0901234567"), "10 digits", "11 digits"),
            ("mobile", json!("090123456789"), "12 digits", "11 digits"),
            (
                "mobile",
                json!("19012345678"),
                "not starting with 0",
                "starting with 0",
            ),
            ("mobile", json!("090-1234-5678"), "dashes", "11 digits"),
            ("email", json!("taro"), "no @", "e-mail address"),
            (
                "email",
                json!("taro@example"),
                "no dot in domain",
                "e-mail address",
            ),
            (
                "email",
                json!("@example.jp"),
                "empty local part",
                "e-mail address",
            ),
            (
                "email",
                json!("ta ro@example.jp"),
                "space",
                "e-mail address",
            ),
            ("email", json!("a@b@example.jp"), "two @", "e-mail address"),
            (
                "email",
                json!("a@example..jp"),
                "empty label",
                "e-mail address",
            ),
            (
                "email",
                json!(format!("{}@example.jp", "a".repeat(250))),
                "too long",
                "254",
            ),
            ("firstname", json!("たろう"), "Hiragana", "Hiragana"),
            ("firstname", json!("太郎"), "Kanji", "Kanji"),
            (
                "firstname",
                json!("ﾀﾛｳ"),
                "half-width Katakana",
                "half-width Katakana",
            ),
            ("firstname", json!("Taro"), "Latin", "Latin letters"),
            (
                "firstname",
                json!("タロウ1"),
                "digit",
                "other than Katakana",
            ),
            ("firstname", json!(""), "empty", "must not be empty"),
            (
                "firstname",
                json!("ア".repeat(41)),
                "41 characters",
                "at most 40",
            ),
            (
                "lastname",
                json!(" ヤマダ"),
                "leading space",
                "start or end",
            ),
            (
                "lastname",
                json!("ヤマダ  タロウ"),
                "double space",
                "single space",
            ),
            ("lastname", Value::Null, "null", "required"),
            (
                "remark",
                json!("x".repeat(129)),
                "129 characters",
                "at most 128",
            ),
            ("remark", json!("a\nb"), "newline", "control"),
            ("remark", json!(5), "number", "must be a string"),
        ];
        for (field, value, reason, expected) in cases {
            let errors = parse(&with(field, value.clone())).unwrap_err().0;
            assert_eq!(errors.len(), 1, "{field} {reason}: {errors:?}");
            assert_eq!(errors[0].field, *field, "{field} {reason}");
            assert!(
                errors[0].message.contains(expected),
                "{field} {reason}: message {:?} lacks {expected:?}",
                errors[0].message
            );
        }
    }

    #[test]
    fn amounts_are_parsed_exactly_from_the_text_never_through_a_float() {
        let body = |amount: &str| {
            good()
                .to_string()
                .replace("\"amount\":1500", &format!("\"amount\":{amount}"))
        };
        for (amount, expected) in [
            ("1500", Some(1500)),
            ("\"1500\"", Some(1500)),
            ("1500.0", Some(1500)),
            ("1500.000", Some(1500)),
            ("1e2", None),
            ("1E3", None),
            ("1.5e3", None),
            ("100.00000000000001", None),
            ("1500.9999999999999999", None),
            ("1500.5", None),
            ("18446744073709551616", None),
            ("-0", None),
        ] {
            let parsed = PayoutRequest::from_json(body(amount).as_bytes());
            match expected {
                Some(yen) => assert_eq!(parsed.map(|p| p.amount.yen()).ok(), Some(yen), "{amount}"),
                None => {
                    let errors = parsed.expect_err(amount).0;
                    assert_eq!(errors.len(), 1, "{amount}: {errors:?}");
                    assert_eq!(errors[0].field, "amount", "{amount}");
                }
            }
        }
    }

    #[test]
    fn an_empty_remark_is_the_same_payout_as_none() {
        let mut without = good();
        without.as_object_mut().unwrap().remove("remark");
        let empty = with("remark", json!(""));
        let null = with("remark", Value::Null);
        let a = parse(&without).unwrap();
        assert_eq!(parse(&empty).unwrap().remark, None);
        assert_eq!(parse(&empty).unwrap().fingerprint(), a.fingerprint());
        assert_eq!(parse(&null).unwrap().fingerprint(), a.fingerprint());
    }

    #[test]
    fn a_field_given_twice_is_refused() {
        let body = good()
            .to_string()
            .replace("\"amount\":1500", "\"amount\":1500,\"amount\":99999");
        let errors = PayoutRequest::from_json(body.as_bytes()).unwrap_err().0;
        assert_eq!(errors.len(), 1, "{errors:?}");
        assert_eq!(errors[0].field, "amount");
        assert!(errors[0].message.contains("more than once"), "{errors:?}");
    }

    #[test]
    fn every_violation_is_reported_not_only_the_first() {
        let v = json!({"amount": "12.5", "bankCode": "1", "mobile": "+81", "extra": 1, "other": 2});
        let fields: Vec<String> = parse(&v)
            .unwrap_err()
            .0
            .into_iter()
            .map(|e| e.field)
            .collect();
        assert_eq!(
            fields,
            [
                "amount",
                "bankCode",
                "bankNumber",
                "userId",
                "mobile",
                "email",
                "firstname",
                "lastname",
                "extra",
                "other"
            ]
        );
    }

    #[test]
    fn a_body_that_is_not_an_object_is_one_body_error() {
        for body in [&b"not json"[..], b"[1]", b"\"x\"", b"", b"{\"a\":"] {
            let errors = PayoutRequest::from_json(body).unwrap_err().0;
            assert_eq!(
                errors,
                vec![FieldError::new("body", "must be a JSON object")]
            );
        }
    }

    #[test]
    fn messages_never_repeat_personal_values() {
        let v = json!({
            "amount": 1, "bankCode": "x", "bankNumber": "12ab34", "userId": " ",
            "mobile": "+8190CANARY", "email": "canary-at-example", "firstname": "CanaryFirst",
            "lastname": "CanaryLast"
        });
        let printed = format!("{:?}", parse(&v).unwrap_err());
        for canary in ["12ab34", "CANARY", "canary-at", "CanaryFirst", "CanaryLast"] {
            assert!(!printed.contains(canary), "{canary} leaked: {printed}");
        }
    }

    #[test]
    fn debug_of_a_valid_request_masks_personal_data() {
        let printed = format!("{:?}", parse(&good()).unwrap());
        for secret in [
            "1234567",
            "09012345678",
            "taro@example.jp",
            "タロウ",
            "ヤマダ",
        ] {
            assert!(!printed.contains(secret), "{secret} leaked: {printed}");
        }
    }

    #[test]
    fn fingerprint_ignores_key_order_and_amount_form() {
        let a = parse(&good()).unwrap().fingerprint();
        let b = parse(&with("amount", json!("1500"))).unwrap().fingerprint();
        let reordered = r#"{"remark":"November payout","lastname":"ヤマダ","firstname":"タロウ",
            "email":"taro@example.jp","mobile":"09012345678","userId":"user-42",
            "bankNumber":"1234567","bankCode":"0005","amount":"1500","tradeNo":"ORDER_2026-0001"}"#;
        let c = PayoutRequest::from_json(reordered.as_bytes())
            .unwrap()
            .fingerprint();
        assert_eq!(a, b);
        assert_eq!(a, c);
        assert_eq!(a.len(), 64);
    }

    #[test]
    fn fingerprint_changes_with_any_content() {
        let base = parse(&good()).unwrap().fingerprint();
        for (field, value) in [
            ("amount", json!(1501)),
            ("bankCode", json!("0006")),
            ("bankNumber", json!("1234568")),
            ("userId", json!("user-43")),
            ("mobile", json!("09012345679")),
            ("email", json!("jiro@example.jp")),
            ("firstname", json!("ジロウ")),
            ("lastname", json!("タナカ")),
            ("remark", Value::Null),
        ] {
            assert_ne!(
                parse(&with(field, value)).unwrap().fingerprint(),
                base,
                "{field}"
            );
        }
    }

    #[test]
    fn generated_trade_numbers_use_tokyo_time_and_six_digits() {
        let now = DateTime::parse_from_rfc3339("2026-11-23T15:04:05Z")
            .unwrap()
            .with_timezone(&Utc);
        let mut rng = rand::rngs::StdRng::seed_from_u64(7);
        let t = TradeNo::generate(now, &mut rng);
        assert_eq!(t.as_str().len(), 20);
        assert!(t.as_str().starts_with("20261124000405"), "{t}");
        assert!(t.as_str()[14..].bytes().all(|b| b.is_ascii_digit()));
        assert!(TradeNo::parse(t.as_str()).is_ok());
    }
}
