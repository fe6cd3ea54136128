//! `POST /payouts` body → [`PayoutRequest`]: every field parsed into its type, every violation
//! reported at once; and the fingerprint that tells a retry from another payout.

use serde_json::Value;
use sha2::{Digest, Sha256};

use super::invalid::{FieldError, Invalid, ValidationErrors};
use super::{Amount, BankCode, BankNumber, Email, KatakanaName, Mobile, Remark, TradeNo, UserId};
use crate::json::{ObjectError, RawObject};

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

/// A payout request that satisfies every rule of the contract (docs/contract.md § `POST /payouts`).
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

        // A field is `None` only after its violation was collected.
        let parsed = (|| {
            Some(Self {
                trade_no: trade_no?,
                amount: amount?,
                bank_code: bank_code?,
                bank_number: bank_number?,
                user_id: user_id?,
                mobile: mobile?,
                email: email?,
                firstname: firstname?,
                lastname: lastname?,
                remark: remark?,
            })
        })();
        match parsed {
            Some(request) if c.0.is_empty() => Ok(request),
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
