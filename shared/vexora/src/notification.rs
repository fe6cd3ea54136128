//! A status notification (`docs/vexora-api.md` §5) read from fields whose signature verified,
//! and the rules that refuse a signed body that could mean something else
//! (docs/contract.md § Security rules for signed bodies).

use payout_domain::TradeNo;

use crate::signing;
use crate::transformers::{
    MAX_MESSAGE_CHARS, MAX_STATUS_CHARS, MAX_VALUE_CHARS, ReportedAmount, VexoraStatus, bounded,
};

/// Fields only a payout submit carries (`docs/vexora-api.md` §3). A signed body with any of them
/// is a submit body (re-split or replayed), never a notification
/// (docs/contract.md § Security rules for signed bodies).
pub const SUBMIT_ONLY_FIELDS: [&str; 8] = [
    "bankCode",
    "bankNumber",
    "mobile",
    "email",
    "firstname",
    "lastname",
    "notifyUrl",
    "userId",
];

/// Fields of a notification that may be kept on an order: no names, accounts or free text.
pub const KEPT_FIELDS: [&str; 7] = [
    "tradeNo",
    "platFormTradeNo",
    "status",
    "amount",
    "successTime",
    "timestamp",
    "utr",
];

/// Why a notification is refused with `401` (docs/contract.md § Security rules for signed bodies):
/// its signature cannot be trusted to mean what the fields say.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// A field name that is not a letter followed by letters and digits.
    FieldName,
    /// A field only a payout submit carries.
    SubmitOnlyField,
    /// A field given twice.
    DuplicateField,
    MissingAmount,
    /// An amount that is not a plain decimal number.
    MalformedAmount,
    /// A status that is not 1–16 digits.
    MalformedStatus,
    /// The signed text could be split into other fields naming another order, status or amount.
    Ambiguous,
}

impl Refusal {
    pub fn label(self) -> &'static str {
        match self {
            Self::FieldName => "field_name",
            Self::SubmitOnlyField => "submit_only_field",
            Self::DuplicateField => "duplicate_field",
            Self::MissingAmount => "missing_amount",
            Self::MalformedAmount => "malformed_amount",
            Self::MalformedStatus => "malformed_status",
            Self::Ambiguous => "ambiguous",
        }
    }
}

/// Why a verified body is not a notification.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NotificationError {
    /// `401`: see [`Refusal`].
    Refused(Refusal),
    /// `400`: `tradeNo` or `status` is missing.
    Missing(&'static str),
    /// `404`: `tradeNo` is not of a shape any order has.
    UnknownTradeNo,
}

/// A status notification (`docs/vexora-api.md` §5), read from fields whose signature verified.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Notification {
    pub trade_no: TradeNo,
    pub status: VexoraStatus,
    pub amount: ReportedAmount,
    /// The amount as received (bounded), for the audit trail.
    pub amount_text: String,
    pub plat_form_trade_no: Option<String>,
    pub message: Option<String>,
    /// PII-free fields ([`KEPT_FIELDS`]) as received, bounded, for an anomaly record.
    pub kept: std::collections::BTreeMap<String, String>,
}

fn is_field_name(name: &str) -> bool {
    let mut bytes = name.bytes();
    bytes.next().is_some_and(|b| b.is_ascii_alphabetic())
        && bytes.all(|b| b.is_ascii_alphanumeric())
}

impl Notification {
    /// The rules that need no secret, checked before the signature so that bodies no
    /// notification can have never cost a secret read: field names, submit-only fields.
    pub fn check_names<'a>(names: impl IntoIterator<Item = &'a str>) -> Result<(), Refusal> {
        for name in names {
            if name == signing::SIGN_FIELD {
                continue;
            }
            if !is_field_name(name) {
                return Err(Refusal::FieldName);
            }
            if SUBMIT_ONLY_FIELDS.contains(&name) {
                return Err(Refusal::SubmitOnlyField);
            }
        }
        Ok(())
    }

    /// Reads a notification from its fields; trust it only once the signature verified. Vexora
    /// joins `k=v` pairs with no separator, so the same signature also covers other splits of
    /// the same text; the shapes required here make `tradeNo`, `status` and `amount` the only
    /// possible split.
    pub fn parse(fields: &signing::ReceivedFields) -> Result<Self, NotificationError> {
        use NotificationError::{Missing, Refused};
        Self::check_names(fields.names()).map_err(Refused)?;
        let trade_no_text = fields.get("tradeNo").ok_or(Missing("tradeNo"))?;
        let status_text = fields.get("status").ok_or(Missing("status"))?;
        let amount_text = fields
            .get("amount")
            .ok_or(Refused(Refusal::MissingAmount))?;
        if status_text.is_empty()
            || status_text.len() > MAX_STATUS_CHARS
            || !status_text.bytes().all(|b| b.is_ascii_digit())
        {
            return Err(Refused(Refusal::MalformedStatus));
        }
        let amount = ReportedAmount::parse(amount_text).ok_or(Refused(Refusal::MalformedAmount))?;
        let trade_no =
            TradeNo::parse(trade_no_text).map_err(|_| NotificationError::UnknownTradeNo)?;
        if is_ambiguous(fields) {
            return Err(Refused(Refusal::Ambiguous));
        }
        Ok(Self {
            status: VexoraStatus::parse(status_text),
            amount,
            amount_text: bounded(amount_text, MAX_VALUE_CHARS),
            plat_form_trade_no: fields
                .get("platFormTradeNo")
                .map(|p| bounded(p, MAX_VALUE_CHARS)),
            message: fields.get("message").map(|m| bounded(m, MAX_MESSAGE_CHARS)),
            kept: fields
                .iter()
                .filter(|(k, v)| KEPT_FIELDS.contains(k) && !v.is_empty())
                .map(|(k, v)| (k.to_owned(), bounded(v, MAX_VALUE_CHARS)))
                .collect(),
            trade_no,
        })
    }
}

/// Whether the signed text (the canonical string) can be split into fields other than those
/// received with a different `tradeNo`, `status` or `amount`. Given the shapes checked before
/// (status digits, amount a decimal number, names `[A-Za-z][A-Za-z0-9]*`):
/// - each of `tradeNo=`, `status=`, `amount=` must occur once in the text, so every split puts
///   those fields where they were received;
/// - `status` and `amount` end where a name (a letter) starts, so their ends are fixed;
/// - `tradeNo` may contain letters, so the name after it must not be splittable into a tail of
///   the order number and a shorter name that still sorts after `tradeNo`.
fn is_ambiguous(fields: &signing::ReceivedFields) -> bool {
    let canonical = signing::canonical_string(fields.iter());
    if ["tradeNo=", "status=", "amount="]
        .iter()
        .any(|key| canonical.matches(key).count() != 1)
    {
        return true;
    }
    let Some(trade_no) = fields.get("tradeNo") else {
        return true;
    };
    let next = fields
        .iter()
        .filter(|(name, value)| {
            *name > "tradeNo" && *name != signing::SIGN_FIELD && !value.is_empty()
        })
        .map(|(name, _)| name)
        .next();
    let Some(next) = next else {
        return false;
    };
    let joined = format!("{trade_no}{next}");
    let bytes = joined.as_bytes();
    (1..bytes.len())
        .filter(|&cut| cut != trade_no.len())
        .any(|cut| {
            let (head, tail) = joined.split_at(cut);
            head.len() <= TradeNo::MAX_LEN
                && head.bytes().all(payout_domain::TradeNo::allows)
                && is_field_name(tail)
                && tail > "tradeNo"
        })
}
