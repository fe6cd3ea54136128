//! The payout domain, the bottom layer: nothing here knows Vexora's wire, AWS or a Lambda.
//!
//! - Japan payout values that can only hold what the contract and Vexora accept
//!   (docs/contract.md § `POST /payouts`, `docs/vexora-api.md` §3 and §6), one file per concept,
//!   and the request DTO → [`PayoutRequest`] conversion that reports every violation at once;
//! - [`order`]: the order, its states and the one rule that decides a move;
//! - [`events`]: the status events a stored change stands for;
//! - [`json`]: the strict JSON object reader the signed and merchant bodies share.

mod amount;
mod bank;
mod contact;
mod invalid;
mod name;
mod payout;
mod pii;
mod remark;
mod trade_no;

pub mod events;
pub mod json;
pub mod order;

pub use amount::{Amount, PlainDecimal};
pub use bank::{BankCode, BankNumber};
pub use contact::{Email, Mobile, UserId};
pub use invalid::{FieldError, Invalid, ValidationErrors};
pub use name::KatakanaName;
pub use payout::{PayoutRequest, PayoutRequestDto};
pub use pii::Pii;
pub use remark::Remark;
pub use trade_no::{JAPAN_TIME, TradeNo};

/// The one text form of an instant: RFC 3339 with milliseconds, in UTC. Sortable; what is
/// stored, shown by the API and the operator tool, and published in events.
pub fn timestamp(at: chrono::DateTime<chrono::Utc>) -> String {
    at.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

#[cfg(test)]
mod tests;
